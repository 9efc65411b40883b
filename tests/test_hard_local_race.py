"""Issue 8, item 1.7: a symlink swapped between check and use never lets a local mount escape.

One thread keeps swapping ``root/sw`` (atomically, by renaming a fresh symlink over it) between
an inside directory and a directory outside the mount; others read and write through ``sw`` for
about two seconds. Every read must return the inside file or fail with a storied error; no write
may land outside.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import _local_fs
from storied.errors import StorageError

SWAP_SECONDS = 2.0


@pytest.fixture(autouse=True, params=["openat2", "name-by-name"])
def _resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the Linux shortcuts (openat2, listings through /proc/self/fd)
    where the kernel has them, and without."""
    if request.param != "openat2":
        monkeypatch.setattr(_local_fs, "OPENAT2", None)
        monkeypatch.setattr(_local_fs, "_PROC_FD", False)


def _swapper(root: Path, targets: list[str], stop: threading.Event) -> None:
    link, tmp = root / "sw", root / ".swap-tmp"
    turn = 0
    while not stop.is_set():
        os.symlink(targets[turn % 2], tmp)
        os.replace(tmp, link)
        turn += 1


def test_swapped_symlink_never_reads_or_writes_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    for base, text in ((root / "in", "inside"), (outside, "outside")):
        (base / "sub").mkdir()
        (base / "secret.txt").write_text(text)
        (base / "sub" / "secret.txt").write_text(text)
    os.symlink("in", root / "sw")
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root)}])
    stop = threading.Event()
    counts = {"outside_reads": 0, "inside_reads": 0, "writes": 0, "refused": 0}
    # one relative target inside, and the outside one both as absolute and as a relative ..
    targets = ["in", str(outside)]
    swapper = threading.Thread(target=_swapper, args=(root, targets, stop))
    swapper.start()
    deadline = time.monotonic() + SWAP_SECONDS
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            try:
                text = sm.node("m:sw/secret.txt").read_text()
            except StorageError:
                counts["refused"] += 1
            else:
                counts["outside_reads" if text == "outside" else "inside_reads"] += 1
            try:
                sm.node(f"m:sw/new-{n}.txt").write_text("x")
                counts["writes"] += 1
            except StorageError:
                counts["refused"] += 1
            try:
                text = sm.node("m:sw/sub/secret.txt").read_text()
                sm.node(f"m:sw/sub/new-{n}.txt").write_text("x")
            except StorageError:
                counts["refused"] += 1
            else:
                counts["outside_reads"] += text == "outside"
            try:
                with sm.node("m:sw/secret.txt").open("rb") as f:
                    if f.read() == b"outside":
                        counts["outside_reads"] += 1
            except StorageError:
                counts["refused"] += 1
    finally:
        stop.set()
        swapper.join()
    assert counts["outside_reads"] == 0, counts
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "sub"], counts
    assert os.listdir(outside / "sub") == ["secret.txt"], counts
    # the race really ran both ways: some operations went through, some were refused
    assert counts["inside_reads"] > 0 and counts["refused"] > 0, counts


def test_swapped_dotdot_symlink_never_escapes(tmp_path: Path) -> None:
    """The same race with a relative ``../outside`` target and the backend called directly."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    for base, text in ((root / "in", "inside"), (outside, "outside")):
        (base / "sub").mkdir()
        (base / "sub" / "secret.txt").write_text(text)
        (base / "secret.txt").write_text(text)
    os.symlink("in", root / "sw")
    from storied.backends.local import LocalBackend

    backend = LocalBackend(str(root))
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(root, ["in", "../outside"], stop))
    swapper.start()
    outside_reads = inside = 0
    deadline = time.monotonic() + SWAP_SECONDS / 2
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            try:
                if backend.read_bytes("sw/secret.txt") == b"outside":
                    outside_reads += 1
                else:
                    inside += 1
                backend.write(f"sw/w-{n}.txt", b"x")
                if backend.read_bytes("sw/sub/secret.txt") == b"outside":
                    outside_reads += 1
                backend.write(f"sw/sub/w-{n}.txt", b"x")
                backend.link("sw/secret.txt", f"sw/sub/l-{n}.txt")
                backend.mkdir(f"sw/d-{n}", parents=True)
                list(backend.list("sw"))
            except StorageError:
                pass
    finally:
        stop.set()
        swapper.join()
    assert outside_reads == 0
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "sub"]
    assert os.listdir(outside / "sub") == ["secret.txt"]
    assert inside > 0
