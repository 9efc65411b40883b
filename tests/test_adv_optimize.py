"""Adversarial pass on dedup references, transparent compression and their clean-ups: hostile
stored bytes (decompression bombs, lying indexes, corrupted or cut objects, content copies
changed outside storied), block boundaries, other processes writing and deduplicating at the
same time, SIGKILLs inside gc, and a failing S3 server. Every error is a storied error, and
every acknowledged write reads back byte-exact."""

from __future__ import annotations

import glob
import hashlib
import os
import random
import struct
import tracemalloc
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends import _compress_format as fmt
from storied.errors import StorageError, StorageIOError
from storied.testing.s3server import MotoHandle, make_bucket

BLOCK = fmt.BLOCK
SRC = str(Path(__file__).resolve().parents[1] / "src")


# --------------------------------------------------------------------- helpers
def _local(tmp_path: Path, **extra: Any) -> tuple[StorageManager, Path]:
    base = tmp_path / f"d{uuid.uuid4().hex[:6]}"
    base.mkdir()
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "local", "base_path": str(base), **extra}])
    return storage, base


def _s3_config(moto: MotoHandle, endpoint: str | None = None) -> dict[str, Any]:
    bucket = make_bucket(moto.endpoint_url, f"adv-{uuid.uuid4().hex[:10]}")
    return {"name": "m", "type": "s3", "bucket": bucket,
            "endpoint_url": endpoint or moto.endpoint_url, "key": "testing",
            "secret": "testing"}


def _object(codec_name: str, members: list[bytes], claimed: int) -> bytes:
    """A stored object in storied's layout holding ``members`` (already compressed, one per
    block, labelled 0, 1...) whose index claims ``claimed`` original bytes."""
    codec = fmt._codec(codec_name)
    obj = os.urandom(8)
    pre = codec.preamble(BLOCK)
    parts, offsets, at = [pre], [], len(pre)
    for number, body in enumerate(members):
        if codec_name == "gzip":
            member = (fmt.GZIP_HEAD_SIG + struct.pack("<I", BLOCK) + fmt.tag(obj, number)
                      + body)
        else:
            member = fmt._ZSTD_TAG_MAGIC + fmt.tag(obj, number) + body
        offsets.append(at)
        parts.append(member)
        at += len(member)
    offsets.append(at)
    index = fmt.Index(codec_name, BLOCK, claimed, None, tuple(offsets), obj)
    return b"".join(parts) + codec.trailer(index.payload(at))


def _gzip_body(data: bytes) -> bytes:
    """A raw deflate stream of ``data`` with its gzip CRC and ISIZE (a member's body)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = deflate.compress(data) + deflate.flush()
    return raw + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def _zstd_body(data: bytes, **options: Any) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3, **options).compress(data)  # type: ignore[no-any-return]


def _peak(fn: Any) -> tuple[BaseException | None, int]:
    """``fn()``'s exception (None: it returned) and the peak of Python allocations meanwhile."""
    tracemalloc.start()
    try:
        fn()
        error = None
    except BaseException as exc:
        error = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return error, peak


def _read_range(storage: StorageManager, path: str, at: int, n: int) -> bytes:
    with storage.node(path).open("rb") as stream:
        stream.seek(at)
        return stream.read(n)  # type: ignore[no-any-return]


# --------------------------------------------------------------------- compression: bombs
BOMB = 256 << 20  # what a bomb member expands to


