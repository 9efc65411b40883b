"""Transparent compression (issue 10 §3) on real storages: memory, local and S3 (moto).

What storied shows is the original file (bytes, size, MD5, ranges, versions); what the
storage holds is a standard gzip/zstd stream, or the plain bytes when compressing would not
pay. Every test reads the stored object below the layer to check both sides.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from storied import StorageManager
from storied.backends import _compress_format, compressing
from storied.backends.base import Backend, WrappedBackend
from storied.backends.compressing import Compressing
from storied.backends.memory import MemoryBackend
from storied.errors import (
    MissingDependencyError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
)
from storied.info import WriteMode
from storied.testing.s3server import MotoHandle, make_bucket

MIB = 1024 * 1024
BLOCK = _compress_format.BLOCK


def text(size: int, seed: int = 1) -> bytes:
    """Log-like text of exactly ``size`` bytes (compresses well, but not trivially)."""
    rnd = random.Random(seed)
    words = ["GET", "POST", "/api/v1/items", "200", "404", "user", "session", "ok", "latency"]
    out = io.BytesIO()
    n = 0
    while out.tell() < size:
        line = (f"2026-12-02T03:{n % 60:02d}:{rnd.randrange(60):02d}Z "
                f"{' '.join(rnd.choice(words) for _ in range(8))} id={rnd.randrange(10**6)}\n")
        out.write(line.encode())
        n += 1
    return out.getvalue()[:size]


def _mount(kind: str, tmp: Path, moto: MotoHandle | None, **extra: Any) -> dict[str, Any]:
    if kind == "local":
        return {"name": "c", "type": "local", "base_path": str(tmp), **extra}
    if kind == "memory":
        return {"name": "c", "type": "memory", "store": uuid.uuid4().hex, **extra}
    assert moto is not None
    bucket = make_bucket(moto.endpoint_url, f"cmp-{uuid.uuid4().hex[:12]}",
                         versioned=bool(extra.pop("native", False)))
    return {"name": "c", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
            "key": "testing", "secret": "testing", **extra}


def layer(sm: StorageManager, name: str = "c") -> Compressing:
    backend: Backend = sm._raw[name]
    while not isinstance(backend, Compressing):
        assert isinstance(backend, WrappedBackend)
        backend = backend.inner
    return backend


def stored(sm: StorageManager, path: str) -> bytes:
    """The bytes the storage holds at ``path`` (below the compression layer)."""
    return layer(sm).inner.read_bytes(path)


@pytest.fixture(params=["memory", "local", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[StorageManager] = []
    moto = request.getfixturevalue("moto") if kind == "s3" else None

    def build(**extra: Any) -> StorageManager:
        extra.setdefault("compress", ["*.txt", "*.json", "*.bin"])
        sm = StorageManager()
        sm.configure([_mount(kind, tmp_path, moto, **extra)])
        made.append(sm)
        return sm

    yield build
    for sm in made:
        sm.close()


SIZES = [0, 1, 4095, 4096, 4097, BLOCK - 1, BLOCK, BLOCK + 1, 9 * MIB]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_round_trips_are_byte_exact(make: Any, codec: str) -> None:
    sm = make(compression=codec)
    for size in SIZES:
        data = text(size, seed=size)
        node = sm.node(f"c:f{size}.txt")
        node.write_bytes(data)
        assert node.read_bytes() == data, size
        assert node.size() == size
        assert node.md5hash() == hashlib.md5(data).hexdigest()
        with node.open("rb") as f:
            assert f.read() == data
        assert b"".join(node.iter_bytes(chunk_size=MIB)) == data
        raw = stored(sm, f"f{size}.txt")
        if size < compressing.MIN_SIZE:
            assert raw == data  # small files stay plain
        else:
            assert len(raw) < size / 2
            assert _decompress(codec, raw) == data  # a standard stream outside storied
    listed = {n.basename: n.size() for n in sm.node("c:").children()}
    assert listed == {f"f{s}.txt": s for s in SIZES}
    infos = {i.path: i.size for i in layer(sm).list("")}
    assert infos == {f"f{s}.txt": s for s in SIZES}  # listings show the original size


def _decompress(codec: str, raw: bytes) -> bytes:
    if codec == "gzip":
        return gzip.decompress(raw)
    import zstandard

    out, rest = [], raw
    while rest:  # every frame, skippable ones included, as `zstd -d` reads them
        obj = zstandard.ZstdDecompressor().decompressobj()
        out.append(obj.decompress(rest))
        rest = obj.unused_data
    return b"".join(out)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_the_command_line_tools_open_the_stored_object(tmp_path: Path, codec: str) -> None:
    tool = shutil.which(codec)
    if tool is None:
        pytest.skip(f"no {codec} command here")
    (tmp_path / "m").mkdir()
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "local", "base_path": str(tmp_path / "m"),
                   "compress": ["*.log"], "compression": codec}])
    data = text(2 * BLOCK + 12345)
    sm.node("c:app.log").write_bytes(data)
    out = subprocess.run([tool, "-d", "-c", str(tmp_path / "m" / "app.log")],
                         capture_output=True, check=True)
    assert out.stdout == data


def test_incompressible_data_is_stored_plain(make: Any) -> None:
    sm = make()
    data = os.urandom(BLOCK + 5000)
    sm.node("c:noise.bin").write_bytes(data)
    assert stored(sm, "noise.bin") == data
    assert sm.node("c:noise.bin").read_bytes() == data
    with sm.node("c:noise.bin").open("rb") as f:
        f.seek(BLOCK - 3)
        assert f.read(10) == data[BLOCK - 3 : BLOCK + 7]


def test_a_plain_gzip_file_is_read_back_unchanged(make: Any) -> None:
    sm = make()
    gz = gzip.compress(text(50_000))  # an ordinary .gz file under a matching name
    sm.node("c:archive.bin").write_bytes(gz)
    assert sm.node("c:archive.bin").read_bytes() == gz
    assert sm.node("c:archive.bin").size() == len(gz)
    layer(sm).inner.write("outside.txt", gz)  # written by another tool, below storied
    assert sm.node("c:outside.txt").read_bytes() == gz
    assert sm.node("c:outside.txt").size() == len(gz)
    assert sm.node("c:outside.txt").md5hash() == hashlib.md5(gz).hexdigest()


def test_content_that_looks_like_storied_compression_round_trips(make: Any) -> None:
    sm = make()
    fake = _compress_format.GZIP_HEAD_SIG + b"\x00" * 4 + b"tiny"  # storied's marker, plain
    sm.node("c:fake.txt").write_bytes(fake)
    assert sm.node("c:fake.txt").read_bytes() == fake
    assert sm.node("c:fake.txt").size() == len(fake)
    # a real compressed object stored as the content of another file
    sm.node("c:inner.txt").write_bytes(text(20_000))
    nested = stored(sm, "inner.txt")
    sm.node("c:nested.txt").write_bytes(nested)
    assert sm.node("c:nested.txt").read_bytes() == nested
    assert gzip.decompress(gzip.decompress(stored(sm, "nested.txt"))) == text(20_000)


def test_range_reads_across_member_boundaries(make: Any) -> None:
    sm = make()
    data = text(3 * BLOCK + 777)
    sm.node("c:big.txt").write_bytes(data)
    be = layer(sm)
    for start, end in [(0, 10), (BLOCK - 5, BLOCK + 5), (BLOCK, 2 * BLOCK),
                       (BLOCK - 1, 3 * BLOCK + 1), (3 * BLOCK + 700, None), (len(data), None),
                       (len(data) + 10, None), (5, 5), (0, len(data) + 99)]:
        with be.open_read("big.txt", start, end) as stream:
            assert stream.read() == data[start:end], (start, end)
    with sm.node("c:big.txt").open("rb") as f:
        f.seek(2 * BLOCK + 3)
        assert f.read(100) == data[2 * BLOCK + 3 : 2 * BLOCK + 103]
        f.seek(-50, io.SEEK_END)
        assert f.read() == data[-50:]
        f.seek(7)
        assert f.read(3) == data[7:10]


class _Recording(WrappedBackend):
    """A memory store that notes every byte range read from it."""

    def __init__(self) -> None:
        super().__init__(MemoryBackend(uuid.uuid4().hex))
        self.ranges: list[tuple[int, int | None]] = []

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        self.ranges.append((start, end))
        return self.inner.open_read(path, start, end)


def test_a_range_read_decompresses_only_the_members_it_needs() -> None:
    rec = _Recording()
    be = compressing.wrap("r", {"compress": ["*.txt"]}, rec)
    data = text(4 * BLOCK)
    be.write("x.txt", data)
    raw = rec.inner.read_bytes("x.txt")
    rec.ranges.clear()
    with be.open_read("x.txt", BLOCK + 10, BLOCK + 20) as stream:
        assert stream.read() == data[BLOCK + 10 : BLOCK + 20]
    assert isinstance(be, Compressing)
    index = be._index_of(be.inner.info("x.txt"))
    assert index is not None and len(index.offsets) == 5
    member = (index.offsets[1], index.offsets[2])
    assert rec.ranges[-1] == member  # one member fetched, not the file
    assert member[1] - member[0] < len(raw) / 3


@pytest.mark.parametrize("versioning", ["portable", "native"])
def test_versions_of_compressed_files(kind: str, make: Any, versioning: str) -> None:
    if versioning == "native" and kind != "s3":
        pytest.skip("native versions are S3's")
    extra = {"native": True} if versioning == "native" else {"versioning": True}
    sm = make(**extra)
    one, two = text(BLOCK + 100, seed=1), text(2 * BLOCK + 9, seed=2)
    node = sm.node("c:data.json")
    node.write_bytes(one)
    node.write_bytes(two)
    listed = node.versions
    assert [v["size"] for v in listed] == [len(one), len(two)]
    assert [v["etag"] for v in listed] == [hashlib.md5(one).hexdigest(),
                                          hashlib.md5(two).hexdigest()]
    with node.open("rb", version=-2) as f:
        assert f.read() == one
    with node.open("rb", version=0) as f:
        f.seek(BLOCK + 50)
        assert f.read(20) == one[BLOCK + 50 : BLOCK + 70]
    assert node.read_bytes() == two
    assert len(stored(sm, "data.json")) < len(two) / 3
    old, new = node.diff_versions(-2, -1)
    assert (old, new) == (one, two)
    if versioning == "portable":
        assert sm.history("c").engine.verify().ok  # type: ignore[union-attr]
        node.rollback(-2)
        assert node.read_bytes() == one
        assert gzip.decompress(stored(sm, "data.json")) == one


def test_conditional_writes_through_the_layer(make: Any) -> None:
    sm = make()
    be = layer(sm)
    if not be.capabilities.conditional_write:
        pytest.skip("no conditional writes on this storage")
    data = text(20_000)
    be.write("c.txt", data, mode=WriteMode.CREATE)
    with pytest.raises(StorageAlreadyExistsError):
        be.write("c.txt", data, mode=WriteMode.CREATE)
    etag = be.info("c.txt").etag
    assert etag
    be.write("c.txt", text(30_000), mode=WriteMode.IF_MATCH, etag=etag)
    with pytest.raises(PreconditionFailedError):
        be.write("c.txt", data, mode=WriteMode.IF_MATCH, etag=etag)
    assert be.read_bytes("c.txt") == text(30_000)
    node = sm.node("c:c.txt")
    node.write_bytes(data, if_match=node.info().etag)
    assert node.read_bytes() == data


def test_a_glob_that_matches_nothing_changes_nothing(make: Any) -> None:
    sm = make(compress=["*.nomatch"])
    data = text(100_000)
    sm.node("c:a.txt").write_bytes(data)
    sm.node("c:d/b.json").write_bytes(data)
    assert stored(sm, "a.txt") == data and stored(sm, "d/b.json") == data
    assert sm.node("c:a.txt").md5hash() == hashlib.md5(data).hexdigest()


def test_globs_match_the_path_and_the_name(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "local", "base_path": str(tmp_path),
                   "compress": ["logs/*.log", "*.json"], "versioning": True}])
    data = text(50_000)
    for path in ("logs/a.log", "other/a.log", "x/y/z.json"):
        sm.node(f"c:{path}").write_bytes(data)
    assert (tmp_path / "logs/a.log").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "other/a.log").read_bytes() == data
    assert (tmp_path / "x/y/z.json").read_bytes()[:2] == b"\x1f\x8b"
    for found in (tmp_path / ".storied").rglob("*"):  # the reserved area is never gzip'd
        if found.is_file():
            assert found.read_bytes()[:2] != b"\x1f\x8b" or found.stat().st_size < 64
    sm.node("c:logs/a.log").move_to(sm.node("c:plain/a.log"))
    assert (tmp_path / "plain/a.log").read_bytes() == data  # moved out of the glob: decoded
    sm.node("c:other/a.log").copy_to(sm.node("c:logs/b.log"))
    assert gzip.decompress((tmp_path / "logs/b.log").read_bytes()) == data


def test_copy_between_compressed_and_plain_mounts(make: Any, tmp_path: Path) -> None:
    sm = make()
    (tmp_path / "plain").mkdir()
    sm.configure([{"name": "p", "type": "local", "base_path": str(tmp_path / "plain")}])
    data = text(BLOCK + 3)
    sm.node("c:dir/a.json").write_bytes(data)
    sm.node("c:dir").copy_to(sm.node("p:dir"))
    assert (tmp_path / "plain/dir/a.json").read_bytes() == data
    sm.node("p:dir/a.json").copy_to(sm.node("c:back.json"))
    assert _decompress("gzip", stored(sm, "back.json")) == data


def test_a_large_stream_is_written_with_bounded_memory(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "local", "base_path": str(tmp_path),
                   "compress": ["*.log"]}])
    chunk = text(MIB)

    class Source(io.RawIOBase):
        left = 96

        def readable(self) -> bool:
            return True

        def readinto(self, buf: Any) -> int:
            if not self.left:
                return 0
            self.left -= 1
            n = min(len(buf), len(chunk))
            buf[:n] = chunk[:n]
            if n < len(chunk):
                raise AssertionError("short buffers are not expected here")
            return n

    be = layer(sm)
    tracemalloc.start()
    try:
        be.write("huge.log", io.BufferedReader(Source(), MIB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * MIB, peak  # 96 MiB written
    assert sm.node("c:huge.log").size() == 96 * MIB
    with sm.node("c:huge.log").open("rb") as f:
        f.seek(95 * MIB)
        assert f.read(MIB) == chunk


def test_sigkill_during_a_compressed_write_keeps_the_old_content(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "local", "base_path": str(root), "compress": ["*.log"]}])
    old = text(200_000, seed=7)
    sm.node("c:app.log").write_bytes(old)
    script = textwrap.dedent(f"""
        import io, sys
        from storied import StorageManager
        sm = StorageManager()
        sm.configure([{{"name": "c", "type": "local", "base_path": {str(root)!r},
                        "compress": ["*.log"]}}])
        class Slow(io.RawIOBase):
            n = 0
            def readable(self): return True
            def readinto(self, b):
                self.n += 1
                if self.n == 3:
                    print("writing", flush=True)
                if self.n > 3:
                    import time; time.sleep(0.05)
                b[:len(b)] = b"x" * len(b)
                return len(b)
        sm.node("c:app.log").write_bytes(io.BufferedReader(Slow()))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"writing"
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    assert sm.node("c:app.log").read_bytes() == old
    assert sm.node("c:app.log").size() == len(old)


