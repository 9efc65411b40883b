"""Lock semantics (legal hold, retention) on every history engine: native S3 with Object Lock,
native S3 without it, and the portable engine on memory, local disk and an unversioned bucket."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from storied.testing.lock_suite import LockConformance
from storied.testing.s3server import MotoHandle, make_bucket, s3_client


def _lock_bucket(endpoint_url: str) -> str:
    name = f"lk-{uuid.uuid4().hex[:12]}"
    client = s3_client(endpoint_url)
    try:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    finally:
        client.close()
    return name


class TestLockNativeObjectLock(LockConformance):
    @pytest.fixture
    def mount_config(self, moto: MotoHandle) -> dict[str, Any]:
        return {"name": "v", "type": "s3", "bucket": _lock_bucket(moto.endpoint_url),
                "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}


class TestLockNativeNoObjectLock(LockConformance):
    @pytest.fixture
    def mount_config(self, moto: MotoHandle) -> dict[str, Any]:
        bucket = make_bucket(moto.endpoint_url, f"ln-{uuid.uuid4().hex[:12]}", versioned=True)
        return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                "key": "k", "secret": "s"}


class TestLockPortableS3(LockConformance):
    @pytest.fixture
    def mount_config(self, moto: MotoHandle) -> dict[str, Any]:
        bucket = make_bucket(moto.endpoint_url, f"lp-{uuid.uuid4().hex[:12]}")
        return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                "key": "k", "secret": "s", "versioning": True}


class TestLockPortableMemory(LockConformance):
    @pytest.fixture
    def mount_config(self) -> dict[str, Any]:
        return {"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}


class TestLockPortableLocal(LockConformance):
    @pytest.fixture
    def mount_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}


class TestLockPortableMockFaults(LockConformance):
    """The same rules through MockBackend injecting transient faults (retried by storied)."""

    @pytest.fixture
    def mount_config(self) -> dict[str, Any]:
        return {"name": "v", "type": "mock", "failure_rate": 0.05, "seed": 11,
                "faults": ["transient"], "wraps": {"type": "memory", "store": uuid.uuid4().hex},
                "versioning": True, "retries": 8}
