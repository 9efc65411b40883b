"""stream_download / stream_upload have one contract on every backend (issue 10 §4: "every
other backend gets the same API through the chunked reader"). The same tests run over local,
memory, S3 and versioned/compressing mounts; capabilities are data, never class checks."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import (
    InvalidArgumentError,
    IsADirectoryStorageError,
    ReadOnlyVersionError,
    StorageNotFoundError,
)
from storied.testing.s3server import MotoHandle, make_bucket

KiB = 1024


def _mounts(kind: str, tmp: Path, moto: MotoHandle) -> list[dict[str, object]]:
    if kind == "local":
        return [{"name": "m", "type": "local", "base_path": str(tmp)}]
    if kind == "local-history":
        return [{"name": "m", "type": "local", "base_path": str(tmp), "versioning": True}]
    if kind == "memory":
        return [{"name": "m", "type": "memory"}]
    if kind == "compressing":
        return [{"name": "m", "type": "local", "base_path": str(tmp), "compress": ["*.bin"]}]
    bucket = make_bucket(moto.endpoint_url, f"str-cf-{uuid.uuid4().hex[:10]}",
                         versioned=kind == "s3-versioned")  # fmt: skip
    extra = {"compress": ["*.bin"]} if kind == "s3-compressing" else {}
    return [{"name": "m", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
             "key": "testing", "secret": "testing", "multipart_threshold": 5 * 1024 * KiB,
             "multipart_chunksize": 5 * 1024 * KiB, **extra}]  # fmt: skip


@pytest.fixture(params=["local", "memory", "s3", "local-history", "s3-versioned",
                        "compressing", "s3-compressing"])  # fmt: skip
def sm(
    request: pytest.FixtureRequest, tmp_path: Path, moto: MotoHandle
) -> Iterator[StorageManager]:
    manager = StorageManager()
    manager.configure(_mounts(request.param, tmp_path, moto))
    yield manager


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def test_round_trip_in_chunks(sm: StorageManager) -> None:
    # above the S3 multipart threshold here; hex digits compress (by ~45%) on compressing mounts
    data = os.urandom(3 * 1024 * KiB + 11).hex().encode()
    node = sm.node("m:dir/a.bin")
    node.parent.mkdir(parents=True, exist_ok=True)
    seen: list[int] = []
    assert node.stream_upload(_chunks(data, 333 * KiB), progress=seen.append) == len(data)
    assert seen == sorted(seen) and seen[-1] == len(data)
    assert node.read_bytes() == data
    with node.stream_download(chunk_size=512 * KiB) as stream:
        assert stream.size == len(data)
        pieces = list(stream)
    assert all(0 < len(p) <= 512 * KiB for p in pieces)
    assert b"".join(pieces) == data


def test_ranges_sizes_and_sources(sm: StorageManager, tmp_path: Path) -> None:
    data = os.urandom(300 * KiB)
    node = sm.node("m:r.bin")
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with source.open("rb") as f:
        node.stream_upload(f)
    assert node.read_bytes() == data
    for start, end in [(0, None), (1, 2), (7, 300 * KiB - 1), (100 * KiB, None),
                       (299 * KiB, 10**9), (300 * KiB, None), (10**9, None), (5, 5)]:  # fmt: skip
        stream = node.stream_download(chunk_size=64 * KiB, start=start, end=end)
        expected = data[start:end]
        assert stream.size == len(expected), (start, end)
        assert b"".join(stream) == expected, (start, end)
    node.stream_upload(b"plain bytes")
    assert b"".join(node.stream_download()) == b"plain bytes"
    node.stream_upload(iter([]))
    stream = node.stream_download()
    assert stream.size == 0 and list(stream) == []


def test_errors_are_the_same_everywhere(sm: StorageManager) -> None:
    sm.node("m:d/x.bin").parent.mkdir(parents=True, exist_ok=True)
    sm.node("m:d/x.bin").write_bytes(b"x")
    with pytest.raises(StorageNotFoundError):
        sm.node("m:missing.bin").stream_download()
    with pytest.raises(IsADirectoryStorageError):
        list(sm.node("m:d").stream_download())
    for bad in (0, -1, 1.5, True, "8"):
        with pytest.raises(InvalidArgumentError):
            sm.node("m:d/x.bin").stream_download(chunk_size=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        sm.node("m:d/x.bin").stream_download(start=-1)
    with pytest.raises(InvalidArgumentError):
        sm.node("m:d/x.bin").stream_upload(12)  # type: ignore[arg-type]
    with io.StringIO("text, not bytes") as text, pytest.raises(InvalidArgumentError):
        sm.node("m:d/x.bin").stream_upload(text)  # type: ignore[arg-type]
    assert sm.node("m:d/x.bin").read_bytes() == b"x"


def test_pinned_versions_stream_their_version(sm: StorageManager) -> None:
    node = sm.node("m:v.bin")
    node.stream_upload(_chunks(b"one" * 50_000, 4096))
    node.stream_upload(iter([b"two"]))
    if not node.capabilities.versioning and not node.versions:
        return  # a mount without history: nothing pinned to stream
    first = sm.node("m:v.bin", version=0)
    assert b"".join(first.stream_download(chunk_size=1000)) == b"one" * 50_000
    assert b"".join(first.stream_download(start=3, end=9)) == b"oneone"
    with pytest.raises(ReadOnlyVersionError):
        first.stream_upload(b"refused")
    assert [v["size"] for v in node.versions] == [150_000, 3]
