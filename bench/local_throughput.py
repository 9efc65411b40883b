"""Local 4 KiB write/read throughput: storied vs raw open(), raw temp+rename, genro-storage.

Prints operations per second and ratios (storied / baseline) from one run. Each figure is the
best of several rounds, to damp noise from other processes. Run: ``python3 dev.py bench``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable

from storied import StorageManager

N = 2000
ROUNDS = 5
DATA = os.urandom(4096)


def best_rate(op: Callable[[int], object]) -> float:
    """Best operations/second over ROUNDS rounds of N calls."""
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i in range(N):
            op(i)
        best = max(best, N / (time.perf_counter() - start))
    return best


def raw_write(root: str) -> Callable[[int], object]:
    def op(i: int) -> None:
        with open(os.path.join(root, f"f{i % 100}.bin"), "wb") as f:
            f.write(DATA)

    return op


def raw_atomic_write(root: str) -> Callable[[int], object]:
    def op(i: int) -> None:
        target = os.path.join(root, f"f{i % 100}.bin")
        tmp = os.path.join(root, f".f{i % 100}.{uuid.uuid4().hex[:12]}")
        with open(tmp, "wb") as f:
            f.write(DATA)
        os.replace(tmp, target)

    return op


def raw_read(root: str) -> Callable[[int], object]:
    def op(i: int) -> bytes:
        with open(os.path.join(root, f"f{i % 100}.bin"), "rb") as f:
            return f.read()

    return op


def node_write(storage: object) -> Callable[[int], object]:
    nodes = [storage.node(f"m:f{i}.bin") for i in range(100)]  # type: ignore[attr-defined]
    return lambda i: nodes[i % 100].write_bytes(DATA)


def node_read(storage: object) -> Callable[[int], object]:
    nodes = [storage.node(f"m:f{i}.bin") for i in range(100)]  # type: ignore[attr-defined]
    return lambda i: nodes[i % 100].read_bytes()


def genro_manager(root: str) -> object | None:
    try:
        import genro_storage
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = genro_storage.StorageManager()
        manager.configure([{"name": "m", "protocol": "local", "base_path": root}])
    return manager


def main() -> None:
    base = tempfile.mkdtemp(prefix="storied-bench-")
    dirs = {k: os.path.join(base, k) for k in ("raw", "atomic", "storied", "genro")}
    for d in dirs.values():
        os.makedirs(d)
    try:
        storage = StorageManager()
        storage.configure([{"name": "m", "type": "local", "base_path": dirs["storied"]}])
        genro = genro_manager(dirs["genro"])
        rates = {
            "raw open() write": best_rate(raw_write(dirs["raw"])),
            "raw temp+rename write": best_rate(raw_atomic_write(dirs["atomic"])),
            "storied write": best_rate(node_write(storage)),
            "raw open() read": best_rate(raw_read(dirs["raw"])),
            "storied read": best_rate(node_read(storage)),
        }
        if genro is not None:
            rates["genro-storage 0.8.4 write"] = best_rate(node_write(genro))
            rates["genro-storage 0.8.4 read"] = best_rate(node_read(genro))
        print(f"Local 4 KiB operations, best of {ROUNDS} x {N} (ops/s)")
        for name, rate in rates.items():
            print(f"  {name:<28} {rate:>10,.0f}")
        print("Ratios (storied / baseline; > 1 means storied is faster)")
        w, r = rates["storied write"], rates["storied read"]
        atomic = rates["raw temp+rename write"]
        print(f"  write vs raw temp+rename : {w / atomic:.2f}x  (target >= 0.8)")
        print(f"  write vs raw open()      : {w / rates['raw open() write']:.2f}x")
        print(f"  read  vs raw open()      : {r / rates['raw open() read']:.2f}x  (target >= 0.5)")
        if genro is not None:
            print(f"  write vs genro-storage   : {w / rates['genro-storage 0.8.4 write']:.2f}x")
            print(f"  read  vs genro-storage   : {r / rates['genro-storage 0.8.4 read']:.2f}x")
        else:
            print("  (genro-storage not installed: pip install 'storied[bench]')")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
