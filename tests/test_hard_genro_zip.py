"""Writable zip mounts (genro-storage ``mode: 'w' | 'a'``) and damaged archives (issue 8 §6, §2)."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import registry
from storied.backends.archive import TarBackend, ZipBackend, zip_from_config
from storied.backends.base import Backend
from storied.backends.zip_writable import WritableZipBackend
from storied.errors import (
    InvalidContentError,
    PreconditionFailedError,
    StorageConfigError,
    StorageError,
)
from storied.testing.conformance import BackendConformance
from storied.testing.node_suite import NodeConformance


@pytest.fixture
def zip_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry entry requested from H4 (idempotent once it is applied)."""
    spec = registry.TYPES["zip"]
    if "mode" in spec.optional:
        return
    optional = (*spec.optional, "mode", "autoflush")
    kinds = {**spec.kinds, "mode": registry.choice("r", "w", "a"), "autoflush": registry.BOOL}
    monkeypatch.setitem(registry.TYPES, "zip",
                        dataclasses.replace(spec, optional=optional, kinds=kinds))


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


class TestWritableZipBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        be = WritableZipBackend(tmp_path / "c.zip", "w")
        yield be
        be.close()
        assert zipfile.ZipFile(tmp_path / "c.zip").testzip() is None  # a valid archive


class TestWritableZipAutoflush(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        be = WritableZipBackend(tmp_path / "c.zip", "a", autoflush=True)
        yield be
        be.close()


class TestWritableZipNodes(NodeConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path, zip_keys: None) -> Iterator[StorageManager]:
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "zip", "file": str(tmp_path / "n.zip"),
                       "mode": "w"}])
        yield sm
        sm.close()


def test_writes_land_in_the_archive_on_close(tmp_path: Path, zip_keys: None) -> None:
    target = tmp_path / "out.zip"
    sm = StorageManager()
    sm.configure([{"name": "z", "type": "zip", "file": str(target), "mode": "w"}])
    sm.node("z:docs/a.txt").write_text("alpha")
    sm.node("z:b.bin").write_bytes(b"\x00" * 10)
    assert sm.node("z:docs/a.txt").read_text() == "alpha"  # reads see writes before the flush
    assert not target.exists()  # nothing half-written meanwhile
    sm.close()
    assert _members(target) == {"docs/a.txt": b"alpha", "b.bin": b"\x00" * 10}


def test_append_mode_keeps_members_and_adds(tmp_path: Path, zip_keys: None) -> None:
    target = tmp_path / "a.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("old.txt", b"old")
        zf.writestr("gone.txt", b"bye")
        zf.writestr("../evil.txt", b"unsafe name: never served, never dropped")
    sm = StorageManager()
    sm.configure([{"name": "z", "type": "zip", "file": str(target), "mode": "a"}])
    assert sm.node("z:old.txt").read_text() == "old"
    sm.node("z:new/n.txt").write_text("new")
    sm.node("z:gone.txt").delete()
    sm.node("z:old.txt").write_text("replaced")
    sm.close()
    assert _members(target) == {"old.txt": b"replaced", "new/n.txt": b"new",
                                "../evil.txt": b"unsafe name: never served, never dropped"}


def test_mode_w_replaces_an_existing_archive_only_at_flush(tmp_path: Path) -> None:
    target = tmp_path / "w.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("before.txt", b"x")
    be = zip_from_config({"name": "z", "file": str(target), "mode": "w"})
    assert [i.path for i in be.list("")] == []
    assert _members(target) == {"before.txt": b"x"}
    be.write("after.txt", b"y")
    be.close()
    assert _members(target) == {"after.txt": b"y"}


def test_rewrite_is_atomic_for_a_reader(tmp_path: Path) -> None:
    target = tmp_path / "r.zip"
    be = WritableZipBackend(target, "w")
    be.write("a", b"1" * 1000)
    be.flush()
    reader = ZipBackend(target)  # holds the old archive open across the rewrite
    be.write("b", b"2")
    be.flush()
    assert reader.read_bytes("a") == b"1" * 1000
    assert _members(target) == {"a": b"1" * 1000, "b": b"2"}
    assert not [p for p in os.listdir(tmp_path) if p != "r.zip"]  # no temporary left behind
    reader.close()
    be.close()


