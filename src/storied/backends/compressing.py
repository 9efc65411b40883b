"""Transparent compression of a mount's matching files (the ``compress`` key, issue 10).

Placeholder until the compression layer lands: a mount that asks for compression is refused
with a clear error instead of silently storing plain files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storied.backends.base import Backend
from storied.errors import StorageConfigError

__all__ = ["wrap"]


def wrap(name: str, config: Mapping[str, Any], backend: Backend) -> Backend:
    """``backend`` with the compression layer the mount's ``compress`` key asks for."""
    if config.get("compress"):
        raise StorageConfigError(f"Mount {name!r}: 'compress' is not available in this build")
    return backend
