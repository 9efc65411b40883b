"""Nodes of mounts whose files are local files: they are :class:`os.PathLike`.

``os.fspath(node)`` is the real absolute path, so ``pandas.read_csv(node)``, ``Image.open(node)``
and ``open(node)`` work on local mounts. Other nodes do not pretend to be paths (they are not
``os.PathLike``), and no node is a file object. Going through the path bypasses storied: a write
to it is not a version on a versioned mount (write through the node for that), and a node
pinned to a version has no path (``TypeError``: the path is the current file's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storied.backends.base import Backend
from storied.core.node import StorageNode
from storied.errors import StorageError

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["LocalStorageNode", "node_class"]


def node_class(manager: StorageManager, mount: str, backend: Backend) -> type[StorageNode]:
    """:class:`LocalStorageNode` for mounts whose files are local files, else
    :class:`StorageNode` (decided once per mount; the manager forgets it when mounts change)."""
    local = manager._local_mounts.get(mount)
    if local is None:
        try:
            local = backend.local_path("") is not None
        except StorageError:
            local = False
        manager._local_mounts[mount] = local
    return LocalStorageNode if local else StorageNode


class LocalStorageNode(StorageNode):
    """A node of a local mount (``resolved_path`` is not None)."""

    def __fspath__(self) -> str:
        if self._version is not None:
            raise TypeError(
                f"{self.fullpath} is pinned to version {self._version!r}: it has no file path "
                "(os.fspath would name the current file); use node.open('rb')")
        where = self.resolved_path
        if where is None:  # pragma: no cover - made only for local mounts
            raise TypeError(f"{self.fullpath} is not a local file")
        return where
