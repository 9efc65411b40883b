"""Transparent compression (issue 10 §3): write/read throughput and stored size vs plain.

For JSON and log data (32 MiB each, generated, realistic repetition), on a local mount with
``compress`` (gzip, then zstd) and on one without it, through the same public API
(``node.write_bytes`` / ``node.read_bytes``, and a ranged read). Prints, in one run:

- the physical limit: each raw codec on the same corpus, single-threaded, no storied
  (``zlib.compress`` level 1, ISA-L level 1 when ``isal`` is installed, zstandard at levels
  -1..3, their decompression, and MD5, which a compressed write on S3 computes: a local one
  does not, a disk giving no MD5 for plain files either);
- the plain baseline, each codec through storied with the shared pool
  (``_compress_pool.THREADS`` workers) and with one worker, MB/s, the ratios (compressed /
  plain; targets: stored >= 4x smaller, write >= 0.5x plain with gzip, >= 0.8x with zstd)
  and the write speed against the raw codec's single-thread speed;
- the physical limit of each variant: what the raw codec + MD5 + a plain write allow with one
  core and with the variant's threads (see :func:`limit`);
- the load average before and after (the machine is shared: read the ratios, not the MB/s).

Best of a few rounds. Run: ``python bench/compression.py [--no-s3]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from storied import StorageManager
from storied.backends import _compress_format, _compress_pool

SIZE = 32 * 1024 * 1024
ROUNDS = 3
BLOCK = _compress_format.BLOCK


def json_data(size: int) -> bytes:
    rnd = random.Random(1)
    items, total = [], 0
    while total < size:
        item = {"id": rnd.randrange(10**9), "name": f"user{rnd.randrange(10**5)}",
                "email": f"u{rnd.randrange(10**6)}@example.com", "active": rnd.random() < 0.5,
                "score": round(rnd.random() * 100, 3),
                "tags": rnd.sample(["a", "b", "admin", "beta", "eu", "us", "vip"], 3)}
        items.append(item)
        total += 130
    return json.dumps(items, indent=1).encode()[:size]


def log_data(size: int) -> bytes:
    rnd = random.Random(2)
    paths = ["/api/v1/items", "/api/v1/users", "/login", "/static/app.js", "/health"]
    clients = [f"10.0.{rnd.randrange(256)}.{rnd.randrange(256)}" for _ in range(40)]
    lines, total, ms = [], 0, 0
    while total < size:  # an access log: time moves on, a few clients, sequential ids
        ms += rnd.randrange(30)
        line = (f"2026-12-02T{ms // 3600000 % 24:02d}:{ms // 60000 % 60:02d}:"
                f"{ms // 1000 % 60:02d}.{ms % 1000:03d}Z INFO {rnd.choice(['GET', 'POST'])} "
                f"{rnd.choice(paths)} status={rnd.choice([200, 200, 200, 304, 404, 500])} "
                f"ms={rnd.randrange(400)} req={len(lines) + 100000} ip={rnd.choice(clients)}\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def best(op: Callable[[], object]) -> float:
    """Best seconds over ROUNDS calls."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        op()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_codecs(data: bytes) -> dict[str, float]:
    """Single-thread MB/s of each raw codec on ``data`` cut in storied's blocks (no storied):
    the physical limit per core. Prints one line per codec; returns compress MB/s by name."""
    blocks = [memoryview(data)[i : i + BLOCK] for i in range(0, len(data), BLOCK)]
    mb = len(data) / 1e6
    speeds: dict[str, float] = {}
    rows: list[tuple[str, Callable[[memoryview], bytes], Callable[[bytes], bytes]]] = [
        ("zlib -1", lambda b: zlib.compress(b, 1, -15), lambda z: zlib.decompress(z, -15, BLOCK))]
    if "isal" in _compress_format.DEFLATERS:
        from isal import isal_zlib

        rows.append(("isal -1", lambda b: isal_zlib.compress(b, 1, -15),
                     lambda z: isal_zlib.decompress(z, -15, BLOCK)))
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        for level in (-1, 1, 2, 3):
            comp = zstandard.ZstdCompressor(level=level, write_checksum=True)
            dec = zstandard.ZstdDecompressor()
            rows.append((f"zstd {level}", comp.compress, dec.decompress))
    print(f"  raw codec, 1 thread  {'compress MB/s':>13} {'smaller':>8} {'decompress MB/s':>16}")
    for name, comp_fn, dec_fn in rows:
        packed = [comp_fn(b) for b in blocks]
        took = best(lambda c=comp_fn: [c(b) for b in blocks])  # type: ignore[misc]
        back = best(lambda d=dec_fn, p=packed: [d(z) for z in p])  # type: ignore[misc]
        speeds[name] = mb / took
        print(f"  {name:20} {mb / took:13.0f} {len(data) / sum(map(len, packed)):7.1f}x "
              f"{mb / back:16.0f}")
    md5 = best(lambda: hashlib.md5(data).digest())
    print(f"  {'md5 (S3 writes)':20} {mb / md5:13.0f}")
    speeds["md5"] = mb / md5
    return speeds


