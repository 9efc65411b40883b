"""Sequential reads of one pinned S3 object, fetched ahead by a small thread pool.

Private to :mod:`storied.backends._s3_stream`. A caller that is going to read a stream from
start to end in chunks (``node.stream_download``) opens it inside :func:`sequential_reads`;
the S3 adapter then bounds the first GET to one chunk and keeps up to ``max_concurrency``
further chunks in flight (each one bounded ranged GET pinned to the version or ETag the first
GET returned), handed over strictly in order. Any other backend may ignore the hint: it only
says how the stream will be read, never what it holds.

Memory: at most ``workers`` chunks are fetched ahead, plus the one being read.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["Prefetcher", "sequential_hint", "sequential_reads"]

_HINT: ContextVar[int | None] = ContextVar("storied_sequential_reads", default=None)


@contextmanager
def sequential_reads(chunk_size: int) -> Iterator[None]:
    """Within the block, streams opened (in this context) will be read sequentially in chunks
    of ``chunk_size`` bytes: an S3 stream bounds its first GET to one chunk and prefetches."""
    token = _HINT.set(max(1, int(chunk_size)))
    try:
        yield
    finally:
        _HINT.reset(token)


def sequential_hint() -> int | None:
    """The chunk size of the enclosing :func:`sequential_reads`, or None."""
    return _HINT.get()


class Prefetcher:
    """Chunks ``[p, p + chunk)`` of a stream from ``start`` to ``stop``, fetched ahead.

    Args:
        fetch: ``fetch(a, b)`` returns exactly the stream's bytes ``[a, b)`` (called in worker
            threads; it does its own resuming and raises storied errors).
        start: Stream position of the first chunk.
        stop: Stream position where the chunks end (the stream's size).
        chunk: Bytes per chunk (one GET each).
        workers: Chunks in flight at most (threads of the pool).
    """

    def __init__(
        self, fetch: Callable[[int, int], bytes], start: int, stop: int, chunk: int, workers: int
    ) -> None:
        self._fetch, self._stop, self._chunk = fetch, stop, max(1, chunk)
        self._next = start  # the position of the next chunk to hand over
        self._scheduled = start  # where the next chunk to schedule starts
        self._depth = max(1, workers)
        self._pool = cf.ThreadPoolExecutor(self._depth, thread_name_prefix="storied-s3-get")
        self._queue: deque[tuple[int, cf.Future[bytes]]] = deque()
        self._fill()

    @property
    def position(self) -> int:
        """Where the next chunk handed over starts."""
        return self._next

    def _fill(self) -> None:
        while len(self._queue) < self._depth and self._scheduled < self._stop:
            a = self._scheduled
            b = min(self._stop, a + self._chunk)
            self._queue.append((a, self._pool.submit(self._fetch, a, b)))
            self._scheduled = b

    def take(self, position: int) -> bytes | None:
        """The chunk starting at ``position`` (waiting for it), or None when ``position`` is not
        where the next chunk starts (the reader sought elsewhere) or nothing is left. A failed
        fetch raises its error here, in order."""
        if position != self._next or not self._queue:
            return None
        a, future = self._queue.popleft()
        data = future.result()
        self._next = a + len(data)
        self._fill()
        return data

    def close(self) -> None:
        """Cancel what has not started and wait for the running fetches (one chunk each)."""
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
