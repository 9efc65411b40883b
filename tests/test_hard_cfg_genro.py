"""Issue 8, section 6 (config part): ``configure`` does no network I/O (the error comes at first
use, as a storied error), and config errors keep genro-storage 0.8.4's wording and required
keys (SFTP ``username``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageConfigError, StorageError, StorageManager, StoragePermissionError
from storied.errors import TransientStorageError
from storied.testing import servers
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1 that nobody answers: it shows who connects."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    yield sock
    sock.close()


def _connected(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        conn, _ = sock.accept()
    except TimeoutError:
        return False
    conn.close()  # the client sees the connection drop
    return True


@pytest.mark.parametrize(
    "mount",
    [
        {"type": "sftp", "username": "u", "password": "p", "timeout": 5},
        {"type": "webdav", "username": "u", "password": "p"},
        {"type": "http"},
    ],
)
def test_configure_opens_no_connection(listener: socket.socket, mount: dict[str, Any]) -> None:
    port = listener.getsockname()[1]
    address = {
        "sftp": {"host": "127.0.0.1", "port": port},
        "webdav": {"url": f"http://127.0.0.1:{port}/"},
        "http": {"base_path": f"http://127.0.0.1:{port}/"},
    }[mount["type"]]
    sm = StorageManager()
    sm.configure([{"name": "r", **mount, **address, "retries": 1}])
    assert not _connected(listener, 0.5)  # nothing reached the server while configuring
    failure: list[BaseException] = []

    def first_use() -> None:
        try:
            sm.node("r:a.txt").read_text()
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=first_use)
    worker.start()
    assert _connected(listener, 20)  # the first use connects...
    listener.close()  # (a retrying client now meets a closed port)
    worker.join(60)
    assert failure and isinstance(failure[0], StorageError)  # ...and fails as a storied error
    sm.close()


def test_sftp_to_a_closed_port_configures_then_fails_transiently() -> None:
    sm = StorageManager()  # before the fix, this very call raised TransientStorageError
    sm.add_mount({"name": "s", "type": "sftp", "host": "127.0.0.1", "port": servers.free_port(),
                  "username": "u", "password": "p", "timeout": 5, "retries": 1})  # fmt: skip
    with pytest.raises(TransientStorageError):
        sm.node("s:a.txt").exists()
    with pytest.raises(TransientStorageError):  # tried again, not a cached failure
        sm.node("s:a.txt").exists()
    sm.close()


def test_sftp_refused_key_is_reported_at_first_use(tmp_path: Path) -> None:
    handle = servers.start_sftp(tmp_path)
    try:
        config = dict(handle.config)
        other = tmp_path / "not-the-key"
        other.write_text("garbage")
        sm = StorageManager()
        sm.add_mount({"name": "s", "type": "sftp", **config, "key_filename": str(other),
                      "password": "wrong", "retries": 1})  # fmt: skip
        with pytest.raises(StoragePermissionError):  # at first use, not at configure
            sm.node("s:a.txt").write_text("x")
        sm.add_mount({"name": "good", "type": "sftp", **config})
        sm.node("good:a.txt").write_text("reachable")
        assert (tmp_path / "a.txt").read_text() == "reachable"
        sm.close()
    finally:
        handle.stop()


def test_sftp_key_files_are_checked_at_configure_and_bad_keys_are_not_transient(
    tmp_path: Path,
) -> None:
    (tmp_path / "root").mkdir()
    handle = servers.start_sftp(tmp_path / "root")
    try:
        config = {"name": "s", "type": "sftp", **handle.config, "retries": 1}
        for key in ("key_filename", "known_hosts"):
            with pytest.raises(StorageConfigError) as caught:
                StorageManager().add_mount({**config, key: str(tmp_path / "missing")})
            assert "'s'" in str(caught.value) and repr(key) in str(caught.value)
        garbage = tmp_path / "garbage_key"
        garbage.write_text("not a key")
        sm = StorageManager()
        sm.add_mount({**config, "key_filename": str(garbage)})
        with pytest.raises(StoragePermissionError):  # before: TransientStorageError, retried
            sm.node("s:a.txt").read_text()
        sm.close()
    finally:
        handle.stop()


def test_s3_configure_sends_no_request(moto: MotoHandle, proxy: CountingProxy) -> None:
    bucket = make_bucket(moto.endpoint_url, "cfg-no-io")
    proxy.reset()
    sm = StorageManager()
    sm.configure([
        {"name": "a", "type": "s3", "bucket": bucket, "endpoint_url": proxy.endpoint_url,
         "key": "k", "secret": "s", "versioning": True},
        {"name": "b", "path": "a:sub", "readonly": True},
    ])
    assert proxy.total == 0
    sm.node("a:x.txt").write_text("1")
    assert proxy.total > 0
    sm.close()


GENRO_CASES = [
    {"name": "x", "protocol": "sftp"},
    {"name": "x", "protocol": "sftp", "host": "h"},  # genro requires the username
    {"name": "x", "protocol": "s3"},
    {"name": "x", "protocol": "local"},
    {"name": "x", "protocol": "gcs"},
    {"name": "x", "protocol": "azure"},
    {"name": "x", "protocol": "azure", "container": "c"},
    {"name": "x", "protocol": "http"},
    {"name": "x", "protocol": "webdav"},
    {"name": "x", "protocol": "zip"},
    {"name": "x", "protocol": "tar"},
    {"name": "x", "protocol": "smb"},
    {"name": "x", "protocol": "smb", "host": "h"},
    {"name": "x", "protocol": "git"},
    {"name": "x", "protocol": "github"},
    {"name": "x", "protocol": "github", "org": "o"},
    {"name": "x", "protocol": "libarchive"},
    {"protocol": "memory"},
    {"name": "x", "protocol": "memory", "permissions": "all"},
    {"name": "x", "path": "nope:sub"},
    {"name": "x", "protocol": "base64", "permissions": "readwrite"},
    {"name": "x", "protocol": "base64", "permissions": "delete"},
]


@pytest.mark.parametrize("config", GENRO_CASES)
def test_config_errors_have_genro_wording(config: dict[str, Any]) -> None:
    genro = pytest.importorskip("genro_storage")
    with pytest.raises(Exception) as theirs:
        genro.StorageManager().configure([config])
    with pytest.raises(StorageConfigError) as ours:
        StorageManager().configure([config])
    assert str(ours.value) == str(theirs.value)


def test_missing_type_keeps_genro_prefix() -> None:
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().configure([{"name": "x"}])
    assert str(caught.value).startswith(
        "Mount configuration for 'x' missing required field: 'protocol'"
    )


def test_sftp_username_is_required() -> None:
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().add_mount({"name": "s", "type": "sftp", "host": "127.0.0.1"})
    assert str(caught.value) == "SFTP storage 's' missing required field: 'username'"


def test_azure_connection_string_replaces_account_name() -> None:
    sm = StorageManager()  # storied also accepts a connection string alone (no I/O here)
    sm.add_mount({"name": "az", "type": "azure", "container": "c",
                  "connection_string": "DefaultEndpointsProtocol=http;AccountName=dev"})
    assert sm.has_mount("az")


def test_genro_s3_keys_are_accepted(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, "cfg-genro-keys")
    sm = StorageManager()
    sm.add_mount({"name": "s", "protocol": "s3", "bucket": bucket, "prefix": "p",
                  "endpoint_url": moto.endpoint_url, "access_key": "k", "secret_key": "s",
                  "region": "us-east-1", "version_aware": False})  # fmt: skip
    sm.node("s:a.txt").write_text("genro config")
    assert sm.node("s:a.txt").read_text() == "genro config"
    with pytest.raises(StorageConfigError, match="'version_aware'"):
        sm.add_mount({"name": "t", "protocol": "s3", "bucket": bucket, "version_aware": "no"})
    sm.close()
