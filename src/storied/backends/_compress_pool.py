"""The worker threads that compress and decompress members (docs/adr/0030-parallel-compression.md).

zlib, ISA-L and zstandard release the GIL while they work, so independent members (4 MiB of
original each) compress and decompress on several cores at once. One pool serves every stream
of the process: :data:`THREADS` workers (the CPUs this process may run on, at most 8). Each
stream keeps at most :func:`ahead` members in flight (submitted and not yet handed on, never
more than :data:`MAX_AHEAD`), so its memory stays bounded by a few members whatever the file
size and however many streams run at once; the tasks are pure functions (bytes in, bytes
out) that never wait on one another, so a stream can never deadlock the pool. After a
``fork`` the child builds its own pool on first use.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["MAX_AHEAD", "THREADS", "ahead", "cancel", "pool", "set_threads"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Worker threads of the shared pool.
THREADS = max(1, min(8, _cpus()))
_POOL: list[ThreadPoolExecutor] = []
_LOCK = threading.Lock()


#: At most this many members in flight per stream (20 MiB of input at 4 MiB a member).
MAX_AHEAD = 5


def ahead() -> int:
    """Members one stream keeps in flight: one per worker plus one (the next to hand on), at
    most :data:`MAX_AHEAD`."""
    return min(THREADS + 1, MAX_AHEAD)


def pool() -> ThreadPoolExecutor:
    """The shared pool (made at first use)."""
    with _LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="storied-z"))
        return _POOL[0]


def set_threads(count: int | None) -> None:
    """Use ``count`` workers from now on (None: one per CPU, at most 8); the old pool finishes
    its queued members and ends. For benchmarks (one thread = the raw codec's speed) and
    applications that want to bound the CPU compression takes."""
    global THREADS
    with _LOCK:
        THREADS = max(1, count if count is not None else min(8, _cpus()))
        old = _POOL[:]
        _POOL.clear()
    for executor in old:
        executor.shutdown(wait=False)


def cancel(futures: Any) -> None:
    """Cancel the ``futures`` not yet started (a closed or failed stream: their results would be
    dropped; running ones finish and are dropped)."""
    for fut in futures:
        if isinstance(fut, Future):
            fut.cancel()


def _forget() -> None:  # pragma: no cover - runs in a forked child
    global _LOCK
    _LOCK = threading.Lock()
    _POOL.clear()  # the parent's workers do not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)
