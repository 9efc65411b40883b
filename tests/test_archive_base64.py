"""Read-only backends: zip and tar archives (stdlib), and base64 paths."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storied.backends import archive
from storied.backends import base64 as b64backend
from storied.backends.archive import TarBackend, ZipBackend
from storied.backends.base import Backend
from storied.backends.base64 import Base64Backend
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import WriteMode

MEMBERS = {
    "top.txt": b"top level",
    "docs/readme.md": b"# readme",
    "docs/deep/nested/data.bin": bytes(range(256)) * 40,
    "docs/deep/other.txt": b"other",
}
BIG = b"0123456789" * 300_000  # 3 MB, to check streaming and ranges past a buffer


def _make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("emptydir/", b"")
        for name, data in MEMBERS.items():
            zf.writestr(name, data)
        zf.writestr("big.bin", BIG)
        zf.writestr("../evil.txt", b"never served")
    return path


def _make_tar(path: Path, mode: str) -> Path:
    with tarfile.open(path, mode) as tf:
        empty = tarfile.TarInfo("emptydir")
        empty.type = tarfile.DIRTYPE
        tf.addfile(empty)
        for name, data in {**MEMBERS, "big.bin": BIG}.items():
            info = tarfile.TarInfo("./" + name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("docs/link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "readme.md"
        tf.addfile(link)
        evil = tarfile.TarInfo("../evil.txt")
        evil.size = 4
        tf.addfile(evil, io.BytesIO(b"evil"))
    return path


@pytest.fixture(params=["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def arch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    if kind == "zip":
        backend: Backend = ZipBackend(_make_zip(tmp_path / "a.zip"))
    else:
        suffix = kind.partition(".")[2]
        file = _make_tar(tmp_path / f"a.{kind}", f"w:{suffix}")
        backend = TarBackend(file)
    yield backend
    backend.close()


def test_info(arch: Backend) -> None:
    info = arch.info("docs/readme.md")
    assert (info.path, info.is_dir, info.size) == ("docs/readme.md", False, 8)
    assert info.mtime is not None and info.etag
    for directory in ("", "docs", "docs/deep", "docs/deep/nested", "emptydir"):
        assert arch.info(directory).is_dir
    with pytest.raises(StorageNotFoundError):
        arch.info("docs/missing")
    assert not arch.exists("evil.txt") and not arch.exists("../evil.txt")


def test_list_and_walk(arch: Backend) -> None:
    root = {e.path: e.is_dir for e in arch.list("")}
    assert root == {"top.txt": False, "docs": True, "emptydir": True, "big.bin": False}
    assert {e.path for e in arch.list("docs/deep")} == {
        "docs/deep/nested",
        "docs/deep/other.txt",
    }
    assert list(arch.list("emptydir")) == []
    walked = {e.path for e in arch.walk("docs")}
    expected = {p for p in MEMBERS if p.startswith("docs/")}
    if arch.protocol == "tar":
        expected.add("docs/link.txt")
    assert walked == expected
    with pytest.raises(NotADirectoryStorageError):
        list(arch.list("top.txt"))
    with pytest.raises(StorageNotFoundError):
        list(arch.list("nope"))
    with pytest.raises(StorageNotFoundError):
        list(arch.walk("nope"))


def test_read_and_ranges(arch: Backend) -> None:
    for name, data in MEMBERS.items():
        assert arch.read_bytes(name) == data
    with arch.open_read("big.bin") as stream:
        assert stream.read(10) == b"0123456789"
        assert stream.read() == BIG[10:]
    with arch.open_read("big.bin", 2_000_003, 2_000_010) as stream:
        assert stream.read() == BIG[2_000_003:2_000_010]
    with arch.open_read("docs/readme.md", 2) as stream:
        assert stream.read() == b"readme"
    with arch.open_read("docs/readme.md", 5, 100) as stream:
        assert stream.read() == b"dme"
    with pytest.raises(IsADirectoryStorageError):
        arch.open_read("docs")
    with pytest.raises(StorageNotFoundError):
        arch.read_bytes("nope")


def test_concurrent_streams(arch: Backend) -> None:
    results: list[bool] = []

    def read(start: int) -> None:
        with arch.open_read("big.bin", start, start + 100_000) as stream:
            results.append(stream.read() == BIG[start : start + 100_000])

    threads = [threading.Thread(target=read, args=(i * 250_000,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 6


def test_tar_symlink_member(tmp_path: Path) -> None:
    backend = TarBackend(_make_tar(tmp_path / "l.tar", "w"))
    assert backend.read_bytes("docs/link.txt") == b"# readme"


def _write_calls(backend: Backend) -> list[Callable[[], object]]:
    return [
        lambda: backend.write("top.txt", b"x"),
        lambda: backend.write("new.txt", io.BytesIO(b"x"), mode=WriteMode.CREATE),
        lambda: backend.delete("top.txt"),
        lambda: backend.delete("docs", recursive=True),
        lambda: backend.mkdir("newdir", parents=True),
        lambda: backend.copy("top.txt", "copy.txt"),
        lambda: backend.move("top.txt", "moved.txt"),
        lambda: backend.set_metadata("top.txt", {"a": "b"}),
    ]


def test_every_write_is_refused(arch: Backend) -> None:
    caps = arch.capabilities
    assert caps.readonly and not (caps.write or caps.delete or caps.mkdir)
    for call in _write_calls(arch):
        with pytest.raises(StoragePermissionError, match="read-only") as caught:
            call()
        assert isinstance(caught.value, PermissionError)
    assert arch.read_bytes("top.txt") == b"top level"


def test_from_config_and_base_path(tmp_path: Path) -> None:
    zpath = _make_zip(tmp_path / "c.zip")
    tpath = _make_tar(tmp_path / "c.tgz", "w:gz")
    zipped = archive.zip_from_config({"name": "z", "file": str(zpath), "base_path": "docs/deep"})
    assert {e.path for e in zipped.list("")} == {"nested", "other.txt"}
    assert zipped.read_bytes("other.txt") == b"other"
    tarred = archive.tar_from_config({"name": "t", "file": str(tpath), "compression": "gz"})
    assert tarred.read_bytes("top.txt") == b"top level"
    assert isinstance(archive.zip_from_config({"name": "a", "file": str(zpath)}), ZipBackend)
    assert isinstance(archive.tar_from_config({"name": "a", "file": str(tpath)}), TarBackend)
    with pytest.raises(StorageNotFoundError):
        archive.zip_from_config({"name": "z", "file": str(tmp_path / "missing.zip")})
    with pytest.raises(StorageConfigError):
        archive.zip_from_config({"name": "z", "file": str(tpath)})
    with pytest.raises(StorageConfigError):
        archive.tar_from_config({"name": "t", "file": str(tpath), "compression": "zstd7"})
    with pytest.raises(StorageConfigError):
        archive.tar_from_config({"name": "t", "file": str(zpath), "compression": "none"})
    for backend in (zipped, tarred):
        backend.close()


# ------------------------------------------------------------------------------ base64
B64 = Base64Backend()


def test_base64_read_and_info() -> None:
    path = base64.b64encode(b"hello world").decode()
    assert B64.read_bytes(path) == b"hello world"
    info = B64.info(path)
    assert (info.path, info.size, info.is_dir) == (path, 11, False)
    assert info.md5 == hashlib.md5(b"hello world").hexdigest()
    with B64.open_read(path, 6, 9) as stream:
        assert stream.read() == b"wor"
    wrapped = path[:4] + "\n  " + path[4:] + "\n"
    assert B64.read_bytes(wrapped) == b"hello world"
    assert B64.url(path) == f"data:application/octet-stream;base64,{path}"


def test_base64_special_characters_preserved() -> None:
    data = bytes([0xFF, 0xEF, 0xFE, 0xFB, 0xFF, 0xBF, 0x3F])  # encodes to '/+/++/+/Pw=='
    path = base64.b64encode(data).decode()
    assert path.startswith("/") and "+" in path and path.endswith("==")
    assert B64.read_bytes(path) == data
    assert B64.info(path).path == path
    jpeg = "/9j/4AAQSkZJRg=="
    assert B64.read_bytes(jpeg) == base64.b64decode(jpeg)
    assert B64.read_bytes("//8=") == b"\xff\xff"


def test_base64_invalid_and_empty() -> None:
    with pytest.raises(StorageNotFoundError, match="Invalid base64 data"):
        B64.info("not base64!")
    with pytest.raises(StorageNotFoundError, match="Invalid base64 data"):
        B64.read_bytes("abc")  # bad padding
    with pytest.raises(StorageNotFoundError, match="cannot be empty"):
        B64.info("  \n")
    assert not B64.exists("@@@") and B64.exists("YQ==")
    assert B64.url("@@@") is None


def test_base64_is_readonly_and_flat() -> None:
    caps = B64.capabilities
    assert caps.opaque_paths and caps.readonly
    assert not (caps.write or caps.delete or caps.mkdir or caps.list_dir)
    with pytest.raises(NotADirectoryStorageError):
        list(B64.list("YQ=="))
    with pytest.raises(NotADirectoryStorageError):
        list(B64.walk(""))
    for call in _write_calls(B64):
        with pytest.raises(StoragePermissionError) as caught:
            call()
        assert isinstance(caught.value, PermissionError)
    assert isinstance(b64backend.from_config({"name": "b"}), Base64Backend)


def test_registry_builds_archives_and_base64(tmp_path: Path) -> None:
    from storied.backends import registry

    zpath = _make_zip(tmp_path / "r.zip")
    tpath = _make_tar(tmp_path / "r.tar", "w")
    zipped = registry.build("zip", "z", {"file": str(zpath), "base_path": "docs"})
    tarred = registry.build("tar", "t", {"file": str(tpath)})
    b64 = registry.build("base64", "b", {})
    assert zipped.read_bytes("readme.md") == b"# readme"
    assert tarred.read_bytes("docs/readme.md") == b"# readme"
    assert b64.read_bytes("YWJj") == b"abc"
    assert (zipped.protocol, tarred.protocol, b64.protocol) == ("zip", "tar", "base64")
    zipped.close()
    tarred.close()
