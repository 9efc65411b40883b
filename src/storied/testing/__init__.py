"""Test support shipped with storied: conformance suites, hostile paths, local test servers,
:class:`MockBackend` (latency and seeded faults) and record/replay cassettes.

``from storied.testing import MockBackend`` imports only what that needs (the servers and
suites are imported from their own modules).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storied.testing.doubles import FaultyBackend
    from storied.testing.mock import MockBackend, StorageTimeoutError
    from storied.testing.recording import CassetteSession, ReplayMismatchError

__all__ = [
    "CassetteSession",
    "FaultyBackend",
    "MockBackend",
    "ReplayMismatchError",
    "StorageTimeoutError",
]

_WHERE = {
    "CassetteSession": "storied.testing.recording",
    "FaultyBackend": "storied.testing.doubles",
    "MockBackend": "storied.testing.mock",
    "ReplayMismatchError": "storied.testing.recording",
    "StorageTimeoutError": "storied.testing.mock",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'storied.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
