"""Event benchmarks (issue 9): the journal's cost on versioned writes, and callback latency.

(a) versioned write throughput with the journal and one in-process subscriber vs without the
    journal and without subscribers (the journal switched off in this process only, by emptying
    ``storied.core.eventing.JOURNALED``: a measurement device, not an option), on memory, local,
    S3 portable and S3 native (moto on 127.0.0.1); target ratio >= 0.8;
(b) requests per write on S3 through a counting proxy, with and without the journal, and the
    requests of reading 1,000 journal events (target: <= 1 extra request per write; one listing
    page per 1,000 events);
(c) in-process callback latency: from the moment the version is committed (the history's write
    returned) to the subscriber being called, i.e. the journal append plus dispatch (p50/p99);
    and ``storage.watch`` latency from write return to its callback (poll 10 ms).

Run: ``.venv/bin/python bench/events.py [a] [b] [c]`` (about 90 s in all). Prints figures,
asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from storied import StorageManager
from storied.backends.memory import clear_memory_stores
from storied.core import eventing
from storied.events.view import journal_for
from storied.testing.s3server import CountingProxy, make_bucket, start_moto
from storied.versioning.history import MountHistory

JOURNALED = eventing.JOURNALED
PAYLOAD = b"x" * 1024


def _mount(kind: str, endpoint: str | None, tmp: str) -> dict[str, Any]:
    if kind == "memory":
        return {"name": "v", "type": "memory", "versioning": True}
    if kind == "local":
        return {"name": "v", "type": "local", "base_path": tempfile.mkdtemp(dir=tmp),
                "versioning": True}
    assert endpoint is not None
    bucket = make_bucket(endpoint, f"bench-{uuid.uuid4().hex[:10]}",
                         versioned=kind == "s3-native")
    return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "versioning": True}


def _manager(config: dict[str, Any]) -> StorageManager:
    clear_memory_stores()  # memory stores outlive managers: each run starts empty
    sm = StorageManager()
    sm.configure([config])
    sm.node("v:warm").write_bytes(b"w")  # format marker, journal tail, probes: once
    return sm


def _rate(sm: StorageManager, count: int, clock: Callable[[], float] = time.perf_counter
          ) -> float:
    start = clock()
    for i in range(count):
        sm.node(f"v:d/f{i % 50}.bin").write_bytes(PAYLOAD + str(i).encode())
    return count / max(clock() - start, 1e-9)


def throughput(endpoint: str, tmp: str, rounds: int = 5) -> None:
    """Both managers built first, then timed batch by batch, interleaved (journal switched per
    batch), best of ``rounds``: other processes' load hits both sides alike. Memory and local
    also show CPU time (``process_time``, the server of S3 mounts runs elsewhere)."""
    import os

    print(f"(a) versioned writes/s of 1 KiB, journal + 1 subscriber vs neither (best of "
          f"{rounds} interleaved batches, {rounds * 3} on memory and {rounds * 2} on local; "
          f"load {os.getloadavg()[0]:.1f})")
    for kind, count, batches in (("memory", 800, rounds * 3), ("local", 300, rounds * 2),
                                 ("s3-portable", 60, rounds), ("s3-native", 100, rounds)):
        clocks: list[tuple[str, Callable[[], float]]] = [("wall", time.perf_counter)]
        if kind in ("memory", "local"):
            clocks.append(("cpu", time.process_time))
        managers = {}
        clear_memory_stores()
        for journal in (False, True):
            eventing.JOURNALED = JOURNALED if journal else frozenset()
            config = _mount(kind, endpoint, tmp)
            if kind == "memory":
                config["store"] = f"bench-{journal}"  # two stores, both kept
            sm = StorageManager()
            sm.configure([config])
            sm.node("v:warm").write_bytes(b"w")
            if journal:
                sm.on("version_created", lambda node, info: None)
            managers[journal] = sm
        rates: dict[tuple[str, bool], float] = {}
        pairs: dict[str, list[float]] = {name: [] for name, _ in clocks}
        for turn in range(batches):  # short batches: more of them, so a burst of load misses some
            for name, clock in clocks:
                pair = {}
                for journal in ((False, True) if turn % 2 else (True, False)):
                    eventing.JOURNALED = JOURNALED if journal else frozenset()
                    pair[journal] = rate = _rate(managers[journal], count, clock)
                    rates[name, journal] = max(rates.get((name, journal), 0.0), rate)
                pairs[name].append(pair[True] / pair[False])
        eventing.JOURNALED = JOURNALED
        for sm in managers.values():
            sm.close()
        for name, _ in clocks:
            off, on = rates[name, False], rates[name, True]
            print(f"    {kind:12} {name:4} without {off:8.0f}/s  with {on:8.0f}/s  "
                  f"ratio {on / off:.2f} (median of pairs {statistics.median(pairs[name]):.2f})")


def requests(proxy: CountingProxy, endpoint: str, tmp: str) -> None:
    print("(b) S3 requests per versioned write (steady state), and per journal read")
    for kind in ("s3-portable", "s3-native"):
        row = []
        for journal in (False, True):
            eventing.JOURNALED = JOURNALED if journal else frozenset()
            config = _mount(kind, endpoint, tmp)
            config["endpoint_url"] = proxy.endpoint_url
            sm = _manager(config)
            proxy.reset()
            for i in range(20):
                sm.node(f"v:r/{i}").write_bytes(PAYLOAD)
            counts = proxy.counts
            row.append(sum(counts.values()) / 20)
            detail = ", ".join(f"{k} {v / 20:g}" for k, v in sorted(counts.items()))
            print(f"    {kind:12} journal={'on ' if journal else 'off'} "
                  f"{row[-1]:.2f} requests/write ({detail})")
            sm.close()
        eventing.JOURNALED = JOURNALED
        print(f"    {kind:12} extra requests per write: {row[1] - row[0]:.2f}")
    config = _mount("s3-portable", endpoint, tmp)
    config["endpoint_url"] = proxy.endpoint_url
    sm = _manager(config)
    journal = journal_for(sm, "v")
    assert journal is not None
    for i in range(1100):
        journal.store.append("tag_created", f"t/{i}", None, {"i": i})
    proxy.reset()
    start = time.perf_counter()
    got = sum(1 for _ in sm.events("v:", since="1", limit=1000))
    took = time.perf_counter() - start
    counts = proxy.counts
    print(f"    reading {got} events: {dict(sorted(counts.items()))} in {took:.2f} s "
          f"(LIST = listing pages)")
    sm.close()


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms"


def latency(endpoint: str, tmp: str) -> None:
    print("(c) callback latency")
    committed: list[float] = []
    original: Callable[..., Any] = MountHistory.write

    def timed(self: MountHistory, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        committed.append(time.perf_counter())
        return result

    MountHistory.write = timed  # type: ignore[method-assign]
    try:
        for kind, count in (("memory", 1000), ("local", 300), ("s3-portable", 60)):
            sm = _manager(_mount(kind, endpoint, tmp))
            delays: list[float] = []
            committed.clear()
            sm.on("version_created", lambda node, info, delays=delays: delays.append(
                time.perf_counter() - committed[-1]))
            for i in range(count):
                sm.node(f"v:l/{i % 20}").write_bytes(PAYLOAD)
            print(f"    in-process {kind:12} commit -> callback: {_percentiles(delays)}")
            sm.close()
    finally:
        MountHistory.write = original  # type: ignore[method-assign]
    sm = _manager(_mount("local", endpoint, tmp))
    seen = threading.Event()
    waits: list[float] = []
    with sm.watch("v:", lambda event: seen.set(), poll=0.01):
        for i in range(100):
            seen.clear()
            sm.node(f"v:w/{i}").write_bytes(PAYLOAD)
            returned = time.perf_counter()
            seen.wait(5)
            waits.append(time.perf_counter() - returned)
    print(f"    watch (poll 10 ms) local, write return -> callback: {_percentiles(waits)}")
    sm.close()


def main(argv: list[str]) -> None:
    moto = start_moto()
    proxy = CountingProxy(moto.endpoint_url)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if not argv or "a" in argv:
                throughput(moto.endpoint_url, tmp)
            if not argv or "b" in argv:
                requests(proxy, moto.endpoint_url, tmp)
            if not argv or "c" in argv:
                latency(moto.endpoint_url, tmp)
        finally:
            proxy.stop()
            moto.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
