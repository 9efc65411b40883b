"""Run every benchmark in this folder, one after the other, in this interpreter."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "local_throughput.py",
    "s3_requests.py",
    "versioning.py",
    "management.py",
    "diffs.py",
    "replay.py",
    "web.py",
    "locks.py",
    "events.py",
    "compression.py",
    "dedup.py",
    "copy_many.py",
    "s3_large.py",
    "holds.py",
    "aio.py",
]

if __name__ == "__main__":
    chosen = sys.argv[1:] or SCRIPTS
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        runpy.run_path(str(HERE / name), run_name="__main__")
