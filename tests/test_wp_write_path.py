"""The versioned write path's short cuts (issues 8 §5 and 9, ADR 0012/0013): each gives what the
long path gave. Adapters' ``create_new`` (journal entries, blobs on memory), the engine
addressing the adapter below layers that pass ``.storied`` through, records linked from the
blob's name, journal ids drawn ahead, ``Walk.enter``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.base import WrappedBackend
from storied.backends.local import TMP_MARK, LocalBackend
from storied.backends.memory import MemoryBackend
from storied.errors import (
    IsADirectoryStorageError,
    PathEscapeError,
    StorageAlreadyExistsError,
    TransientStorageError,
)
from storied.events import journal as journal_mod
from storied.events.journal import JournalStore
from storied.events.view import journal_for, store_of
from storied.info import WriteMode
from storied.versioning._wp_fast import holding_of, reserved_adapter


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(params=["unnamed", "named"])
def local(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(str(tmp_path))
    if request.param == "named":
        backend._tmpfile = False
    elif not backend._tmpfile:
        pytest.skip("no O_TMPFILE here")
    return backend


def test_local_create_new_is_create_only_and_leaves_nothing(local: LocalBackend,
                                                            tmp_path: Path) -> None:
    local.create_new(".storied/journal/000000000/000000000001.json", b'{"a":1}')
    with pytest.raises(StorageAlreadyExistsError):
        local.create_new(".storied/journal/000000000/000000000001.json", b"other")
    path = tmp_path / ".storied/journal/000000000/000000000001.json"
    assert path.read_bytes() == b'{"a":1}'  # the first content stays whole
    local.write("plain", b"x", mode=WriteMode.CREATE)  # the same file as the long path makes
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert not [p for p in _files(tmp_path) if TMP_MARK in p]
    with pytest.raises(StorageAlreadyExistsError):  # as write(mode=CREATE) on a directory
        local.create_new(".storied/journal", b"x")


def test_local_create_new_stays_inside_the_mount(tmp_path: Path) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / ".storied").symlink_to(outside)
    with pytest.raises(PathEscapeError):
        LocalBackend(str(base)).create_new(".storied/journal/x.json", b"{}")
    assert list(outside.iterdir()) == []


def test_memory_create_new_is_create_only() -> None:
    backend = MemoryBackend(os.urandom(6).hex())
    backend.create_new("a/b", b"one")
    with pytest.raises(StorageAlreadyExistsError):
        backend.create_new("a/b", b"two")
    with pytest.raises(IsADirectoryStorageError):
        backend.create_new("a", b"three")
    info = backend.info("a/b")
    assert backend.read_bytes("a/b") == b"one" and info.size == 3 and info.md5
    assert [i.path for i in backend.list("a")] == ["a/b"]


def test_records_are_links_of_their_blob_and_the_journal_names_each_write(
        tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    node = sm.node("v:d/f.txt")
    for text in ("one", "two", "one"):
        node.write_text(text)
    versions = node.versions
    blobs = {p.name: p.stat().st_ino for p in (tmp_path / ".storied/blobs").rglob("*")
             if p.is_file()}
    records = sorted((tmp_path / ".storied/versions/d/f.txt").iterdir())
    assert len(records) == 3 and len(blobs) == 2
    for record, version in zip(records, versions, strict=True):
        assert record.stat().st_ino == blobs[version["sha256"]]  # one inode, two names
    assert [v["version_id"] for v in versions] == [
        e.version_id for e in sm.events("v:") if e.type == "version_created"]
    assert not [p for p in _files(tmp_path) if TMP_MARK in p]


class _Opaque(WrappedBackend):
    """A layer that does not declare it passes the reserved area through."""


class _Passing(WrappedBackend):
    reserved_passthrough = True


def test_the_engine_addresses_the_adapter_only_below_passthrough_layers(
        tmp_path: Path) -> None:
    adapter = LocalBackend(str(tmp_path))
    assert reserved_adapter(_Passing(_Passing(adapter)), ".storied") is adapter
    opaque = _Opaque(adapter)
    assert reserved_adapter(_Passing(opaque), ".storied") is opaque  # stops at the opaque one
    stacked = _Passing(adapter)
    assert reserved_adapter(stacked, "history") is stacked  # not the reserved area: all layers
    assert reserved_adapter(stacked, "") is stacked


def test_holding_blocks_are_entered_once_per_adapter(tmp_path: Path) -> None:
    one, two = LocalBackend(str(tmp_path)), LocalBackend(str(tmp_path))
    with holding_of(_Passing(one), one)():
        assert one._held.fds == {} and two._held.fds is None
    with holding_of(one, two)():
        assert one._held.fds == {} and two._held.fds == {}
    assert one._held.fds is None and two._held.fds is None
    with holding_of(MemoryBackend(os.urandom(6).hex()))():
        pass  # no holding() there: nothing entered


class _Fails(WrappedBackend):
    """A real memory store whose journal writes fail (not a passthrough layer)."""

    def write(self, path: str, data: Any, **kwargs: Any) -> Any:
        if "/journal/" in path:
            raise TransientStorageError(f"injected: {path}")
        return self.inner.write(path, data, **kwargs)


def test_a_layer_that_acts_on_journal_writes_still_sees_them() -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "backend": _Fails(MemoryBackend(os.urandom(6).hex())),
                   "versioning": True}])
    with pytest.raises(TransientStorageError, match="journal"):
        sm.node("v:a").write_text("a")


def test_journal_ids_are_unique_random_hex_and_keys_unchanged(tmp_path: Path) -> None:
    store = JournalStore(LocalBackend(str(tmp_path)), ".storied")
    seqs = [store.append("tag_created", f"t/{i}", None, {"i": i}) for i in range(150)]
    assert seqs == list(range(1, 151))
    assert store._entry_key(1234) == ".storied/journal/000000001/000000001234.json"
    ids = [body["id"] for _, body in store.read(None)]
    assert len(set(ids)) == 150
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_never_reuses_its_parents_ids() -> None:
    journal_mod._new_id()  # the parent has ids drawn ahead
    assert journal_mod._IDS
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, json.dumps([journal_mod._new_id() for _ in range(70)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(json.loads(pipe.read()))
    os.waitpid(pid, 0)
    parent = {journal_mod._new_id() for _ in range(70)}
    assert len(child) == 70 and not child & parent


def test_journal_store_of_a_history_in_the_reserved_area_uses_create_new(
        tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    sm.node("v:a").write_text("a")
    history = sm.history("v")
    assert history is not None
    store = store_of(history)
    assert getattr(store._fast, "__name__", "") == "create_new"
    journal = journal_for(sm, "v")
    assert journal is not None and [e.path for e in journal.read()] == ["a"]


_CHILD = """
import sys
from storied import StorageManager
sm = StorageManager()
sm.configure([{"name": "v", "type": "local", "base_path": sys.argv[1], "versioning": True}])
for i in range(3):
    sm.node("v:d/x.txt").write_text(str(i))
print(",".join(e.cursor for e in sm.events("v:")))
"""


def test_two_processes_append_without_gaps(tmp_path: Path) -> None:
    runs = [subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], capture_output=True,
                           text=True, check=True, timeout=120) for _ in range(2)]
    assert runs[-1].stdout.strip() == ",".join(str(i) for i in range(1, 7))
