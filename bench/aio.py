"""storied.aio on S3: native async requests (aiobotocore) vs the thread path vs sequential sync.

The workload: N small files (1 KiB) written, then read back, through one S3 mount on moto;
``native`` and ``threads`` issue all N calls at once (``asyncio.gather``, ``max_concurrency``
= N), ``sync`` one after the other. moto runs in its own process (a server in this process
would share its GIL with the clients being measured). Run: ``.venv/bin/python bench/aio.py``
(``--files 200 --rounds 3``; about 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from storied import StorageManager
from storied.aio import AsyncStorageManager
from storied.testing.s3server import make_bucket

_SERVER = (
    "import time\n"
    "from storied.testing.s3server import start_moto\n"
    "handle = start_moto()\n"
    "print(handle.endpoint_url, flush=True)\n"
    "time.sleep(3600)\n"
)


def mount(endpoint: str, bucket: str) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "region": "us-east-1"}


def run_async(endpoint: str, bucket: str, files: int, native: bool) -> tuple[float, float]:
    sm = StorageManager()
    sm.configure([mount(endpoint, bucket)])
    storage = AsyncStorageManager(sm, max_concurrency=files, native=native)
    body = b"x" * 1024

    async def main() -> tuple[float, float]:
        await storage.node("s3:warm").write_bytes(body)  # client, probes, route: once
        await asyncio.gather(*(storage.node("s3:warm").read_bytes() for _ in range(8)))
        began = time.perf_counter()
        await asyncio.gather(*(storage.node(f"s3:f{i}").write_bytes(body) for i in range(files)))
        wrote = time.perf_counter() - began
        began = time.perf_counter()
        found = await asyncio.gather(*(storage.node(f"s3:f{i}").read_bytes()
                                       for i in range(files)))
        assert all(f == body for f in found)
        return wrote, time.perf_counter() - began

    try:
        return asyncio.run(main())
    finally:
        sm.close()


def run_sync(endpoint: str, bucket: str, files: int) -> tuple[float, float]:
    sm = StorageManager()
    sm.configure([mount(endpoint, bucket)])
    body = b"x" * 1024
    sm.node("s3:warm").write_bytes(body)
    began = time.perf_counter()
    for i in range(files):
        sm.node(f"s3:f{i}").write_bytes(body)
    wrote = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(files):
        assert sm.node(f"s3:f{i}").read_bytes() == body
    sm.close()
    return wrote, time.perf_counter() - began


def interleaved(rounds: int, runs: dict[str, Callable[[], tuple[float, float]]]
                ) -> dict[str, tuple[float, float, float]]:
    """Median (writes s, reads s) and client CPU seconds per mode; the modes take turns in
    each round, so a load change on the machine hits them alike."""
    seen: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            cpu = time.process_time()
            wrote, read = run()
            seen[name].append((wrote, read, time.process_time() - cpu))
    return {name: tuple(statistics.median(r[i] for r in results)  # type: ignore[misc]
                        for i in range(3)) for name, results in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        bucket = make_bucket(endpoint, f"aio-bench-{uuid.uuid4().hex[:8]}")
        n = args.files
        figures = interleaved(args.rounds, {
            "native": lambda: run_async(endpoint, bucket, n, True),
            "threads": lambda: run_async(endpoint, bucket, n, False),
            "sync": lambda: run_sync(endpoint, bucket, n),
        })
        print(f"{n} x 1 KiB on moto (own process), median of {args.rounds} rounds")
        print(f"  {'':8} {'writes':>9} {'reads':>9}   {'ops/s w':>8} {'ops/s r':>8}"
              f"   client CPU/op")
        for name, (wrote, read, cpu) in figures.items():
            print(f"  {name:8} {wrote * 1000:7.0f}ms {read * 1000:7.0f}ms   "
                  f"{n / wrote:8.0f} {n / read:8.0f}   {cpu / (2 * n) * 1000:8.2f} ms")
        native, threads, sync = figures["native"], figures["threads"], figures["sync"]
        for label, i in (("writes", 0), ("reads", 1)):
            print(f"  {label}: native is {threads[i] / native[i]:.2f}x the thread path, "
                  f"{sync[i] / native[i]:.2f}x sequential sync")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
