"""The cost of version history (the portable engine): local writes, listings, S3 requests.

Prints figures and ratios, no assertions:

(a) local 4 KiB versioned writes vs raw temp+rename writes (``os.replace``), ops/s;
(b) ``versions`` on a local file with 1,000 versions (time per call), and a write to that file
    vs a write to a file with no history;
(c) versioned writes on a mount holding the history of many OTHER files vs an empty mount
    (the cost must not grow with other files' history);
(d) S3 requests (moto behind a counting proxy, unversioned bucket, portable engine) for
    ``versions`` of a file with 1,200 versions, ``open(version=-2).read()`` and one write;
(e) a file with 10 versions vs one with 5,000: write, ``open(version=-2)``, ``as_of`` and
    ``versions``, as ratios measured in one run: quiet, right after a write of the file, and
    with the listing cache off (``VBENCH_ONLY=length`` runs only this; ``VBENCH_ONLY=write``
    runs only (a), on disk and on tmpfs; ``VBENCH_ONLY=s3`` only (d)). The 5,000 versions are
    a schema-2 history sealed by the first write of a new manager (schema 3, ADR 0011).

Run: ``python3 dev.py bench`` (or ``.venv/bin/python bench/versioning.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storied import StorageManager
from storied.testing.s3server import (
    CountingProxy,
    format_counts,
    make_bucket,
    measure_requests,
    s3_client,
    start_moto,
)
from storied.versioning.records import Record, blob_path, new_writer_id, next_timestamp

N = 1000
DATA = os.urandom(4096)
_SERIAL = itertools.count()
OTHER_FILES, RECORDS_PER_FILE = 2000, 10  # 20,000 records of other files in (c)
S3_VERSIONS = 1200
S3_LONG = 5000  # (d) also: a schema-2 history this long, sealed by a write, then read


def payload() -> bytes:
    """4 KiB that differ on every call (so no write is deduplicated into an existing blob)."""
    return next(_SERIAL).to_bytes(8, "big") + DATA[8:]


def best_rate(op: Callable[[int], object], n: int = N, rounds: int = 5) -> float:
    """Best operations/second over ``rounds`` rounds of ``n`` calls."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            op(i)
        best = max(best, n / (time.perf_counter() - start))
    return best


def paired_rates(
    base: Callable[[int], object], other: Callable[[int], object], rounds: int, n: int = N
) -> tuple[float, float, float]:
    """Best ops/s of ``base`` and ``other`` and the median of their per-round ratios.

    Each round times one batch of each, back to back, in an order flipped every round: the
    machine's drifting speed (other processes, disk write-back) then hits both alike, and the
    median ratio of same-round pairs stays meaningful when the best-of figures are not.
    """
    best_base = best_other = 0.0
    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            a = best_rate(base, n=n, rounds=1)
            b = best_rate(other, n=n, rounds=1)
        else:
            b = best_rate(other, n=n, rounds=1)
            a = best_rate(base, n=n, rounds=1)
        best_base, best_other = max(best_base, a), max(best_other, b)
        ratios.append(b / a)
    return best_base, best_other, statistics.median(ratios)


