"""Backend and node conformance on the two embedded backends: memory and local disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.base import Backend
from storied.backends.local import LocalBackend
from storied.backends.memory import MemoryBackend
from storied.testing.conformance import BackendConformance
from storied.testing.node_suite import NodeConformance


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        yield MemoryBackend("conformance")


class TestLocalBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield LocalBackend(str(tmp_path))


class TestMemoryNodes(NodeConformance):
    @pytest.fixture
    def storage(self) -> Iterator[StorageManager]:
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "memory"}])
        yield sm


class TestLocalNodes(NodeConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[StorageManager]:
        root = tmp_path / "root"
        root.mkdir()
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "local", "base_path": str(root)}])
        yield sm