def test_zstd_without_the_package_names_the_extra(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails like a missing package
    monkeypatch.setattr(_compress_format, "CODECS", {})
    sm = StorageManager()
    old = gzip.compress(b"x", mtime=0)  # a gzip header holds a clock: fix it
    (tmp_path / "old.txt").write_bytes(old)
    sm.configure([{"name": "z", "type": "local", "base_path": str(tmp_path),
                   "compress": ["*.txt"], "compression": "zstd"},
                  {"name": "m", "type": "memory"}])  # configuring breaks nothing
    sm.node("m:a.txt").write_bytes(text(10_000))
    sm.node("z:small.txt").write_bytes(b"tiny")  # stored plain: no codec needed
    sm.node("z:other.bin").write_bytes(text(10_000))  # not matching
    assert sm.node("z:old.txt").read_bytes() == old
    with pytest.raises(MissingDependencyError, match=r"storied\[zstd\]"):
        sm.node("z:big.txt").write_bytes(text(10_000))
    assert not sm.node("z:big.txt").exists()


def test_bad_globs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError):
        compressing.wrap("x", {"compress": ["*.txt", 3]}, MemoryBackend("x"))


def test_instance_mounts_compress_too() -> None:
    inner = MemoryBackend(uuid.uuid4().hex)
    sm = StorageManager()
    sm.configure([{"name": "i", "backend": inner, "compress": ["*.json"]}])
    data = json.dumps([{"n": i} for i in range(5000)]).encode()
    sm.node("i:a.json").write_bytes(data)
    assert gzip.decompress(inner.read_bytes("a.json")) == data
    assert sm.node("i:a.json").read_bytes() == data