def limit(codec: float, md5: float | None, plain: float, cores: int,
          smaller: float = 1.0) -> float:
    """The fastest compressed write the machine allows (MB/s of original), CPU-bound: every
    byte is compressed (parallel), hashed (``md5``: only where the storage's plain files come
    with an MD5, i.e. S3 here, not the local disk) and its compressed form (``smaller`` times
    fewer bytes) written (both in order, one thread), so with ``cores`` free cores the time
    per MB is at least max(all of it / cores, hashing + writing)."""
    serial = (1 / md5 if md5 else 0.0) + 1 / (plain * smaller)
    return 1 / max((1 / codec + serial) / cores, serial)


@contextmanager
def gzip_with(impl: str | None) -> Iterator[None]:
    """Mounts configured inside use the gzip implementation ``impl`` (None: the default)."""
    saved = dict(_compress_format.DEFLATERS)
    if impl is not None:
        for name in list(_compress_format.DEFLATERS):
            if name != impl:
                del _compress_format.DEFLATERS[name]
    try:
        yield
    finally:
        _compress_format.DEFLATERS.update(saved)


def measure(root: str, codec: str | None, name: str, data: bytes,
            s3: str | None = None) -> dict[str, float]:
    folder = os.path.join(root, codec or "plain")
    os.makedirs(folder, exist_ok=True)
    sm = StorageManager()
    mount: dict[str, object] = {"name": "m", "type": "local", "base_path": folder}
    if s3 is not None:
        from storied.testing.s3server import make_bucket

        bucket = make_bucket(s3, f"bench-cmp-{codec or 'plain'}-{os.urandom(4).hex()}")
        mount = {"name": "m", "type": "s3", "bucket": bucket, "endpoint_url": s3,
                 "key": "testing", "secret": "testing"}
    if codec:
        mount.update(compress=["*.json", "*.log"], compression=codec)
    sm.configure([mount])
    node = sm.node(f"m:{name}")
    write = best(lambda: node.write_bytes(data))
    read = best(lambda: node.read_bytes())
    if node.read_bytes() != data:
        raise SystemExit(f"{codec}: read back differs")
    start = len(data) // 2

    def ranged() -> None:
        with node.open("rb") as f:
            f.seek(start)
            f.read(64 * 1024)

    rng = best(ranged)
    below = sm._raw["m"]
    while below.__class__.__name__ != "Compressing" and hasattr(below, "inner"):
        below = below.inner
    stored = below.inner.info(name).size if codec else node.info().size  # type: ignore[attr-defined]
    sm.close()
    mb = len(data) / 1e6
    return {"write": mb / write, "read": mb / read, "range_ms": rng * 1000, "stored": stored}


