"""Requests that legal holds and retention add to a cleanup over 1,000 versions on native S3.

Prints figures, no assertions. moto's S3 server (buckets created with Object Lock) behind a
counting proxy; requests by label (GET, HEAD, PUT, DELETE, LISTVERSIONS...).

One file with 1,000 versions per scenario, ``cleanup_versions(keep_last=10)``:

(a) no lock anywhere: the baseline;
(b) 20 of the versions under legal hold, set through storied (PutObjectLegalHold, recorded in
    ``refs/<path>/refs.json`` too; not counted);
(c) a bucket whose default retention (GOVERNANCE, 1 day) locks every version, no per-version
    call at all: the protection is computed from the listing's LastModified.

For each: the dry run's requests (the plan a real run makes under the maintenance lease, with
the same reads), and with ``--real`` the real run's (its DELETEs are the removed versions, which
every cleanup needs, locks or not). "Extra" is the difference from (a).
The alternative a cleanup that trusted no record would need is one HEAD (or two Get*) per
version: 1,000 requests.

Run: ``.venv/bin/python bench/holds.py [--versions N] [--held M] [--real]`` (about 1.5
minutes without ``--real``: seeding 3,000 versions into moto and setting the holds dominate).

Measured (moto 5.2.5, 1,000 versions, keep_last=10): 3 requests for the plan in all three
scenarios (LISTVERSIONS 1, GET 1 = refs.json with tags and locks, LIST 1 = snapshot manifests):
0 extra per version and 0 extra per file (locks ride in the refs read a cleanup already makes;
the bucket's lock configuration is read once per mount and cached).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storied import StorageManager
from storied.testing.s3server import CountingProxy, s3_client, start_moto

KEEP_LAST = 10


def _bucket(client: Any, default_days: int = 0) -> str:
    name = f"bh-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    if default_days:
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": default_days}}})
    return name


def _seed(endpoint: str, bucket: str, key: str, count: int) -> None:
    """``count`` versions of ``key``: straight into moto's in-process store when reachable
    (seconds), else by PUTs from threads."""
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        direct = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        lock = direct.get_bucket(bucket).default_lock_mode
        for i in range(count):
            if lock:  # what moto's PUT handler does for a bucket with default retention
                until = direct.get_bucket(bucket).default_retention()
                direct.put_object(bucket, key, f"version {i}".encode(), lock_mode=lock,
                                  lock_until=until)
            else:
                direct.put_object(bucket, key, f"version {i}".encode())
        return
    except (ImportError, KeyError, AttributeError, TypeError):
        pass

    def put(i: int) -> None:
        client = clients[i % len(clients)]
        client.put_object(Bucket=bucket, Key=key, Body=f"version {i}".encode())

    clients = [s3_client(endpoint) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))
    for client in clients:
        client.close()


def _manager(endpoint: str, bucket: str) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
                   "key": "k", "secret": "s"}])
    return sm


def _measure(proxy: CountingProxy, sm: StorageManager, key: str, real_run: bool
             ) -> tuple[Counter[str], int, Counter[str], int]:
    node = sm.node(f"s3:{key}")
    node.versions  # noqa: B018 - warm: the probes (versioning, lock configuration) once
    node.cleanup_versions(keep_last=KEEP_LAST, dry_run=True)
    proxy.reset()
    plan = node.cleanup_versions(keep_last=KEEP_LAST, dry_run=True)
    dry = Counter(proxy.counts)
    doomed = sum(1 for row in plan if not row["keep"])
    if not real_run:
        return dry, doomed, Counter(), -1
    proxy.reset()
    removed = node.cleanup_versions(keep_last=KEEP_LAST)
    real = Counter(proxy.counts)
    assert len(removed) == doomed, (len(removed), doomed)
    return dry, doomed, real, len(removed)


def _fmt(counts: Counter[str]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--held", type=int, default=10)
    parser.add_argument("--real", action="store_true",
                        help="also run the cleanups for real (minutes on moto: ~1,000 DELETEs "
                             "and their journal entries each)")
    args = parser.parse_args()
    moto = start_moto()
    try:
        with CountingProxy(moto.endpoint_url) as proxy:
            client = s3_client(moto.endpoint_url)
            plain, default = _bucket(client), _bucket(client, default_days=1)
            start = time.perf_counter()
            for bucket, key in ((plain, "a.txt"), (plain, "b.txt"), (default, "c.txt")):
                _seed(moto.endpoint_url, bucket, key, args.versions)
            print(f"seeded 3 x {args.versions} versions in {time.perf_counter() - start:.1f} s")
            sm = _manager(proxy.endpoint_url, plain)
            held = sm.node("s3:b.txt")
            ids = [v["version_id"] for v in held.versions]
            step = max(1, (len(ids) - KEEP_LAST) // max(1, args.held))
            for vid in ids[: len(ids) - KEEP_LAST: step][: args.held]:
                held.set_legal_hold(True, version=vid)
            rows = [("(a) no locks", _measure(proxy, sm, "a.txt", args.real)),
                    (f"(b) {args.held} legal holds", _measure(proxy, sm, "b.txt", args.real)),
                    ("(c) default retention", _measure(proxy, _manager(proxy.endpoint_url,
                                                                        default), "c.txt", True))]
            base_dry = sum(rows[0][1][0].values())
            print(f"cleanup_versions(keep_last={KEEP_LAST}) over {args.versions} versions "
                  "of one file, native S3 with Object Lock (moto):")
            for label, (dry, doomed, real, removed) in rows:
                print(f"  {label:24} dry run: {sum(dry.values()):3} requests ({_fmt(dry)}); "
                      f"{doomed} to remove; extra vs (a): {sum(dry.values()) - base_dry:+d} "
                      f"({(sum(dry.values()) - base_dry) / args.versions:.3f} per version)")
                if removed >= 0:
                    other = sum(real.values()) - real["DELETE"]
                    print(f"  {'':24} real run: {removed} DELETEs + {other} other requests "
                          f"({_fmt(real)}; PUTs: the lease, the journal's entries)")
            print(f"  a cleanup asking the server per version would add {args.versions} "
                  "HEADs (or 2 x that in GetObjectLegalHold + GetObjectRetention)")
            client.close()
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
