"""The shipped conformance suites (backend, node, history) over compressing mounts, with every
file compressed (the size and gain thresholds lowered), on memory, local and S3 (moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import compressing
from storied.backends.base import Backend
from storied.backends.local import LocalBackend
from storied.backends.memory import MemoryBackend
from storied.testing.conformance import BackendConformance
from storied.testing.engine_suite import EngineConformance
from storied.testing.node_suite import NodeConformance
from storied.testing.s3server import MotoHandle, make_bucket


@pytest.fixture(autouse=True)
def _compress_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compressing, "MIN_SIZE", 1)
    monkeypatch.setattr(compressing, "MIN_GAIN", 100.0)


def _layer(inner: Backend, codec: str = "gzip") -> Backend:
    return compressing.wrap("t", {"compress": ["*"], "compression": codec}, inner)


class TestCompressingMemory(BackendConformance):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        yield _layer(MemoryBackend(uuid.uuid4().hex))


class TestCompressingLocalZstd(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield _layer(LocalBackend(str(tmp_path)), "zstd")


class TestCompressedLocalNodes(NodeConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "local", "base_path": str(tmp_path),
                       "compress": ["*"]}])
        yield sm
        sm.close()


class TestCompressedS3Nodes(NodeConformance):
    @pytest.fixture
    def storage(self, moto: MotoHandle) -> Iterator[StorageManager]:
        bucket = make_bucket(moto.endpoint_url, f"cmp-{uuid.uuid4().hex[:12]}")
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "s3", "bucket": bucket,
                       "endpoint_url": moto.endpoint_url, "key": "testing",
                       "secret": "testing", "compress": ["*"], "compression": "zstd"}])
        yield sm
        sm.close()


class TestCompressedPortableHistory(EngineConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                       "versioning": True, "compress": ["*.json", "*.txt"]}])
        yield sm
        sm.close()


class TestCompressedNativeHistory(EngineConformance):
    @pytest.fixture
    def storage(self, moto: MotoHandle) -> Iterator[StorageManager]:
        bucket = make_bucket(moto.endpoint_url, f"cmpv-{uuid.uuid4().hex[:12]}",
                             versioned=True)
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                       "endpoint_url": moto.endpoint_url, "key": "testing",
                       "secret": "testing", "compress": ["*"]}])
        yield sm
        sm.close()
