"""Schema 3 races and edges: undo of a sealed record, caches across a seal, tombstones, marks.

Small limits as in test_ha_segments (a module constant): sealed past 8 live records, 2 kept.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.base import Backend, WrappedBackend
from storied.backends.local import LocalBackend
from storied.errors import TransientStorageError
from storied.info import Data, Info, WriteMode
from storied.versioning import _sealing, _segments
from storied.versioning._listing import SEALED_MARK
from storied.versioning.portable import PortableEngine


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_segments, "LIVE_MAX", 8)
    monkeypatch.setattr(_segments, "LIVE_KEEP", 2)
    monkeypatch.setattr(_segments, "SEAL_CHECK", 1)


class SealsThenFails(WrappedBackend):
    """A real data backend whose first working-copy write of ``path`` first lets another
    engine write newer versions and seal (the failing write's record among them), then fails."""

    def __init__(self, inner: Backend, path: str, other: PortableEngine) -> None:
        super().__init__(inner)
        self.path, self.other, self.armed = path, other, True
        self.sealed: set[str] = set()

    def write(self, path: str, data: Data, *, mode: WriteMode = WriteMode.OVERWRITE,
              etag: str | None = None, metadata: dict[str, str] | None = None) -> Info:
        if path == self.path and self.armed:
            self.armed = False
            for i in range(3):
                self.other.write(path, f"overtaking {i}".encode())
            _sealing.seal(self.other, path)  # (the writes above may have sealed already)
            self.sealed = _sealing.sealed_names(self.other, path)
            raise TransientStorageError("injected: the working-copy write failed")
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)


def test_a_failed_write_whose_record_was_sealed_leaves_no_version(tmp_path: Path) -> None:
    store = LocalBackend(str(tmp_path))
    other = PortableEngine(store, store)
    for i in range(6):
        other.write("u.txt", f"before {i}".encode())
    failing = PortableEngine(SealsThenFails(store, "u.txt", other), store)
    with pytest.raises(TransientStorageError):
        failing.write("u.txt", b"never acknowledged")
    doomed = hashlib.sha256(b"never acknowledged").hexdigest()
    assert any(doomed in name for name in failing.data.sealed)  # type: ignore[attr-defined]
    check = PortableEngine(store, store)
    contents = []
    for version in check.versions("u.txt"):
        with check.open_version("u.txt", version) as stream:
            contents.append(stream.read())
    assert b"never acknowledged" not in contents
    assert contents == [f"before {i}".encode() for i in range(6)] + [
        f"overtaking {i}".encode() for i in range(3)]
    assert (tmp_path / "u.txt").read_bytes() == b"overtaking 2"
    report = check.verify()
    assert report.ok and not report.stale, (report.problems, report.stale)


def test_a_cached_listing_is_not_used_after_another_engine_seals(tmp_path: Path) -> None:
    store = LocalBackend(str(tmp_path))
    reader, writer = PortableEngine(store, store), PortableEngine(store, store)
    for i in range(20):
        writer.write("c.txt", f"v{i}".encode())
    time.sleep(1.2)  # quiet: the reader may cache both listings now
    first = reader.versions("c.txt")
    assert reader.versions("c.txt") == first and len(first) == 20
    for i in range(20, 40):
        writer.write("c.txt", f"v{i}".encode())  # seals and merges meanwhile
    found = reader.versions("c.txt")
    assert [v.version_id for v in found[:20]] == [v.version_id for v in first]
    assert len(found) == 40 and found[-1].is_latest
    assert reader.version_at("c.txt", -2)[0] == found[-2]
    assert reader.version_at("c.txt", 25)[0] == found[25]


def test_a_deleted_file_with_sealed_history(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}])
    node = sm.node("v:gone.txt")
    for i in range(20):
        node.write_bytes(f"v{i}".encode())
    node.delete()
    for _ in range(12):  # more tombstones and versions past the seal limit, then deleted
        node.write_bytes(b"again")
        node.delete()
    found = node.versions
    assert len(found) == 32 and not any(v["is_latest"] for v in found)
    assert node.open(version=0, mode="rb").read() == b"v0"
    assert node.open(version=-1, mode="rb").read() == b"again"
    node.write_bytes(b"back")
    assert node.versions[-1]["is_latest"] and node.read_bytes() == b"back"
    assert sm.verify("v:").ok


def test_segments_without_their_mark_are_a_problem(tmp_path: Path) -> None:
    store = LocalBackend(str(tmp_path))
    engine = PortableEngine(store, store)
    for i in range(20):
        engine.write("m.txt", f"v{i}".encode())
    assert engine.segments.list("m.txt")
    mark = tmp_path / ".storied" / "versions" / "m.txt" / SEALED_MARK
    assert mark.exists() and PortableEngine(store, store).verify().ok
    mark.unlink()
    report = PortableEngine(store, store).verify()
    assert not report.ok and any("sealed mark" in p for p in report.problems)


def test_storages_without_conditional_writes_never_seal(tmp_path: Path) -> None:
    class NoConditional(WrappedBackend):
        @property
        def capabilities(self):  # type: ignore[no-untyped-def, override]
            from dataclasses import replace

            return replace(self.inner.capabilities, conditional_write=False)

    store = NoConditional(LocalBackend(str(tmp_path)))
    engine = PortableEngine(store, store)
    for i in range(30):
        engine.write("n.txt", f"v{i}".encode())
    assert not (tmp_path / ".storied" / "segments").exists()
    marker = json.loads((tmp_path / ".storied" / "format.json").read_text())
    assert marker["schema_version"] == 2 and len(engine.versions("n.txt")) == 30
