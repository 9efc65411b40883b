"""The cost of version management on S3: bulk retention vs a naive loop, and version queries.

Prints figures, no assertions. Everything runs against moto's S3 server behind a counting proxy
(requests by label: GET, HEAD, PUT, POST, DELETE, LIST, LISTVERSIONS):

(a) ``storage.bulk_cleanup_versions('s3:docs/', keep_last=3)`` over N files x 10 versions
    (default 2,000 x 10: 14,000 versions to delete), side by side with the naive loop a user
    could write instead (``for each file: for each old version: node.delete_version(id)``) on an
    identical second bucket. Both engines: portable on an unversioned bucket, native on a
    versioned one. The naive loop is slow (several requests per deleted version), so by default
    it runs on the first ``--naive-files`` files (200) and its figures are also shown scaled to
    N (request counts are exactly linear in the number of files; time roughly so).
(b) ``node.find_versions(author=...)`` on one file with 1,000 annotated versions, both engines:
    the expected cost is one version listing plus one read of the file's ``refs.json``.

Seeding writes the buckets' objects straight into moto's in-process store (the portable
engine's records, blobs and working copies as ``docs/FORMAT.md`` lays them out; native object
versions by repeated PUTs), which takes seconds instead of minutes over HTTP; the history is
then checked through storied before anything is measured. If moto's internals are not
reachable, seeding falls back to boto3 PUTs from threads (slow: use ``--files 500``).

Run: ``.venv/bin/python bench/management.py [--files N] [--naive-files M]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from storied import StorageManager
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client, start_moto
from storied.versioning.records import Record, blob_path, new_writer_id

VERSIONS = 10
KEEP_LAST = 3
FIND_VERSIONS = 1000
LABELS = ("LIST", "LISTVERSIONS", "GET", "HEAD", "PUT", "POST", "DELETE")


# ------------------------------------------------------------------------------ seeding
class Seeder:
    """Puts objects into a bucket, straight into moto's store when possible."""

    def __init__(self, moto: MotoHandle) -> None:
        self.moto = moto
        self.direct: Any = None
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

            self.direct = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        except Exception:  # moto internals moved: go through HTTP
            self.direct = None
        self.client = s3_client(moto.endpoint_url, max_pool_connections=32)

    @property
    def how(self) -> str:
        return "moto's store directly" if self.direct is not None else "boto3 PUTs (16 threads)"

    def put_many(self, bucket: str, items: list[tuple[str, bytes]]) -> None:
        """PUT every ``(key, body)`` in order (order matters for versions of one key)."""
        if self.direct is not None:
            for key, body in items:
                self.direct.put_object(bucket, key, body)
            return
        by_key: dict[str, list[bytes]] = {}
        for key, body in items:
            by_key.setdefault(key, []).append(body)

        def put_all(key: str) -> None:
            for body in by_key[key]:
                self.client.put_object(Bucket=bucket, Key=key, Body=body)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put_all, by_key))


def content(path: str, n: int) -> bytes:
    return f"{path} version {n}\n".encode() * 8


def portable_items(files: list[str], versions: int) -> list[tuple[str, bytes]]:
    """The objects of a portable history: format marker, blobs, records, working copies."""
    writer = new_writer_id()
    start = time.time_ns() - 10 * 86_400 * 10**9
    items = [(".storied/format.json",
              json.dumps({"format": "storied-history", "schema_version": 1}).encode())]
    tick = 0
    for path in files:
        for n in range(versions):
            body = content(path, n)
            sha, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
            tick += 1
            record = Record(start + tick * 1000, writer, False, len(body), md5, sha)
            items.append((f".storied/{blob_path(sha)}", body))
            items.append((f".storied/versions/{path}/{record.name}", b""))
        items.append((path, content(path, versions - 1)))
    return items


def native_items(files: list[str], versions: int) -> list[tuple[str, bytes]]:
    return [(path, content(path, n)) for path in files for n in range(versions)]


# ------------------------------------------------------------------------------ measuring
@dataclass
class Run:
    label: str
    counts: Counter[str]
    seconds: float
    deleted: int
    files: int

    def scaled(self, files: int) -> Run:
        factor = files / self.files
        counts = Counter({k: round(v * factor) for k, v in self.counts.items()})
        return Run(f"{self.label} (x{factor:g})", counts, self.seconds * factor,
                   round(self.deleted * factor), files)