def test_s3_costs_info_one_head_and_a_range_read_one_member(moto: MotoHandle,
                                                            proxy: Any) -> None:
    bucket = make_bucket(moto.endpoint_url, f"cmpc-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "s3", "bucket": bucket,
                   "endpoint_url": proxy.endpoint_url, "key": "testing", "secret": "testing",
                   "compress": ["*.log"], "retries": 1}])
    data = text(4 * BLOCK + 10)
    sm.node("c:a.log").write_bytes(data)
    stored_size = len(stored(sm, "a.log"))
    proxy.reset()
    assert sm.node("c:a.log").size() == len(data)
    assert dict(proxy.counts) == {"HEAD": 1}  # size and MD5 from the object's metadata
    proxy.reset()
    with layer(sm).open_read("a.log", 2 * BLOCK + 5, 2 * BLOCK + 50) as stream:
        assert stream.read() == data[2 * BLOCK + 5 : 2 * BLOCK + 50]
    assert proxy.bytes_sent < stored_size / 2  # the index and one member, not the object
    sm.close()


def test_find_duplicates_sees_the_original_content(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "local", "base_path": str(tmp_path),
                   "compress": ["*.json"]}])
    data = text(60_000)
    for path in ("a.json", "b.json", "c.txt"):  # c.txt stored plain, same content
        sm.node(f"c:{path}").write_bytes(data)
    sm.node("c:d.json").write_bytes(text(60_000, seed=9))
    groups = sm.find_duplicates("c:")
    assert len(groups) == 1
    group = groups[0]
    assert group.size == len(data)
    assert sorted(str(n.path) for n in group.nodes) == ["a.json", "b.json", "c.txt"]


