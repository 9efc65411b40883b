"""One process-wide timer for :class:`storied.core.locking.Lock` renewals.

A held lock must be rewritten every ``ttl / 3`` seconds, by a thread of its own (a renewal
that hangs on a slow storage must not delay another lock's). Most locks are released long
before their first renewal, and a thread's start and join (about 0.2 ms) cost more than the
two writes of a lock on memory or on a local disk. So a lock asks this timer to call it back
at its first renewal time, and starts its renewal thread only if it is still held then. The
timer thread itself never touches a storage: it only makes those calls, which must be quick.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["TIMER", "Timer"]

log: logging.Logger = logging.getLogger("storied.lock")

Call = Callable[[], object]


class Timer:
    """Calls functions after given delays (:func:`time.monotonic`), from one daemon thread started
    on first use (again in a forked child). A call that raises is logged, never stops the
    timer."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, list[Call | None]]] = []
        self._order = itertools.count()
        self._cancelled = 0
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, call: Call) -> list[Call | None]:
        """Call ``call()`` in ``delay`` seconds (at once when not positive); ``call`` must be
        quick. Returns a handle for :meth:`cancel`."""
        handle: list[Call | None] = [call]
        when = time.monotonic() + delay
        with self._cond:
            seq = next(self._order)
            heapq.heappush(self._heap, (when, seq, handle))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="storied-lock-timer")
                self._thread.start()
            elif self._heap[0][1] == seq:
                self._cond.notify()  # the new call is the earliest: wake the thread
        return handle

    def cancel(self, handle: list[Call | None]) -> None:
        """Forget the call of ``handle`` (no effect once made). Cancelled calls are dropped
        from the queue when they are more than half of it: memory stays bounded by the calls
        still wanted, however many locks come and go."""
        with self._cond:
            if handle[0] is None:
                return
            handle[0] = None
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2][0] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        """How many calls wait in the queue, cancelled ones not yet dropped included."""
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    left = self._heap[0][0] - time.monotonic() if self._heap else None
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(left)
                handle = heapq.heappop(self._heap)[2]
                call, handle[0] = handle[0], None
                if call is None:
                    self._cancelled = max(0, self._cancelled - 1)
                    continue
            try:
                call()
            except Exception:  # a lock's own bug must not stop every lock's renewals
                log.exception("storied lock timer call %r failed", call)


#: The process's timer.
TIMER = Timer()

os.register_at_fork(after_in_child=TIMER._reset)  # the parent's thread is not in the child
