"""Transparent compression (issue 10 §3): write/read throughput and stored size vs plain.

For JSON and log data (32 MiB each, generated, realistic repetition), on a local mount with
``compress`` (gzip, then zstd) and on one without it, through the same public API
(``node.write_bytes`` / ``node.read_bytes``, and a ranged read). Prints MB/s, the ratios
(compressed / plain; targets: stored >= 4x smaller, write >= 0.5x plain with gzip, >= 0.8x
with zstd) and the stored sizes. Best of a few rounds. Run: ``python bench/compression.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

from storied import StorageManager

SIZE = 32 * 1024 * 1024
ROUNDS = 3


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


def main() -> None:
    root = tempfile.mkdtemp(prefix="storied-bench-cmp-")
    moto = None
    if "--no-s3" not in sys.argv:
        from storied.testing.s3server import start_moto

        moto = start_moto()
    try:
        cases = [("local", None, "JSON", json_data(SIZE), "data.json"),
                 ("local", None, "logs", log_data(SIZE), "app.log")]
        if moto is not None:
            cases.append(("S3 (moto, 127.0.0.1)", moto.endpoint_url, "logs",
                          log_data(SIZE // 4), "app.log"))
        for where, s3, label, data, name in cases:
            plain = measure(root, None, name, data, s3)
            print(f"\n{label} on {where}: {len(data) / 1e6:.1f} MB")
            print(f"  {'':6} {'write MB/s':>11} {'read MB/s':>10} {'64K range ms':>13} "
                  f"{'stored MB':>10} {'smaller':>8} {'write x':>8} {'read x':>7}")
            print(f"  {'plain':6} {plain['write']:11.0f} {plain['read']:10.0f} "
                  f"{plain['range_ms']:13.2f} {plain['stored'] / 1e6:10.2f}")
            for codec in ("gzip", "zstd"):
                got = measure(root, codec, name, data, s3)
                print(f"  {codec:6} {got['write']:11.0f} {got['read']:10.0f} "
                      f"{got['range_ms']:13.2f} {got['stored'] / 1e6:10.2f} "
                      f"{len(data) / got['stored']:7.1f}x {got['write'] / plain['write']:7.2f}x "
                      f"{got['read'] / plain['read']:6.2f}x")
        print("\ntargets: >= 4x smaller; write >= 0.5x plain (gzip), >= 0.8x plain (zstd)")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average during the run: {load:.1f} on {os.cpu_count()} CPUs")
    finally:
        if moto is not None:
            moto.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
