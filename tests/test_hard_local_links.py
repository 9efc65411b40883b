"""Issue 8 items 1.4, 1.18 and section 2 on local disk: links, long names, no raw OSError.

The link policy these tests pin (ADR 0003): paths may pass through links that stay inside the
mount; listings never enter a linked directory and list a link only when it names a file inside
the mount; deletes and renames act on the link itself, never on its target.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import _local_fs, _local_io
from storied.backends.local import LocalBackend
from storied.errors import (
    DirectoryNotEmptyError,
    InvalidPathError,
    PathEscapeError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
)
from storied.info import WriteMode


@pytest.fixture(autouse=True, params=["openat2", "name-by-name"])
def _resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the Linux shortcuts (openat2, listings through /proc/self/fd)
    where the kernel has them, and without."""
    if request.param != "openat2":
        monkeypatch.setattr(_local_fs, "OPENAT2", None)
        monkeypatch.setattr(_local_fs, "_PROC_FD", False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    base.mkdir()
    return base


def _versioned(root: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root), "versioning": True}])
    return sm


# ---------------------------------------------------------------------- 1.4 never follow links
def test_versioned_recursive_delete_leaves_linked_folder_intact(root: Path) -> None:
    sm = _versioned(root)
    sm.node("m:outside/keep.txt").write_text("keep")
    sm.node("m:outside/sub/deep.txt").write_text("deep")
    sm.node("m:dir/own.txt").write_text("own")
    os.symlink("../outside", root / "dir" / "link")
    assert sm.node("m:dir/link/keep.txt").read_text() == "keep"  # followed: it stays inside
    assert sm.node("m:dir").delete(recursive=True) is True
    assert not (root / "dir" / "own.txt").exists()
    # the link itself may stay (a recursive delete removes what the walk shows, and a walk never
    # lists a linked directory) or go; its target never goes
    assert not (root / "dir").exists() or os.listdir(root / "dir") == ["link"]
    assert (root / "outside" / "keep.txt").read_text() == "keep"
    assert (root / "outside" / "sub" / "deep.txt").read_text() == "deep"
    assert sm.node("m:outside/keep.txt").version_count == 1
    assert sm.node("m:dir/own.txt").version_count == 1  # its deletion is in the history


@pytest.mark.parametrize("versioning", [False, True])
def test_recursive_delete_of_a_linked_directory_removes_the_link(
    root: Path, versioning: bool
) -> None:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root),
                   "versioning": versioning}])
    sm.node("m:real/a.txt").write_text("a")
    (root / "real" / "empty").mkdir()
    os.symlink("real", root / "dirlink")
    assert sm.node("m:dirlink").delete(recursive=True) is True
    assert not os.path.lexists(root / "dirlink")
    assert (root / "real" / "a.txt").read_text() == "a" and (root / "real" / "empty").is_dir()


def test_root_delete_empties_the_base_and_keeps_it(root: Path, tmp_path: Path) -> None:
    (tmp_path / "far").mkdir()
    (tmp_path / "far" / "x").write_text("x")
    backend = LocalBackend(str(root))
    backend.write("a/b.txt", b"b")
    os.symlink(tmp_path / "far", root / "out")
    with pytest.raises(DirectoryNotEmptyError):
        backend.delete("")
    backend.delete("", recursive=True)
    assert root.is_dir() and os.listdir(root) == []
    assert (tmp_path / "far" / "x").read_text() == "x"
    backend.write("again.txt", b"ok")
    assert backend.read_bytes("again.txt") == b"ok"


def test_plain_recursive_delete_removes_links_not_targets(root: Path, tmp_path: Path) -> None:
    far = tmp_path / "far"
    far.mkdir()
    (far / "x.txt").write_text("far")
    backend = LocalBackend(str(root))
    backend.write("d/own.txt", b"own")
    backend.write("target.txt", b"t")
    os.symlink(far, root / "d" / "abs-out")
    os.symlink("../target.txt", root / "d" / "file-link")
    os.symlink(str(root), root / "d" / "root-link")
    backend.delete("d/root-link")  # the link itself, the root stays
    assert root.is_dir()
    backend.delete("d", recursive=True)
    assert (far / "x.txt").read_text() == "far"
    assert backend.read_bytes("target.txt") == b"t"
    assert not (root / "d").exists()


