"""strategy='reference' on storages without conditional writes or etags: SFTP and WebDAV
servers on 127.0.0.1 (the swap re-checks the content right before it), plus a file changed
between the proof and the swap on such a storage left alone."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends import registry
from storied.backends.base import WrappedBackend
from storied.backends.referencing import REF_SIZE, Referencing, find_layer
from storied.core import mounting
from storied.testing import servers

BIG = os.urandom(120_000)
PATHS = ("a/1.bin", "b/2.bin", "c/3.bin")


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured mounts get the reference layer (a no-op once mounting inserts it)."""
    original = mounting.compressing.wrap

    def wrap(name: str, config: Any, backend: Any) -> Any:
        return Referencing(original(name, config, backend))

    monkeypatch.setattr(mounting.compressing, "wrap", wrap)


@pytest.fixture(params=["sftp", "webdav"])
def remote(request: pytest.FixtureRequest, tmp_path: Path, wired: None) -> Iterator[
        tuple[StorageManager, Path]]:
    root = tmp_path / request.param
    root.mkdir()
    start = servers.start_sftp if request.param == "sftp" else servers.start_webdav
    handle = start(root)
    try:
        storage = StorageManager()
        storage.configure([{"name": "r", "type": request.param, **handle.config}])
        for path in PATHS:
            storage.node(f"r:{path}").write_bytes(BIG)
        yield storage, root
    finally:
        handle.stop()


def test_references_on_sftp_and_webdav(remote: tuple[StorageManager, Path]) -> None:
    storage, root = remote
    report = storage.deduplicate("r:", strategy="reference")
    assert sorted(report["groups"][0]["done"]) == [f"r:{p}" for p in PATHS]
    assert [(root / p).stat().st_size for p in PATHS] == [REF_SIZE] * 3
    for path in PATHS:
        node = storage.node(f"r:{path}")
        assert node.read_bytes() == BIG and node.size() == len(BIG)
    storage.node("r:a/1.bin").delete()
    storage.node("r:b/2.bin").write_bytes(b"mine now")
    assert storage.node("r:c/3.bin").read_bytes() == BIG
    assert storage.collect_references("r", grace=0)["removed"] == []
    assert storage.find_duplicates("r:") == []
    storage.node("r:c/3.bin").delete()
    assert storage.collect_references("r", grace=0)["bytes_freed"] == len(BIG)


class _ChangeBeforeSwap(WrappedBackend):
    """Another writer: the file is rewritten right after deduplicate's proof read of it
    (the second full read: the first is find_duplicates')."""

    def __init__(self, inner: Any, path: str) -> None:
        super().__init__(inner)
        self.path, self.reads = path, 0

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> Any:
        stream = self.inner.open_read(path, start, end)
        if path == self.path and not start and end is None:
            self.reads += 1
            if self.reads == 2:
                data = stream.read()
                stream.close()
                self.inner.write(path, b"written by someone else")
                return io.BytesIO(data)
        return stream


def test_without_etags_a_change_before_the_swap_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "sftp"
    root.mkdir()
    handle = servers.start_sftp(root)
    try:
        inner = registry.build("sftp", "s", dict(handle.config))
        storage = StorageManager()
        storage.add_mount({"name": "s", "backend": Referencing(_ChangeBeforeSwap(inner, "b")),
                           "retries": 1})
        for name in ("a", "b", "c"):
            storage.node(f"s:{name}").write_bytes(BIG)
        layer = find_layer(storage.node("s:")._be, "")
        assert layer is not None and not layer[0].capabilities.conditional_write
        report = storage.deduplicate("s:", strategy="reference")
        (group,) = report["groups"]
        assert [s["path"] for s in group["skipped"]] == ["s:b"]
        assert group["skipped"][0]["reason"].startswith("changed")
        assert (root / "b").read_bytes() == b"written by someone else"
        assert storage.node("s:a").read_bytes() == BIG == storage.node("s:c").read_bytes()
    finally:
        handle.stop()
