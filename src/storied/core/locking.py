"""Lease locks on nodes (``node.lock()``) and the guard writes check."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["LockMethods", "guard_write"]


def guard_write(node: StorageNode) -> None:
    """Called by every write and delete of ``node`` before it touches storage: raises
    :class:`~storied.errors.LockLostError` when this process holds a lock on the node's path
    whose lease is lost."""


class LockMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""
