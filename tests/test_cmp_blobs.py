"""History blobs stored zstd-compressed by the portable engine (history schema 4), on memory,
local and S3 (moto): smaller when it pays, plain otherwise, old plain blobs still readable,
verify hashing the original content, older readers refusing the history."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied.backends import _compress_blobs, _compress_format
from storied.backends.base import Backend, WrappedBackend
from storied.backends.local import LocalBackend
from storied.backends.memory import MemoryBackend
from storied.backends.retrying import Retrying
from storied.backends.s3 import S3Backend
from storied.errors import UnsupportedOperation
from storied.info import WriteMode
from storied.testing.doubles import FaultyBackend
from storied.testing.s3server import MotoHandle, make_bucket
from storied.versioning import portable
from storied.versioning.portable import PortableEngine
from storied.versioning.records import blob_path

MIB = 1024 * 1024


def text(size: int, seed: int = 0) -> bytes:
    line = f"{seed} INFO request served path=/api/items/{seed} status=200 ms=12\n".encode()
    return (line * (size // len(line) + 1))[:size]


@pytest.fixture(params=["memory", "local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend(uuid.uuid4().hex)
    elif request.param == "local":
        yield LocalBackend(str(tmp_path))
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"cmpb-{uuid.uuid4().hex[:12]}")
        s3 = S3Backend(bucket, key="testing", secret="testing", endpoint_url=moto.endpoint_url)
        yield s3
        s3.close()


def _blob(backend: Backend, sha: str) -> bytes:
    return backend.read_bytes(".storied/" + blob_path(sha))


def _schema(backend: Backend) -> int:
    return int(json.loads(backend.read_bytes(".storied/format.json"))["schema_version"])


def test_compressible_blobs_are_stored_compressed(backend: Backend) -> None:
    engine = PortableEngine(backend, backend)
    data = text(300_000)
    version = engine.write("logs/app.log", data)
    assert version.sha256
    raw = _blob(backend, version.sha256)
    assert raw.startswith(_compress_format.ZSTD_HEAD_SIG) and len(raw) < len(data) / 5
    assert _schema(backend) == 4
    with engine.open_version("logs/app.log", version) as stream:
        assert stream.read() == data
    report = engine.verify()
    assert report.ok and report.checked == 1
    assert backend.read_bytes("logs/app.log") == data  # the working copy is the file


def test_small_and_incompressible_blobs_stay_plain(backend: Backend) -> None:
    engine = PortableEngine(backend, backend)
    small, noise = b"tiny content", os.urandom(200_000)
    v1 = engine.write("a.txt", small)
    v2 = engine.write("b.bin", noise)
    assert _blob(backend, v1.sha256 or "") == small
    assert _blob(backend, v2.sha256 or "") == noise
    assert _schema(backend) == 2  # nothing compressed: older storied still reads it
    assert engine.verify().ok


def test_old_plain_blobs_stay_readable(backend: Backend,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = text(100_000, seed=1)
    monkeypatch.setattr(_compress_blobs, "_codec_cache", [None])  # a storied without zstd
    old = PortableEngine(backend, backend).write("f.txt", data)
    assert _blob(backend, old.sha256 or "") == data
    monkeypatch.setattr(_compress_blobs, "_codec_cache", [])
    engine = PortableEngine(backend, backend)
    new = engine.write("f.txt", text(100_000, seed=2))
    assert _blob(backend, new.sha256 or "").startswith(_compress_format.ZSTD_HEAD_SIG)
    versions = engine.versions("f.txt")
    with engine.open_version("f.txt", versions[0]) as stream:
        assert stream.read() == data
    assert engine.verify().ok and engine.verify().checked == 2


def test_verify_hashes_the_original_content(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    engine = PortableEngine(backend, backend)
    version = engine.write("x.log", text(50_000))
    target = tmp_path / ".storied" / blob_path(version.sha256 or "")
    assert engine.blob_sha256(version.sha256 or "") == version.sha256
    os.chmod(target, 0o644)
    target.write_bytes(_compress_format.ZSTD_HEAD_SIG + b"garbage" * 20)
    report = engine.verify()
    assert not report.ok


def test_an_older_storied_refuses_a_compressed_history(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    backend = LocalBackend(str(tmp_path))
    PortableEngine(backend, backend).write("x.log", text(50_000))
    monkeypatch.setattr(portable, "SCHEMA_VERSION", 3)  # what storied before schema 4 reads
    with pytest.raises(UnsupportedOperation, match="reads up to 3"):
        PortableEngine(backend, backend).write("x.log", b"old writer")


def test_content_that_looks_compressed_round_trips(backend: Backend,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _compress_format.ZSTD_HEAD_SIG + b"\x00\x00\x40\x00" + b"not really"
    for cache in ([None], []):  # without zstd (gzip is used) and with it
        monkeypatch.setattr(_compress_blobs, "_codec_cache", list(cache))
        engine = PortableEngine(backend, backend)
        version = engine.write(f"fake{len(cache)}.bin", fake)
        assert _blob(backend, version.sha256 or "") != fake
        with engine.open_version(f"fake{len(cache)}.bin", version) as stream:
            assert stream.read() == fake
        assert engine.verify().ok


def test_local_records_stay_hard_links_of_compressed_blobs(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    engine = PortableEngine(backend, backend)
    version = engine.write("x.log", text(60_000))
    blob = tmp_path / ".storied" / blob_path(version.sha256 or "")
    assert blob.stat().st_nlink == 2  # the record is a second name of the blob (fast path)


def test_large_streamed_versions_are_compressed_and_seekable(backend: Backend) -> None:
    engine = PortableEngine(backend, backend)
    data = text(10 * MIB + 17, seed=3)
    version = engine.write("big.log", io.BytesIO(data))
    raw = _blob(backend, version.sha256 or "")
    assert len(raw) < len(data) / 5
    with engine.open_version("big.log", version) as stream:
        stream.seek(9 * MIB)
        assert stream.read(100) == data[9 * MIB : 9 * MIB + 100]
        stream.seek(0)
        assert hashlib.sha256(stream.read()).hexdigest() == version.sha256


def test_a_retried_blob_upload_sends_the_whole_blob_again(tmp_path: Path) -> None:
    faulty = FaultyBackend(LocalBackend(str(tmp_path)), fail_times=1,
                           operations=frozenset({"write"}))
    retried = Retrying(faulty, attempts=3)
    engine = PortableEngine(retried, retried)
    faulty.fail_times = 0
    engine.write("first.txt", b"creates format.json")
    faulty.fail_times = faulty.calls["write"] + 1  # the next write (the blob) fails once
    data = text(9 * MIB, seed=4)  # spooled: the blob is a compressing stream
    version = engine.write("r.log", io.BytesIO(data))
    blob = tmp_path / ".storied" / blob_path(version.sha256 or "")
    assert blob.read_bytes().startswith(_compress_format.ZSTD_HEAD_SIG)
    with engine.open_version("r.log", version) as stream:
        assert stream.read() == data
    assert engine.verify().ok


class _Racing(WrappedBackend):
    """A storage where another process rewrites format.json right before our first
    conditional write of it (the marker then has a new etag)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.raced = False

    def write(self, path: str, data: Any, **kw: Any) -> Any:
        if path.endswith("format.json") and kw.get("mode") is WriteMode.IF_MATCH and not self.raced:
            self.raced = True
            found = json.loads(self.inner.read_bytes(path))
            found["other"] = "kept"
            self.inner.write(path, json.dumps(found).encode())
        return self.inner.write(path, data, **kw)


