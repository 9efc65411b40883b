"""Issue 10 §4: node.stream_download on S3 (moto through the counting proxy): bounded ranged
GETs pinned to the first version, resumed at the cut after a dropped connection, never spliced
with a newer object, memory bounded (peak RSS measured in a subprocess)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from storied import StorageManager
from storied.errors import PreconditionFailedError, TransientStorageError
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024
BIG = 256 * MiB
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def _mount(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", **extra}  # fmt: skip


def _get_ranges(proxy: CountingProxy, key: str) -> list[tuple[int, int]]:
    """``(first, last)`` of every GET of ``key`` the proxy saw, in arrival order (asserting
    each was a bounded Range)."""
    found = []
    for (method, path, _), header in zip(proxy.requests, proxy.ranges, strict=True):
        if method == "GET" and path.endswith("/" + key):
            match = _RANGE.fullmatch(header or "")
            assert match, f"an unbounded GET of {key}: Range {header!r}"
            found.append((int(match.group(1)), int(match.group(2))))
    return found


@pytest.fixture(scope="module")
def big(moto: MotoHandle) -> Iterator[tuple[str, str, str]]:
    """A bucket holding ``big.bin`` (256 MiB of random bytes): (bucket, key, sha256)."""
    bucket = make_bucket(moto.endpoint_url, f"str-big-{uuid.uuid4().hex[:10]}")
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    client = s3_client(moto.endpoint_url)
    client.upload_fileobj(io.BytesIO(data), bucket, "big.bin")
    client.close()
    del data
    yield bucket, "big.bin", digest


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"str-dl-{uuid.uuid4().hex[:10]}")


def test_256mib_download_cut_mid_body_resumes_at_the_cut_byte_exact(
    proxy: CountingProxy, big: tuple[str, str, str]
) -> None:
    bucket, key, digest = big
    chunk = 8 * MiB
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=4)])
    proxy.reset()
    sha, cut_at = hashlib.sha256(), 3 * MiB + 12345
    with sm.node(f"s3:{key}").stream_download(chunk_size=chunk) as stream:
        assert stream.size == BIG
        for number, piece in enumerate(stream):
            assert len(piece) <= chunk
            sha.update(piece)
            if number == 10:  # the next GET sent (a prefetch of a later chunk) breaks mid-body
                proxy.fail(1, label="GET", cut=cut_at)
        assert stream.bytes_read == BIG
    assert sha.hexdigest() == digest
    ranges = _get_ranges(proxy, key)
    starts = [first for first, _ in ranges]
    assert starts.count(0) == 1  # never restarted from zero
    assert all(last - first + 1 <= chunk for first, last in ranges)  # bounded, one chunk each
    chunk_starts = {n * chunk for n in range(BIG // chunk)}
    resumed = [(a, b) for a, b in ranges if a not in chunk_starts]
    assert len(resumed) == 1  # exactly one resume, from the byte where the body broke
    first, last = resumed[0]
    assert first % chunk == cut_at and (last + 1) % chunk == 0
    assert len(ranges) == BIG // chunk + 1


def test_download_peak_rss_stays_bounded_in_a_subprocess(
    moto: MotoHandle, big: tuple[str, str, str]
) -> None:
    bucket, key, digest = big
    script = textwrap.dedent(f"""
        import hashlib, json, resource
        from storied import StorageManager
        def status(field):  # KiB
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field))
        sm = StorageManager()
        sm.configure([{{"name": "s3", "type": "s3", "bucket": {bucket!r},
                       "endpoint_url": {moto.endpoint_url!r}, "key": "testing",
                       "secret": "testing"}}])
        node = sm.node("s3:{key}")
        node.exists()  # the client and its connections are made before the baseline
        base = status("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) restarts from the current RSS
        sha = hashlib.sha256()
        with node.stream_download() as stream:
            for piece in stream:
                sha.update(piece)
        peak = max(status("VmHWM:"), base)
        # ru_maxrss of a child keeps its parent's peak across fork + exec: VmHWM is its own
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >= peak
        print(json.dumps({{"sha": sha.hexdigest(), "grew_kib": peak - base}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sha"] == digest
    assert 8 * 1024 < result["grew_kib"] < 100 * 1024, result  # 256 MiB streamed in < 100 MiB


def test_object_replaced_mid_stream_is_an_error_never_spliced(
    proxy: CountingProxy, bucket: str
) -> None:
    old, new = os.urandom(24 * MiB), os.urandom(24 * MiB)
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=1)])
    node = sm.node("s3:swap.bin")
    node.write_bytes(old)
    received = bytearray()
    with (
        pytest.raises(PreconditionFailedError, match="changed while it was being read"),
        node.stream_download(chunk_size=4 * MiB) as stream,
    ):
        for number, piece in enumerate(stream):
            received += piece
            if number == 0:
                s3_client(proxy.endpoint_url).put_object(Bucket=bucket, Key="swap.bin", Body=new)
    assert 0 < len(received) < len(old)
    assert bytes(received) == old[: len(received)]  # only bytes of the version first read


def test_versioned_bucket_keeps_streaming_the_version_it_opened(
    proxy: CountingProxy, moto: MotoHandle
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"str-vdl-{uuid.uuid4().hex[:10]}", versioned=True)
    old, new = os.urandom(20 * MiB), os.urandom(20 * MiB)
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=1)])
    node = sm.node("s3:v.bin")
    node.write_bytes(old)
    pieces = []
    for number, piece in enumerate(node.stream_download(chunk_size=4 * MiB)):
        pieces.append(piece)
        if number == 0:
            node.write_bytes(new)
    assert b"".join(pieces) == old
    # the pinned node of the first version streams it too, and the current one the new bytes
    assert b"".join(sm.node("s3:v.bin", version=0).stream_download(chunk_size=MiB)) == old
    assert b"".join(node.stream_download(start=5, end=7 * MiB)) == new[5 : 7 * MiB]


def test_a_range_is_streamed_in_bounded_gets(proxy: CountingProxy, bucket: str) -> None:
    data = os.urandom(10 * MiB + 3)
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket)])
    node = sm.node("s3:r.bin")
    node.write_bytes(data)
    proxy.reset()
    stream = node.stream_download(chunk_size=MiB, start=MiB + 1, end=9 * MiB)
    assert stream.size == 8 * MiB - 1
    assert b"".join(stream) == data[MiB + 1 : 9 * MiB]
    ranges = _get_ranges(proxy, "r.bin")
    assert ranges[0] == (MiB + 1, 2 * MiB)  # the first GET is one chunk too
    assert sorted(ranges) == [(MiB + 1 + n * MiB, min(9 * MiB, 2 * MiB + 1 + n * MiB) - 1)
                              for n in range(8)]  # fmt: skip
    assert not [p for m, p, _ in proxy.requests if m == "HEAD" and p.endswith("/r.bin")]


def test_a_connection_that_keeps_breaking_fails_after_its_resumes(
    proxy: CountingProxy, bucket: str
) -> None:
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket, max_concurrency=1, retries=1)])
    node = sm.node("s3:flaky.bin")
    node.write_bytes(os.urandom(6 * MiB))
    proxy.reset()
    stream = node.stream_download(chunk_size=2 * MiB)
    proxy.fail(50, label="GET", cut=10)  # every later GET breaks after 10 bytes
    try:
        with pytest.raises(TransientStorageError):
            b"".join(stream)
    finally:
        gets = proxy.counts["GET"]
        proxy.reset()
    assert gets <= 7  # the open, then 3 tries per chunk at most: not one per 10 bytes
