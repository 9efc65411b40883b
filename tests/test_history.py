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


class TestNativeOnVersionedS3(EngineConformance):
    @pytest.fixture
    def storage(self, moto: MotoHandle) -> Iterator[StorageManager]:
        bucket = make_bucket(moto.endpoint_url, f"nv-{uuid.uuid4().hex[:12]}", versioned=True)
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                       "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
        yield sm
        sm.close()

    def test_engine_is_native(self, storage: StorageManager) -> None:
        history = storage.history("v")
        assert history is not None and history.name == "native"
        storage.node("v:n.txt").write_text("x")
        assert storage.node("v:n.txt").versions[0]["sha256"] is None


def test_versioning_false_hides_native_history(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"nf-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([{"name": "plain", "type": "s3", "bucket": bucket, "versioning": False,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    sm.node("plain:a.txt").write_text("1")
    assert sm.node("plain:a.txt").versions == []
    with pytest.raises(PermissionError):
        sm.node("plain:a.txt").open(version=-1)


def test_unversioned_mount_keeps_no_history(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "p", "type": "local", "base_path": str(tmp_path)}])
    sm.node("p:a.txt").write_text("1")
    sm.node("p:a.txt").write_text("2")
    assert sm.node("p:a.txt").versions == [] and not (tmp_path / ".storied").exists()
    assert sm.verify().ok and sm.verify().checked == 0
    with pytest.raises(PermissionError):
        sm.node("p:a.txt").rollback()
