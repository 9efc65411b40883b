"""Copy and move of nodes: the thin node methods over :mod:`storied.core.transfer`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["TransferMethods"]


class TransferMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`: ``copy_to`` and ``move_to``."""

    def copy_to(self, dest: StorageNode | str, **options: Any) -> StorageNode:
        """Copy this file or directory; see :func:`storied.core.transfer.copy_node`."""
        from storied.core.transfer import copy_node

        node: StorageNode = self  # type: ignore[assignment]
        return copy_node(node, node._resolve_dest(dest), **options)

    def move_to(self, dest: StorageNode | str) -> StorageNode:
        """Move this file or directory: a rename when both are on the same mount, else copy +
        delete. This node then points at the destination (genro-storage behaviour)."""
        from storied.core.transfer import move_node

        node: StorageNode = self  # type: ignore[assignment]
        target = move_node(node, node._resolve_dest(dest))
        node._mount_name, node._path = target._mount_name, target._path
        node._backend, node._listed = target._backend, None
        return node

    def _resolve_dest(self, dest: StorageNode | str) -> StorageNode:
        node: StorageNode = self  # type: ignore[assignment]
        return node._manager.node(dest) if isinstance(dest, str) else dest