def best_time(op: Callable[[], object], repeat: int) -> float:
    """Best seconds per call over ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        op()
        best = min(best, time.perf_counter() - start)
    return best


def versioned(root: str) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": root, "versioning": True}])
    return sm


def raw_atomic_write(root: str) -> Callable[[int], object]:
    def op(i: int) -> None:
        target = os.path.join(root, f"f{i % 100}.bin")
        tmp = os.path.join(root, f".f{i % 100}.{uuid.uuid4().hex[:12]}")
        with open(tmp, "wb") as f:
            f.write(payload())
        os.replace(tmp, target)

    return op


def node_write(sm: StorageManager, prefix: str = "") -> Callable[[int], object]:
    nodes = [sm.node(f"m:{prefix}f{i}.bin") for i in range(100)]
    return lambda i: nodes[i % 100].write_bytes(payload())


def names_listed_per_write(sm: StorageManager, path: str, writes: int = 20) -> float:
    """History entries the engine lists per write of ``path`` (a machine-independent cost)."""
    history = sm.history("m")
    assert history is not None
    meta: Any = history.engine.meta  # type: ignore[attr-defined]
    original, seen = meta.list_names, [0]

    def counting(folder: str, start_after: str | None = None) -> Any:
        found = list(original(folder, start_after))
        seen[0] += len(found)
        return iter(found)

    meta.list_names = counting
    try:
        node = sm.node(path)
        for _ in range(writes):
            node.write_bytes(payload())
    finally:
        del meta.list_names
    return seen[0] / writes


def seed_other_history(root: str) -> float:
    """Create OTHER_FILES x RECORDS_PER_FILE empty record objects directly; return seconds."""
    start = time.perf_counter()
    writer, body = new_writer_id(), b"seeded"
    sha, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
    blob = os.path.join(root, ".storied", blob_path(sha))
    os.makedirs(os.path.dirname(blob))
    with open(blob, "wb") as f:
        f.write(body)
    ts = time.time_ns() - 10**12
    for k in range(OTHER_FILES):
        folder = os.path.join(root, ".storied", "versions", "other", f"d{k % 20}", f"f{k}.txt")
        os.makedirs(folder)
        for _ in range(RECORDS_PER_FILE):
            ts += 1
            name = Record(ts, writer, False, len(body), md5, sha).name
            os.close(os.open(os.path.join(folder, name), os.O_CREAT | os.O_WRONLY, 0o644))
    return time.perf_counter() - start


def write_figures(base: str) -> None:
    """(a) on ``base``'s file system and, where it exists, on tmpfs (``/dev/shm``)."""
    places = [("disk", base)]
    if os.path.isdir("/dev/shm"):
        places.append(("tmpfs", tempfile.mkdtemp(prefix="storied-vbench-", dir="/dev/shm")))
    print(f"(a) Local 4 KiB writes, best of 6 x {N} (ops/s; 100 files, distinct contents)")
    try:
        for label, where in places:
            raw_dir, ver_dir = os.path.join(where, "a-raw"), os.path.join(where, "a-versioned")
            os.makedirs(raw_dir)
            os.makedirs(ver_dir)
            sm = versioned(ver_dir)
            node_write(sm)(0)  # first write creates format.json
            atomic, storied, ratio = paired_rates(raw_atomic_write(raw_dir), node_write(sm),
                                                  rounds=6)
            print(f"  {label}: raw temp+rename write  {atomic:>10,.0f}")
            print(f"  {label}: storied versioned write{storied:>10,.0f}")
            print(f"  {label}: ratio versioned / raw  {ratio:>10.2f}x  (median of paired rounds; "
                  "target >= 0.3)")
    finally:
        for _, where in places[1:]:
            shutil.rmtree(where, ignore_errors=True)


