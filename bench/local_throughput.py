"""Local 4 KiB write/read throughput: storied vs raw open(), raw temp+rename, genro-storage.

Prints operations per second and ratios (storied / baseline) from one run. Each figure is the
best of several rounds, to damp noise from other processes. Run: ``python3 dev.py bench``.

The second part (``--versioned`` runs only it) sets a short-history versioned write (issue 8
§5, target >= 0.3x raw temp+rename) against its *floor*: a bare Python loop making exactly the
system calls of one versioned write in the steady state (the ones ``bench/local_syscalls.py``
lists; every directory exists), with the same SHA-256 + MD5, once without and once with the
event journal's entry. No Python layer can be faster than that loop, so ``floor / raw`` is the
best ratio this design can reach on this machine; CPU seconds (``process_time``) are shown
too: they do not count time lost to other processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable

from storied import StorageManager
from storied.backends import _local_fs

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


_SERIAL = itertools.count()
_OPATH = os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def _payload() -> bytes:
    return next(_SERIAL).to_bytes(8, "big") + DATA[8:]


def floor_write(root: str, journal: bool) -> Callable[[int], object]:
    """The system calls of one versioned write of ``f<i % 100>.bin`` at the mount root, in
    storied's order (the blob linked from an unnamed file, the record linked from the blob's
    name, the announcement renamed, the working copy by temp+rename under the directory's
    shared flock, the announcements
    listed, the held directories closed), plus the journal's entry when ``journal`` (an
    unnamed file linked, no ``fstat``); nothing else."""
    for k in range(256):
        os.makedirs(os.path.join(root, ".storied", "blobs", f"{k:02x}"))
    for k in range(100):
        os.makedirs(os.path.join(root, ".storied", "versions", f"f{k}.bin"))
        os.makedirs(os.path.join(root, ".storied", "recent", f"r{k}"))
        open(os.path.join(root, ".storied", "recent", f"r{k}", "0"), "wb").close()
    os.makedirs(os.path.join(root, ".storied", "journal", "000000000"))
    base = os.open(root, _OPATH)
    openat2 = _local_fs.OPENAT2 or (lambda fd, path, flags: os.open(path, flags, dir_fd=fd))
    tmpfile = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
    last = ["0"] * 100
    seq = itertools.count(1)

    def op(i: int) -> None:
        data, k = _payload(), i % 100
        sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
        record = f"{time.time_ns():019d}.w.{len(data)}.{md5}.{sha}"
        bd = openat2(base, f".storied/blobs/{sha[:2]}", _OPATH)
        fd = os.open(".", tmpfile, 0o666, dir_fd=bd)
        os.write(fd, data)
        src = f"/proc/self/fd/{fd}"
        os.link(src, sha, dst_dir_fd=bd)
        vd = openat2(base, f".storied/versions/f{k}.bin", _OPATH)
        os.link(sha, record, src_dir_fd=bd, dst_dir_fd=vd, follow_symlinks=False)
        os.close(fd)
        rd = openat2(base, f".storied/recent/r{k}", _OPATH)
        os.rename(last[k], record, src_dir_fd=rd, dst_dir_fd=rd)
        last[k] = record
        tmp = f".f{k}.bin.storied-tmp-{i}"
        fd = os.open(tmp, _NEW, 0o666, dir_fd=base)
        os.write(fd, data)
        os.fstat(fd)
        os.close(fd)
        lock = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=base)
        fcntl.flock(lock, fcntl.LOCK_SH)  # plain replaces hold the directory shared (ADR 0031)
        os.replace(tmp, f"f{k}.bin", src_dir_fd=base, dst_dir_fd=base)
        os.close(lock)
        with os.scandir(f"/proc/self/fd/{rd}") as entries:
            [e.name for e in entries]
        for held in (bd, vd, rd):
            os.close(held)
        if journal:
            body = {"id": uuid.uuid4().hex, "type": "version_created", "path": f"f{k}.bin",
                    "version_id": record, "time": time.time(), "info": {"size": len(data)}}
            entry = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
            jd = openat2(base, ".storied/journal/000000000", _OPATH)
            fd = os.open(".", tmpfile, 0o666, dir_fd=jd)
            os.write(fd, entry)
            os.link(f"/proc/self/fd/{fd}", f"{next(seq):012d}.json", dst_dir_fd=jd)
            os.close(fd)
            os.close(jd)

    return op


def paired(ops: dict[str, Callable[[int], object]], rounds: int = 7, n: int = 500,
           clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Best seconds per call of each op, the ops interleaved round by round."""
    best = dict.fromkeys(ops, float("inf"))
    for _ in range(rounds):
        for name, op in ops.items():
            start = clock()
            for i in range(n):
                op(i)
            best[name] = min(best[name], (clock() - start) / n)
    return best


def versioned_figures() -> None:
    places = [("disk", tempfile.gettempdir())]
    if os.path.isdir("/dev/shm"):
        places.append(("tmpfs", "/dev/shm"))
    print("Short-history versioned 4 KiB write vs raw temp+rename and the system-call floor")
    for label, where in places:
        base = tempfile.mkdtemp(prefix="storied-vfloor-", dir=where)
        try:
            dirs = {k: os.path.join(base, k) for k in ("raw", "storied", "floor", "floorj")}
            for d in dirs.values():
                os.makedirs(d)
            sm = StorageManager()
            sm.configure([{"name": "m", "type": "local", "base_path": dirs["storied"],
                           "versioning": True}])
            nodes = [sm.node(f"m:f{i}.bin") for i in range(100)]
            for i in range(300):  # steady state: the directories of the next writes exist
                nodes[i % 100].write_bytes(_payload())
            ops = {
                "raw temp+rename": raw_atomic_write(dirs["raw"]),
                "storied versioned": lambda i, nodes=nodes: nodes[i % 100].write_bytes(_payload()),
                "floor, no journal": floor_write(dirs["floor"], False),
                "floor + journal": floor_write(dirs["floorj"], True),
            }
            for clock_name, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
                got = paired(ops, clock=clock)
                raw = got["raw temp+rename"]
                for name, sec in got.items():
                    print(f"  {label} {clock_name}: {name:<20} {sec * 1e6:8.1f} us"
                          f"  {raw / sec:5.2f}x raw")
        finally:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if "--versioned" not in sys.argv:
        main()
    versioned_figures()