def test_a_range_read_never_splices_a_rewritten_object() -> None:
    from storied.backends._compress_io import Decoded
    from storied.errors import StorageIOError

    be = compressing.wrap("r", {"compress": ["*.txt"]}, MemoryBackend(uuid.uuid4().hex))
    assert isinstance(be, Compressing)
    data = text(3 * BLOCK, seed=5)
    be.write("x.txt", data)
    old = be._index_of(be.inner.info("x.txt"))
    assert old is not None
    be.write("x.txt", data)  # the same bytes again: same offsets, another object
    opener = be._opener("x.txt")
    with pytest.raises(StorageIOError, match="changed while read"):
        Decoded(be.codec, opener, old, BLOCK + 1, BLOCK + 10).read()
    fresh = be._index_of(be.inner.info("x.txt"))
    assert fresh is not None and fresh.offsets == old.offsets and fresh.obj != old.obj
    with be.open_read("x.txt", BLOCK + 1, BLOCK + 10) as stream:
        assert stream.read() == data[BLOCK + 1 : BLOCK + 10]


def test_deduplicate_by_reference_leaves_compressed_files_whole(make: Any) -> None:
    sm = make()
    data = text(BLOCK + 4321, seed=11)
    for path in ("a.json", "b.json", "d/c.txt"):
        sm.node(f"c:{path}").write_bytes(data)
    report = sm.deduplicate("c:", strategy="reference")
    assert report
    for path in ("a.json", "b.json", "d/c.txt"):  # skipped (ADR 0022): still compressed
        assert _decompress("gzip", stored(sm, path)) == data
    for path in ("a.json", "b.json", "d/c.txt"):
        node = sm.node(f"c:{path}")
        assert node.read_bytes() == data
        assert node.size() == len(data) and node.md5hash() == hashlib.md5(data).hexdigest()
        with node.open("rb") as f:
            f.seek(BLOCK - 2)
            assert f.read(4) == data[BLOCK - 2 : BLOCK + 2]
    sm.node("c:b.json").write_bytes(b"changed " * 1000)  # copy on write, compressed again
    assert sm.node("c:a.json").read_bytes() == data
    assert gzip.decompress(stored(sm, "b.json")) == b"changed " * 1000