def local_figures(base: str) -> None:
    dirs = {k: os.path.join(base, k) for k in ("atomic", "versioned", "big", "empty", "other")}
    for d in dirs.values():
        os.makedirs(d)

    write_figures(base)

    # (b) versions on a file with 1,000 versions
    big = versioned(dirs["big"])
    node = big.node("m:big.txt")
    for i in range(1000):
        node.write_bytes(f"version {i}".encode())
    per_call = best_time(lambda: node.versions, 20)
    per_open = best_time(lambda: node.open(version=-2, mode="rb").read(), 20)
    deep = best_rate(lambda i: node.write_bytes(payload()), n=100, rounds=3)
    fresh_nodes = [big.node(f"m:fresh{i}.bin") for i in range(300)]
    fresh = best_rate(lambda i: fresh_nodes[i % 300].write_bytes(payload()), n=100, rounds=3)
    print("(b) A local file with 1,000 versions")
    print(f"  versions (1,000 dicts)       {per_call * 1e3:>10.2f} ms per call")
    print(f"  open(version=-2).read()      {per_open * 1e3:>10.2f} ms per call")
    print(f"  write to it                  {deep:>10,.0f} ops/s")
    print(f"  write to a file w/o history  {fresh:>10,.0f} ops/s")
    print(f"  ratio                        {deep / fresh:>10.2f}x  (the file's own history)")
    print(f"  history names listed/write   {names_listed_per_write(big, 'm:big.txt'):>10,.0f}"
          f"  (vs {names_listed_per_write(big, 'm:fresh0.bin'):,.0f} on a short history)")

    # (c) many versions of other files
    seconds = seed_other_history(dirs["other"])
    records = OTHER_FILES * RECORDS_PER_FILE
    loaded, empty = versioned(dirs["other"]), versioned(dirs["empty"])
    node_write(loaded, "mine/")(0)
    node_write(empty, "mine/")(0)
    os.sync()  # let the seeding's metadata reach the disk before measuring
    bare, full, ratio = paired_rates(node_write(empty, "mine/"), node_write(loaded, "mine/"),
                                     rounds=8, n=500)
    print(f"(c) Writes next to {records:,} records of {OTHER_FILES:,} other files "
          f"(seeded in {seconds:.1f} s)")
    print(f"  write, empty mount           {bare:>10,.0f} ops/s")
    print(f"  write, loaded mount          {full:>10,.0f} ops/s")
    print(f"  ratio loaded / empty         {ratio:>10.2f}x  (median of paired rounds; "
          "target ~1.0)")
    listed = [names_listed_per_write(sm_, "m:mine/f0.bin") for sm_ in (empty, loaded)]
    print(f"  history names listed/write   {listed[0]:>10,.0f} empty, {listed[1]:,.0f} loaded")


# --------------------------------------------------------------------------- (e) history length
SHORT, LONG = 10, 5000


def seed_file_history(sm: StorageManager, root: str, name: str, count: int,
                      migrated: bool = False) -> StorageManager:
    """Give ``m:<name>`` ``count`` versions: all but the last two as record links made
    directly (fast, as the engine makes them on local disks), sealed as they are added (as
    storied seals a history it writes) or, with ``migrated``, all left live (as a schema-2
    storied left them); the last two through the API by a new manager (another process):
    after a read, the first of those writes finds the live directory long and seals it.
    Returns that manager."""
    from storied.versioning._sealing import seal

    node = sm.node(f"m:{name}")
    node.write_bytes(payload())  # format.json, the blob the seeded records share
    first = node.versions[0]
    blob = os.path.join(root, ".storied", blob_path(first["sha256"]))
    folder = os.path.join(root, ".storied", "versions", name)
    writer, ts = new_writer_id(), time.time_ns() - 10**12
    for k in range(count - 3):
        record = Record(ts + k, writer, False, first["size"], first["etag"], first["sha256"])
        os.link(blob, os.path.join(folder, record.name))
        if not migrated and k % 48 == 47:
            seal(sm_engine(node), name)
    sm.close()
    fresh = versioned(root)
    node = fresh.node(f"m:{name}")
    node.open(version=-1, mode="rb").read()  # a read lists the long live directory
    start = time.perf_counter()
    node.write_bytes(payload())
    first = time.perf_counter() - start
    node.write_bytes(payload())
    if count > 100 and migrated:
        print(f"  first write after {count:,} schema-2 records (seals them): {first * 1e3:.1f} ms")
    return fresh


def paired_times(
    short: Callable[[], object], long: Callable[[], object], rounds: int, n: int
) -> tuple[float, float, float]:
    """Best seconds per call of ``short`` and ``long`` and the median per-round ratio
    long/short (rounds alternate the order, see :func:`paired_rates`)."""
    best_s = best_l = float("inf")
    ratios = []
    for r in range(rounds):
        order = (short, long) if r % 2 == 0 else (long, short)
        got = {}
        for op in order:
            start = time.perf_counter()
            for _ in range(n):
                op()
            got[op] = (time.perf_counter() - start) / n
        best_s, best_l = min(best_s, got[short]), min(best_l, got[long])
        ratios.append(got[long] / got[short])
    return best_s, best_l, statistics.median(ratios)


