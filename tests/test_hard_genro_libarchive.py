"""The read-only ``libarchive`` mount type: 7z, cpio and iso archives made with libarchive-c."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

libarchive = pytest.importorskip("libarchive", reason="the libarchive extra is not installed")

from storied import StorageManager  # noqa: E402
from storied.backends.libarchive import LibarchiveBackend  # noqa: E402
from storied.errors import (  # noqa: E402
    InvalidContentError,
    IsADirectoryStorageError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
)

BIG = os.urandom(700_000)


def _archive(tmp_path: Path, fmt: str, name: str) -> Path:
    src = tmp_path / f"src-{fmt}"
    (src / "d" / "e").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"hello")
    (src / "d" / "e" / "big.bin").write_bytes(BIG)
    os.symlink("a.txt", src / "link")
    target = tmp_path / name
    cwd = os.getcwd()
    os.chdir(src)
    try:
        with libarchive.file_writer(str(target), fmt) as writer:
            writer.add_files("a.txt", "d", "link")
    finally:
        os.chdir(cwd)
    return target


@pytest.mark.parametrize(("fmt", "name"), [("7zip", "t.7z"), ("cpio", "t.cpio"),
                                           ("iso9660", "t.iso"), ("xar", "t.xar")])
def test_reads_every_format(tmp_path: Path, fmt: str, name: str) -> None:
    try:
        archive = _archive(tmp_path, fmt, name)
    except libarchive.exception.ArchiveError as exc:
        pytest.skip(f"this libarchive cannot write {fmt}: {exc}")
    be = LibarchiveBackend(archive)
    assert be.read_bytes("a.txt") == b"hello"
    assert be.read_bytes("d/e/big.bin") == BIG
    assert {i.path for i in be.list("")} >= {"a.txt", "d"}
    assert {i.path for i in be.walk("d")} == {"d/e/big.bin"}
    assert be.info("d/e").is_dir
    assert be.info("d/e/big.bin").size == len(BIG)
    with be.open_read("d/e/big.bin", 500_000, 500_010) as stream:
        assert stream.read() == BIG[500_000:500_010]
    if be.exists("link"):
        assert be.read_bytes("link") == b"hello"  # a link to a member is that member


def test_errors(tmp_path: Path) -> None:
    archive = _archive(tmp_path, "7zip", "t.7z")
    be = LibarchiveBackend(archive)
    with pytest.raises(StorageNotFoundError):
        be.read_bytes("nope")
    with pytest.raises(IsADirectoryStorageError):
        be.read_bytes("d")
    with pytest.raises(StoragePermissionError):
        be.write("x", b"1")
    (tmp_path / "junk.bin").write_bytes(b"no archive here")
    with pytest.raises(StorageConfigError):
        LibarchiveBackend(tmp_path / "junk.bin")
    with pytest.raises(StorageNotFoundError):
        LibarchiveBackend(tmp_path / "missing.7z")


def test_damage_after_indexing_is_invalid_content(tmp_path: Path) -> None:
    archive = _archive(tmp_path, "7zip", "t.7z")
    be = LibarchiveBackend(archive)
    data = archive.read_bytes()
    archive.write_bytes(data[:200] + bytes(len(data) - 200))  # headers kept, content zeroed
    with pytest.raises(InvalidContentError):
        be.read_bytes("d/e/big.bin")


def test_libarchive_mount_through_the_manager(tmp_path: Path) -> None:
    archive = _archive(tmp_path, "7zip", "t.7z")
    sm = StorageManager()
    sm.configure([{"name": "arc", "type": "libarchive", "file": str(archive), "base_path": "d"},
                  {"name": "mem", "type": "memory"}])
    assert sm.node("arc:e/big.bin").read_bytes() == BIG
    sm.node("arc:e").copy_to(sm.node("mem:out"))
    assert sm.node("mem:out/big.bin").read_bytes() == BIG