def test_the_schema_is_raised_by_compare_and_swap(tmp_path: Path) -> None:
    racing = _Racing(LocalBackend(str(tmp_path)))
    engine = PortableEngine(racing, racing)
    engine.write("a.txt", b"small: schema 2")
    engine.write("b.log", text(80_000))
    marker = json.loads((tmp_path / ".storied/format.json").read_text())
    assert racing.raced
    assert marker["schema_version"] == 4 and marker["other"] == "kept"  # nothing lost


def test_version_streams_are_seekable(backend: Backend) -> None:
    engine = PortableEngine(backend, backend)
    for path, data in (("small.csv", b"1,2\n3,4\n"), ("big.log", text(5 * MIB, seed=8))):
        version = engine.write(path, data)
        with engine.open_version(path, version) as f:
            assert f.seekable()
            assert f.seek(0, io.SEEK_END) == len(data)
            f.seek(3)
            assert f.read(5) == data[3:8]
            f.seek(0)
            assert f.read() == data


@pytest.mark.parametrize("codec_name", ["gzip", "zstd"])
@pytest.mark.parametrize("size", [1, 4096, 4097, 70_000, _compress_format.BLOCK])
def test_the_one_member_shortcut_makes_the_encoders_bytes(codec_name: str, size: int) -> None:
    """``encode_one`` (small blobs and files) writes exactly what the streaming Encoder
    writes for the same content and object id, and decodes back to the content."""
    from storied.backends._compress_io import Encoder, encode_one

    codec = _compress_format.codec_named(codec_name)
    data = (b"storied one member " * (size // 19 + 1))[:size]
    obj = os.urandom(8)
    one = encode_one(codec, data, obj, float("inf"))
    assert (encode_one(codec, data, obj, 0.9) is None) == (size < 100)  # tiny: no gain
    with Encoder(codec, memoryview(data), memoryview(b""), obj, hashing=False) as encoder:
        streamed = encoder.read()
    assert one == streamed
    backend = MemoryBackend(store=uuid.uuid4().hex)
    assert one is not None
    backend.write("x", one)
    with _compress_blobs.open_blob(backend, "x") as f:
        assert f.read() == data
    assert encode_one(codec, os.urandom(size), obj, 0.9) is None  # random: does not shrink


def test_object_ids_are_unique_and_not_shared_with_a_forked_child() -> None:
    from storied.backends import _compress_io

    ids = [_compress_io._new_obj() for _ in range(300)]
    assert len(set(ids)) == 300 and all(len(i) == 8 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's next ids must not be the parent's next ones
        os.write(write, b"".join(_compress_io._new_obj() for _ in range(10)))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 80)
    os.close(read)
    os.close(write)
    mine = b"".join(_compress_io._new_obj() for _ in range(10))
    assert len(child) == 80 and child != mine
    assert not {child[i:i + 8] for i in range(0, 80, 8)} & {mine[i:i + 8] for i in range(0, 80, 8)}