def after_write_times(short: Any, long: Any, read: Callable[[Any], object], rounds: int,
                      n: int) -> tuple[float, float, float]:
    """Like :func:`paired_times` for ``read(node)`` timed right after a write of that node
    (the write itself untimed): the directory just changed, so no cached listing is valid."""
    best_s = best_l = float("inf")
    ratios = []
    for r in range(rounds):
        order = (short, long) if r % 2 == 0 else (long, short)
        got = {}
        for node in order:
            total = 0.0
            for _ in range(n):
                node.write_bytes(payload())
                start = time.perf_counter()
                read(node)
                total += time.perf_counter() - start
            got[id(node)] = total / n
        best_s, best_l = min(best_s, got[id(short)]), min(best_l, got[id(long)])
        ratios.append(got[id(long)] / got[id(short)])
    return best_s, best_l, statistics.median(ratios)


def sm_engine(node: Any) -> Any:
    """The portable engine behind a node (bench introspection)."""
    return node._history.engine


def length_figures(base: str) -> None:
    from datetime import UTC, datetime

    roots = {k: os.path.join(base, f"len{k}") for k in (SHORT, LONG)}
    nodes = {}
    for count, root in roots.items():
        os.makedirs(root)
        sm = seed_file_history(versioned(root), root, "doc.bin", count)
        nodes[count] = sm.node("m:doc.bin")
    assert len(nodes[LONG].versions) == LONG and len(nodes[SHORT].versions) == SHORT
    short, long = nodes[SHORT], nodes[LONG]
    moment = datetime.now(UTC)
    print(f"(e) A local file with {SHORT} versions vs one with {LONG:,} "
          "(best ms per call; ratio = median of paired rounds)")
    reads: dict[str, Callable[[Any], object]] = {
        "open(version=-2).read()": lambda n: n.open(version=-2, mode="rb").read(),
        "open(as_of=now).read()": lambda n: n.open(as_of=moment, mode="rb").read(),
        "versions": lambda n: n.versions,
    }
    time.sleep(1.1)  # both histories quiet for a second: their listings may be cached
    for regime in ("quiet history (cached listing)", "right after a write",
                   "listing read on every call"):
        print(f"  -- {regime}")
        for label, read in reads.items():
            if regime == "right after a write":
                t_s, t_l, t_r = after_write_times(short, long, read, rounds=6, n=10)
            else:
                t_s, t_l, t_r = paired_times(lambda read=read: read(short),
                                             lambda read=read: read(long), rounds=6, n=10)
            goal = "<= 25 ms at 5,000" if label == "versions" else "ratio <= 2"
            print(f"  {label:<27}{t_s * 1e3:>8.3f} / {t_l * 1e3:>8.3f} ms   "
                  f"time at {LONG:,} / at {SHORT}: {t_r:>6.2f}x  (target {goal})")
        if regime == "right after a write":
            for node in (short, long):  # the engines list on every call from here on
                listings = getattr(sm_engine(node), "_listings", None)
                if listings is not None:
                    listings._stampable = False
    cold = versioned(roots[LONG])  # a new process: no segment read yet
    start = time.perf_counter()
    assert len(cold.node("m:doc.bin").versions) >= LONG
    os.makedirs(os.path.join(base, "migrated"))
    mig = seed_file_history(versioned(os.path.join(base, "migrated")),
                            os.path.join(base, "migrated"), "doc.bin", LONG, migrated=True)
    t_s, t_l, t_r = after_write_times(short, mig.node("m:doc.bin"),
                                      lambda n: n.open(version=-2, mode="rb").read(), 6, 10)
    print(f"  open(version=-2) right after a write, history migrated from schema 2 at {LONG:,}: "
          f"{t_l * 1e3:.3f} ms, {t_r:.2f}x (its directory once held {LONG:,} names)")
    mig.close()
    print(f"  versions, first call of a new manager at {LONG:,}: "
          f"{(time.perf_counter() - start) * 1e3:.2f} ms (reads the segments once)")
    cold.close()
    w_s, w_l, w_r = paired_times(lambda: short.write_bytes(payload()),
                                 lambda: long.write_bytes(payload()), rounds=6, n=50)
    print(f"  write 4 KiB                  {w_s * 1e3:>7.3f} / {w_l * 1e3:>7.3f} ms   "
          f"speed at {LONG:,} / at {SHORT}: {1 / w_r:.2f}x  (target >= 0.8)")