def test_a_truncated_compressed_object_is_an_error_not_a_short_read() -> None:
    from storied.errors import StorageIOError

    be = compressing.wrap("r", {"compress": ["*.txt"]}, MemoryBackend(uuid.uuid4().hex))
    assert isinstance(be, Compressing)
    data = text(2 * BLOCK + 10)
    be.write("x.txt", data)
    index = be._index_of(be.inner.info("x.txt"))
    assert index is not None
    raw = be.inner.read_bytes("x.txt")
    for cut in (index.offsets[1], index.offsets[2], index.offsets[1] + 100, len(raw) - 5):
        be.inner.write("y.txt", raw[:cut])  # cut at a member boundary, inside one, in the index
        with pytest.raises(StorageIOError):
            be.read_bytes("y.txt")


def test_s3_whole_reads_cost_one_get_plain_or_compressed(moto: MotoHandle, proxy: Any) -> None:
    bucket = make_bucket(moto.endpoint_url, f"cmpg-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "s3", "bucket": bucket,
                   "endpoint_url": proxy.endpoint_url, "key": "testing", "secret": "testing",
                   "compress": ["*.log", "*.bin"], "retries": 1}])
    noise, logs = os.urandom(300_000), text(2 * BLOCK + 3)
    sm.node("c:noise.bin").write_bytes(noise)  # stored plain
    sm.node("c:app.log").write_bytes(logs)  # compressed
    for path, data in (("noise.bin", noise), ("app.log", logs)):
        proxy.reset()
        assert sm.node(f"c:{path}").read_bytes() == data
        assert dict(proxy.counts) == {"GET": 1}, path
        proxy.reset()
        with sm.node(f"c:{path}").open("rb") as f:
            assert f.read() == data
        assert dict(proxy.counts) == {"GET": 1}, path
    sm.close()