def variants() -> list[tuple[str, str, str | None, int]]:
    """``(label, codec, gzip implementation, threads)`` to measure through storied."""
    pool = _compress_pool.THREADS
    default = "isal" if "isal" in _compress_format.DEFLATERS else "zlib"
    found = [(f"gzip/{default} {pool}T", "gzip", None, pool),
             (f"gzip/{default} 1T", "gzip", None, 1)]
    if default == "isal":
        found.append((f"gzip/zlib {pool}T", "gzip", "zlib", pool))
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return found
    return [*found, (f"zstd {pool}T", "zstd", None, pool), ("zstd 1T", "zstd", None, 1)]


def load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


def main() -> None:
    root = tempfile.mkdtemp(prefix="storied-bench-cmp-")
    moto = None
    print(f"load average at start: {load()}; pool: {_compress_pool.THREADS} threads; gzip "
          f"implementations: {', '.join(_compress_format.DEFLATERS)}")
    if "--no-s3" not in sys.argv:
        from storied.testing.s3server import start_moto

        moto = start_moto()
    threads = _compress_pool.THREADS
    try:
        cases = [("local", None, "JSON", json_data(SIZE), "data.json"),
                 ("local", None, "logs", log_data(SIZE), "app.log")]
        if moto is not None:
            cases.append(("S3 (moto, 127.0.0.1)", moto.endpoint_url, "logs",
                          log_data(SIZE // 4), "app.log"))
        for where, s3, label, data, name in cases:
            print(f"\n{label} on {where}: {len(data) / 1e6:.1f} MB")
            raw = raw_codecs(data) if s3 is None else {}
            plain = measure(root, None, name, data, s3)
            print(f"  {'storied':14} {'write MB/s':>11} {'read MB/s':>10} {'64K range ms':>13} "
                  f"{'stored MB':>10} {'smaller':>8} {'write x':>8} {'read x':>7} "
                  f"{'vs raw 1T':>9} {'limit 1c/Nc':>12}")
            print(f"  {'plain':14} {plain['write']:11.0f} {plain['read']:10.0f} "
                  f"{plain['range_ms']:13.2f} {plain['stored'] / 1e6:10.2f}")
            for shown, codec, impl, count in variants():
                _compress_pool.set_threads(count)
                with gzip_with(impl):
                    got = measure(root, codec, name, data, s3)
                used = impl or ("isal" if "isal" in _compress_format.DEFLATERS else "zlib")
                ref = raw.get(f"{used} -1" if codec == "gzip" else "zstd 1")
                vs = bound = ""
                if ref:
                    vs = f"{got['write'] / ref:8.2f}x"
                    md5 = raw["md5"] if s3 else None  # a disk's plain files have no MD5
                    smaller = len(data) / got["stored"]
                    one = limit(ref, md5, plain["write"], 1, smaller)
                    many = limit(ref, md5, plain["write"], count, smaller)
                    bound = f"{one:6.0f}/{many:.0f}"
                print(f"  {shown:14} {got['write']:11.0f} {got['read']:10.0f} "
                      f"{got['range_ms']:13.2f} {got['stored'] / 1e6:10.2f} "
                      f"{len(data) / got['stored']:7.1f}x {got['write'] / plain['write']:7.2f}x "
                      f"{got['read'] / plain['read']:6.2f}x {vs} {bound:>12}")
            _compress_pool.set_threads(threads)
        print("\ntargets: >= 4x smaller; write >= 0.5x plain (gzip), >= 0.8x plain (zstd)")
        print("'vs raw 1T': storied's write speed over the raw codec's single-thread speed "
              "(> 1: the pool uses more than one core)")
        print("'limit 1c/Nc': the fastest write this machine allows (MB/s) with 1 core and with "
              "the variant's thread count, from the raw codec, MD5 and plain-write speeds above "
              "(CPU-bound; other load on the machine takes cores from it)")
        print(f"load average at the end: {load()}")
    finally:
        _compress_pool.set_threads(threads)
        if moto is not None:
            moto.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
