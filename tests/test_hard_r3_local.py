"""Review R3: the local backend and the portable engine's listing cache under attack (issue 8).

Defects found here are R2's to fix (its files); a test still failing when R3 stopped is
marked ``xfail(strict=True)`` and listed in /work/briefs/requests-to-R2.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.local import LocalBackend
from storied.errors import InvalidArgumentError, StoragePermissionError
from storied.versioning._listing import QUIET_SECONDS


def _manager(root: Path, versioning: bool = True) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root),
                   "versioning": versioning}])  # fmt: skip
    return sm


def _history_dir(root: Path, name: str) -> Path:
    found = [p for p in (root / ".storied").rglob(name) if p.is_dir() and "versions" in p.parts]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    base.mkdir()
    return base


# ---------------------------------------------------------------------- hard links (judged fine)
@pytest.mark.parametrize("versioning", [True, False])
@pytest.mark.parametrize("mode", ["wb", "ab", "r+b"])
def test_writes_replace_a_planted_hard_link_never_write_through_it(
    root: Path, tmp_path: Path, versioning: bool, mode: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside secret\n")
    os.link(outside, root / "planted.txt")  # an attacker's hard link inside the mount
    sm = _manager(root, versioning)
    with sm.node("m:planted.txt").open(mode) as stream:
        stream.write(b"XX")
    assert outside.read_bytes() == b"outside secret\n"
    assert os.stat(outside).st_nlink == 1  # the link was replaced, not written through
    sm.close()


# ---------------------------------------------------------------------- ranges
def test_local_negative_start_is_an_invalid_argument(root: Path) -> None:
    (root / "ten").write_bytes(b"0123456789")
    backend = LocalBackend(str(root))
    with pytest.raises(InvalidArgumentError):
        backend.open_read("ten", -3)


# ---------------------------------------------------------------------- listing cache
def _wait_quiet() -> None:
    time.sleep(QUIET_SECONDS + 0.2)  # the history directory becomes cacheable


def test_cached_listing_sees_another_engine_remove_a_version(root: Path) -> None:
    a, b = _manager(root), _manager(root)
    node_a = a.node("m:f.txt")
    for i in range(3):
        node_a.write_bytes(f"v{i}".encode())
    _wait_quiet()
    assert len(node_a.versions) == 3  # listed, now cached on a
    assert len(node_a.versions) == 3  # served from the cache
    removed = b.node("m:f.txt").cleanup_versions(keep_last=1)
    assert len(removed) == 2
    assert [v["size"] for v in node_a.versions] == [2]
    a.close()
    b.close()


def test_cached_listing_is_not_served_after_a_directory_mtime_is_restored(root: Path) -> None:
    """``rsync -a`` / ``cp -a`` / ``tar x`` merging records into a history directory set its
    mtime back to the copy's: a cache keyed on the mtime alone then hides the new records
    (the newest version). The directory's ctime (which utime cannot set) changes."""
    sm = _manager(root)
    node = sm.node("m:f.txt")
    node.write_bytes(b"one")
    folder = _history_dir(root, "f.txt")
    _wait_quiet()
    assert len(node.versions) == 1  # cached with the directory's mtime
    before = os.stat(folder)
    other = _manager(root)
    other.node("m:f.txt").write_bytes(b"two, from a restored backup")
    other.close()
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))  # what rsync -a does
    assert node.read_bytes() == b"two, from a restored backup"
    assert len(node.versions) == 2
    sm.close()


# ---------------------------------------------------------------------- links into the history
def _two_versions(root: Path) -> StorageManager:
    sm = _manager(root)
    sm.node("m:f.txt").write_bytes(b"one")
    sm.node("m:f.txt").write_bytes(b"two")
    return sm


def test_a_link_to_the_history_cannot_be_used_to_rewrite_it(root: Path) -> None:
    """``.storied/`` is refused by name; a link inside the mount pointing at it (it stays
    inside the mount, so it is followed) must not be a way around that."""
    sm = _two_versions(root)
    os.symlink(".storied", root / "h")
    blob = next(p for p in (root / ".storied").rglob("*") if p.is_file() and "blobs" in p.parts)
    alias = "h/" + blob.relative_to(root / ".storied").as_posix()
    with pytest.raises(StoragePermissionError):
        sm.node(f"m:{alias}").write_bytes(b"forged")
    assert sm.verify().problems == []
    assert sm.node("m:f.txt").open("rb", version=-1).read() == b"two"
    sm.close()


def test_a_write_through_an_inside_link_keeps_the_file_history_in_line(root: Path) -> None:
    """With ``cur -> .`` in a versioned mount, ``cur/f.txt`` is ``f.txt``: a write through it
    must be refused or recorded in ``f.txt``'s history; it replaced the working copy while
    recording the version under a second history (``cur/f.txt``), so ``f.txt`` went stale and
    its next write dropped the content from its history."""
    sm = _two_versions(root)
    os.symlink(".", root / "cur")
    try:
        sm.node("m:cur/f.txt").write_bytes(b"three")
    except StoragePermissionError:
        pass  # refusing writes through links on a versioned mount is a fine answer too
    node = sm.node("m:f.txt")
    assert node.open("rb", version=-1).read() == node.read_bytes()
    assert sm.verify().stale == []
    sm.close()
