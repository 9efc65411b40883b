"""Review R1 of the SMB mount: temporary names of writers on different hosts never collide."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("smbclient")

UNSHARE = shutil.which("unshare")
CODE = (
    "from storied.backends.smb import SmbBackend\n"
    "b = SmbBackend('127.0.0.1', 'share', username='u', password='p')\n"  # no network I/O
    "print(b._tmp('dir/file.txt'))\n"
)


def _in_own_pid_namespace() -> str:
    """The first temporary name a fresh process with pid 1 (a container) would use."""
    assert UNSHARE is not None
    done = subprocess.run([UNSHARE, "--pid", "--fork", sys.executable, "-c", CODE],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(UNSHARE is None or os.geteuid() != 0,
                    reason="needs unshare(1) and root for a private pid namespace")
def test_writers_with_the_same_pid_use_different_temporary_names() -> None:
    first, second = _in_own_pid_namespace(), _in_own_pid_namespace()
    assert first.startswith("dir/.file.txt.storied-tmp-") and second.startswith("dir/.")
    assert first != second  # was 'dir/.file.txt.storied-tmp-1-0' in both
