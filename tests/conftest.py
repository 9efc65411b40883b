"""Shared fixtures: memory stores are cleared between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storied.backends.memory import clear_memory_stores


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> Iterator[None]:
    clear_memory_stores()
    yield
    clear_memory_stores()
