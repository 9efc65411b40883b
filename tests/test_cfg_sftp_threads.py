"""One SFTP (or WebDAV) mount used by many threads at once, as parallel transfers do: every
SFTP thread gets its own channel over the one SSH connection, so no request waits on another
thread's, and threads creating the same parent directories at once do not fail."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storied import StorageManager
from storied.testing import servers

NEEDS = {"sftp": ("asyncssh", "paramiko"), "webdav": ("wsgidav", "webdav4"),
         "smb": ("smbclient",)}


def _start(kind: str, root: Path) -> servers.ServerHandle:
    if kind != "smb":
        handle: servers.ServerHandle = getattr(servers, f"start_{kind}")(root)
        return handle
    from storied.testing.smbserver import smbd_missing_reason, start_smbd

    reason = smbd_missing_reason()
    if reason:
        pytest.skip(reason)
    return start_smbd(root)


@pytest.mark.parametrize("kind", ["sftp", "webdav", "smb"])
def test_parallel_reads_and_writes_on_one_mount(tmp_path: Path, kind: str) -> None:
    for module in NEEDS[kind]:
        pytest.importorskip(module)
    (tmp_path / "root").mkdir()
    server = _start(kind, tmp_path / "root")
    try:
        storage = StorageManager()
        storage.configure([{"name": "s", "type": kind, **server.config, "read_timeout": 20}])

        def job(i: int) -> bytes:
            body = bytes([i % 256]) * (200_000 + i)
            node = storage.node(f"s:t{i % 4}/f{i}.bin")
            node.write_bytes(body)
            assert node.read_bytes() == body
            return body

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(job, range(40)))
        assert time.monotonic() - start < 60
        for i, body in enumerate(bodies):
            assert (tmp_path / "root" / f"t{i % 4}" / f"f{i}.bin").read_bytes() == body
        assert sorted(c.basename for c in storage.node("s:t0").children()) == sorted(
            f"f{i}.bin" for i in range(0, 40, 4))
    finally:
        server.stop()
