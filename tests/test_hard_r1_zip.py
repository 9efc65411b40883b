"""Review R1 of the writable zip mount: what survives a failed flush at exit and a crash."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from storied.backends.zip_writable import WritableZipBackend


def _members(path: Path | str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def test_changes_whose_flush_fails_at_exit_are_saved_aside_and_reported(tmp_path: Path) -> None:
    target = tmp_path / "shared.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("old.txt", b"old")
    code = (
        "import sys, zipfile\n"
        "from storied.backends.zip_writable import WritableZipBackend as W\n"
        "b = W(sys.argv[1], 'a')\n"
        "b.write('mine.txt', b'my work')\n"
        "with zipfile.ZipFile(sys.argv[1] + '.new', 'w') as zf:  # another program\n"
        "    zf.writestr('theirs.txt', b'theirs')\n"
        "os.replace(sys.argv[1] + '.new', sys.argv[1])  # replaces the archive meanwhile\n"
    )
    done = subprocess.run([sys.executable, "-c", "import os\n" + code, str(target)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert _members(target) == {"theirs.txt": b"theirs"}  # theirs is not clobbered
    aside = [p for p in os.listdir(tmp_path) if p.startswith("shared.zip.unsaved-")]
    assert len(aside) == 1, (os.listdir(tmp_path), done.stderr)
    assert _members(tmp_path / aside[0]) == {"old.txt": b"old", "mine.txt": b"my work"}
    assert "not flushed" in done.stderr and aside[0] in done.stderr
    assert "Traceback" not in done.stderr


def test_archive_overwritten_in_place_keeps_the_staged_changes(tmp_path: Path) -> None:
    """Another program rewrites the archive in place (zipfile mode 'w' truncates the same
    file): the old members are gone from disk; reading them is InvalidContentError, and the
    changes staged here still reach a rescue copy at exit."""
    target = tmp_path / "inplace.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("old.txt", b"old")
    code = (
        "import sys, zipfile\n"
        "from storied.backends.zip_writable import WritableZipBackend as W\n"
        "from storied.errors import InvalidContentError, PreconditionFailedError\n"
        "b = W(sys.argv[1], 'a')\n"
        "b.write('mine.txt', b'my work')\n"
        "with zipfile.ZipFile(sys.argv[1], 'w') as zf:\n"
        "    zf.writestr('theirs.txt', b'theirs')\n"
        "try:\n"
        "    b.read_bytes('old.txt')\n"
        "except InvalidContentError:\n"
        "    print('invalid content')\n"
        "try:\n"
        "    b.flush()\n"
        "except PreconditionFailedError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.split() == ["invalid", "content", "refused"], done.stderr
    assert _members(target) == {"theirs.txt": b"theirs"}
    aside = [p for p in os.listdir(tmp_path) if p.startswith("inplace.zip.unsaved-")]
    assert len(aside) == 1, (os.listdir(tmp_path), done.stderr)
    assert _members(tmp_path / aside[0]) == {"mine.txt": b"my work"}
    assert "left out: old.txt" in done.stderr and "Traceback" not in done.stderr


def test_writer_killed_mid_flush_leaves_the_old_archive_readable(tmp_path: Path) -> None:
    target = tmp_path / "big.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("keep.txt", b"kept")
    code = (
        "import os, sys\n"
        "from storied.backends.zip_writable import WritableZipBackend as W\n"
        "b = W(sys.argv[1], 'a')\n"
        "for i in range(40):\n"
        "    b.write(f'blob{i}', os.urandom(1 << 20))\n"
        "print('staged', flush=True)\n"
        "b.flush()\n"
        "print('flushed', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "staged\n"
        deadline = time.monotonic() + 30
        while not [p for p in os.listdir(tmp_path) if ".storied-tmp-" in p]:
            assert time.monotonic() < deadline and proc.poll() is None, "flush not seen"
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of writing the new archive
    finally:
        proc.wait(30)
    assert _members(target) == {"keep.txt": b"kept"}  # the old archive, whole
    be = WritableZipBackend(target, "a")  # and it can be opened and written again
    be.write("next.txt", b"next")
    be.close()
    assert _members(target) == {"keep.txt": b"kept", "next.txt": b"next"}


def _aliased_archive(path: Path) -> None:
    import warnings

    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        zf.writestr("d/a.txt", b"slash")
        zf.writestr("d\\a.txt", b"backslash")  # the same path once normalised
        zf.writestr("./e.txt", b"dot")
        zf.writestr("e.txt", b"plain")
        zf.writestr("f.txt", b"first")
        zf.writestr("f.txt", b"second")  # an exact duplicate (zipfile 'a' mode makes these)


def _raw(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return sorted((i.filename, zf.read(i)) for i in zf.infolist())


def test_rewrite_keeps_members_shadowed_by_a_later_alias(tmp_path: Path) -> None:
    target = tmp_path / "alias.zip"
    _aliased_archive(target)
    before = _raw(target)
    be = WritableZipBackend(target, "a")
    served = {p: be.read_bytes(p) for p in ("d/a.txt", "e.txt", "f.txt")}
    assert served == {"d/a.txt": b"backslash", "e.txt": b"plain", "f.txt": b"second"}
    be.write("new.txt", b"n")  # an unrelated change rewrites the archive...
    be.close()
    assert _raw(target) == sorted([*before, ("new.txt", b"n")])  # ...losing no member
    be = WritableZipBackend(target, "a")
    assert {p: be.read_bytes(p) for p in served} == served  # served as before
    be.delete("d/a.txt")  # removing or replacing a path removes its shadowed copies too
    be.write("e.txt", b"new e")
    be.move("f.txt", "g.txt")
    be.close()
    assert _raw(target) == [("e.txt", b"new e"), ("g.txt", b"second"), ("new.txt", b"n")]


UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(UNSHARE is None or os.geteuid() != 0,
                    reason="needs unshare(1) and root for a private pid namespace")
def test_flushes_with_the_same_pid_use_different_temporary_files(tmp_path: Path) -> None:
    """Two containers (both pid 1) flushing into one shared folder must not write one file."""
    assert UNSHARE is not None
    code = ("import sys; from storied.backends.zip_writable import WritableZipBackend as W\n"
            "b = W(sys.argv[1], 'w'); print(b._temporary()); b._dirty = False\n")
    names = [subprocess.run([UNSHARE, "--pid", "--fork", sys.executable, "-c", code,
                             str(tmp_path / "s.zip")], capture_output=True, text=True,
                            timeout=60, check=True).stdout.strip() for _ in range(2)]
    assert names[0].startswith(str(tmp_path / "s.zip.storied-tmp-"))
    assert names[0] != names[1]