def test_walk_and_list_never_enter_linked_directories(root: Path) -> None:
    backend = LocalBackend(str(root))
    backend.write("real/a.txt", b"a")
    backend.write("top.txt", b"top")
    os.symlink("real", root / "dirlink")
    os.symlink("top.txt", root / "filelink")
    os.symlink("missing", root / "dangling")
    os.symlink("/etc", root / "outside")
    os.symlink("loop", root / "loop")
    assert sorted(e.path for e in backend.walk("")) == ["filelink", "real/a.txt", "top.txt"]
    listed = {e.path: e for e in backend.list("")}
    assert sorted(listed) == ["filelink", "real", "top.txt"]
    assert not listed["filelink"].is_dir and listed["filelink"].size == 3
    assert sorted(backend.list_names("")) == [
        ("filelink", False), ("real", True), ("top.txt", False)
    ]
    # a path through an inside link works; listing the link itself never enters it
    assert backend.read_bytes("dirlink/a.txt") == b"a"
    assert backend.info("dirlink").is_dir
    assert list(backend.list("dirlink")) == [] and list(backend.walk("dirlink")) == []
    assert list(backend.list_names("dirlink")) == []
    with pytest.raises(NotADirectoryError):
        list(backend.list("filelink"))
    with pytest.raises(PathEscapeError):
        backend.info("outside/passwd")


def test_links_inside_resolve_and_escapes_are_refused(root: Path, tmp_path: Path) -> None:
    backend = LocalBackend(str(root))
    backend.write("in/deep/f.txt", b"f")
    os.symlink("in/deep", root / "rel")
    os.symlink(str(root / "in"), root / "abs-in")
    os.symlink("../..", root / "in" / "deep" / "up2")  # -> the root itself
    os.symlink("../../..", root / "in" / "deep" / "up3")  # -> above it
    assert backend.read_bytes("rel/f.txt") == b"f"
    assert backend.read_bytes("abs-in/deep/f.txt") == b"f"
    assert backend.read_bytes("in/deep/up2/in/deep/f.txt") == b"f"
    with pytest.raises(PathEscapeError):
        backend.read_bytes("in/deep/up3/root/in/deep/f.txt")
    with pytest.raises(PathEscapeError):
        backend.write("in/deep/up3/new.txt", b"x")
    assert not (tmp_path / "new.txt").exists()
    # writing onto a link replaces the link, never the file it names
    backend.write("rel", b"now a file")
    assert (root / "in" / "deep" / "f.txt").read_bytes() == b"f"
    assert not (root / "rel").is_symlink()


def test_move_of_a_link_moves_the_link(root: Path) -> None:
    backend = LocalBackend(str(root))
    backend.write("t.txt", b"t")
    os.symlink("t.txt", root / "l")
    backend.move("l", "sub/l2")
    assert os.readlink(root / "sub" / "l2") == "t.txt"
    assert (root / "t.txt").read_bytes() == b"t"


# ---------------------------------------------------------------------- 1.18 long UTF-8 names
@pytest.mark.parametrize("versioning", [False, True])
def test_240_byte_utf8_name_can_be_written(root: Path, versioning: bool) -> None:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root),
                   "versioning": versioning}])
    name = "中" * 80
    assert len(name.encode()) == 240
    node = sm.node(f"m:d/{name}")
    node.write_text("one")
    node.write_text("two")
    assert node.read_text() == "two"
    assert [c.basename for c in sm.node("m:d").children()] == [name]
    with node.open("w") as f:
        f.write("three")
    assert node.read_text() == "three"


def test_temp_names_stay_within_name_max(root: Path) -> None:
    backend = LocalBackend(str(root))
    for name in ["a" * 255, "é" * 127, "中" * 85, "😀" * 63]:
        assert len(name.encode()) <= 255
        backend.write(name, b"x")
        assert backend.read_bytes(name) == b"x"
        assert backend.write(name, b"") .size == 0


# ---------------------------------------------------------------------- section 2: errors
def test_too_long_names_are_invalid_paths(root: Path) -> None:
    backend = LocalBackend(str(root))
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root)}])
    long = "x" * 256
    calls = [
        lambda: backend.write(long, b"x"),
        lambda: backend.write(f"{long}/a.txt", b"x"),
        lambda: backend.read_bytes(long),
        lambda: backend.info(long),
        lambda: backend.mkdir(long),
        lambda: backend.mkdir(f"{long}/b", parents=True),
        lambda: list(backend.list(long)),
        lambda: sm.node(f"m:{'中' * 86}").write_text("x"),
        lambda: sm.node(f"m:{long}").exists(),
    ]
    for call in calls:
        with pytest.raises(InvalidPathError):
            call()
    assert os.listdir(root) == []


