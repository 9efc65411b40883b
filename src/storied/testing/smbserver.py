"""A real Samba ``smbd`` on 127.0.0.1 for tests, with a private configuration in a temp dir.

:func:`start_smbd` writes an ``smb.conf`` whose every state, lock, cache and log directory is in
its own temporary directory, adds one Samba user (``pdbedit``, a private ``tdbsam``), and starts
``smbd --foreground --no-process-group`` in a new session bound to 127.0.0.1 on a free port
(NetBIOS off, so nothing listens on 137-139 or on any other address). The handle's ``stop()``
ends exactly that process group. Samba needs the Unix account it maps to: the user is the one
running the tests (root on CI), which must be able to start ``smbd``.

    with start_smbd(tmp_dir) as server:
        backend = smb_from_config({"name": "t", **server.config})
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from storied.testing.servers import HOST, ServerHandle, free_port

__all__ = ["SMBD", "smbd_missing_reason", "start_smbd"]

SMBD = shutil.which("smbd") or ("/usr/sbin/smbd" if os.path.exists("/usr/sbin/smbd") else None)
PDBEDIT = shutil.which("pdbedit") or (
    "/usr/bin/pdbedit" if os.path.exists("/usr/bin/pdbedit") else None
)
SHARE = "share"
PASSWORD = "storied-test-pw"


def smbd_missing_reason() -> str | None:
    """Why :func:`start_smbd` cannot run here (None when it can)."""
    if SMBD is None or PDBEDIT is None:
        return "Samba's smbd is not installed (Debian: apt-get install samba)"
    if os.geteuid() != 0:
        return "smbd needs root to switch to the share's user"
    return None


def _config(run: str, share_dir: str, port: int) -> str:
    return f"""[global]
  smb ports = {port}
  interfaces = {HOST}
  bind interfaces only = yes
  disable netbios = yes
  server role = standalone server
  lock directory = {run}/lock
  state directory = {run}/state
  cache directory = {run}/cache
  private dir = {run}/private
  binddns dir = {run}/private
  pid directory = {run}/run
  ncalrpc dir = {run}/ncalrpc
  log file = {run}/log.%m
  passdb backend = tdbsam:{run}/private/passdb.tdb
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  server min protocol = SMB2
  unix extensions = no
  wide links = no
  follow symlinks = no
[{SHARE}]
  path = {share_dir}
  read only = no
  create mask = 0644
"""


def start_smbd(share_dir: str | os.PathLike[str], timeout: float = 20) -> ServerHandle:
    """Start smbd serving ``share_dir`` as share ``share``; ``config`` holds the mount keys.

    Raises:
        RuntimeError: smbd is missing, or did not start listening within ``timeout``.
    """
    reason = smbd_missing_reason()
    if reason:
        raise RuntimeError(reason)
    assert SMBD is not None and PDBEDIT is not None
    run = tempfile.mkdtemp(prefix="storied-smbd-")
    for sub in ("lock", "state", "cache", "private", "run", "ncalrpc"):
        os.mkdir(os.path.join(run, sub))
    port = free_port()
    conf = os.path.join(run, "smb.conf")
    with open(conf, "w") as f:
        f.write(_config(run, os.path.abspath(share_dir), port))
    user = getpass.getuser()
    subprocess.run([PDBEDIT, "-s", conf, "-a", "-u", user, "-t"], input=f"{PASSWORD}\n" * 2,
                   text=True, check=True, capture_output=True, timeout=30)
    log = open(os.path.join(run, "smbd.out"), "wb")  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(
        [SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", conf],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )

    def stop() -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        shutil.rmtree(run, ignore_errors=True)

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log.flush()
            with open(os.path.join(run, "smbd.out"), "rb") as out:
                output = out.read().decode(errors="replace")[-2000:]
            stop()
            raise RuntimeError(f"smbd exited with {proc.returncode}: {output}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop()
                raise RuntimeError(f"smbd did not listen on {HOST}:{port}") from None
            time.sleep(0.05)
    config: dict[str, Any] = {"host": HOST, "port": port, "share": SHARE, "username": user,
                              "password": PASSWORD}
    return ServerHandle(config=config, url=f"smb://{HOST}:{port}/{SHARE}", _stop=stop)
