"""Shared fixtures: memory stores are cleared between tests."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from storied.backends.memory import clear_memory_stores
from storied.testing.s3server import CountingProxy, MotoHandle, start_moto


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> Iterator[None]:
    clear_memory_stores()
    yield
    clear_memory_stores()


_STARTED: list[MotoHandle] = []


def pytest_configure(config: pytest.Config) -> None:
    """Collect young objects 70x less often and old ones rarely: the session holds servers
    (moto's objects live in this process) and ~1 M objects, and with the default thresholds
    full collections took 20 % of the suite's time. Reference counting frees everything
    acyclic as before; tests that need a cycle collected call ``gc.collect()``."""
    gc.set_threshold(50_000, 20, 100)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoHandle]:
    """A real S3 server (moto) on 127.0.0.1, one per test session."""
    handle = start_moto()
    _STARTED.append(handle)
    yield handle
    _STARTED.remove(handle)
    handle.stop()


@pytest.fixture(scope="module", autouse=True)
def _fresh_moto_per_module() -> Iterator[None]:
    """The session's moto server forgets every bucket after each test module: its objects
    live in this process, and a state grown over the whole session made every full garbage
    collection (and so random fixture setups) take seconds. No fixture wider than a module
    holds a bucket."""
    yield
    for handle in _STARTED:
        handle.reset()


@pytest.fixture(scope="session")
def proxy(moto: MotoHandle) -> Iterator[CountingProxy]:
    """A request-counting proxy in front of the moto server."""
    with CountingProxy(moto.endpoint_url) as counting:
        yield counting


@pytest.fixture
def small_journal_buckets(monkeypatch: pytest.MonkeyPatch) -> int:
    """Journal buckets of 10 entries instead of 1,000 (the size is a module constant the
    journal and its upkeep read at call time): tests on a remote store fill whole buckets in
    1 % of the requests. Returns the size."""
    from storied.events import _upkeep, journal

    monkeypatch.setattr(journal, "BUCKET", 10)
    monkeypatch.setattr(_upkeep, "BUCKET", 10)
    return 10


@pytest.fixture
def no_lock_left_held() -> Iterator[None]:
    """Release every lock a test left held (memory stores are recycled between tests, and one
    test's leaked lease must not time out another's)."""
    yield
    from storied.core import locking

    for locks in list(locking._HELD.values()):
        for lock in list(locks):
            lock.release()
