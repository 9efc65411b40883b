"""Issue 8 §5 (R2): a local versioned write walks to each directory once (``holding()``).

Within :meth:`LocalBackend.holding` the descriptor of a parent directory reached by one
operation is reused by the next ones in that directory; confinement is unchanged (a link met
below a held directory is resolved as always) and every held descriptor is closed afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import _local_fs
from storied.backends.local import LocalBackend
from storied.errors import PathEscapeError, StorageNotFoundError


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
needs_openat2 = pytest.mark.skipif(_local_fs.OPENAT2 is None, reason="needs openat2")


@needs_openat2
def test_versioned_write_resolves_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    node = sm.node("m:docs/a.txt")
    node.write_bytes(b"first")
    node.write_bytes(b"second")  # steady state: every directory of the next write exists
    real = _local_fs.OPENAT2
    assert real is not None
    walked: list[tuple[str, int]] = []

    def counting(dir_fd: int, path: str, flags: int) -> int:
        walked.append((path, flags))
        return real(dir_fd, path, flags)

    monkeypatch.setattr(_local_fs, "OPENAT2", counting)
    node.write_bytes(b"third")
    monkeypatch.setattr(_local_fs, "OPENAT2", real)
    assert node.read_bytes() == b"third" and len(node.versions) == 3
    opened = [p for p, flags in walked if flags & getattr(os, "O_PATH", 0)]
    assert opened, "the write resolves its directories through openat2"
    assert len(opened) == len(set(opened)), f"a directory was walked to twice: {opened}"


@needs_proc
def test_holding_closes_what_it_held_and_reuses_nothing_after(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    backend.write("a/b/one.txt", b"1")
    before = _open_fds()
    with backend.holding():
        backend.write("a/b/two.txt", b"2")
        backend.link("a/b/two.txt", "a/b/three.txt")
        backend.move("a/b/three.txt", "a/b/four.txt")
        with backend.holding():  # re-entrant
            backend.write("a/b/five.txt", b"5")
        assert _open_fds() > before  # a/b is held
    assert _open_fds() == before
    os.rename(tmp_path / "a" / "b", tmp_path / "a" / "old")
    (tmp_path / "a" / "b").mkdir()
    backend.write("a/b/six.txt", b"6")  # a new walk: lands in the new directory
    assert (tmp_path / "a" / "b" / "six.txt").read_bytes() == b"6"
    assert sorted(os.listdir(tmp_path / "a" / "old")) == [
        "five.txt", "four.txt", "one.txt", "two.txt"]


@pytest.mark.parametrize("openat2", [True, False])
def test_a_link_below_a_held_directory_is_still_confined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool
) -> None:
    if not openat2:
        monkeypatch.setattr(_local_fs, "OPENAT2", None)
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    backend = LocalBackend(str(root))
    with backend.holding():
        backend.write("a/b/x.txt", b"x")  # holds a/b
        os.symlink("../../../outside/evil.txt", root / "a" / "b" / "leave.txt")
        os.symlink("../c.txt", root / "a" / "b" / "stay.txt")
        with pytest.raises(PathEscapeError):
            backend.read_bytes("a/b/leave.txt")
        with pytest.raises(PathEscapeError):
            backend.info("a/b/leave.txt")
        backend.write("a/c.txt", b"c")
        assert backend.info("a/b/stay.txt").size == 1  # a link staying inside is followed
    assert not (outside / "evil.txt").exists()


def test_move_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    with pytest.raises(StorageNotFoundError):
        backend.move("nope.txt", "new/dir/x.txt")
    assert not (tmp_path / "new").exists()
    backend.write("f.txt", b"f")
    backend.move("f.txt", "new/dir/x.txt")  # missing parents are still created
    assert (tmp_path / "new" / "dir" / "x.txt").read_bytes() == b"f"
    backend.move("new/dir/x.txt", "new/dir/y.txt")  # parents exist: one rename
    assert sorted(os.listdir(tmp_path / "new" / "dir")) == ["y.txt"]


@pytest.mark.parametrize("openat2", [True, False])
def test_a_link_into_the_history_area_is_refused_but_its_own_path_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool
) -> None:
    if not openat2:
        monkeypatch.setattr(_local_fs, "OPENAT2", None)
    backend = LocalBackend(str(tmp_path))
    backend.write(".storied/blobs/ab/x", b"blob")
    backend.write("sub/f.txt", b"f")
    os.symlink(".storied", tmp_path / "h")
    os.symlink("../.storied/blobs/ab/x", tmp_path / "sub" / "alias")
    os.symlink("f.txt", tmp_path / "sub" / "ok")
    for path in ("h/blobs/ab/x", "sub/alias"):
        with pytest.raises(PathEscapeError):
            backend.read_bytes(path)
    with pytest.raises(PathEscapeError):
        backend.write("h/blobs/ab/x", b"forged")
    backend.write("sub/alias", b"own")  # replaces the link itself, never writes through it
    assert backend.read_bytes(".storied/blobs/ab/x") == b"blob"
    assert not os.path.islink(tmp_path / "sub" / "alias")
    assert backend.read_bytes("sub/ok") == b"f"
    os.symlink("../.storied/blobs/ab/x", tmp_path / "sub" / "alias2")
    assert sorted(n for n, _ in backend.list_names("sub")) == ["alias", "f.txt", "ok"]


def test_versioned_writes_and_deletes_through_a_linked_parent_are_refused(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    node = sm.node("m:d/f.txt")
    node.write_bytes(b"one")
    os.symlink("d", tmp_path / "alias")
    alias = sm.node("m:alias/f.txt")
    with pytest.raises(PathEscapeError):
        alias.write_bytes(b"two")
    with pytest.raises(PathEscapeError):
        alias.delete()
    assert node.read_bytes() == b"one" and len(node.versions) == 1
    assert sm.verify().stale == []
    os.symlink("f.txt", tmp_path / "d" / "last")  # a link as the last name is replaced itself
    sm.node("m:d/last").write_bytes(b"own")
    assert node.read_bytes() == b"one" and sm.node("m:d/last").read_bytes() == b"own"
    sm.close()