def test_link_loops_are_storage_io_errors(root: Path) -> None:
    backend = LocalBackend(str(root))
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    for call in (
        lambda: backend.read_bytes("a"),
        lambda: backend.info("a/x"),
        lambda: backend.write("a/x", b"x"),
        lambda: list(backend.list("a")),
    ):
        with pytest.raises(StorageIOError) as caught:
            call()
        assert caught.value.errno == 40 or "symbolic links" in str(caught.value)
    assert sorted(os.listdir(root)) == ["a", "b"]


def test_non_utf8_names_are_listed_and_reachable(root: Path) -> None:
    raw = os.fsencode(str(root)) + b"/d/caf\xe9.txt"
    os.mkdir(root / "d")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root)},
                  {"name": "mem", "type": "memory"}])
    (child,) = sm.node("m:d").children()
    assert child.basename == "caf\udce9.txt"  # surrogate-escaped, as os.listdir gives it
    assert child.read_bytes() == b"latin-1 name"
    sm.node("m:d").copy_to(sm.node("m:copy"))
    assert os.path.exists(os.fsencode(str(root)) + b"/copy/caf\xe9.txt")
    sm.node("m:d").copy_to(sm.node("mem:copy"))
    assert sm.node("mem:copy/caf\udce9.txt").read_bytes() == b"latin-1 name"


def test_removed_base_recreated_is_used_at_once(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    backend = LocalBackend(str(base))
    backend.write("a.txt", b"1")
    shutil.rmtree(base)
    with pytest.raises(StorageNotFoundError):
        backend.read_bytes("a.txt")
    base.mkdir()  # a new directory at the configured path
    backend.write("b.txt", b"2")
    assert (base / "b.txt").read_bytes() == b"2"
    assert backend.read_bytes("b.txt") == b"2"


def test_renamed_base_is_noticed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A base renamed away and replaced is noticed within RECHECK_SECONDS (0 here)."""
    base = tmp_path / "base"
    base.mkdir()
    backend = LocalBackend(str(base))
    backend.write("a.txt", b"1")
    monkeypatch.setattr(_local_io, "RECHECK_SECONDS", 0.0)
    os.rename(base, tmp_path / "old")
    with pytest.raises(StorageNotFoundError):
        backend.read_bytes("a.txt")
    base.mkdir()
    backend.write("b.txt", b"2")
    assert (base / "b.txt").read_bytes() == b"2"
    assert not (tmp_path / "old" / "b.txt").exists()


def test_errors_during_resolution_are_storied(root: Path) -> None:
    backend = LocalBackend(str(root))
    backend.write("file.txt", b"f")
    for call in (
        lambda: backend.write("file.txt/x", b"x"),
        lambda: backend.read_bytes("file.txt/x"),
        lambda: backend.info("file.txt/x/y"),
        lambda: backend.mkdir("file.txt/d", parents=True),
        lambda: list(backend.walk("file.txt")),
        lambda: backend.move("file.txt", "file.txt/x"),
    ):
        with pytest.raises(StorageError):
            call()
    assert backend.read_bytes("file.txt") == b"f"


# ---------------------------------------------------------------------- descriptors
def test_no_descriptor_leaks(root: Path) -> None:
    backend = LocalBackend(str(root))
    backend.write("a/b/c.txt", b"c")
    os.symlink("a/b", root / "l")
    os.symlink("../..", root / "a" / "b" / "up")  # the root
    os.symlink("x", root / "loop")
    os.symlink("loop", root / "x")

    def round_trip() -> None:
        backend.write("a/b/n.txt", b"n")
        backend.read_bytes("l/c.txt")
        with backend.open_read("l/c.txt") as f:
            f.read()
        backend.info("a/b/up/a/b/c.txt")
        list(backend.list("l"))
        list(backend.walk(""))
        etag = backend.info("a/b/n.txt").etag
        backend.write("a/b/n.txt", b"m", mode=WriteMode.IF_MATCH, etag=etag)
        for bad in ("a/b/up/../x", "loop/x", "a/b/c.txt/x", "missing/x"):
            with pytest.raises(StorageError):
                backend.read_bytes(bad)
        backend.delete("a/b/n.txt")

    round_trip()
    gc.collect()  # backends of earlier tests close their base descriptors when collected
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        round_trip()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_openat2_unavailable_falls_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def refused(dir_fd: int, path: str, flags: int) -> int:
        calls.append(path)
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(_local_fs, "OPENAT2", refused)
    backend = LocalBackend(str(root))
    backend.write("a/b/c.txt", b"c")
    assert backend.read_bytes("a/b/c.txt") == b"c"
    assert len(calls) == 1 and _local_fs.OPENAT2 is None  # asked once, then never again
