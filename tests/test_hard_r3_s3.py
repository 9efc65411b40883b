"""Review R3: S3 read streams under hostile input and unlucky networks (issue 8)."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from collections.abc import Iterator

import pytest

from storied.backends.s3 import S3Backend
from storied.errors import InvalidArgumentError, PreconditionFailedError, StorageIOError
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024


def _backend(endpoint: str, bucket: str) -> S3Backend:
    return S3Backend(bucket, key="testing", secret="testing", endpoint_url=endpoint)


@pytest.fixture
def plain(proxy: CountingProxy, moto: MotoHandle) -> Iterator[S3Backend]:
    name = make_bucket(moto.endpoint_url, f"r3-{uuid.uuid4().hex[:12]}")
    backend = _backend(proxy.endpoint_url, name)
    proxy.reset()
    yield backend
    proxy.reset()
    backend.close()


@pytest.fixture
def versioned(proxy: CountingProxy, moto: MotoHandle) -> Iterator[S3Backend]:
    name = make_bucket(moto.endpoint_url, f"r3v-{uuid.uuid4().hex[:12]}", versioned=True)
    backend = _backend(proxy.endpoint_url, name)
    proxy.reset()
    yield backend
    proxy.reset()
    backend.close()


def test_negative_start_is_an_invalid_argument_not_an_io_error(
    plain: S3Backend, versioned: S3Backend, proxy: CountingProxy
) -> None:
    plain.write("ten", b"0123456789")
    first = versioned.write("ten", b"0123456789")
    proxy.reset()
    with pytest.raises(InvalidArgumentError, match="start"):
        plain.open_read("ten", -3)
    with pytest.raises(InvalidArgumentError, match="start"):
        plain.open_read("ten", -3, 5)
    with pytest.raises(InvalidArgumentError, match="start"):
        versioned.open_version("ten", first.version_id or "", -1)
    assert proxy.total == 0  # refused before anything is sent


def test_ranged_reads_at_and_beyond_the_end_are_empty(
    plain: S3Backend, versioned: S3Backend
) -> None:
    plain.write("ten", b"0123456789")
    plain.write("empty", b"")
    first = versioned.write("ten", b"0123456789")
    assert plain.open_read("ten", 10).read() == b""
    assert plain.open_read("ten", 20, 30).read() == b""
    assert plain.open_read("ten", 8, 100).read() == b"89"
    assert plain.open_read("empty", 0, 5).read() == b""
    assert plain.open_read("empty", 3).read() == b""
    assert versioned.open_version("ten", first.version_id or "", 10).read() == b""
    with plain.open_read("ten", 5, 100) as stream:
        assert stream.seek(0, io.SEEK_END) == 5
        assert stream.seek(100) == 100
        assert stream.read() == b""
        with pytest.raises(ValueError):
            stream.seek(-1)
        assert stream.tell() == 100  # a refused seek does not move
    with pytest.raises(ValueError):
        stream.read()  # closed


def test_resume_after_a_cut_never_splices_an_overwrite(
    plain: S3Backend, proxy: CountingProxy
) -> None:
    old, new = os.urandom(3 * MiB), os.urandom(3 * MiB)
    plain.write("k.bin", old)
    proxy.reset()
    proxy.fail(1, label="GET", cut=100_000)
    with plain.open_read("k.bin") as stream:  # the open's body is the old object
        plain.write("k.bin", new)  # replaced before the connection breaks
        with pytest.raises(PreconditionFailedError, match="changed while it was being read"):
            stream.read()


def test_resume_after_a_cut_on_a_versioned_bucket_reads_the_version_opened(
    versioned: S3Backend, proxy: CountingProxy
) -> None:
    old = os.urandom(3 * MiB)
    versioned.write("k.bin", old)
    proxy.reset()
    proxy.fail(1, label="GET", cut=100_000)
    with versioned.open_read("k.bin") as stream:
        versioned.write("k.bin", b"something else")
        assert stream.read() == old
    assert proxy.counts["GET"] == 2  # the open and one resume pinned to the version


def test_a_get_answered_without_content_length_is_not_read_as_empty(
    plain: S3Backend, versioned: S3Backend, proxy: CountingProxy
) -> None:
    """Some S3-compatible servers and compressing front proxies send GET bodies chunked, with
    no Content-Length: the stream's size then comes from one pinned HEAD (it was 0: a 3 MiB
    object read as b"")."""
    data = os.urandom(3 * MiB)
    plain.write("k.bin", data)
    first = versioned.write("k.bin", data)
    versioned.write("k.bin", b"newer")
    proxy.reset()
    proxy.chunk_gets()
    assert plain.read_bytes("k.bin") == data
    assert proxy.counts["GET"] == 1 and proxy.counts["HEAD"] == 1
    with plain.open_read("k.bin") as stream:
        assert stream.seek(0, io.SEEK_END) == len(data)
        stream.seek(MiB)
        assert stream.read(10) == data[MiB : MiB + 10]
    with versioned.open_version("k.bin", first.version_id or "") as stream:
        assert stream.read() == data  # the HEAD asks for the version, not the newer one
    assert plain.open_read("k.bin", 10, 1000).read() == data[10:1000]  # ranged: no HEAD needed


def test_a_range_answered_from_another_start_is_refused_not_spliced(
    plain: S3Backend, proxy: CountingProxy
) -> None:
    """A server (or cache in front) answering a ranged GET from an earlier byte than asked,
    saying so in Content-Range: the bytes were used as if they started where asked."""
    data = os.urandom(3 * MiB)
    plain.write("k.bin", data)
    proxy.shift_ranges(7)
    with pytest.raises(StorageIOError, match="not 100 as asked"):
        plain.open_read("k.bin", 100, 200)
    with plain.open_read("k.bin") as stream:  # the open asks no range: fine
        assert stream.read(10) == data[:10]
        stream.seek(2 * MiB)
        with pytest.raises(StorageIOError, match="refusing to splice"):
            stream.read(10)
    proxy.shift_ranges(0)
    assert plain.open_read("k.bin", 100, 200).read() == data[100:200]


def test_the_null_version_of_a_bucket_versioned_later_is_seekable(
    moto: MotoHandle, plain: S3Backend
) -> None:
    """Objects written before versioning was enabled keep the version id "null". Reading that
    version with seeks (zipfile) sent its later GETs unpinned with the null version's ETag,
    which the newer current object fails: PreconditionFailedError on every such read."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("pad.bin", os.urandom(2 * MiB))
        archive.writestr("doc.txt", "from before versioning")
    plain.write("a.zip", buffer.getvalue())
    s3_client(moto.endpoint_url).put_bucket_versioning(
        Bucket=plain.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    plain.write("a.zip", b"not a zip any more")
    with plain.open_version("a.zip", "null") as stream, zipfile.ZipFile(stream) as archive:
        assert archive.read("doc.txt") == b"from before versioning"
    with plain.open_read("a.zip") as stream:  # the current version is read as before
        assert stream.read() == b"not a zip any more"
