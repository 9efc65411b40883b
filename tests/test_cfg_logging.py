"""The ``storied`` logger tree: requests at DEBUG, retries at INFO, give-ups at WARNING, never a
secret, and no handler configured by the library (NullHandler on ``storied`` only)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends._logging import redact
from storied.backends.memory import MemoryBackend
from storied.backends.retrying import Retrying
from storied.errors import StorageError, TransientStorageError
from storied.testing.doubles import FaultyBackend

PASSWORD = "pw-Very-Secret-123"
TOKEN = "ghp_TokenThatMustNeverBeLogged42"


def _text(record: logging.LogRecord) -> str:
    return f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}"


def test_a_retried_transient_error_logs_info_then_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = MemoryBackend()
    inner.write("a.txt", b"x")
    backend = Retrying(FaultyBackend(inner, fail_times=2), attempts=4, sleep=lambda _s: None)
    with caplog.at_level(logging.DEBUG, logger="storied"):
        assert backend.read_bytes("a.txt") == b"x"
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 2
    assert infos[0].name == f"storied.backends.{inner.protocol}"
    assert "attempt 1/4" in infos[0].getMessage() and "attempt 2/4" in infos[1].getMessage()
    assert "injected failure" in infos[0].getMessage() and "retrying in" in infos[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_exhausted_retry_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    inner = MemoryBackend()
    backend = Retrying(FaultyBackend(inner, fail_times=10), attempts=3, sleep=lambda _s: None)
    with caplog.at_level(logging.INFO, logger="storied"), pytest.raises(TransientStorageError):
        backend.write("b.txt", b"data")
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.INFO, logging.INFO, logging.WARNING]
    assert "giving up after 3 attempts" in caplog.records[-1].getMessage()
    assert "'b.txt'" in caplog.records[-1].getMessage()


@pytest.fixture
def webdav(tmp_path: Path) -> Iterator[dict[str, object]]:
    pytest.importorskip("wsgidav")
    pytest.importorskip("webdav4")
    from storied.testing.servers import start_webdav

    server = start_webdav(tmp_path, password=PASSWORD)
    yield dict(server.config)
    server.stop()


def test_debug_shows_requests_and_no_secret(webdav: dict[str, object],
                                            caplog: pytest.LogCaptureFixture) -> None:
    storage = StorageManager()
    storage.configure([{"name": "dav", "type": "webdav", **webdav}])
    with caplog.at_level(logging.DEBUG, logger="storied"):
        storage.node("dav:dir/a.txt").write_text("hello")
        assert storage.node("dav:dir/a.txt").read_text() == "hello"
        assert [n.basename for n in storage.node("dav:dir").children()] == ["a.txt"]
        with pytest.raises(StorageError):
            storage.node("dav:missing.txt").read_text()
    mine = [r for r in caplog.records if r.name == "storied.backends.webdav"]
    ops = {r.getMessage().split()[0] for r in mine}
    assert {"write", "info", "open", "list"} <= ops
    assert all(r.levelno == logging.DEBUG for r in mine)
    assert any(" ms" in r.getMessage() for r in mine)
    assert any("failed after" in r.getMessage() for r in mine)  # the missing file
    for record in caplog.records:
        assert PASSWORD not in _text(record)


class _Silent:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("kind", ["github", "webdav", "sftp"])
def test_failing_mounts_with_credentials_log_no_secret(kind: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    if kind != "github":
        pytest.importorskip("webdav4" if kind == "webdav" else "paramiko")
    silent = _Silent()
    url = f"http://u:{PASSWORD}@127.0.0.1:{silent.port}"
    mount = {
        "github": {"type": "github", "org": "o", "repo": "r", "token": TOKEN,
                   "username": "me", "api_url": f"http://127.0.0.1:{silent.port}"},
        "webdav": {"type": "webdav", "url": url, "username": "u", "password": PASSWORD,
                   "token": TOKEN},
        "sftp": {"type": "sftp", "host": "127.0.0.1", "port": silent.port, "username": "u",
                 "password": PASSWORD, "passphrase": TOKEN},
    }[kind]
    storage = StorageManager()
    storage.configure([{"name": "m", **mount, "connect_timeout": 0.3, "read_timeout": 0.3,
                        "retries": 3}])
    try:
        with caplog.at_level(logging.DEBUG, logger="storied"), \
                pytest.raises(TransientStorageError):
            storage.node("m:a.txt").read_text()
    finally:
        silent.close()
    assert any(r.levelno == logging.WARNING for r in caplog.records)  # the give-up
    for record in caplog.records:
        text = _text(record)
        assert PASSWORD not in text and TOKEN not in text, text


def test_redact_masks_credentials() -> None:
    samples = {
        "GET https://user:hunter2@host/x failed": "hunter2",
        "headers {'Authorization': 'Bearer abcdefghijklmnop'}": "abcdefghijklmnop",
        "https://acct.blob.core.windows.net/c?sv=1&sig=S3cr3tSig%3D&se=2": "S3cr3tSig",
        "X-Amz-Signature=deadbeefcafe1234 expired": "deadbeefcafe1234",
        "password=opensesame, user=bob": "opensesame",
        "AccountKey=Zm9vYmFyYmF6;EndpointSuffix=core": "Zm9vYmFyYmF6",
    }
    for text, secret in samples.items():
        assert secret not in redact(text), redact(text)
    assert redact("read 'docs/a.txt' 3.1 ms") == "read 'docs/a.txt' 3.1 ms"


def test_the_library_configures_no_handler() -> None:
    code = (
        "import logging, storied\n"
        "from storied import StorageManager\n"
        "s = StorageManager(); s.configure([{'name': 'm', 'type': 'memory'}])\n"
        "s.node('m:a').write_text('x')\n"
        "root = logging.getLogger('storied')\n"
        "assert all(isinstance(h, logging.NullHandler) for h in root.handlers), root.handlers\n"
        "assert any(isinstance(h, logging.NullHandler) for h in root.handlers)\n"
        "others = [n for n, l in logging.Logger.manager.loggerDict.items()\n"
        "          if n.startswith('storied.') and getattr(l, 'handlers', [])]\n"
        "assert not others, others\n"
        "assert not logging.getLogger().handlers\n"
        "logging.getLogger('storied.backends.x').warning('must not print')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no last-resort output: the NullHandler swallows it


def test_cli_verbose_shows_retries_and_quiet_by_default(tmp_path: Path) -> None:
    config = tmp_path / "storied.yaml"
    config.write_text("- name: flaky\n  type: mock\n  failure_rate: 0.6\n  seed: 3\n"
                      "  faults: [transient]\n  retries: 10\n")
    script = "from storied.cli.main import main; main()"
    runs = {}
    for flags in ([], ["-v"]):
        runs[bool(flags)] = subprocess.run(
            [sys.executable, "-c", script, *flags, "-c", str(config), "ls", "flaky:"],
            capture_output=True, text=True, timeout=120)
    assert runs[True].returncode == 0, runs[True].stderr
    assert "storied.backends." in runs[True].stderr and "attempt 1/10" in runs[True].stderr
    assert "failed" in runs[True].stderr and "retrying in" in runs[True].stderr
    assert "retrying in" not in runs[False].stderr and "storied." not in runs[False].stderr
