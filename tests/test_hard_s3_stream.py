"""Issue 8, section 4: S3 read streams seek with bounded, version-pinned ranged GETs."""

from __future__ import annotations

import io
import os
import re
import uuid
import zipfile
from collections.abc import Iterator

import pytest

from storied import StorageManager
from storied.backends._s3_stream import MAX_WINDOW, READ_AHEAD
from storied.backends.s3 import S3Backend
from storied.errors import PreconditionFailedError, StorageError, TransientStorageError
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _mount(endpoint: str, bucket: str) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing"}  # fmt: skip


def _backend(endpoint: str, bucket: str) -> S3Backend:
    return S3Backend(bucket, key="testing", secret="testing", endpoint_url=endpoint)


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"seek-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def vbucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"vseek-{uuid.uuid4().hex[:12]}", versioned=True)


@pytest.fixture
def counted(proxy: CountingProxy, bucket: str) -> Iterator[S3Backend]:
    backend = _backend(proxy.endpoint_url, bucket)
    yield backend
    backend.close()


def _gets(proxy: CountingProxy) -> list[str | None]:
    """The Range header of every GET of an object seen by the proxy, in order."""
    return [r for (m, _, _), r in zip(proxy.requests, proxy.ranges, strict=True) if m == "GET"]


def _span(header: str | None) -> int | None:
    """The length a Range header asks for (None: open-ended or no Range)."""
    match = _RANGE.fullmatch(header or "")
    if not match or not match.group(2):
        return None
    return int(match.group(2)) - int(match.group(1)) + 1


