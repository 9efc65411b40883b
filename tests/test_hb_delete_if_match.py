"""LocalBackend.delete_if_match: the conditional delete locks release with (issue 11)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import _local_io
from storied.backends.local import TMP_MARK, LocalBackend
from storied.errors import (
    IsADirectoryStorageError,
    PathEscapeError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
)
from storied.info import WriteMode


def _raw(tmp_path: Path) -> list[str]:
    """Every name under tmp_path, temporary files included (a listing hides them)."""
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


def test_match_deletes(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    info = b.write("d/lock", b"held")
    b.delete_if_match("d/lock", info.etag)  # type: ignore[arg-type]
    assert not b.exists("d/lock")
    assert _raw(tmp_path) == ["d"]


def test_mismatch_keeps_the_file(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    old = b.write("lock", b"one")
    new = b.write("lock", b"two")
    assert old.etag != new.etag
    with pytest.raises(PreconditionFailedError):
        b.delete_if_match("lock", old.etag)  # type: ignore[arg-type]
    assert b.read_bytes("lock") == b"two"
    assert b.info("lock").etag == new.etag
    assert _raw(tmp_path) == ["lock"]


def test_missing_and_directory(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    with pytest.raises(StorageNotFoundError):
        b.delete_if_match("nothing", "1-2-3")
    with pytest.raises(StorageNotFoundError):
        b.delete_if_match("no/such/dir/x", "1-2-3")
    b.mkdir("dir")
    with pytest.raises(IsADirectoryStorageError):
        b.delete_if_match("dir", "1-2-3")
    with pytest.raises(IsADirectoryStorageError):
        b.delete_if_match("", "1-2-3")
    assert b.info("dir").is_dir
    assert _raw(tmp_path) == ["dir"]


def test_link_is_removed_never_its_target(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    target = b.write("target", b"data")
    os.symlink("target", tmp_path / "alias")
    assert b.info("alias").etag == target.etag  # a link's etag is its target's
    with pytest.raises(PreconditionFailedError):
        b.delete_if_match("alias", "0-0-0")
    assert os.path.islink(tmp_path / "alias")
    b.delete_if_match("alias", target.etag)  # type: ignore[arg-type]
    assert not os.path.lexists(tmp_path / "alias")
    assert b.read_bytes("target") == b"data"


def test_link_leading_outside_is_refused(tmp_path: Path) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "f").write_bytes(b"x")
    os.symlink(str(outside / "f"), base / "esc")
    os.symlink(str(outside), base / "escdir")
    b = LocalBackend(str(base))
    st = os.stat(outside / "f")
    etag = f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"
    with pytest.raises(PathEscapeError):
        b.delete_if_match("esc", etag)
    with pytest.raises(PathEscapeError):
        b.delete_if_match("escdir/f", etag)
    assert (outside / "f").read_bytes() == b"x"
    assert os.path.islink(base / "esc")


def test_through_the_mount_wrappers(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(tmp_path)}])
    backend = sm.get_backend("m")
    node = sm.node("m:a/lock")
    node.write_bytes(b"x")
    etag = node.info().etag
    assert etag is not None
    with pytest.raises(PreconditionFailedError):
        backend.delete_if_match("a/lock", "0-0-0")
    backend.delete_if_match("a/lock", etag)
    assert not sm.node("m:a/lock").exists()
    with pytest.raises(StorageError) as caught:  # the reserved area is refused, not compared
        backend.delete_if_match(".storied/anything", "1-2-3")
    assert not isinstance(caught.value, (PreconditionFailedError, StorageNotFoundError))


@pytest.mark.parametrize("native", [True, False])
def test_rename_noreplace(tmp_path: Path, native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not native:
        monkeypatch.setattr(_local_io, "_RENAMEAT2", None)
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            _local_io.rename_noreplace("a", "b", fd)
        assert (tmp_path / "a").read_bytes() == b"a" and (tmp_path / "b").read_bytes() == b"b"
        _local_io.rename_noreplace("a", "c", fd)
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == ["b", "c"]
    assert (tmp_path / "c").read_bytes() == b"a"


def test_stale_etag_never_makes_the_file_vanish(tmp_path: Path) -> None:
    """A writer replaces the file continuously; a stale conditional delete always fails
    and a reader never finds the path empty. (The writer's sizes differ from the stale one:
    a local etag, inode-mtime-size, can repeat when an inode is reused within one clock
    tick, ADR 0004; this test is about the capture, not about that.)"""
    b = LocalBackend(str(tmp_path))
    stale = b.write("lock", b"v0").etag
    stop, started = threading.Event(), threading.Event()
    missing: list[int] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            b.write("lock", b"version-%d" % i)
            started.set()

    def reader() -> None:
        while not stop.is_set():
            if not b.exists("lock"):
                missing.append(1)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    assert started.wait(10)
    try:
        for _ in range(300):
            with pytest.raises(PreconditionFailedError):
                b.delete_if_match("lock", stale)  # type: ignore[arg-type]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not missing
    assert b.read_bytes("lock").startswith(b"v")
    assert [n for n in os.listdir(tmp_path) if TMP_MARK in n] == []


@pytest.mark.parametrize("mode", [WriteMode.OVERWRITE, WriteMode.CREATE, WriteMode.IF_MATCH])
def test_concurrent_writer_is_never_lost(tmp_path: Path, mode: WriteMode) -> None:
    """A delete of version 1 races a write of version 2: whichever order happens, the
    outcome is one of a serial order's (a completed write of v2 is never deleted)."""
    b = LocalBackend(str(tmp_path))
    for i in range(150):
        path = f"k{i}"
        e1 = b.write(path, b"v1").etag
        assert e1 is not None
        outcome: dict[str, object] = {}
        barrier = threading.Barrier(2)

        def delete(path: str, e1: str, outcome: dict[str, object],
                   barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                b.delete_if_match(path, e1)
                outcome["deleted"] = True
            except (PreconditionFailedError, StorageNotFoundError) as exc:
                outcome["deleted"] = exc

        t = threading.Thread(target=delete, args=(path, e1, outcome, barrier))
        t.start()
        barrier.wait()
        try:
            b.write(path, b"v2", mode=mode, etag=e1)
            wrote = True
        except (StorageAlreadyExistsError, PreconditionFailedError, StorageNotFoundError):
            wrote = False
        t.join()
        deleted = outcome["deleted"] is True
        if mode is WriteMode.OVERWRITE:
            assert wrote and b.read_bytes(path) == b"v2"  # the later write always survives
        elif wrote:  # CREATE after the delete, or IF_MATCH before it (then the delete fails)
            assert b.read_bytes(path) == b"v2"
            assert deleted == (mode is WriteMode.CREATE)
        else:  # the delete went first: create-only found v1, or if-match found nothing
            assert deleted and not b.exists(path)
    assert [n for n in os.listdir(tmp_path) if TMP_MARK in n] == []
