"""History conformance on the portable engine: memory, local disk, unversioned S3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.testing.engine_suite import EngineConformance
from storied.testing.s3server import MotoHandle, make_bucket


class TestPortableOnMemory(EngineConformance):
    @pytest.fixture
    def storage(self) -> Iterator[StorageManager]:
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "memory", "versioning": True}])
        yield sm


class TestPortableOnLocal(EngineConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                       "versioning": True}])
        yield sm


class TestPortableOnUnversionedS3(EngineConformance):
    @pytest.fixture
    def storage(self, moto: MotoHandle) -> Iterator[StorageManager]:
        bucket = make_bucket(moto.endpoint_url, f"pv-{uuid.uuid4().hex[:12]}")
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                       "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s",
                       "versioning": True}])
        yield sm
        sm.close()


class TestPortableWithHistoryElsewhere(EngineConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        (tmp_path / "data").mkdir()
        sm = StorageManager()
        sm.configure([
            {"name": "archive", "type": "memory"},
            {"name": "v", "type": "local", "base_path": str(tmp_path / "data"),
             "versioning": True, "history": "archive:histories/v"},
        ])
        yield sm

    def test_history_lives_in_the_other_mount(self, storage: StorageManager) -> None:
        storage.node("v:x.txt").write_text("1")
        assert storage.node("archive:histories/v").exists()
        assert not (Path(storage.node("v:").resolved_path) / ".storied").exists()
