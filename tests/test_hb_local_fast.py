"""The local backend's short paths (issue 8 §5): unnamed files (O_TMPFILE) for create-only
writes and blob+record pairs, listings of held directories, one walk for a rename within a
directory. Each gives the same results as the long path, which stays (tested here too)."""

from __future__ import annotations

import array
import os
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import _local_fs, _local_write
from storied.backends.local import TMP_MARK, LocalBackend
from storied.errors import (
    PathEscapeError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import WriteMode


def _all(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


def _temps(tmp_path: Path) -> list[str]:
    return [p for p in _all(tmp_path) if TMP_MARK in p]


@pytest.fixture(params=["unnamed", "named"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBackend:
    b = LocalBackend(str(tmp_path))
    if request.param == "named":
        b._tmpfile = False
    elif not b._tmpfile:
        pytest.skip("no O_TMPFILE here")
    return b


def test_create_linked_gives_both_names_one_inode(backend: LocalBackend, tmp_path: Path) -> None:
    assert backend.create_linked("blobs/ab/x", b"one", "versions/f/r1") is True
    assert backend.create_linked("blobs/ab/x", b"other", "versions/f/r2") is False
    a, r1, r2 = (os.stat(tmp_path / p) for p in ("blobs/ab/x", "versions/f/r1", "versions/f/r2"))
    assert a.st_ino == r1.st_ino == r2.st_ino and a.st_nlink == 3
    assert (tmp_path / "versions/f/r2").read_bytes() == b"one"  # never our other bytes
    with pytest.raises(StorageAlreadyExistsError):
        backend.create_linked("blobs/ab/y", b"two", "versions/f/r1")
    assert (tmp_path / "blobs/ab/y").read_bytes() == b"two"  # created first: complete
    assert (tmp_path / "versions/f/r1").read_bytes() == b"one"
    assert _temps(tmp_path) == []


def test_create_only_write(backend: LocalBackend, tmp_path: Path) -> None:
    info = backend.write("j/000001.json", b"{}", mode=WriteMode.CREATE)
    assert info.size == 2 and info.etag == backend.info("j/000001.json").etag
    with pytest.raises(StorageAlreadyExistsError):
        backend.write("j/000001.json", b"again", mode=WriteMode.CREATE)
    os.symlink("000001.json", tmp_path / "j" / "alias")
    with pytest.raises(StorageAlreadyExistsError):  # a link is something: never written through
        backend.write("j/alias", b"x", mode=WriteMode.CREATE)
    assert (tmp_path / "j/000001.json").read_bytes() == b"{}"
    assert os.path.islink(tmp_path / "j" / "alias")
    assert backend.write("j/e", b"", mode=WriteMode.CREATE).size == 0
    assert _temps(tmp_path) == []
    assert os.stat(tmp_path / "j/000001.json").st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_unusable_tmpfile_falls_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem refusing O_TMPFILE (EOPNOTSUPP) sends the mount to named files."""
    b = LocalBackend(str(tmp_path))
    calls: list[int] = []

    def refused(dir_fd: int, data: bytes, fsync: bool) -> int:
        calls.append(dir_fd)
        return -1

    monkeypatch.setattr("storied.backends.local.anonymous", refused)
    monkeypatch.setattr(_local_write, "anonymous", refused)
    b._tmpfile = True
    assert b.create_linked("b/x", b"1", "v/r") is True
    b.write("c", b"2", mode=WriteMode.CREATE)
    assert len(calls) == 1 and b._tmpfile is False
    assert (tmp_path / "v/r").read_bytes() == b"1" and (tmp_path / "c").read_bytes() == b"2"
    assert _temps(tmp_path) == []


def test_write_of_a_typed_memoryview_writes_every_byte(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    data = memoryview(array.array("i", range(1000)))
    assert b.write("m", data).size == data.nbytes
    assert (tmp_path / "m").read_bytes() == data.tobytes()


def test_listing_a_held_directory(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("a/b", tmp_path / "lnk")
    os.symlink("a", tmp_path / "up")
    with b.holding():
        b.write("a/b/x", b"x")  # holds a/b
        b.write("lnk/y", b"y")  # through a link: not held
        b.write("up/b/z", b"z")
        assert sorted(n for n, _ in b.list_names("a/b")) == ["x", "y", "z"]
        assert sorted(b.list_file_names("a/b")) == ["x", "y", "z"]
        assert list(b.list_names("lnk")) == []  # a listing never enters a linked directory
        assert sorted(n for n, _ in b.list_names("up/b")) == ["x", "y", "z"]
        b.write("a/b/.hidden" + TMP_MARK + "1", b"t")  # temporary names stay hidden
        assert sorted(n for n, _ in b.list_names("a/b", start_after="x")) == ["y", "z"]
    assert sorted(n for n, _ in b.list_names("a/b")) == ["x", "y", "z"]


def test_listing_a_held_directory_without_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_local_fs, "_PROC_FD", False)
    b = LocalBackend(str(tmp_path))
    with b.holding():
        b.write("a/b/x", b"x")
        assert [n for n, _ in b.list_names("a/b")] == ["x"]


def test_rename_within_a_directory(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    b.write("d/one", b"1")
    b.write("d/two", b"2")
    b.move("d/one", "d/two")  # replaces, one walk
    assert _all(tmp_path) == ["d", "d/two"] and (tmp_path / "d/two").read_bytes() == b"1"
    with pytest.raises(StorageNotFoundError):
        b.move("d/none", "d/other")
    os.symlink("two", tmp_path / "d" / "ln")
    b.move("d/ln", "d/ln2")  # the link itself moves
    assert os.readlink(tmp_path / "d" / "ln2") == "two"
    b.write("top", b"t")
    b.move("top", "top2")  # at the root
    assert (tmp_path / "top2").read_bytes() == b"t"
    with pytest.raises(StorageNotFoundError):
        b.move("missing/x", "missing/y")
    assert not (tmp_path / "missing").exists()


def test_versioned_writes_leave_no_temporary_file(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    node = sm.node("m:d/f.txt")
    for i in range(5):
        node.write_bytes(b"v%d" % i)
    assert node.read_bytes() == b"v4" and len(node.versions) == 5
    assert [v["sha256"] for v in node.versions][-1] is not None
    assert _temps(tmp_path) == []


def test_temp_names_stay_short(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path))
    for name in ("a" * 255, "é" * 127, "x"):
        b.write(f"n/{name}", b"1")
        b.write(f"n/{name}", b"2")  # a replace goes through a temporary name
        assert (tmp_path / "n" / name).read_bytes() == b"2"
    assert _local_fs.temp_name("a" * 200, "-s").startswith("." + "a" * 64 + "-s")
    assert len(_local_fs.temp_name("é" * 200, "-s").encode()) <= 1 + 64 + 2


def test_emptying_the_filesystem_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount of ``/`` never empties it (``rm --preserve-root``). Tested on a directory
    that the backend is made to take for ``/`` (a failure then empties only tmp_path)."""
    b = LocalBackend(str(tmp_path))
    b.write("a/b", b"1")
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(
        tmp_path if p == "/" else p, *a, **k))
    with pytest.raises(StoragePermissionError):
        b.delete("", recursive=True)
    with pytest.raises(StoragePermissionError):
        b.delete("a/..", recursive=True)  # the same directory by another path
    assert _all(tmp_path) == ["a", "a/b"]
    monkeypatch.setattr(os, "stat", real_stat)
    b.delete("", recursive=True)  # any other base still empties
    assert _all(tmp_path) == [] and tmp_path.is_dir()


@pytest.mark.parametrize("openat2", [True, False])
def test_a_final_dotdot_never_reaches_the_base_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool
) -> None:
    """ADR 0003: ``..`` above the base is an escape, also as a path's last name (it used to
    name the base's parent: listed, walked, and a recursive delete would have emptied it)."""
    if not openat2:
        monkeypatch.setattr(_local_fs, "OPENAT2", None)
    base, victim = tmp_path / "base", tmp_path / "victim"
    (base / "sub").mkdir(parents=True)
    victim.mkdir()
    (victim / "file").write_bytes(b"keep")
    b = LocalBackend(str(base))
    b.write("sub/x", b"x")
    calls = {
        "info": lambda p: b.info(p), "exists": lambda p: b.exists(p),
        "list": lambda p: list(b.list(p)), "list_names": lambda p: list(b.list_names(p)),
        "list_file_names": lambda p: b.list_file_names(p), "walk": lambda p: list(b.walk(p)),
        "read_bytes": lambda p: b.read_bytes(p), "dir_stamp": lambda p: b.dir_stamp(p),
        "delete": lambda p: b.delete(p, recursive=True),
        "mkdir": lambda p: b.mkdir(p, exist_ok=True),
    }  # fmt: skip
    for name, call in calls.items():
        for path in ("..", "sub/../..", "../victim", "sub/../../victim/file"):
            with pytest.raises(PathEscapeError):
                call(path)
            assert (victim / "file").read_bytes() == b"keep", (name, path)
    assert [n for n, _ in b.list_names("sub/..")] == ["sub"]  # the root itself, inside
    assert b.info("sub/..").is_dir


def test_durable_mounts_use_the_same_short_paths(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path), fsync=True)
    assert b.create_linked("blobs/x", b"blob", "versions/r") is True
    assert b.write("j/1.json", b"{}", mode=WriteMode.CREATE).size == 2
    b.write("w", b"working copy")
    assert (tmp_path / "versions/r").read_bytes() == b"blob"
    assert (tmp_path / "j/1.json").read_bytes() == b"{}" and _temps(tmp_path) == []
