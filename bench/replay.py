"""Replay speed vs live S3 (moto on 127.0.0.1) for the same sequence of storage calls.

One workload (writes, reads, info, listings, a copy, a delete, a missing read) runs against a
live moto server while being recorded, then is replayed from the cassette ``ROUNDS`` times
with the server stopped. Target: replay >= 100x faster than live. Run:
``.venv/bin/python bench/replay.py`` (about 10 s).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from storied import StorageManager
from storied.errors import StorageNotFoundError
from storied.testing.s3server import make_bucket, start_moto

N_FILES = 20
ROUNDS = 5


def _mount(endpoint: str, bucket: str) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "region": "us-east-1"}  # fmt: skip


def workload(storage: StorageManager) -> int:
    """The code under test; returns how many node operations it made."""
    ops = 0
    for i in range(N_FILES):
        node = storage.node(f"s3:data/f{i:02d}.txt")
        node.write_text(f"file {i}\n" * 40)
        assert node.read_text().startswith(f"file {i}")
        node.info()
        ops += 3
    children = storage.node("s3:data").children()
    assert len(children) == N_FILES
    storage.node("s3:data/f00.txt").copy_to("s3:copy/f00.txt")
    storage.node("s3:copy/f00.txt").delete()
    try:
        storage.node("s3:missing.txt").read_text()
    except StorageNotFoundError:
        pass
    return ops + 4


def main() -> None:
    moto = start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="storied-replay-"))
    cassette = tmp / "bench.json"
    try:
        bucket = make_bucket(moto.endpoint_url, f"replay-{uuid.uuid4().hex[:8]}")
        warm = StorageManager()
        warm.configure([_mount(moto.endpoint_url, bucket)])
        warm.node("s3:warm.txt").write_text("connection and probes")  # one-time setup
        live_times = []
        for _ in range(ROUNDS):
            live = StorageManager()
            live.configure([_mount(moto.endpoint_url, bucket)])
            began = time.perf_counter()
            ops = workload(live)
            live_times.append(time.perf_counter() - began)
        recorder = StorageManager()
        recorder.configure([_mount(moto.endpoint_url, bucket)])
        with recorder.record_mode(cassette):
            workload(recorder)
        moto.stop()
        replay_times = []
        for _ in range(ROUNDS):
            offline = StorageManager()
            offline.configure([_mount(moto.endpoint_url, bucket)])
            began = time.perf_counter()
            with offline.replay_mode(cassette):
                workload(offline)
            replay_times.append(time.perf_counter() - began)
        live_s, replay_s = statistics.median(live_times), statistics.median(replay_times)
        size = cassette.stat().st_size
        print(f"Workload: {ops} node operations ({N_FILES} files), median of {ROUNDS} runs")
        print(f"  live moto          {live_s * 1000:9.1f} ms")
        print(f"  replay (cassette)  {replay_s * 1000:9.1f} ms  (load included; {size:,} B)")
        print(f"  speed-up           {live_s / replay_s:9.0f}x   (target >= 100x)")
    finally:
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
