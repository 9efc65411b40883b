"""MockBackend (no faults) and a recording cassette keep every contract: the backend, node and
history conformance suites run through them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.base import Backend
from storied.testing.conformance import BackendConformance
from storied.testing.engine_suite import EngineConformance
from storied.testing.mock import MockBackend
from storied.testing.node_suite import NodeConformance


class TestMockBackend(BackendConformance):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        yield MockBackend(latency_ms=0, failure_rate=0.0, seed=1)


class TestMockOverLocal(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield MockBackend(wraps={"type": "local", "base_path": str(tmp_path)})


class TestMockNodes(NodeConformance):
    @pytest.fixture
    def storage(self) -> Iterator[StorageManager]:
        storage = StorageManager()
        storage.add_mount({"name": "base", "backend": MockBackend()})
        yield storage


class TestMockHistory(EngineConformance):
    @pytest.fixture
    def storage(self) -> Iterator[StorageManager]:
        storage = StorageManager()
        storage.add_mount({"name": "v", "backend": MockBackend(), "versioning": True})
        yield storage


class TestNodesWhileRecording(NodeConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        (tmp_path / "d").mkdir()
        storage = StorageManager()
        storage.configure([{"name": "base", "type": "local", "base_path": str(tmp_path / "d")}])
        with storage.record_mode(tmp_path / "suite.json"):
            yield storage


class TestHistoryWhileRecording(EngineConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        storage = StorageManager()
        storage.configure([{"name": "v", "type": "memory", "versioning": True}])
        with storage.record_mode(tmp_path / "suite.json"):
            yield storage
