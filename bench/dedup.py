"""find_duplicates over 10,000 files vs a naive scan that hashes every file in full.

Two storages: a local disk with 10,000 files (reads counted by a counting layer: requests and
bytes) and S3 on moto with 1,000 (requests and response bytes counted by a proxy on
127.0.0.1; the naive S3 scan uses 8 threads). The files: 70 % of random sizes between 1 and
40 KB (sizes collide, so the head/tail stage has work) and 30 % as contents stored three
times each. Then the same scan after ``deduplicate(strategy='reference')``: references
to one content copy are read once per content. Run: ``.venv/bin/python bench/dedup.py``
(about a minute; ``DEDUP_FILES`` / ``DEDUP_S3_FILES`` change the counts).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from storied import StorageManager
from storied.backends import registry
from storied.backends.base import Backend, WrappedBackend
from storied.backends.referencing import Referencing
from storied.testing.s3server import CountingProxy, make_bucket, s3_client, start_moto

TOTAL = int(os.environ.get("DEDUP_FILES", "10000"))
#: moto answers ~40 requests/s per connection: the naive S3 scan of 10,000 files would take
#: minutes, so S3 gets a smaller set by default (same mix).
S3_TOTAL = int(os.environ.get("DEDUP_S3_FILES", "1000"))
COPIES = 3


def dataset(total: int, seed: int = 7) -> dict[str, bytes]:
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    unique = total * 7 // 10
    for i in range(unique):
        size = rng.randrange(1_000, 40_000)
        files[f"u/{i % 50}/{i}.bin"] = rng.randbytes(size)
    for i in range((total - unique) // COPIES):
        data = rng.randbytes(rng.randrange(1_000, 40_000))
        for c in range(COPIES):
            files[f"d{c}/{i % 50}/{i}.bin"] = data
    return files


class Counting(WrappedBackend):
    """Counts reads (requests and bytes) of the backend below."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.counts: Counter[str] = Counter()

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        self.counts["reads"] += 1
        stream = self.inner.open_read(path, start, end)
        counts = self.counts
        original = stream.read

        def read(n: int = -1) -> bytes:
            data = original(n)
            counts["bytes"] += len(data)
            return data

        stream.read = read  # type: ignore[method-assign]
        return stream

    def read_bytes(self, path: str) -> bytes:
        self.counts["reads"] += 1
        data = self.inner.read_bytes(path)
        self.counts["bytes"] += len(data)
        return data

    def walk(self, path: str) -> Any:
        self.counts["listings"] += 1
        return self.inner.walk(path)


