"""Legal hold, retention and storage class of a node's versions (issue 11).

Placeholder mixin: the methods land here (owned by the object-lock work)."""

from __future__ import annotations

__all__ = ["ObjectLockMethods"]


class ObjectLockMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""
