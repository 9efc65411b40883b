"""Issue 10 §4: node.stream_upload (and open('wb')) on S3: multipart above the threshold with
parts in parallel, aborted on any failure (nothing left in ListMultipartUploads), through the
node's normal write path (native and portable history record one version)."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import (
    InvalidArgumentError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024


def _mount(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "multipart_threshold": 5 * MiB,
            "multipart_chunksize": 5 * MiB, **extra}  # fmt: skip


def _pieces(data: bytes, size: int = MiB + 7) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


class InFlight:
    """The most UploadPart requests the S3 client of a mount had in flight at once (botocore
    event hooks on the real client: request sent / answer parsed)."""

    def __init__(self, sm: StorageManager, mount: str) -> None:
        backend: Any = sm.get_backend(mount)
        while not hasattr(backend, "_client"):
            backend = backend.inner
        self.now = self.most = 0
        self._lock = threading.Lock()
        events = backend._client.meta.events
        events.register("before-send.s3.UploadPart", self._sent)
        events.register("after-call.s3.UploadPart", self._answered)

    def _sent(self, **_: object) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def _answered(self, **_: object) -> None:
        with self._lock:
            self.now -= 1


def _parts(proxy: CountingProxy) -> int:
    """UploadPart requests the proxy saw."""
    return sum(1 for m, _, q in proxy.requests if m == "PUT" and "partNumber=" in q)


def _uploads(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    client = s3_client(endpoint)
    try:
        return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads") or [])
    finally:
        client.close()


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"str-up-{uuid.uuid4().hex[:10]}")


def test_large_iterable_is_uploaded_in_parallel_parts_byte_exact(
    proxy: CountingProxy, bucket: str
) -> None:
    data = os.urandom(48 * MiB + 5)
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=4)])
    watch = InFlight(sm, "s3")
    seen: list[int] = []
    proxy.reset()
    written = sm.node("s3:big/up.bin").stream_upload(_pieces(data), progress=seen.append)
    assert written == len(data)
    assert sm.node("s3:big/up.bin").read_bytes() == data
    assert _parts(proxy) == 10  # 10 parts of 5 MiB (the last one short), no single PUT
    assert watch.most > 1  # parts were in flight together
    assert watch.most <= 4  # never more than max_concurrency
    assert seen == sorted(seen) and seen[-1] == len(data) and seen[-2] == len(data)
    assert _uploads(proxy.endpoint_url, bucket) == []


def test_failed_part_aborts_the_upload_and_leaves_nothing(
    proxy: CountingProxy, bucket: str
) -> None:
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=3, retries=1)])
    node = sm.node("s3:doomed.bin")
    node.write_bytes(b"old content")
    proxy.reset()
    proxy.fail(100, status=500, label="PUT", query="partNumber")
    try:
        with pytest.raises(TransientStorageError):
            node.stream_upload(_pieces(os.urandom(30 * MiB)))
    finally:
        aborted = proxy.counts["DELETE"]
        proxy.reset()
    assert aborted == 1  # AbortMultipartUpload
    assert _uploads(proxy.endpoint_url, bucket) == []
    assert node.read_bytes() == b"old content"


def test_source_that_raises_midway_aborts_and_keeps_the_old_file(
    proxy: CountingProxy, bucket: str
) -> None:
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=2)])
    node = sm.node("s3:kept.bin")
    node.write_bytes(b"before")

    def broken() -> Iterator[bytes]:
        yield os.urandom(12 * MiB)
        raise OSError("the source disk failed")

    with pytest.raises(OSError, match="source disk failed"):
        node.stream_upload(broken())
    assert _uploads(proxy.endpoint_url, bucket) == []
    assert node.read_bytes() == b"before"
    with pytest.raises(InvalidArgumentError, match="not bytes"):
        node.stream_upload(iter([b"x" * (6 * MiB), "text is refused"]))
    with pytest.raises(InvalidArgumentError):
        node.stream_upload("a str is not a source")  # type: ignore[arg-type]
    assert node.read_bytes() == b"before"
    assert _uploads(proxy.endpoint_url, bucket) == []


def test_conditional_stream_uploads(proxy: CountingProxy, bucket: str) -> None:
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket)])
    node = sm.node("s3:cond.bin")
    data = os.urandom(11 * MiB)
    assert node.stream_upload(_pieces(data), create_only=True) == len(data)
    with pytest.raises(StorageAlreadyExistsError):
        node.stream_upload(_pieces(os.urandom(11 * MiB)), create_only=True)
    etag = node.info().etag
    assert etag
    node.stream_upload(iter([b"small"]), if_match=etag, metadata={"k": "v"})
    assert node.read_bytes() == b"small" and node.get_metadata() == {"k": "v"}
    assert _uploads(proxy.endpoint_url, bucket) == []


def test_open_wb_above_the_threshold_sends_parallel_parts(
    proxy: CountingProxy, bucket: str
) -> None:
    data = os.urandom(26 * MiB)
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=4)])
    watch = InFlight(sm, "s3")
    proxy.reset()
    with sm.node("s3:w.bin").open("wb") as out:
        for piece in _pieces(data):
            out.write(piece)
    assert _parts(proxy) == 6 and watch.most > 1
    assert hashlib.md5(sm.node("s3:w.bin").read_bytes()).digest() == hashlib.md5(data).digest()


@pytest.mark.parametrize("versioned", [True, False], ids=["native", "portable"])
def test_versioned_mounts_record_a_streamed_upload_as_one_version(
    moto: MotoHandle, versioned: bool
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"str-vup-{uuid.uuid4().hex[:10]}", versioned)
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket, versioning=True, max_concurrency=3)])
    node = sm.node("s3:doc.bin")
    node.write_bytes(b"first")
    data = os.urandom(16 * MiB + 1)
    node.stream_upload(_pieces(data))
    versions = node.versions
    assert len(versions) == 2
    assert versions[-1]["size"] == len(data)
    assert sm.node("s3:doc.bin", version=0).read_bytes() == b"first"
    assert b"".join(sm.node("s3:doc.bin", version=-1).stream_download()) == data
    assert _uploads(moto.endpoint_url, bucket) == []


def test_missing_file_and_bad_arguments(proxy: CountingProxy, bucket: str) -> None:
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket)])
    with pytest.raises(StorageNotFoundError):
        sm.node("s3:nothing.bin").stream_download()
    with pytest.raises(InvalidArgumentError):
        sm.node("s3:nothing.bin").stream_download(chunk_size=0)