def test_flush_refuses_an_archive_changed_by_someone_else(tmp_path: Path) -> None:
    target = tmp_path / "c.zip"
    be = WritableZipBackend(target, "a")
    be.write("mine.txt", b"mine")
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("theirs.txt", b"theirs")
    with pytest.raises(PreconditionFailedError):
        be.flush()
    assert _members(target) == {"theirs.txt": b"theirs"}  # their archive is not clobbered
    assert be.read_bytes("mine.txt") == b"mine"  # and our change is still staged


def test_unflushed_writes_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    target = tmp_path / "exit.zip"
    code = ("import gc, sys; from storied.backends.zip_writable import WritableZipBackend as W;"
            "b = W(sys.argv[1], 'w'); b.write('k.txt', b'kept'); del b; gc.collect()")
    subprocess.run([sys.executable, "-c", code, str(target)], check=True, timeout=60)
    assert _members(target) == {"k.txt": b"kept"}


def test_bad_mode_and_autoflush_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match="mode"):
        zip_from_config({"name": "z", "file": str(tmp_path / "x.zip"), "mode": "rw"})
    with pytest.raises(StorageConfigError, match="autoflush"):
        zip_from_config({"name": "z", "file": str(tmp_path / "x.zip"), "mode": "w",
                         "autoflush": "yes"})
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(StorageConfigError):
        zip_from_config({"name": "z", "file": str(tmp_path / "junk.zip"), "mode": "a"})


# ------------------------------------------------------------------------- damaged archives
def _corrupt_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", b"hello world " * 1000)
        zf.writestr("s.txt", b"stored bytes", compress_type=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.find(b"a.txt") + 25
    for k in range(at, at + 30):
        data[k] ^= 0xFF
    at = data.find(b"stored bytes")
    data[at] ^= 0xFF  # a bad CRC on a stored member
    path.write_bytes(bytes(data))
    return path


def test_corrupt_zip_member_is_invalid_content(tmp_path: Path) -> None:
    be = ZipBackend(_corrupt_zip(tmp_path / "bad.zip"))
    for name in ("a.txt", "s.txt"):
        with pytest.raises(InvalidContentError, match=name):
            be.read_bytes(name)


def test_corrupt_member_in_writable_zip_is_invalid_content(tmp_path: Path) -> None:
    be = WritableZipBackend(_corrupt_zip(tmp_path / "bad.zip"), "a")
    with pytest.raises(InvalidContentError):
        be.read_bytes("a.txt")
    be.write("new.txt", b"n")
    with pytest.raises(StorageError):
        be.flush()  # the rewrite meets the damage: a storied error, the old file untouched
    assert zipfile.ZipFile(tmp_path / "bad.zip").namelist() == ["a.txt", "s.txt"]


def test_truncated_zip_is_a_config_error(tmp_path: Path) -> None:
    good = tmp_path / "g.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("a.txt", b"x" * 1000)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(StorageConfigError):
        ZipBackend(cut)


def _tgz(path: Path, payload: bytes) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("x.bin")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    path.write_bytes(buf.getvalue())
    return path


def test_truncated_tar_gz_is_a_storied_error(tmp_path: Path) -> None:
    payload = os.urandom(200_000)
    whole = _tgz(tmp_path / "t.tgz", payload).read_bytes()
    (tmp_path / "cut.tgz").write_bytes(whole[:-5000])
    with pytest.raises(StorageConfigError):
        TarBackend(tmp_path / "cut.tgz")
    be = TarBackend(tmp_path / "t.tgz")  # indexed while whole, then cut on disk
    (tmp_path / "t.tgz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidContentError, match=r"x\.bin"):
        be.read_bytes("x.bin")


def test_two_mounts_of_one_archive_have_one_location(tmp_path: Path, zip_keys: None) -> None:
    from storied.core.config import location

    target = tmp_path / "one.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("a.txt", b"a")
    sm = StorageManager()
    sm.configure([{"name": "w", "type": "zip", "file": str(target), "mode": "a"},
                  {"name": "r", "type": "zip", "file": str(tmp_path / "." / "one.zip")}])
    assert location(sm.get_backend("w"), "a.txt") == location(sm.get_backend("r"), "a.txt")
    sm.close()
