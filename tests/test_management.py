"""Version management (tags, annotations, retention, bulk, snapshots) on every engine."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from storied.testing.management_suite import ManagementConformance
from storied.testing.s3server import MotoHandle, make_bucket


class TestManagementPortableMemory(ManagementConformance):
    @pytest.fixture
    def mount_config(self) -> dict[str, Any]:
        return {"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}


class TestManagementPortableLocal(ManagementConformance):
    @pytest.fixture
    def mount_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}


class TestManagementPortableS3(ManagementConformance):
    @pytest.fixture
    def mount_config(self, moto: MotoHandle) -> dict[str, Any]:
        bucket = make_bucket(moto.endpoint_url, f"mp-{uuid.uuid4().hex[:12]}")
        return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                "key": "k", "secret": "s", "versioning": True}


class TestManagementNativeS3(ManagementConformance):
    @pytest.fixture
    def mount_config(self, moto: MotoHandle) -> dict[str, Any]:
        bucket = make_bucket(moto.endpoint_url, f"mn-{uuid.uuid4().hex[:12]}", versioned=True)
        return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                "key": "k", "secret": "s"}
