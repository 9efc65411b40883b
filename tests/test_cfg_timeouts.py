"""Per-mount ``connect_timeout``/``read_timeout``: a hung endpoint fails in seconds.

The endpoint is a real TCP listener on 127.0.0.1 that accepts every connection and never sends a
byte. Each mount's first operation must fail with a transient storied error (a
:class:`StorageTimeoutError` where the client reports the timeout as such) within about
``timeout x retries`` plus slack, instead of the libraries' default minutes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.backends import registry
from storied.backends._config_kinds import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    timeouts,
)
from storied.errors import StorageConfigError, StorageTimeoutError, TransientStorageError

#: Seconds each mount is given; with ``retries: 2`` an operation may take ~2x this per request.
T = 0.5
#: The bound every failure must meet (a request or two per attempt, two attempts, slack).
LIMIT = 12.0


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers (holds them until stopped)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def _mounts(port: int) -> dict[str, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}"
    return {
        "sftp": {"type": "sftp", "host": "127.0.0.1", "port": port, "username": "u",
                 "password": "pw"},
        "webdav": {"type": "webdav", "url": f"{url}/dav/", "username": "u", "password": "pw"},
        "http": {"type": "http", "base_path": f"{url}/files/"},
        "smb": {"type": "smb", "host": "127.0.0.1", "port": port, "share": "s",
                "username": "u", "password": "pw"},
        "github": {"type": "github", "org": "o", "repo": "r", "api_url": url, "token": "tk"},
        "gcs": {"type": "gcs", "bucket": "b", "endpoint_url": url, "token": "anon"},
        "azure": {"type": "azure", "container": "c", "connection_string": (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
            f"BlobEndpoint={url}/devstoreaccount1;")},
    }


NEEDS = {"sftp": "paramiko", "webdav": "webdav4", "http": "aiohttp", "smb": "smbclient",
         "gcs": "gcsfs", "azure": "adlfs"}


@pytest.mark.parametrize("kind", ["sftp", "webdav", "http", "smb", "github", "gcs", "azure"])
def test_a_silent_endpoint_fails_within_the_timeouts(silent: SilentServer, kind: str) -> None:
    if kind in NEEDS:
        pytest.importorskip(NEEDS[kind])
    config = {**_mounts(silent.port)[kind], "name": "m", "connect_timeout": T,
              "read_timeout": T, "retries": 2}
    storage = StorageManager()
    storage.configure([config])
    start = time.monotonic()
    with pytest.raises(TransientStorageError) as info:
        storage.node("m:some/file.txt").read_bytes()
    elapsed = time.monotonic() - start
    assert elapsed < LIMIT, f"{kind}: {elapsed:.1f} s"
    assert silent.accepted >= 1  # it did reach the silent server (not a refused connection)
    if kind in ("webdav", "http", "github", "smb", "gcs"):
        assert isinstance(info.value, StorageTimeoutError), repr(info.value)


def test_genro_timeout_sets_both_and_specific_keys_win() -> None:
    assert timeouts({}) == (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)
    assert timeouts({"timeout": 7}) == (7.0, 7.0)
    assert timeouts({"timeout": 7, "read_timeout": 3}) == (7.0, 3.0)
    assert timeouts({"connect_timeout": 2}) == (2.0, DEFAULT_READ_TIMEOUT)
    assert DEFAULT_CONNECT_TIMEOUT <= 10 and DEFAULT_READ_TIMEOUT <= 60


@pytest.mark.parametrize("kind", ["gcs", "azure", "sftp", "webdav", "http", "smb", "github"])
@pytest.mark.parametrize("bad", [0, -1, "soon", True, 10**9])
def test_timeouts_are_type_checked(kind: str, bad: Any) -> None:
    spec = registry.TYPES[kind]
    assert {"connect_timeout", "read_timeout"} <= set(spec.optional)
    base = {"sftp": {"host": "h", "username": "u"}, "webdav": {"url": "http://h/"},
            "http": {"base_path": "http://h/"}, "smb": {"host": "h", "share": "s"},
            "github": {"org": "o", "repo": "r"}, "gcs": {"bucket": "b"},
            "azure": {"container": "c", "account_name": "a"}}[kind]
    with pytest.raises(StorageConfigError, match="read_timeout"):
        spec.normalize("m", {**base, "read_timeout": bad})


def test_the_timeouts_reach_the_real_clients() -> None:
    """The clients the builders make carry the configured values (no request sent)."""
    pytest.importorskip("webdav4")
    pytest.importorskip("aiohttp")
    http = registry.build("http", "h", {"base_path": "http://127.0.0.1:9/",
                                        "connect_timeout": 3, "read_timeout": 4})
    session_timeout = http.fs.client_kwargs["timeout"]  # type: ignore[attr-defined]
    assert (session_timeout.sock_connect, session_timeout.sock_read) == (3, 4)
    dav = registry.build("webdav", "d", {"url": "http://127.0.0.1:9/", "connect_timeout": 3,
                                         "read_timeout": 4})
    client = dav.fs.client  # type: ignore[attr-defined]
    assert (client.http.timeout.connect, client.http.timeout.read) == (3, 4)
    gh = registry.build("github", "g", {"org": "o", "repo": "r", "timeout": 5,
                                        "read_timeout": 6})
    assert (gh.connect_timeout, gh.read_timeout) == (5, 6)  # type: ignore[attr-defined]


def test_a_timeout_is_retried_at_most_once() -> None:
    """Each timeout already waited the whole timeout: the second one ends the retries, other
    transient errors still get every attempt."""
    from storied.backends.base import WrappedBackend
    from storied.backends.memory import MemoryBackend
    from storied.backends.retrying import Retrying
    from storied.info import Info

    class Flaky(WrappedBackend):
        def __init__(self, inner: MemoryBackend, error: type[TransientStorageError]) -> None:
            super().__init__(inner)
            self.error, self.calls = error, 0

        def info(self, path: str) -> Info:
            self.calls += 1
            raise self.error("no answer")

    for error, tries in ((StorageTimeoutError, 2), (TransientStorageError, 5)):
        flaky = Flaky(MemoryBackend(), error)
        with pytest.raises(error):
            Retrying(flaky, attempts=5, sleep=lambda _s: None).info("a")
        assert flaky.calls == tries, error


def test_many_retries_still_fail_in_about_two_timeouts(silent: SilentServer) -> None:
    storage = StorageManager()
    storage.configure([{**_mounts(silent.port)["github"], "name": "m", "read_timeout": T,
                        "retries": 10}])
    start = time.monotonic()
    with pytest.raises(StorageTimeoutError):
        storage.node("m:x").read_bytes()
    assert time.monotonic() - start < 3 * T + 1.5
