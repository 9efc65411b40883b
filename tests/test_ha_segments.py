"""Schema 3: sealed segments. Reads, deletions, crashes, concurrency and migration.

Small limits (a module constant, as the brief allows) keep these fast: a live directory is
sealed past 8 records, 2 stay live, records of any age may be sealed, and every write checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.base import Backend, WrappedBackend
from storied.backends.local import LocalBackend
from storied.backends.memory import MemoryBackend
from storied.backends.s3 import S3Backend
from storied.errors import InvalidContentError, StorageNotFoundError, UnsupportedOperation
from storied.testing.s3server import MotoHandle, make_bucket
from storied.versioning import _sealing, _segments, portable
from storied.versioning.engine import Version
from storied.versioning.maintenance import MaintenanceLease
from storied.versioning.portable import PortableEngine
from storied.versioning.records import Record, new_writer_id


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_segments, "LIVE_MAX", 8)
    monkeypatch.setattr(_segments, "LIVE_KEEP", 2)
    monkeypatch.setattr(_segments, "SEAL_AGE_NS", 0)
    monkeypatch.setattr(_segments, "SEAL_CHECK", 1)


def _engine(backend: Backend) -> PortableEngine:
    return PortableEngine(backend, backend)


@pytest.fixture(params=["memory", "local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
    elif request.param == "local":
        yield LocalBackend(str(tmp_path))
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"ha-{uuid.uuid4().hex[:12]}")
        s3 = S3Backend(bucket, key="k", secret="s", endpoint_url=moto.endpoint_url)
        yield s3
        s3.close()


def _write_many(engine: PortableEngine, path: str, count: int) -> list[Version]:
    return [engine.write(path, f"{path} v{i}".encode()) for i in range(count)]


def _segment_names(engine: PortableEngine, path: str) -> list[str]:
    return [s.name for s in engine.segments.list(path)]


def _live_count(engine: PortableEngine, path: str) -> int:
    return len(engine._listings.live_names(engine._history_dir(path)))


def _check_reads(engine: PortableEngine, path: str, expected: list[Version],
                 every: int = 1) -> None:
    """versions, every index (both ends), as_of at and between versions, all contents."""
    fresh = PortableEngine(engine.data, engine.meta, engine.root)  # nothing cached
    for reader in (engine, fresh):
        found = reader.versions(path)
        assert [v.version_id for v in found] == [v.version_id for v in expected]
        assert [v.is_latest for v in found] == [False] * (len(expected) - 1) + [True]
        n = len(expected)
        for i in range(0, n, every):
            assert reader.version_at(path, i)[0] == found[i]
            assert reader.version_at(path, i - n)[0] == found[i]
        assert reader.version_at(path, n) == (None, n)
        assert reader.version_at(path, -n - 1) == (None, n)
        for i in range(0, n, every):
            moment = found[i].last_modified
            want = [v for v in found if v.last_modified <= moment][-1]
            assert reader.version_as_of(path, moment) == want
            assert reader.version_as_of(path, moment + timedelta(microseconds=0.5)) in found
        assert reader.version_as_of(path, found[0].last_modified - timedelta(seconds=1)) is None
    for i in range(0, len(expected), every):
        with engine.open_version(path, expected[i]) as stream:
            assert stream.read() == f"{path} v{i}".encode()


def test_reads_after_sealing_match_the_unsealed_answer(backend: Backend) -> None:
    engine = _engine(backend)
    count = 40 if backend.capabilities.empty_dirs is False else 120
    expected = _write_many(engine, "dir/doc.txt", count)
    assert _segment_names(engine, "dir/doc.txt"), "sealing happened"
    assert _live_count(engine, "dir/doc.txt") <= _segments.LIVE_MAX + 1
    _check_reads(engine, "dir/doc.txt", expected, every=1 if count < 100 else 3)
    assert engine.all_versions("dir") == {"dir/doc.txt": engine.versions("dir/doc.txt")}
    assert list(engine.history_paths("")) == ["dir/doc.txt"]
    report = engine.verify()
    assert report.ok and not report.stale and report.checked == count, report.problems
    marker = json.loads(backend.read_bytes(".storied/format.json"))
    assert marker["schema_version"] == 3


def test_two_thousand_versions_every_index(tmp_path: Path) -> None:
    engine = _engine(LocalBackend(str(tmp_path)))
    expected = _write_many(engine, "big.bin", 2000)
    segs = engine.segments.list("big.bin")
    assert 1 <= len(segs) <= 12  # binary-counter merging keeps them few
    found = engine.versions("big.bin")
    for i in range(1, 40):  # the newest ones: answered from the live records or one segment
        assert engine.version_at("big.bin", -i)[0] == found[-i]
    _check_reads(engine, "big.bin", expected, every=9)
    assert engine.verify().ok


def test_a_file_and_a_sub_path_keep_separate_segments(tmp_path: Path) -> None:
    engine = _engine(LocalBackend(str(tmp_path)))
    a = _write_many(engine, "a", 20)
    x = _write_many(engine, "x/y", 20)
    xy = _write_many(engine, "x/y.d/z", 20)
    assert [v.version_id for v in engine.versions("a")] == [v.version_id for v in a]
    assert [v.version_id for v in engine.versions("x/y")] == [v.version_id for v in x]
    assert [v.version_id for v in engine.versions("x/y.d/z")] == [v.version_id for v in xy]
    assert sorted(engine.all_versions("x")) == ["x/y", "x/y.d/z"]
    assert engine.verify().ok


def test_delete_version_of_a_sealed_version_is_not_resurrected(backend: Backend) -> None:
    engine = _engine(backend)
    expected = _write_many(engine, "f.txt", 30)
    doomed = expected[3]
    assert engine.version_at("f.txt", 3)[0] == engine.versions("f.txt")[3]
    with MaintenanceLease(engine.catalog):
        engine.delete_version("f.txt", doomed)
    expected.remove(doomed)
    more = [engine.write("f.txt", f"more {i}".encode()) for i in range(20)]  # merges
    for reader in (engine, PortableEngine(backend, backend)):
        ids = [v.version_id for v in reader.versions("f.txt")]
        assert doomed.version_id not in ids
        assert ids == [v.version_id for v in expected + more]
    assert engine.verify().ok


def test_bulk_removal_items_drop_sealed_versions(backend: Backend) -> None:
    engine = _engine(backend)
    expected = _write_many(engine, "g.txt", 30)
    doomed = expected[1:20:2]
    with MaintenanceLease(engine.catalog):
        engine.remove_items(engine.removal_items("g.txt", doomed))
    kept = [v.version_id for v in expected if v not in doomed]
    assert [v.version_id for v in engine.versions("g.txt")] == kept
    assert [v.version_id for v in PortableEngine(backend, backend).versions("g.txt")] == kept
    assert engine.verify().ok


def test_node_api_protects_current_and_tagged_sealed_versions(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}])
    node = sm.node("v:doc.txt")
    for i in range(30):
        node.write_bytes(b"same" if i % 3 else f"diff {i}".encode())
    engine = node._history.engine
    assert engine.segments.list("doc.txt")
    tagged = node.versions[1]["version_id"]
    node.tag_version(1, "keep-me")
    removed = node.compact_versions()
    assert removed > 0
    ids = [v["version_id"] for v in node.versions]
    assert tagged in ids and node.versions[-1]["is_latest"]
    node.cleanup_versions(keep_last=3)
    after = [v["version_id"] for v in node.versions]
    assert tagged in after and len(after) == 4  # three newest plus the tagged one
    assert [v["version_id"] for v in fresh_versions(tmp_path)] == after
    assert node.read_bytes() == node.open(version=-1, mode="rb").read()
    assert sm.verify("v:").ok


def fresh_versions(root: Path) -> list[dict[str, object]]:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(root), "versioning": True}])
    return sm.node("v:doc.txt").versions


class StopAt(WrappedBackend):
    """A real backend that raises (as if the process died) on the ``nth`` call of an
    operation on a key containing ``marker``."""

    def __init__(self, inner: Backend, operation: str, marker: str, nth: int = 1) -> None:
        super().__init__(inner)
        self.operation, self.marker, self.left = operation, marker, nth

    def _hit(self, operation: str, path: str) -> None:
        if operation == self.operation and self.marker in path:
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt(f"killed at {operation} {path}")

    def write(self, path, data, **kw):  # type: ignore[no-untyped-def, override]
        self._hit("write", path)
        return self.inner.write(path, data, **kw)

    def delete(self, path, **kw):  # type: ignore[no-untyped-def, override]
        self._hit("delete", path)
        return self.inner.delete(path, **kw)

    def delete_many(self, items):  # type: ignore[no-untyped-def, override]
        for path, _ in items:
            self._hit("delete", path)
            try:
                self.inner.delete(path)
            except StorageNotFoundError:
                pass


@pytest.mark.parametrize("operation,marker,nth", [
    ("write", "segments/", 1),       # killed writing the new segment
    ("delete", "segments/", 1),      # killed after a merged segment, before removing the old
    ("delete", "versions/", 1),      # killed before removing any sealed record
    ("delete", "versions/", 4),      # killed half-way through removing sealed records
])
def test_a_seal_killed_at_any_step_leaves_a_readable_history(
    tmp_path: Path, operation: str, marker: str, nth: int
) -> None:
    store = LocalBackend(str(tmp_path))
    engine = _engine(store)
    expected = _write_many(engine, "c.txt", 14)  # sealed once already
    monkey = pytest.MonkeyPatch()
    monkey.setattr(_segments, "SEAL_CHECK", 10**9)
    try:
        plain = _engine(store)
        expected += [plain.write("c.txt", f"c.txt v{i}".encode()) for i in range(14, 40)]
    finally:
        monkey.undo()
    dying = PortableEngine(store, StopAt(store, operation, marker, nth))
    with pytest.raises(KeyboardInterrupt):
        _sealing.seal_under_lease(dying, "c.txt")
    survivor = _engine(store)
    _check_reads(survivor, "c.txt", expected, every=3)
    report = survivor.verify()
    assert report.ok and not report.stale, report.problems
    with MaintenanceLease(survivor.catalog):
        _sealing.seal_under_lease(survivor, "c.txt")  # the next seal cleans up
    _check_reads(survivor, "c.txt", expected, every=3)
    assert survivor.verify().ok
    assert len([s for s in survivor.segments.list("c.txt")]) <= 3


def test_a_rewrite_killed_before_removing_the_old_segment_resurrects_nothing(
    tmp_path: Path,
) -> None:
    store = LocalBackend(str(tmp_path))
    engine = _engine(store)
    expected = _write_many(engine, "r.txt", 30)
    doomed = expected[2]
    dying = PortableEngine(store, StopAt(store, "delete", "segments/", 1))
    with pytest.raises(KeyboardInterrupt):
        _sealing.drop_sealed(dying, "r.txt", {doomed.version_id})
    assert len(engine.segments.list("r.txt")) > len(_segments.effective(
        engine.segments.list("r.txt")))  # the superseded segment is still there
    ids = [v.version_id for v in _engine(store).versions("r.txt")]
    assert doomed.version_id not in ids and len(ids) == 29
    assert _engine(store).verify().ok


def test_schema_2_history_of_1000_records_is_sealed_and_refused_by_old_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = LocalBackend(str(tmp_path))
    monkeypatch.setattr(_segments, "SEAL_CHECK", 10**9)  # the old storied never sealed
    old = _engine(store)
    first = old.write("m.txt", b"seed")
    folder = tmp_path / ".storied" / "versions" / "m.txt"
    writer, ts = new_writer_id(), int(first.last_modified.timestamp() * 1e9) - 10**12
    for k in range(999):
        name = Record(ts + k, writer, False, first.size, first.etag, first.sha256 or "").name
        (folder / name).touch()
    marker = tmp_path / ".storied" / "format.json"
    assert json.loads(marker.read_text())["schema_version"] == 2
    before = [v.version_id for v in _engine(store).versions("m.txt")]
    assert len(before) == 1000
    monkeypatch.setattr(_segments, "SEAL_CHECK", 32)
    new = _engine(store)
    assert new.version_at("m.txt", -1)[0] is not None  # a read finds the directory long
    last = new.write("m.txt", b"after")  # ...so this write seals it
    assert json.loads(marker.read_text())["schema_version"] == 3
    assert _live_count(new, "m.txt") <= 3
    after = [v.version_id for v in _engine(store).versions("m.txt")]
    assert after == [*sorted(before), last.version_id]
    assert new.verify().ok and new.verify().checked == 1001
    monkeypatch.setattr(portable, "SCHEMA_VERSION", 2)  # a schema-2 storied
    with pytest.raises(UnsupportedOperation, match="reads up to 2"):
        _engine(store).write("m.txt", b"old writer")


def test_hostile_segment_objects_are_reported_and_refused(tmp_path: Path) -> None:
    store = LocalBackend(str(tmp_path))
    engine = _engine(store)
    _write_many(engine, "h.txt", 20)
    seg = engine.segments.list("h.txt")[0]
    folder = tmp_path / ".storied" / "segments" / "h.txt"
    (folder / "junk.seg").write_bytes(b"nothing")
    report = _engine(store).verify()
    assert not report.ok and any("not a segment" in p for p in report.problems)
    (folder / "junk.seg").unlink()
    body = (folder / seg.name).read_bytes()
    (folder / seg.name).write_bytes(body[: len(body) // 2])  # truncated
    fresh = _engine(store)
    with pytest.raises(InvalidContentError):
        fresh.versions("h.txt")
    assert fresh.version_at("h.txt", -1)[0] is not None  # the newest stay readable
    report = _engine(store).verify()
    assert not report.ok and any("segment" in p for p in report.problems)


def test_two_processes_write_while_a_third_seals(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from storied.backends.local import LocalBackend
        from storied.versioning import _segments
        from storied.versioning.portable import PortableEngine
        _segments.SEAL_CHECK = 10**9
        b = LocalBackend({str(tmp_path)!r})
        e = PortableEngine(b, b)
        for i in range(60):
            e.write("shared.txt", f"{{sys.argv[1]}} {{i}}".encode())
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    store = LocalBackend(str(tmp_path))
    _engine(store).write("shared.txt", b"start")
    writers = [subprocess.Popen([sys.executable, "-c", script, name], env=env)
               for name in ("p", "q")]
    sealer = _engine(store)
    sealed = 0
    while any(w.poll() is None for w in writers):
        sealed += _sealing.seal(sealer, "shared.txt")
    assert all(w.wait(60) == 0 for w in writers)
    sealed += _sealing.seal(sealer, "shared.txt")
    assert sealed > 0
    found = _engine(store).versions("shared.txt")
    assert len(found) == 121 and len({v.version_id for v in found}) == 121
    report = _engine(store).verify()
    assert report.ok and not report.stale, (report.problems, report.stale)
    with _engine(store).open_version("shared.txt", found[-1]) as stream:
        assert (tmp_path / "shared.txt").read_bytes() == stream.read()
