"""Convergence without listing a file's history (schema 2, ``converge: recent``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

from storied import StorageManager
from storied.backends.base import Backend, WrappedBackend
from storied.backends.local import LocalBackend
from storied.info import Data, Info, WriteMode
from storied.versioning.portable import PortableEngine
from storied.versioning.records import Record, new_writer_id


class GatedBackend(WrappedBackend):
    """A real backend whose first write of ``path`` waits for ``release`` (after ``reached``)."""

    def __init__(self, inner: Backend, path: str) -> None:
        super().__init__(inner)
        self.path, self.reached, self.release = path, threading.Event(), threading.Event()
        self._armed = True

    def write(self, path: str, data: Data, *, mode: WriteMode = WriteMode.OVERWRITE,
              etag: str | None = None, metadata: dict[str, str] | None = None) -> Info:
        if path == self.path and self._armed:
            self._armed = False
            self.reached.set()
            assert self.release.wait(30)
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)


class ListingCounter(WrappedBackend):
    """A real backend that counts the names it lists below ``folder``."""

    def __init__(self, inner: Backend, folder: str) -> None:
        super().__init__(inner)
        self.folder, self.listed = folder, 0

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        found = list(self.inner.list_names(path, start_after))
        if path == self.folder or path.startswith(self.folder + "/"):
            self.listed += len(found)
        return iter(found)


def seed(root: Path, path: str, count: int) -> None:
    """``count`` old versions of ``path``, made through the engine then copied as records."""
    engine = PortableEngine(LocalBackend(root), LocalBackend(root))
    first = engine.write(path, b"seed")
    folder = root / ".storied" / "versions" / path
    writer, ts = new_writer_id(), first.last_modified.timestamp() * 1e9 - 10**12
    for k in range(count - 1):
        name = Record(int(ts) + k, writer, False, first.size, first.etag, first.sha256 or "").name
        (folder / name).touch()


def test_overtaken_writer_converges_without_listing_the_history(tmp_path: Path) -> None:
    """Writer A records first but writes its working copy last: A must find B's newer record
    through the announcements (B pruned A's), and never list the 300-record history."""
    seed(tmp_path, "doc.txt", 300)
    store = LocalBackend(tmp_path)
    gate = GatedBackend(store, "doc.txt")
    counted = ListingCounter(store, ".storied/versions")
    slow, fast = PortableEngine(gate, counted), PortableEngine(store, counted)
    worker = threading.Thread(target=slow.write, args=("doc.txt", b"A: older record"))
    worker.start()
    assert gate.reached.wait(30)
    newer = fast.write("doc.txt", b"B: newer record")
    gate.release.set()
    worker.join(30)
    assert (tmp_path / "doc.txt").read_bytes() == b"B: newer record"
    assert counted.listed == 0  # neither writer listed the history
    versions = fast.versions("doc.txt")
    assert versions[-1] == newer and len(versions) == 302
    report = fast.verify()
    assert report.ok and report.stale == [], (report.problems, report.stale)


def test_writes_list_no_history_names_at_any_length(tmp_path: Path) -> None:
    seed(tmp_path, "long.txt", 500)
    store = LocalBackend(tmp_path)
    counted = ListingCounter(store, ".storied/versions")
    engine = PortableEngine(store, counted)
    for i in range(20):
        engine.write("long.txt", f"write {i}".encode())
    engine.delete("long.txt")
    assert counted.listed == 0
    announced = list((tmp_path / ".storied" / "recent").rglob("*"))
    assert len([p for p in announced if p.is_file()]) == 1  # the newest one only


def test_concurrent_writers_leave_the_newest_record_shown(tmp_path: Path) -> None:
    engines = [PortableEngine(LocalBackend(tmp_path), LocalBackend(tmp_path)) for _ in range(4)]
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(40):
            engines[k].write("shared.txt", f"w{k}-{i}".encode())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    versions = engines[0].versions("shared.txt")
    assert len(versions) == 160
    with engines[0].open_version("shared.txt", versions[-1]) as stream:
        assert (tmp_path / "shared.txt").read_bytes() == stream.read()
    announced = [p for p in (tmp_path / ".storied" / "recent").rglob("*") if p.is_file()]
    assert 1 <= len(announced) <= 4


def test_schema_1_history_is_read_and_upgraded(tmp_path: Path) -> None:
    """A history written before schema 2 (no announcements) stays readable and writable."""
    seed(tmp_path, "old.txt", 5)
    marker = tmp_path / ".storied" / "format.json"
    marker.write_text(json.dumps({"format": "storied-history", "schema_version": 1}))
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    node = sm.node("v:old.txt")
    assert node.version_count == 5 and node.open(version=-1, mode="rb").read() == b"seed"
    node.write_bytes(b"after the upgrade")
    assert node.version_count == 6 and node.read_bytes() == b"after the upgrade"
    upgraded = json.loads(marker.read_text())
    assert upgraded["schema_version"] == 2 and upgraded["converge"] == "recent"
    assert sm.verify("v:").ok
