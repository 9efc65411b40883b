"""Lock renewals start late (ADR 0014): a lock released before its first renewal starts no
thread of its own; one held longer is renewed from its own thread and keeps its lease past
several TTLs; the process-wide timer's queue stays bounded however many locks come and go,
survives a raising call, and works again in a forked child."""

from __future__ import annotations

import os
import threading
import time

import pytest

from storied import StorageManager
from storied.core._lock_timer import TIMER, Timer
from storied.core.locking import _read_tagged, _where


def _storage() -> StorageManager:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    return storage


def _lock_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith("storied-lock-") and t.name != "storied-lock-timer"]


def test_a_short_lock_starts_no_renewal_thread() -> None:
    node = _storage().node("m:short.txt")
    before = len(_lock_threads())
    for _ in range(50):
        with node.lock(timeout=5, ttl=30) as lock:
            assert lock.held
            assert len(_lock_threads()) == before
    assert lock._thread is None


def test_a_long_held_lock_is_renewed_from_its_own_thread_past_several_ttls() -> None:
    node = _storage().node("m:long.txt")
    with node.lock(timeout=5, ttl=0.3) as lock:
        backend, key, _ = _where(node)
        first = _read_tagged(backend, key)
        time.sleep(1.2)  # four TTLs: without renewals the lease would be lost
        assert lock.held and not lock.lost
        assert lock._thread is not None and lock._thread.is_alive()
        assert _read_tagged(backend, key) != first  # rewritten since the grant
        node.write_bytes(b"guarded write still allowed")
    assert not lock.held
    lock_thread = lock._thread
    assert lock_thread is not None and not lock_thread.is_alive()  # joined by release


def test_reacquiring_one_lock_object_ignores_the_first_grants_timer_call() -> None:
    node = _storage().node("m:again.txt")
    lock = node.lock(timeout=5, ttl=0.3)
    lock.acquire()
    lock.release()
    lock.acquire()  # the first grant's timer call comes while this grant is held
    try:
        time.sleep(0.9)
        assert lock.held
        threads = [t for t in _lock_threads() if t is lock._thread]
        assert len(threads) == 1  # one renewal thread, for the current grant only
    finally:
        lock.release()


def test_the_timer_queue_stays_bounded_however_many_locks_come_and_go() -> None:
    node = _storage().node("m:churn.txt")
    for _ in range(2000):
        with node.lock(timeout=5, ttl=60):
            pass
    assert TIMER.pending() < 300  # cancelled calls are dropped, not kept for 20 s each


def test_a_raising_call_does_not_stop_the_timer(caplog: pytest.LogCaptureFixture) -> None:
    timer = Timer()
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    timer.call_later(0, boom)
    timer.call_later(0.05, done.set)
    assert done.wait(5)
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_calls_run_in_time_order_and_cancelled_ones_never() -> None:
    timer = Timer()
    seen: list[str] = []
    done = threading.Event()
    timer.call_later(0.2, lambda: (seen.append("late"), done.set()))
    timer.call_later(0.05, lambda: seen.append("early"))
    handle = timer.call_later(0.1, lambda: seen.append("cancelled"))
    timer.cancel(handle)
    timer.cancel(handle)  # twice: no effect
    assert done.wait(5)
    assert seen == ["early", "late"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_renews_its_own_locks() -> None:
    node = _storage().node("m:fork.txt")
    with node.lock(timeout=5, ttl=0.3):
        pass  # the parent's timer thread runs now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a long-held lock must still be renewed
        os.close(read)
        ok = b"0"
        try:
            child = _storage().node("m:child.txt")
            with child.lock(timeout=5, ttl=0.3) as lock:
                time.sleep(1.0)
                ok = b"1" if lock.held and not lock.lost else b"0"
        finally:
            os.write(write, ok)
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