def manager(endpoint: str, bucket: str, portable: bool) -> StorageManager:
    config: dict[str, Any] = {"name": "s3", "type": "s3", "bucket": bucket,
                              "endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    if portable:
        config["versioning"] = True
    sm = StorageManager()
    sm.configure([config])
    return sm


def timed(proxy: CountingProxy, action: Callable[[], Any]) -> tuple[Counter[str], float, Any]:
    proxy.reset()
    start = time.perf_counter()
    result = action()
    return proxy.counts, time.perf_counter() - start, result


def warm(sm: StorageManager) -> None:
    """Connection setup and the one-time engine probe (GetBucketVersioning), not measured."""
    sm.node("s3:warm-up.txt").exists()
    sm.history("s3")


def check_seeded(sm: StorageManager, files: list[str]) -> None:
    for path in (files[0], files[len(files) // 2], files[-1]):
        found = sm.node(f"s3:{path}").versions
        assert len(found) == VERSIONS and found[-1]["is_latest"], (path, len(found))
        assert sm.node(f"s3:{path}").read_bytes() == content(path, VERSIONS - 1)


def check_cleaned(sm: StorageManager, files: list[str]) -> None:
    for path in (files[0], files[len(files) // 2], files[-1]):
        node = sm.node(f"s3:{path}")
        assert len(node.versions) == KEEP_LAST, (path, len(node.versions))
        assert node.read_bytes() == content(path, VERSIONS - 1)


def cleanup_figures(moto: MotoHandle, proxy: CountingProxy, seeder: Seeder,
                    plans: list[tuple[str, bool, int, int]]) -> list[tuple[str, list[Run]]]:
    """One section per ``(engine label, portable?, files, naive sample)``."""
    sections = []
    for engine, portable, n_files, naive_files in plans:
        files = [f"docs/f{i:05d}.txt" for i in range(n_files)]
        buckets = []
        start = time.perf_counter()
        for role in ("bulk", "naive"):
            bucket = make_bucket(moto.endpoint_url, f"mg-{role}-{uuid.uuid4().hex[:10]}",
                                 versioned=not portable)
            items = portable_items(files, VERSIONS) if portable else native_items(files, VERSIONS)
            seeder.put_many(bucket, items)
            buckets.append(bucket)
        print(f"  seeded 2 buckets x {n_files} files x {VERSIONS} versions ({engine}) in "
              f"{time.perf_counter() - start:.1f} s via {seeder.how}", flush=True)

        bulk = manager(proxy.endpoint_url, buckets[0], portable)
        warm(bulk)
        check_seeded(bulk, files)
        calls: list[tuple[int, int]] = []

        def bulk_run(sm: StorageManager = bulk, calls: list[tuple[int, int]] = calls) -> Any:
            return sm.bulk_cleanup_versions("s3:docs/", keep_last=KEEP_LAST,
                                            progress=lambda d, t: calls.append((d, t)))

        counts, seconds, result = timed(proxy, bulk_run)
        deleted = sum(len(v) for v in result.values())
        assert deleted == n_files * (VERSIONS - KEEP_LAST) and calls[-1] == (n_files, n_files)
        check_cleaned(bulk, files)
        runs = [Run("bulk_cleanup_versions", counts, seconds, deleted, n_files)]

        naive = manager(proxy.endpoint_url, buckets[1], portable)
        warm(naive)
        sample = files[:min(naive_files, n_files)]

        def loop(sm: StorageManager = naive, sample: list[str] = sample) -> int:
            removed = 0
            for path in sample:
                node = sm.node(f"s3:{path}")
                for version in node.versions[:-KEEP_LAST]:
                    node.delete_version(version["version_id"])
                    removed += 1
            return removed

        counts, seconds, removed = timed(proxy, loop)
        check_cleaned(naive, sample)
        naive_run = Run(f"naive delete_version loop, {len(sample)} files", counts, seconds,
                        removed, len(sample))
        runs.append(naive_run)
        if len(sample) != n_files:
            runs.append(naive_run.scaled(n_files))
        sections.append((f"{engine}: {n_files} files x {VERSIONS} versions, keep_last="
                         f"{KEEP_LAST}", runs))
        bulk.close()
        naive.close()
    return sections


def find_figures(moto: MotoHandle, proxy: CountingProxy, seeder: Seeder) -> list[tuple[str, Any]]:
    rows = []
    path = "notes/doc.txt"
    for engine, portable in (("portable", True), ("native", False)):
        bucket = make_bucket(moto.endpoint_url, f"mg-find-{uuid.uuid4().hex[:10]}",
                             versioned=not portable)
        items = (portable_items([path], FIND_VERSIONS) if portable
                 else native_items([path], FIND_VERSIONS))
        seeder.put_many(bucket, items)
        sm = manager(proxy.endpoint_url, bucket, portable)
        warm(sm)
        history = sm.history("s3")
        assert history is not None
        ids = [v["version_id"] for v in sm.node(f"s3:{path}").versions]
        assert len(ids) == FIND_VERSIONS

        def annotate_all(refs: Any, ids: list[str] = ids) -> None:
            for i, vid in enumerate(ids):
                refs.annotations[vid] = {"author": f"user{i % 4}@example.com", "build": i}

        history.update_refs(path, annotate_all)  # one compare-and-swap seeds all 1,000
        node = sm.node(f"s3:{path}")
        counts, seconds, found = timed(proxy, lambda n=node: n.find_versions(
            author="user1@example.com"))
        assert len(found) == FIND_VERSIONS // 4
        counts2, seconds2, found2 = timed(proxy, lambda n=node: n.find_versions(
            build=lambda b: b is not None and b >= 990))
        assert len(found2) == 10
        rows.append((f"{engine}: find_versions(author=...) -> {len(found)} of {FIND_VERSIONS}",
                     counts, seconds))
        rows.append((f"{engine}: find_versions(build=<callable>) -> {len(found2)}",
                     counts2, seconds2))
        sm.close()
    return rows


def fmt(counts: Counter[str]) -> str:
    total = sum(counts.values())
    detail = " ".join(f"{k}={counts[k]}" for k in LABELS if counts.get(k))
    return f"{total:>6}  ({detail})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="portable engine")
    parser.add_argument("--naive-files", type=int, default=50, help="portable naive sample")
    parser.add_argument("--native-files", type=int, default=200, help="native engine")
    parser.add_argument("--native-naive-files", type=int, default=20, help="native naive sample")
    args, _ = parser.parse_known_args()  # run_all.py passes script names: ignore them
    plans = [("portable engine, unversioned bucket", True, args.files, args.naive_files),
             ("native engine, versioned bucket", False, args.native_files,
              args.native_naive_files)]
    moto = start_moto()
    proxy = CountingProxy(moto.endpoint_url)
    seeder = Seeder(moto)
    try:
        print(f"(a) retention, {VERSIONS} versions per file, on S3 (moto behind a counting "
              "proxy)", flush=True)
        sections = cleanup_figures(moto, proxy, seeder, plans)
        for title, runs in sections:
            print(f"\n  {title}")
            print(f"  {'method':<44} {'deleted':>8} {'time':>9}  requests")
            for run in runs:
                print(f"  {run.label:<44} {run.deleted:>8} {run.seconds:>8.1f}s  "
                      f"{fmt(run.counts)}")
            bulk = runs[0]
            naive = runs[-1]
            ideal = math.ceil(bulk.deleted / 1000)
            print(f"  -> bulk: {sum(bulk.counts.values()) / sum(naive.counts.values()):.1%} of "
                  f"the naive loop's requests, {bulk.seconds / naive.seconds:.1%} of its time; "
                  f"{bulk.counts.get('POST', 0)} DeleteObjects (ceil({bulk.deleted}/1000) = "
                  f"{ideal})")
        print(f"\n(b) find_versions on one file with {FIND_VERSIONS} annotated versions")
        for label, counts, seconds in find_figures(moto, proxy, seeder):
            print(f"  {label:<52} {seconds * 1000:>7.1f} ms  {fmt(counts)}")
    finally:
        proxy.stop()
        moto.stop()


if __name__ == "__main__":
    main()