@pytest.mark.parametrize("codec", ["gzip", "zstd", "zstd-no-size"])
def test_a_decompression_bomb_is_refused_with_bounded_memory(tmp_path: Path, codec: str) -> None:
    """One member of a few KB that expands to 256 MiB (the index claims 100 bytes): every read
    is a StorageIOError and never holds more than about a block (it held 256 MiB+)."""
    name = codec.split("-")[0]
    storage, base = _local(tmp_path, compress=["*.log"], compression=name)
    zeros = b"\0" * BOMB
    body = (_gzip_body(zeros) if name == "gzip" else
            _zstd_body(zeros, write_content_size=codec == "zstd"))
    del zeros
    (base / "bomb.log").write_bytes(_object(name, [body], 100))
    for read in (lambda: storage.node("m:bomb.log").read_bytes(),
                 lambda: _read_range(storage, "m:bomb.log", 10, 20),
                 lambda: storage.node("m:bomb.log").md5hash()):
        error, peak = _peak(read)
        assert isinstance(error, StorageIOError), error
        assert peak < 3 * BLOCK, peak


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_an_index_claiming_more_than_its_members_hold_is_corrupt(tmp_path: Path,
                                                                 codec: str) -> None:
    """Two real members of 4 MiB and 10 bytes, an index claiming a last member of 4 MiB: a
    ranged read there raised nothing and returned 10 bytes (a silent short read)."""
    storage, base = _local(tmp_path, compress=["*.log"], compression=codec)
    full, short = b"a" * BLOCK, b"b" * 10
    encode = _gzip_body if codec == "gzip" else _zstd_body
    (base / "lie.log").write_bytes(_object(codec, [encode(full), encode(short)], 2 * BLOCK))
    assert storage.node("m:lie.log").size() == 2 * BLOCK  # what the index claims
    with pytest.raises(StorageIOError, match="corrupt"):
        _read_range(storage, "m:lie.log", BLOCK, BLOCK)
    with pytest.raises(StorageIOError):
        storage.node("m:lie.log").read_bytes()
    assert _read_range(storage, "m:lie.log", BLOCK - 3, 3) == b"aaa"  # the honest member