def test_an_s3_listing_shows_original_sizes_with_heads_in_parallel(moto: MotoHandle,
                                                                   proxy: Any) -> None:
    bucket = make_bucket(moto.endpoint_url, f"cmpl-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "s3", "bucket": bucket,
                   "endpoint_url": proxy.endpoint_url, "key": "testing", "secret": "testing",
                   "compress": ["*.log"], "retries": 1}])
    sizes = {f"d/f{i}.log": 5000 + 997 * i for i in range(20)}
    for path, size in sizes.items():
        sm.node(f"c:{path}").write_bytes(text(size, seed=size))
    sm.node("c:d/plain.txt").write_bytes(b"not matching")
    proxy.reset()
    listed = {i.path: i.size for i in layer(sm).list("d")}
    assert listed == {**sizes, "d/plain.txt": 12}
    assert proxy.counts["HEAD"] == 20  # one per matching file, none for the others
    assert {n.path: n.size() for n in sm.node("c:d").children()} == listed
    walked = {i.path: (i.size, i.md5) for i in layer(sm).walk("d")}
    assert all(walked[p] == (s, hashlib.md5(text(s, seed=s)).hexdigest())
               for p, s in sizes.items())
    sm.close()


def test_a_compressing_local_history_keeps_its_fast_paths(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "c", "type": "local", "base_path": str(tmp_path),
                   "versioning": True, "compress": ["*.log"]}])
    raw = sm._raw["c"]
    assert callable(getattr(raw, "create_linked", None))  # records hard-linked to blobs
    assert callable(getattr(raw, "through_link", None))  # symlinked-parent writes refused
    data = text(40_000)
    version = sm.node("c:app.log").write_bytes(data)
    assert version
    blobs = [p for p in (tmp_path / ".storied" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and blobs[0].stat().st_nlink == 2
    assert gzip.decompress((tmp_path / "app.log").read_bytes()) == data


def test_reserved_objects_cost_the_same_requests_with_compression(moto: MotoHandle,
                                                                  proxy: Any) -> None:
    def storied_requests(compress: list[str] | None, data: bytes) -> Any:
        from collections import Counter

        bucket = make_bucket(moto.endpoint_url, f"cmpr-{uuid.uuid4().hex[:12]}")
        sm = StorageManager()
        mount: dict[str, Any] = {"name": "c", "type": "s3", "bucket": bucket,
                                 "endpoint_url": proxy.endpoint_url, "key": "testing",
                                 "secret": "testing", "versioning": True, "retries": 1}
        if compress:
            mount["compress"] = compress
        sm.configure([mount])
        sm.node("c:warm.txt").write_bytes(b"warm up: probes, format.json")
        proxy.reset()
        sm.node("c:f.log").write_bytes(data)
        sm.node("c:f.log").write_bytes(data + b"2")
        sm.close()
        return Counter(m for m, p, _q in proxy.requests if ".storied" in p)

    assert Compressing.reserved_passthrough
    for data in (b"small", text(300_000)):
        plain = storied_requests(None, data)
        assert plain["PUT"] >= 2  # blobs and records were counted
        assert storied_requests(["*"], data) == plain


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_the_original_md5_is_recorded_where_plain_files_have_one(kind: str, make: Any,
                                                                 codec: str) -> None:
    """Object stores and memory list an MD5 for plain files: a compressed file's ``info()``
    gives the original's. A disk gives none for plain files, so the compressed write does not
    spend a core on MD5 either: ``info().md5`` is None there, and ``md5hash()`` still answers
    from the content (ADR 0030)."""
    sm = make(compression=codec)
    data = text(BLOCK + 5000, seed=7)
    node = sm.node("c:m.txt")
    node.write_bytes(data)
    want = hashlib.md5(data).hexdigest()
    caps = layer(sm).inner.capabilities
    recorded = caps.metadata or caps.hash_on_metadata
    assert recorded == (kind != "local")
    assert layer(sm).info("m.txt").md5 == (want if recorded else None)
    assert layer(sm).info("m.txt").size == len(data)
    assert node.md5hash() == want
    assert len(stored(sm, "m.txt")) < len(data) / 2  # it was stored compressed
    index = layer(sm)._index_of(layer(sm).inner.info("m.txt"))
    assert index is not None and index.md5 == (want if recorded else None)


def test_an_index_without_md5_round_trips_and_one_with_md5_still_reads() -> None:
    codec = _compress_format.codec_named("gzip")
    for md5 in (None, hashlib.md5(b"x").hexdigest(), hashlib.md5(b"").hexdigest()):
        index = _compress_format.Index("gzip", BLOCK, 10, md5, (0, 40), b"\x01" * 8)
        payload = index.payload(40)
        parsed = _compress_format.parse_index(codec, payload, 200, 40)
        assert parsed.md5 == md5 and parsed.size == 10 and parsed.offsets == (0, 40)