# --------------------------------------------------------------------------- (d) S3


def s3_seed(moto: Any, bucket: str, node: Any, path: str, count: int) -> None:
    """``count - 2`` old records of ``path`` put straight into the bucket (as a schema-2
    storied left them), next to the one version ``node`` has."""
    seed = node.versions[0]
    writer, first = new_writer_id(), next_timestamp() - 10**12
    keys = [
        f".storied/versions/{path}/"
        f"{Record(first + k, writer, False, 4, seed['etag'], seed['sha256']).name}"
        for k in range(count - 2)
    ]
    client = s3_client(moto.endpoint_url)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b""), keys))
    finally:
        client.close()


def s3_figures() -> None:
    moto = start_moto()
    proxy = CountingProxy(moto.endpoint_url)
    try:
        bucket = make_bucket(moto.endpoint_url, "bench-versioning")
        sm = StorageManager()
        sm.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                       "endpoint_url": proxy.endpoint_url, "key": "testing",
                       "secret": "testing", "versioning": True}])
        node = sm.node("s3:docs/history.txt")
        node.write_bytes(b"seed")  # creates format.json and the blob the seeded records use
        s3_seed(moto, bucket, node, "docs/history.txt", S3_VERSIONS)
        node.write_bytes(b"latest")
        count = len(node.versions)
        other = sm.node("s3:docs/new.txt")
        other.write_bytes(b"warm-up")  # connection set-up is not counted
        ops: dict[str, Callable[[], Any]] = {
            f"versions ({count} versions)": lambda: node.versions,
            "open(version=-2).read()": lambda: node.open(version=-2, mode="rb").read(),
            f"write_bytes, file with {count} versions (seals it)": lambda: node.write_bytes(
                b"one more"),
            f"write_bytes, file with {count} versions, sealed": lambda: node.write_bytes(
                b"and more"),
            "write_bytes, file with 1 version": lambda: other.write_bytes(b"again"),
            "read_bytes (working copy)": node.read_bytes,
        }
        print("(d) S3 requests, portable engine on an unversioned bucket (moto, counting proxy)")
        for label, op in ops.items():
            print(f"  {label:<42} {format_counts(measure_requests(proxy, op))}")
        long = sm.node("s3:docs/long.txt")
        long.write_bytes(b"seed")
        s3_seed(moto, bucket, long, "docs/long.txt", S3_LONG)
        sealing: dict[str, Callable[[], Any]] = {
            f"open(version=-2) at {S3_LONG:,}, schema 2": lambda: long.open(version=-2,
                                                                           mode="rb").read(),
            f"write_bytes sealing {S3_LONG:,} records": lambda: long.write_bytes(b"sealing"),
            "write_bytes after sealing": lambda: long.write_bytes(b"one more"),
            f"open(version=-2) after a write, {S3_LONG:,}": lambda: long.open(
                version=-2, mode="rb").read(),
            f"versions ({S3_LONG:,}, segments read before)": lambda: long.versions,
        }
        for label, op in sealing.items():
            print(f"  {label:<42} {format_counts(measure_requests(proxy, op))}")
        cold = StorageManager()
        cold.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                         "endpoint_url": proxy.endpoint_url, "key": "testing",
                         "secret": "testing", "versioning": True}])
        cold.node("s3:docs/new.txt").exists()
        cold_long = cold.node("s3:docs/long.txt")
        counts = format_counts(measure_requests(proxy, lambda: cold_long.versions))
        print(f"  {'versions, new manager (reads segments)':<42} {counts}")
        cold.close()
        sm.close()
    finally:
        proxy.stop()
        moto.stop()


def main() -> None:
    base = tempfile.mkdtemp(prefix="storied-vbench-")
    try:
        only = os.environ.get("VBENCH_ONLY")
        if only == "write":
            write_figures(base)
            return
        if only == "s3":
            s3_figures()
            return
        if only != "length":
            local_figures(base)
        length_figures(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if os.environ.get("VBENCH_ONLY") != "length":
        s3_figures()


if __name__ == "__main__":
    main()
