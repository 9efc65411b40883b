"""node.lock(): S3 requests per acquire + release, and latency against a bare write.

Starts moto's S3 server on 127.0.0.1 with a counting proxy in front (as bench/s3_requests.py)
and a local temporary folder. Run: ``.venv/bin/python bench/locks.py`` (about 20 s).

Cases: a path never locked; a path this process released last (its etag is known: no read);
a path another process released last (here: this process's memory of its release dropped).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from storied import StorageManager
from storied.core import locking
from storied.testing.s3server import (
    CountingProxy,
    format_counts,
    make_bucket,
    measure_requests,
    start_moto,
)

ROUNDS = 60


def _cycle(node: Any) -> Callable[[], None]:
    def run() -> None:
        with node.lock(timeout=5, ttl=60):
            pass

    return run


def _other_process_released(node: Any) -> Callable[[], None]:
    def run() -> None:
        locking._RELEASED.clear()  # as if another process had released it last
        with node.lock(timeout=5, ttl=60):
            pass

    return run


def _median_ms(action: Callable[[], None], rounds: int = ROUNDS) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def requests_on_s3(proxy: CountingProxy, bucket: str) -> None:
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                   "endpoint_url": proxy.endpoint_url, "key": "testing", "secret": "testing"}])
    sm.node("s3:warm.txt").write_text("pays the conditional-write probe once")
    node = sm.node("s3:jobs/counter.txt")
    print("S3 requests per acquire + release (issue target: 2)")
    print(f"  {'never locked before':<44}{format_counts(measure_requests(proxy, _cycle(node)))}")
    print(f"  {'released last by this process':<44}"
          f"{format_counts(measure_requests(proxy, _cycle(node)))}")
    print(f"  {'released last by another process':<44}"
          f"{format_counts(measure_requests(proxy, _other_process_released(node)))}")
    sm.close()


def latency(label: str, config: dict[str, Any]) -> None:
    sm = StorageManager()
    sm.configure([config])
    node = sm.node(f"{config['name']}:jobs/counter.txt")
    node.write_bytes(b"0")

    def bare() -> None:
        node.write_bytes(b"1")

    def locked_write() -> None:
        with node.lock(timeout=5, ttl=60):
            node.write_bytes(b"1")

    bare_ms = _median_ms(bare)
    cycle_ms = _median_ms(_cycle(node))
    cross_ms = _median_ms(_other_process_released(node))
    locked_ms = _median_ms(locked_write)
    print(f"{label}: median / p95 ms")
    print(f"  bare write                         {bare_ms[0]:7.2f} / {bare_ms[1]:7.2f}")
    print(f"  acquire + release                  {cycle_ms[0]:7.2f} / {cycle_ms[1]:7.2f}"
          f"   ({cycle_ms[0] / bare_ms[0]:.1f}x a bare write)")
    print(f"  acquire + release, other releaser  {cross_ms[0]:7.2f} / {cross_ms[1]:7.2f}")
    print(f"  locked write (acquire+write+release){locked_ms[0]:6.2f} / {locked_ms[1]:7.2f}"
          f"   ({locked_ms[0] / bare_ms[0]:.1f}x a bare write)")
    sm.close()


def main() -> None:
    moto = start_moto()
    try:
        with CountingProxy(moto.endpoint_url) as proxy:
            requests_on_s3(proxy, make_bucket(moto.endpoint_url, "bench-locks-requests"))
        bucket = make_bucket(moto.endpoint_url, "bench-locks-latency")
        latency("S3 (moto, 127.0.0.1)", {"name": "s3", "type": "s3", "bucket": bucket,
                                         "endpoint_url": moto.endpoint_url, "key": "testing",
                                         "secret": "testing"})
        with tempfile.TemporaryDirectory() as folder:
            latency("local disk", {"name": "disk", "type": "local", "base_path": folder})
        latency("memory", {"name": "mem", "type": "memory"})
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