def test_an_index_with_a_huge_block_is_refused(tmp_path: Path) -> None:
    """A 256 MiB bomb member under an index that agrees with it (block 4 GiB - 1, size
    256 MiB): a ranged read would accept a member that large. Refused, memory bounded."""
    storage, base = _local(tmp_path, compress=["*.log"])
    codec = fmt._codec("gzip")
    obj = os.urandom(8)
    member = (fmt.GZIP_HEAD_SIG + struct.pack("<I", BLOCK) + fmt.tag(obj, 0)
              + _gzip_body(b"\0" * BOMB))
    index = fmt.Index("gzip", 0xFFFFFFFF, BOMB, None, (0, len(member)), obj)
    (base / "big.log").write_bytes(member + codec.trailer(index.payload(len(member))))
    node = storage.node("m:big.log")

    def ranged() -> None:
        with node._be.open_read(node.path, 1, 10) as stream:
            stream.read()

    for read in (ranged, node.size, node.read_bytes):
        error, peak = _peak(read)
        assert isinstance(error, StorageIOError), error
        assert peak < 3 * BLOCK, peak


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_corrupted_or_cut_objects_never_read_as_other_bytes(tmp_path: Path, codec: str) -> None:
    """Bit flips and truncations anywhere in a two-member object: reads, ranges, size, MD5,
    listings and copies either give the original (or the stored bytes, when the marker is
    gone) or raise a storied error."""
    storage, base = _local(tmp_path, compress=["*.log"], compression=codec)
    storage.configure([{"name": "mem", "type": "memory"}])
    text = b"".join(b"line %d served in %d ms\n" % (i, i % 97) for i in range(250_000))
    text = text[: BLOCK + 50_000]
    storage.node("m:orig.log").write_bytes(text)
    stored = (base / "orig.log").read_bytes()
    rng = random.Random(f"adv-{codec}")
    window = slice(BLOCK - 10, BLOCK + 40)
    for trial in range(40):
        damaged = bytearray(stored)
        if trial % 3 == 0:
            damaged = damaged[: rng.randrange(len(damaged))]
        elif trial % 3 == 1:
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        else:
            damaged[len(damaged) - rng.randint(1, 300)] ^= 1 << rng.randrange(8)
        (base / "x.log").write_bytes(damaged)
        node = storage.node("m:x.log")
        allowed = (text, bytes(damaged))
        for op in ("read", "range", "size", "md5", "list", "copy"):
            try:
                if op == "read":
                    assert node.read_bytes() in allowed
                elif op == "range":
                    assert _read_range(storage, "m:x.log", window.start, 50) in (
                        text[window], bytes(damaged)[window])
                elif op == "size":
                    node.size()
                elif op == "md5":
                    assert node.md5hash() in {hashlib.md5(v).hexdigest() for v in allowed}
                elif op == "list":
                    [c.size for c in storage.node("m:").children()]
                else:
                    node.copy_to(storage.node("mem:c.log"))
                    assert storage.node("mem:c.log").read_bytes() in allowed
            except StorageError:
                pass


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_block_boundaries_round_trip(codec: str) -> None:
    """Sizes 0, 1, 4 KiB - 1, 4 KiB, 4 MiB - 1, 4 MiB, 4 MiB + 1, 8 MiB: whole and tail
    reads, size and MD5 are the original's, written from bytes and from a stream."""
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory", "compress": ["*.log"],
                        "compression": codec}])
    unit = b"abcdefgh" * 512
    for n in (0, 1, 4095, 4096, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK):
        data = (unit * (n // len(unit) + 1))[:n]
        node = storage.node(f"m:f{n}.log")
        for how in ("bytes", "stream"):
            if how == "bytes":
                node.write_bytes(data)
            else:
                with node.open("wb") as out:
                    out.write(data)
            assert node.read_bytes() == data, (n, how)
            assert node.size() == n and node.md5hash() == hashlib.md5(data).hexdigest()
            assert _read_range(storage, f"m:f{n}.log", max(0, n - 5), 10) == data[-5:] if n \
                else True


# --------------------------------------------------------------------- references
def _dedup_three(tmp_path: Path) -> tuple[StorageManager, Path, bytes, str]:
    storage, base = _local(tmp_path)
    data = os.urandom(10_000)
    for path in ("x1", "x2", "x3"):
        storage.node(f"m:{path}").write_bytes(data)
    report = storage.deduplicate("m:", strategy="reference")
    assert len(report["groups"][0]["done"]) == 3
    (copy,) = glob.glob(str(base / ".storied" / "dedup" / "blobs" / "*" / "*" / "*"))
    return storage, base, data, copy


@pytest.mark.parametrize("change", ["same size", "cut", "grown", "empty"])
def test_a_content_copy_changed_outside_storied_is_an_error(tmp_path: Path,
                                                            change: str) -> None:
    """The copy cut, emptied, grown or replaced outside storied: a reference read gave those
    bytes (5000 bytes, or none, for a 10,000-byte file) with no error."""
    storage, _, data, copy = _dedup_three(tmp_path)
    other = {"same size": os.urandom(len(data)), "cut": data[:5000], "grown": data + b"!",
             "empty": b""}[change]
    Path(copy).write_bytes(other)
    with pytest.raises(StorageIOError, match="content copy"):
        storage.node("m:x1").read_bytes()
    storage.configure([{"name": "mem", "type": "memory"}])
    with pytest.raises(StorageIOError):
        storage.node("m:x2").copy_to(storage.node("mem:x2"))
    assert not storage.node("mem:x2").exists()  # nothing half-copied
    if change in ("cut", "empty"):
        with pytest.raises(StorageIOError):
            _read_range(storage, "m:x3", 6000, 100)
    Path(copy).write_bytes(data)  # put back: every path reads again
    assert all(storage.node(f"m:{p}").read_bytes() == data for p in ("x1", "x2", "x3"))
    with storage.node("m:x1").open("rb") as stream:  # seeks still work
        stream.seek(9000)
        assert stream.read() == data[9000:]


def test_deduplicate_never_names_a_changed_content_copy(tmp_path: Path) -> None:
    """A copy changed outside storied (same size) was reused for new duplicates of its
    content: two good plain files became references to bytes that are not theirs."""
    storage, _, data, copy = _dedup_three(tmp_path)
    Path(copy).write_bytes(os.urandom(len(data)))
    for path in ("y1", "y2"):
        storage.node(f"m:{path}").write_bytes(data)
    report = storage.deduplicate("m:", strategy="reference")
    (group,) = report["groups"]
    assert sorted(group["done"]) == ["m:y1", "m:y2"] and group["copied"] == len(data)
    assert storage.node("m:y1").read_bytes() == data == storage.node("m:y2").read_bytes()
