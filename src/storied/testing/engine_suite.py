"""The history conformance suite: the version API on any mount that keeps history.

Subclass :class:`EngineConformance` and provide a ``storage`` fixture: a
:class:`~storied.StorageManager` with a fresh, empty mount named ``v`` that keeps history (the
portable engine via ``versioning: true``, or the native one on a versioned bucket). The suite
adds ``vsub`` (``v:sub``) and ``vro`` (``v:``, read-only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from storied import StorageManager, StoragePermissionError
from storied.errors import StorageAlreadyExistsError, StorageError, StorageNotFoundError

__all__ = ["EngineConformance"]


class EngineConformance:
    """Behaviour every history engine must show through the public API."""

    @pytest.fixture
    def sm(self, storage: StorageManager) -> Iterator[StorageManager]:
        storage.configure([
            {"name": "vsub", "path": "v:sub"},
            {"name": "vro", "path": "v:", "permissions": "readonly"},
        ])
        yield storage

    def _write(self, sm: StorageManager, path: str, *contents: str) -> None:
        node = sm.node(path)
        for text in contents:
            node.write_text(text)

    # ------------------------------------------------------------------ listing and reading
    def test_versions_oldest_first(self, sm: StorageManager) -> None:
        node = sm.node("v:config/app.json")
        assert node.versions == [] and node.capabilities.versioning
        self._write(sm, "v:config/app.json", '{"v": 1}', '{"v": 2}', '{"v": 3}')
        found = node.versions
        assert len(found) == 3 == node.version_count
        assert [v["is_latest"] for v in found] == [False, False, True]
        for key in ("version_id", "is_latest", "last_modified", "size", "etag", "tags",
                    "metadata"):
            assert key in found[0]
        assert found[0]["last_modified"].tzinfo is not None
        assert [node.open(version=i).read() for i in (0, 1, 2)] == [
            '{"v": 1}', '{"v": 2}', '{"v": 3}']
        assert node.open(version=-2, mode="rb").read() == b'{"v": 2}'
        assert node.open(version=found[0]["version_id"]).read() == '{"v": 1}'
        assert len({v["version_id"] for v in found}) == 3

    def test_exact_path_only(self, sm: StorageManager) -> None:
        self._write(sm, "v:f.txt", "a", "b")
        self._write(sm, "v:f.txt.bak", "bak")
        self._write(sm, "v:f.tx", "short")
        assert sm.node("v:f.txt").version_count == 2
        assert sm.node("v:f.txt.bak").version_count == 1
        assert sm.node("v:f.tx").version_count == 1

    def test_as_of(self, sm: StorageManager) -> None:
        node = sm.node("v:dated.txt")
        self._write(sm, "v:dated.txt", "first", "second")
        latest = node.versions[-1]["last_modified"]
        naive_utc = latest.astimezone(UTC).replace(tzinfo=None)
        assert node.open(as_of=naive_utc + timedelta(seconds=1)).read() == "second"
        with pytest.raises(FileNotFoundError):
            node.open(as_of=datetime(2000, 1, 1))
        with pytest.raises(ValueError):
            node.open(version=-1, as_of=datetime(2000, 1, 1))

    def test_index_errors(self, sm: StorageManager) -> None:
        node = sm.node("v:few.txt")
        with pytest.raises(IndexError, match="No versions"):
            node.open(version=-1)
        self._write(sm, "v:few.txt", "one")
        with pytest.raises(IndexError, match="out of range"):
            node.open(version=-5)
        with pytest.raises(FileNotFoundError):
            node.open(version="no-such-version-id")

    def test_snapshot_nodes_are_read_only(self, sm: StorageManager) -> None:
        self._write(sm, "v:snap.txt", "old", "new")
        old = sm.node("v:snap.txt", version=-2)
        assert old.read_text() == "old" and old.read_bytes() == b"old"
        assert not old.capabilities.versioning
        for attempt in (lambda: old.write_text("x"), lambda: old.open("w"),
                        lambda: old.open(version=-1)):
            with pytest.raises(ValueError):
                attempt()
        with pytest.raises(ValueError):
            sm.node("v:snap.txt").open("w", version=-1)

    # ------------------------------------------------------------------ changing history
    def test_delete_keeps_history_and_write_continues(self, sm: StorageManager) -> None:
        node = sm.node("v:gone.txt")
        self._write(sm, "v:gone.txt", "1", "2")
        assert node.delete() is True
        assert not node.exists()
        assert [v["is_latest"] for v in node.versions] == [False, False]
        assert node.open(version=-1).read() == "2"
        node.write_text("3")
        assert [v["is_latest"] for v in node.versions] == [False, False, True]
        assert node.read_text() == "3"

    def test_diff_and_rollback(self, sm: StorageManager) -> None:
        node = sm.node("v:r.txt")
        self._write(sm, "v:r.txt", "good", "bad")
        assert node.diff_versions() == (b"bad", b"good")
        assert node.diff_versions(v1=0, v2=-1) == (b"good", b"bad")
        node.rollback(to_version=-2)
        assert node.read_text() == "good" and node.version_count == 3
        assert node.versions[-1]["is_latest"]

    def test_compact_versions(self, sm: StorageManager) -> None:
        node = sm.node("v:c.txt")
        self._write(sm, "v:c.txt", "A", "A", "B", "B", "A")
        assert node.compact_versions(dry_run=True) == 2 and node.version_count == 5
        assert node.compact_versions() == 2
        assert [node.open(version=i).read() for i in range(3)] == ["A", "B", "A"]
        self._write(sm, "v:c.txt", "A")
        assert node.compact_versions() == 1
        assert node.versions[-1]["is_latest"] and node.read_text() == "A"

    def test_delete_version(self, sm: StorageManager) -> None:
        node = sm.node("v:d.txt")
        self._write(sm, "v:d.txt", "1", "2", "3")
        node.delete_version(1)
        assert [node.open(version=i).read() for i in range(2)] == ["1", "3"]
        with pytest.raises(StoragePermissionError):
            node.delete_version(-1)  # the current version is protected
        assert node.version_count == 2 and node.read_text() == "3"
        node.delete()  # a deleted file has no current version: its newest may go
        node.delete_version(-1)
        assert node.version_count == 1 and not node.exists()

    def test_skip_if_unchanged_compares_with_latest(self, sm: StorageManager) -> None:
        node = sm.node("v:s.txt")
        assert node.write_text("same", skip_if_unchanged=True)
        assert not node.write_text("same", skip_if_unchanged=True)
        assert node.write_text("same")  # without the flag every write is a version
        assert node.version_count == 2

    # ------------------------------------------------------------------ every write path
    def test_every_write_path_records_a_version(self, sm: StorageManager) -> None:
        node = sm.node("v:paths.txt")
        node.write_bytes(b"1")
        with node.open("w") as f:
            f.write("2")
        with node.open("a") as f:
            f.write("+")
        with node.local_path("w") as p, open(p, "w") as f:
            f.write("3")
        sm.configure([{"name": "scratch", "type": "memory", "store": f"s-{id(sm)}"}])
        sm.node("scratch:x.txt").write_text("4")
        sm.node("scratch:x.txt").copy_to(node)
        assert [node.open(version=i).read() for i in range(5)] == ["1", "2", "2+", "3", "4"]

    def test_relative_mount_shares_history(self, sm: StorageManager) -> None:
        sm.node("vsub:a.txt").write_text("via sub")
        sm.node("v:sub/a.txt").write_text("via parent")
        assert sm.node("vsub:a.txt").version_count == 2
        assert sm.node("v:sub/a.txt").open(version=0).read() == "via sub"

    def test_readonly_mount_reads_history_and_refuses_changes(self, sm: StorageManager) -> None:
        self._write(sm, "v:ro.txt", "1", "2")
        node = sm.node("vro:ro.txt")
        assert node.version_count == 2 and node.open(version=0).read() == "1"
        for attempt in (lambda: node.rollback(), lambda: node.delete_version(0),
                        lambda: node.compact_versions(), lambda: node.delete(),
                        lambda: node.write_text("x")):
            with pytest.raises(StoragePermissionError):
                attempt()
        assert sm.node("v:ro.txt").version_count == 2

    def test_history_area_is_hidden_and_refused(self, sm: StorageManager) -> None:
        self._write(sm, "v:visible.txt", "1")
        names = {c.basename for c in sm.node("v:").children()}
        assert names == {"visible.txt"}
        attempt: Callable[[], object]
        for attempt in (lambda: sm.node("v:.storied/x"), lambda: sm.node("v:").child(".storied")):
            with pytest.raises(PermissionError):
                attempt()

    def test_move_within_versioned_mount(self, sm: StorageManager) -> None:
        self._write(sm, "v:m/a.txt", "1", "2")
        sm.node("v:m/a.txt").move_to("v:m/b.txt")
        assert sm.node("v:m/b.txt").read_text() == "2"
        assert sm.node("v:m/b.txt").version_count >= 1
        assert not sm.node("v:m/a.txt").exists()
        assert sm.node("v:m/a.txt").version_count == 2

    def test_verify_is_clean(self, sm: StorageManager) -> None:
        self._write(sm, "v:ok/a.txt", "1", "2")
        self._write(sm, "v:ok/b.txt", "1")
        sm.node("v:ok/b.txt").delete()
        report = sm.verify("v:")
        assert report.ok, report.problems
        assert report.checked >= 3 and report.stale == []
        assert sm.verify().ok

    def test_missing_version_content_is_not_found(self, sm: StorageManager) -> None:
        with pytest.raises(StorageNotFoundError):
            sm.node("v:never.txt", version="0000000000000000001.000000000000").read_bytes()

    # ------------------------------------------------------------------ exclusive and failed writes
    def test_exclusive_write_refuses_an_existing_file(self, sm: StorageManager) -> None:
        history = sm.history("v")
        assert history is not None
        first = history.write("x/new.txt", b"first", exclusive=True)
        assert first.is_latest and sm.node("v:x/new.txt").read_bytes() == b"first"
        with pytest.raises(StorageAlreadyExistsError):
            history.write("x/new.txt", b"second", exclusive=True)
        assert sm.node("v:x/new.txt").read_bytes() == b"first"
        assert [v.version_id for v in history.versions("x/new.txt")] == [first.version_id]
        sm.node("v:x/new.txt").delete()
        again = history.write("x/new.txt", b"after delete", exclusive=True)
        assert history.versions("x/new.txt")[-1] == again and again.is_latest
        assert sm.node("v:x/new.txt").read_bytes() == b"after delete"
        assert sm.verify("v:").ok

    def test_failed_write_onto_a_directory_leaves_no_version(self, sm: StorageManager) -> None:
        history = sm.history("v")
        assert history is not None
        sm.node("v:dir/inner.txt").write_text("inside")
        sm.node("v:plain.txt").write_text("a file")
        if not sm.node("v:").capabilities.empty_dirs:
            pytest.skip("on object stores a key and a prefix coexist: nothing to refuse")
        for target in ("dir", "plain.txt/below.txt"):
            with pytest.raises(StorageError):  # the storage's own error, whichever it is
                history.write(target, b"refused")
            assert history.versions(target) == []
        with pytest.raises(StorageError):
            history.write("dir", b"refused", exclusive=True)
        assert history.versions("dir") == []
        assert sm.node("v:plain.txt").read_text() == "a file"
        report = sm.verify("v:")
        assert report.ok and report.stale == [], (report.problems, report.stale)
