"""Parallel compression and decompression (ADR 0030): members are compressed and decompressed
on the shared pool, handed on in order, a bounded number in flight; the stored layout is the
one of ADR 0021 whatever the number of threads or the deflate implementation."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied.backends import _compress_format, _compress_pool, compressing
from storied.backends._compress_format import BLOCK, GZIP_HEAD_SIG, codec_named, tag
from storied.backends._compress_io import Encoder, load_index
from storied.backends._compress_read import Decoded
from storied.backends.compressing import Compressing
from storied.backends.memory import MemoryBackend
from storied.errors import StorageIOError

MIB = 1024 * 1024
CODECS = ["gzip", "zstd"]
IMPLS = sorted(_compress_format.DEFLATERS)  # zlib, and isal when installed


@functools.lru_cache(maxsize=16)
def _piece(seed: int) -> bytes:
    rnd = random.Random(seed)
    words = [b"GET", b"POST", b"/api/v1/items", b"200", b"404", b"user", b"ok", b"latency"]
    out = bytearray()
    while len(out) < MIB:
        out += b" ".join(rnd.choice(words) for _ in range(9)) + b" id=%d\n" % rnd.randrange(10**6)
    return bytes(out[:MIB])


def text(size: int, seed: int = 1) -> bytes:
    """Log-like text of ``size`` bytes (a 1 MiB piece repeated, a counter per MiB)."""
    piece = _piece(seed)
    return b"".join(b"%08d" % n + piece[8:] for n in range(size // MIB + 1))[:size]


@pytest.fixture(params=[1, 3])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    before = _compress_pool.THREADS
    _compress_pool.set_threads(int(request.param))
    yield int(request.param)
    _compress_pool.set_threads(before)


def layer(codec: str = "gzip") -> Compressing:
    be = compressing.wrap("p", {"compress": ["*.txt"], "compression": codec},
                          MemoryBackend(uuid.uuid4().hex))
    assert isinstance(be, Compressing)
    return be


def encode(codec_name: str, data: bytes, obj: bytes, impl: str | None = None) -> bytes:
    codec = codec_named(codec_name) if impl is None else _compress_format._Gzip(impl)
    view = memoryview(data)
    with Encoder(codec, view[:BLOCK], view[BLOCK:], obj) as encoder:
        return encoder.read()


@pytest.mark.parametrize("codec", CODECS)
def test_the_stored_bytes_do_not_depend_on_the_thread_count(codec: str) -> None:
    data = text(3 * BLOCK + 12345, seed=2)
    obj = b"\x01" * 8
    before = _compress_pool.THREADS
    try:
        made = []
        for count in (1, 2, 5):
            _compress_pool.set_threads(count)
            made.append(encode(codec, data, obj))
    finally:
        _compress_pool.set_threads(before)
    assert made[0] == made[1] == made[2]
    if codec == "gzip":
        assert gzip.decompress(made[0]) == data


@pytest.mark.parametrize("codec", CODECS)
def test_many_members_round_trip_whole_ranged_and_seeking(codec: str, threads: int) -> None:
    be = layer(codec)
    data = text(5 * BLOCK + 999, seed=3)
    be.write("a.txt", data)  # bytes
    be.write("b.txt", io.BytesIO(data))  # a stream
    for path in ("a.txt", "b.txt"):
        assert be.read_bytes(path) == data
        info = be.info(path)
        assert info.size == len(data) and info.md5 == hashlib.md5(data).hexdigest()
        for start, end in ((0, 10), (BLOCK - 3, 3 * BLOCK + 7), (BLOCK, 6 * BLOCK),
                           (5, len(data)), (4 * BLOCK + 1, None)):
            with be.open_read(path, start, end) as stream:
                assert stream.read() == data[start:end]
        with be.open_read(path) as stream:
            assert stream.read(100) == data[:100]
            stream.seek(4 * BLOCK - 50)
            assert stream.read(BLOCK) == data[4 * BLOCK - 50 : 5 * BLOCK - 50]
            stream.seek(10)  # back, in the middle of the decoding work
            assert stream.read() == data[10:]


@pytest.mark.parametrize("writer", IMPLS)
@pytest.mark.parametrize("reader", IMPLS)
def test_deflate_implementations_read_each_others_objects(writer: str, reader: str) -> None:
    data = text(2 * BLOCK + 77, seed=4)
    blob = encode("gzip", data, os.urandom(8), impl=writer)
    assert gzip.decompress(blob) == data  # a standard gzip stream whoever wrote it
    be = layer()
    be.inner.write("x.txt", blob)
    be._codec = _compress_format._Gzip(reader)
    saved = dict(_compress_format.CODECS)
    _compress_format.CODECS["gzip"] = be._codec
    try:
        assert be.read_bytes("x.txt") == data
        with be.open_read("x.txt", BLOCK - 5, BLOCK + 5) as stream:
            assert stream.read() == data[BLOCK - 5 : BLOCK + 5]
    finally:
        _compress_format.CODECS.clear()
        _compress_format.CODECS.update(saved)


@pytest.mark.parametrize("codec", CODECS)
def test_content_holding_the_markers_and_trailer_head_round_trips(codec: str) -> None:
    rnd = random.Random(5)
    noise = rnd.randbytes(64 * 1024)  # stored as raw deflate blocks: copied verbatim
    fake = (GZIP_HEAD_SIG + BLOCK.to_bytes(4, "little") + tag(b"\x00" * 8, 1)
            + b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff" + _compress_format.ZSTD_HEAD_SIG)
    data = b"".join([text(BLOCK // 2), noise, fake * 50, noise, text(3 * BLOCK)])
    be = layer(codec)
    be.write("m.txt", data)
    assert be.read_bytes("m.txt") == data
    with be.open_read("m.txt", BLOCK // 2, BLOCK + 100) as stream:
        assert stream.read() == data[BLOCK // 2 : BLOCK + 100]


@pytest.mark.parametrize("codec", CODECS)
def test_a_member_from_another_write_is_refused(codec: str) -> None:
    be = layer(codec)
    data = text(3 * BLOCK, seed=6)
    be.write("a.txt", data)
    be.write("b.txt", data)  # same bytes, another object id: members of the same length
    a, b = be.inner.read_bytes("a.txt"), be.inner.read_bytes("b.txt")
    ia = load_index(lambda x, y: io.BytesIO(a[x:y]), len(a))
    assert ia is not None
    lo, hi = ia.offsets[1], ia.offsets[2]
    be.inner.write("c.txt", a[:lo] + b[lo:hi] + a[hi:])
    with pytest.raises(StorageIOError, match="changed while read"):
        be.read_bytes("c.txt")


def test_a_whole_read_checks_every_offset_of_the_index() -> None:
    be = layer()
    data = text(2 * BLOCK + 10, seed=7)
    be.write("a.txt", data)
    raw = be.inner.read_bytes("a.txt")
    index = load_index(lambda x, y: io.BytesIO(raw[x:y]), len(raw))
    assert index is not None
    # two bytes of padding after member 0 (gzip ignores them) and an index that still says
    # member 1 starts right after member 0: every other check passes, the offsets disagree
    at = index.offsets[1]
    forged = _compress_format.Index("gzip", index.block, index.size, index.md5,
                                    (0, at, index.offsets[2] + 2, index.offsets[3] + 2),
                                    index.obj)
    body = raw[:at] + b"\x00\x00" + raw[at : index.offsets[3]]
    trailer = codec_named("gzip").trailer(forged.payload(index.offsets[3] + 2))
    be.inner.write("b.txt", body + trailer)
    with pytest.raises(StorageIOError):
        be.read_bytes("b.txt")


class Counting(io.RawIOBase):
    """``blocks`` blocks of compressible text, counting what was read."""

    def __init__(self, blocks: int, fail_at: int | None = None) -> None:
        super().__init__()
        self.chunk = text(BLOCK, seed=8)
        self.left, self.taken, self.fail_at = blocks * BLOCK, 0, fail_at

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.fail_at is not None and self.taken >= self.fail_at:
            raise OSError("the source broke")
        n = min(len(buf), self.left, BLOCK - self.taken % BLOCK)
        at = self.taken % BLOCK
        buf[:n] = self.chunk[at : at + n]
        self.left -= n
        self.taken += n
        return n


def test_a_write_keeps_a_bounded_number_of_members_in_flight(threads: int) -> None:
    source = Counting(12)
    codec = codec_named("gzip")
    encoder = Encoder(codec, source.read(BLOCK), source, os.urandom(8))  # type: ignore[arg-type]
    limit = _compress_pool.ahead()
    assert 1 < limit <= _compress_pool.MAX_AHEAD
    assert source.taken <= limit * BLOCK  # before the storage takes anything
    members = []
    with encoder:
        while chunk := encoder.read(8 * BLOCK):  # one member (or the trailer) per read
            members.append(chunk)
            assert source.taken <= (len(members) + limit) * BLOCK
    assert len(members) == 13 and encoder.index is not None and encoder.size == 12 * BLOCK
    assert gzip.decompress(b"".join(members)) == source.chunk * 12


def test_a_source_that_breaks_mid_write_keeps_the_old_content(threads: int) -> None:
    be = layer()
    old = text(BLOCK + 5, seed=9)
    be.write("k.txt", old)
    with pytest.raises(OSError, match="the source broke"):
        be.write("k.txt", io.BufferedReader(Counting(20, fail_at=6 * BLOCK)))  # type: ignore[arg-type]
    assert be.read_bytes("k.txt") == old
    data = text(3 * BLOCK, seed=10)  # the pool still works afterwards
    be.write("k.txt", data)
    assert be.read_bytes("k.txt") == data


@pytest.mark.parametrize("source", ["bytes", "stream"])
def test_a_first_block_that_does_not_shrink_stores_everything_plain(source: str) -> None:
    be = layer()
    data = random.Random(11).randbytes(BLOCK) + text(3 * BLOCK, seed=12)
    be.write("r.txt", data if source == "bytes" else io.BytesIO(data))
    assert be.inner.read_bytes("r.txt") == data  # plain, the blocks read ahead included
    assert be.read_bytes("r.txt") == data


def test_a_closed_read_leaves_the_pool_usable(threads: int) -> None:
    be = layer("zstd")
    data = text(6 * BLOCK, seed=13)
    be.write("z.txt", data)
    for _ in range(3):
        with be.open_read("z.txt") as stream:
            assert stream.read(10) == data[:10]  # members in flight are dropped at close
    assert be.read_bytes("z.txt") == data


def test_decoded_reads_members_in_order_under_any_thread_count(threads: int) -> None:
    be = layer()
    data = b"".join(bytes([65 + i]) * BLOCK for i in range(9)) + b"tail"
    be.write("o.txt", data)
    opener = be._opener("o.txt")
    with Decoded(be.codec, opener, None) as stream:
        got = [stream.read(BLOCK) for _ in range(10)]
    assert got[:9] == [bytes([65 + i]) * BLOCK for i in range(9)] and got[9] == b"tail"