def naive(storage: StorageManager, prefix: str, threads: int = 1) -> int:
    """One walk, then every file hashed in full (``threads`` at once), grouped by digest:
    the number of duplicate groups."""
    root = storage.node(prefix)
    paths = [i.path for i in root._be.walk(root.path) if not i.is_dir]

    def digest(path: str) -> tuple[str, str]:
        return hashlib.sha256(storage.node(f"{prefix}{path}").read_bytes()).hexdigest(), path

    by_digest: dict[str, list[str]] = defaultdict(list)
    with ThreadPoolExecutor(threads) as pool:
        for value, path in pool.map(digest, paths):
            by_digest[value].append(path)
    return sum(1 for paths in by_digest.values() if len(paths) > 1)


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def local_bench(files: dict[str, bytes]) -> None:
    base = tempfile.mkdtemp(prefix="storied-dedup-bench-")
    try:
        for path, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(base, path)), exist_ok=True)
            with open(os.path.join(base, path), "wb") as out:
                out.write(data)
        counting = Counting(registry.build("local", "l", {"base_path": base}))
        storage = StorageManager()
        storage.add_mount({"name": "l", "backend": Referencing(counting), "retries": 1})
        rows = []
        for label, action in (("naive full hash", lambda: naive(storage, "l:")),
                              ("find_duplicates", lambda: len(storage.find_duplicates("l:")))):
            counting.counts.clear()
            groups, seconds = timed(action)
            rows.append((label, groups, dict(counting.counts), seconds))
        report, seconds = timed(lambda: storage.deduplicate("l:", strategy="reference"))
        print(f"  deduplicate(strategy='reference'): {report['bytes_reclaimed'] / 1e6:.1f} MB "
              f"reclaimed in {seconds:.1f} s")
        fresh = StorageManager()  # nothing cached: as a new process
        fresh.add_mount({"name": "l", "backend": Referencing(counting), "retries": 1})
        counting.counts.clear()
        groups, seconds = timed(lambda: len(fresh.find_duplicates("l:")))
        rows.append(("find_duplicates over references", groups, dict(counting.counts),
                     seconds))
        show("local disk", len(files), rows, "reads")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def s3_bench(files: dict[str, bytes]) -> None:
    moto = start_moto()
    try:
        bucket = make_bucket(moto.endpoint_url, f"dedup-bench-{uuid.uuid4().hex[:8]}")
        client = s3_client(moto.endpoint_url)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                          files.items()))
        with CountingProxy(moto.endpoint_url) as proxy:
            config = {"type": "s3", "bucket": bucket, "endpoint_url": proxy.endpoint_url,
                      "key": "testing", "secret": "testing"}
            storage = StorageManager()
            storage.add_mount({"name": "s3", "backend": Referencing(
                registry.build("s3", "s3", config))})
            storage.node("s3:u/0/0.bin").read_bytes()  # the mount's own probes, once
            rows = []
            for label, action in (("naive full hash, 8 threads",
                                   lambda: naive(storage, "s3:", 8)),
                                  ("find_duplicates", lambda: len(storage.find_duplicates(
                                      "s3:")))):
                proxy.reset()
                groups, seconds = timed(action)
                counts = dict(proxy.counts)
                counts["bytes"] = proxy.bytes_sent
                rows.append((label, groups, counts, seconds))
            report, seconds = timed(lambda: storage.deduplicate("s3:", strategy="reference"))
            print(f"  deduplicate(strategy='reference'): {report['bytes_reclaimed'] / 1e6:.1f}"
                  f" MB reclaimed in {seconds:.1f} s")
            fresh = StorageManager()  # nothing cached: as a new process
            fresh.add_mount({"name": "s3", "backend": Referencing(
                registry.build("s3", "s3", config))})
            fresh.node("s3:u/0/0.bin").read_bytes()
            proxy.reset()
            groups, seconds = timed(lambda: len(fresh.find_duplicates("s3:")))
            counts = dict(proxy.counts)
            counts["bytes"] = proxy.bytes_sent
            rows.append(("find_duplicates over references", groups, counts, seconds))
            show("S3 (moto, counting proxy)", len(files), rows, "GET")
    finally:
        moto.stop()


def show(title: str, total: int, rows: list[tuple[str, int, dict[str, int], float]],
         reads: str) -> None:
    dups = total - total * 7 // 10
    print(f"\n{title}: {total} files, {dups} in {dups // COPIES} groups of {COPIES}")
    print(f"  {'scan':34} {'groups':>6} {'requests':>9} {reads:>7} {'MB read':>8} "
          f"{'seconds':>8}")
    base = rows[0]
    for label, groups, counts, seconds in rows:
        requests = sum(v for k, v in counts.items() if k != "bytes")
        print(f"  {label:34} {groups:>6} {requests:>9} {counts.get(reads, 0):>7} "
              f"{counts.get('bytes', 0) / 1e6:>8.1f} {seconds:>8.2f}")
    for label, _, counts, seconds in rows[1:]:
        req = sum(v for k, v in counts.items() if k != "bytes")
        breq = sum(v for k, v in base[2].items() if k != "bytes")
        print(f"  naive / {label}: requests {breq / max(req, 1):.0f}x, bytes "
              f"{base[2].get('bytes', 0) / max(counts.get('bytes', 0), 1):.0f}x, time "
              f"{base[3] / max(seconds, 1e-9):.1f}x")


if __name__ == "__main__":
    for total, bench in ((TOTAL, local_bench), (S3_TOTAL, s3_bench)):
        data = dataset(total)
        print(f"\ndataset: {len(data)} files, {sum(map(len, data.values())) / 1e6:.0f} MB")
        bench(data)