def _big_zip() -> bytes:
    """A ~20 MB zip: incompressible members around one small text member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.bin", os.urandom(10 * MiB))
        archive.writestr("small.txt", b"hello from the middle\n" * 10)
        archive.writestr("z.bin", os.urandom(10 * MiB))
    return buffer.getvalue()


def test_zip_member_through_node_open_costs_a_few_bounded_gets(
    moto: MotoHandle, proxy: CountingProxy, bucket: str
) -> None:
    payload = _big_zip()
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket)])
    sm.node("s3:big.zip").write_bytes(payload)
    proxy.reset()
    with sm.node("s3:big.zip").open("rb") as stream:
        assert stream.seekable()
        with zipfile.ZipFile(stream) as archive:
            assert archive.read("small.txt") == b"hello from the middle\n" * 10
    gets = _gets(proxy)
    assert proxy.counts == {"GET": len(gets)}  # no HEAD, no LIST
    assert 2 <= len(gets) <= 4, gets
    assert gets[0] is None  # the open: one plain GET, dropped at the first seek
    assert all(_span(r) is not None and _span(r) <= READ_AHEAD for r in gets[1:]), gets
    assert proxy.bytes_sent < len(payload) // 2  # the whole object never crossed the wire
    sm.close()


def test_seek_tell_read_and_readinto(counted: S3Backend, proxy: CountingProxy) -> None:
    data = bytes(range(256)) * 12_000  # ~3 MB
    counted.write("f.bin", data)
    proxy.reset()
    with counted.open_read("f.bin") as stream:
        assert stream.seekable() and stream.tell() == 0
        assert stream.read(10) == data[:10]
        assert stream.seek(0, io.SEEK_END) == len(data)  # size from the GET: no HEAD
        assert stream.read(5) == b""
        assert stream.seek(-100, io.SEEK_END) == len(data) - 100
        assert stream.read() == data[-100:]
        stream.seek(1000)
        buffer = bytearray(50)
        assert stream.readinto(buffer) == 50 and bytes(buffer) == data[1000:1050]
        assert stream.tell() == 1050
        stream.seek(-50, io.SEEK_CUR)
        assert stream.read(50) == data[1000:1050]
        with pytest.raises(ValueError):
            stream.seek(-1)
    assert "HEAD" not in proxy.counts


def test_read_to_the_end_after_a_seek_is_one_request(
    counted: S3Backend, proxy: CountingProxy
) -> None:
    data = os.urandom(5 * MiB)
    counted.write("g.bin", data)
    with counted.open_read("g.bin") as stream:
        stream.seek(2 * MiB + 7)
        proxy.reset()
        assert stream.read() == data[2 * MiB + 7 :]
    assert _gets(proxy) == [f"bytes={2 * MiB + 7}-{len(data) - 1}"]


def test_sequential_reads_after_a_seek_use_growing_bounded_windows(
    counted: S3Backend, proxy: CountingProxy
) -> None:
    data = os.urandom(9 * MiB)
    counted.write("h.bin", data)
    with counted.open_read("h.bin") as stream:
        stream.seek(100)
        proxy.reset()
        out = bytearray()
        while chunk := stream.read(64 * 1024):
            out += chunk
    assert bytes(out) == data[100:]
    spans = [_span(r) for r in _gets(proxy)]
    assert all(s is not None and s <= MAX_WINDOW for s in spans), spans
    assert len(spans) <= 4, spans  # 1 MiB, then 2, 4, 8 MiB windows


def test_whole_read_is_still_one_get(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("w.bin", b"x" * (3 * MiB))
    proxy.reset()
    assert counted.read_bytes("w.bin") == b"x" * (3 * MiB)
    assert _gets(proxy) == [None]


def test_slices_are_seekable_within_the_slice(counted: S3Backend) -> None:
    data = bytes(range(256)) * 100
    counted.write("s.bin", data)
    with counted.open_read("s.bin", 1000, 2000) as stream:
        assert stream.seek(0, io.SEEK_END) == 1000
        stream.seek(500)
        assert stream.read(10) == data[1500:1510]
        stream.seek(0)
        assert stream.read() == data[1000:2000]


def test_overwrite_while_reading_is_refused_not_spliced(moto: MotoHandle, bucket: str) -> None:
    backend = _backend(moto.endpoint_url, bucket)
    old = os.urandom(3 * MiB)
    backend.write("c.bin", old)
    with backend.open_read("c.bin") as stream:
        assert stream.read(10) == old[:10]
        backend.write("c.bin", os.urandom(3 * MiB))  # another writer replaces the object
        stream.seek(2 * MiB)
        with pytest.raises(PreconditionFailedError, match="changed while it was being read"):
            stream.read(10)
    backend.close()


def test_versioned_bucket_pins_the_version_read(
    moto: MotoHandle, proxy: CountingProxy, vbucket: str
) -> None:
    backend = _backend(proxy.endpoint_url, vbucket)
    old = os.urandom(3 * MiB)
    first = backend.write("v.bin", old)
    with backend.open_read("v.bin") as stream:
        assert stream.read(4) == old[:4]
        backend.write("v.bin", b"new content")  # a new version becomes current
        stream.seek(2 * MiB)
        proxy.reset()
        assert stream.read(100) == old[2 * MiB : 2 * MiB + 100]  # still the version opened
    assert any(f"versionId={first.version_id}" in q for _, _, q in proxy.requests)
    backend.close()


def test_open_version_gets_the_same_stream(
    moto: MotoHandle, proxy: CountingProxy, vbucket: str
) -> None:
    backend = _backend(proxy.endpoint_url, vbucket)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("doc.txt", "version one")
    first = backend.write("arch.zip", buffer.getvalue())
    backend.write("arch.zip", b"not a zip any more")
    with backend.open_version("arch.zip", first.version_id or "") as stream:
        assert stream.seekable()
        with zipfile.ZipFile(stream) as archive:
            assert archive.read("doc.txt") == b"version one"
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, vbucket)])
    with sm.node("s3:arch.zip").open("rb", version=-2) as stream, zipfile.ZipFile(stream) as z:
        assert z.read("doc.txt") == b"version one"
    sm.close()
    backend.close()


def test_deleted_object_mid_read_is_a_storied_error(moto: MotoHandle, bucket: str) -> None:
    backend = _backend(moto.endpoint_url, bucket)
    backend.write("d.bin", os.urandom(2 * MiB))
    with backend.open_read("d.bin") as stream:
        stream.read(1)
        s3_client(moto.endpoint_url).delete_object(Bucket=bucket, Key="d.bin")
        stream.seek(MiB + 5)
        with pytest.raises(StorageError):
            stream.read(1)
    backend.close()


def test_capabilities_say_seekable(counted: S3Backend) -> None:
    assert counted.static_capabilities.seek_support


def test_a_connection_lost_mid_body_resumes_where_it_broke(
    counted: S3Backend, proxy: CountingProxy
) -> None:
    data = os.urandom(3 * MiB)
    counted.write("r.bin", data)
    proxy.reset()
    proxy.fail(1, label="GET", cut=100_000)  # the first GET's body ends after 100 kB
    assert counted.read_bytes("r.bin") == data
    gets = _gets(proxy)
    assert len(gets) == 2 and gets[1] == f"bytes={100_000}-{len(data) - 1}"
    proxy.reset()
    proxy.fail(10, label="GET", cut=0)  # no progress at all: a clear transient error
    with pytest.raises(TransientStorageError):
        counted.read_bytes("r.bin")
    proxy.reset()
