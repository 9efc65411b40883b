"""Shared fixtures: memory stores are cleared between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storied.backends.memory import clear_memory_stores
from storied.testing.s3server import CountingProxy, MotoHandle, start_moto


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> Iterator[None]:
    clear_memory_stores()
    yield
    clear_memory_stores()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoHandle]:
    """A real S3 server (moto) on 127.0.0.1, one per test session."""
    handle = start_moto()
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def proxy(moto: MotoHandle) -> Iterator[CountingProxy]:
    """A request-counting proxy in front of the moto server."""
    with CountingProxy(moto.endpoint_url) as counting:
        yield counting
