"""Deleting through a node: exactly what a listing shows, never storied's reserved area.

Mixed into :class:`~storied.core.node.StorageNode` ahead of the version methods. The rule (see
docs/adr/0006-node-safety.md): a recursive delete, and the delete half of a move, remove the
files a walk yields (with a tombstone each on a portable history), then the directories that
left empty, each with a non-recursive delete. Names a walk hides (``.storied`` at any depth,
temporary files, object keys no path can name) are never deleted, so the history under a
mount's ``.storied/`` survives ``storage.node('docs:').delete(recursive=True)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storied.backends.base import prune_empty_dirs

if TYPE_CHECKING:
    from storied.backends.base import Backend
    from storied.versioning.history import MountHistory

__all__ = ["RemovalMethods"]


class RemovalMethods:
    """``_remove`` and ``_remove_files`` of a node; relies on the version methods' plumbing."""

    _path: str

    if TYPE_CHECKING:

        @property
        def _be(self) -> Backend: ...

        @property
        def _history(self) -> MountHistory | None: ...

        @property
        def _portable(self) -> bool: ...

        def _need_delete(self) -> None: ...

        def _need_history(self, what: str = "versioning") -> MountHistory: ...

        def require_writable(self) -> None: ...

    @staticmethod
    def _refuse_foreign_history(node: Any) -> None:
        """A recursive delete never removes a versioned mount's files reached by another name
        (its history would record nothing and call every file stale; docs/adr/0019)."""
        from storied.core.foreign import versioned_below

        if not node.is_dir():
            return
        found = versioned_below(node._manager, node)
        if found is not None:
            from storied.errors import StoragePermissionError

            raise StoragePermissionError(
                f"{node.fullpath}: this tree holds the files of a versioned mount ({found}); "
                "delete them through that mount so that its history records the delete")

    def _remove(self, recursive: bool) -> None:
        """Delete, leaving a tombstone in a portable history for every file removed.

        Raises:
            StorageNotFoundError: Nothing is at this path.
            DirectoryNotEmptyError: A non-empty directory without ``recursive``.
            StoragePermissionError: The mount may not delete, or the node is version-pinned.
        """
        from storied.core.eventing import needs_events, notify_deleted
        from storied.core.locking import guard_write

        self.require_writable()
        guard_write(self)  # type: ignore[arg-type]
        self._need_delete()
        node: Any = self
        if recursive:
            self._refuse_foreign_history(node)
        if not self._portable:
            if not needs_events(node, "file_deleted"):
                self._be.delete(self._path, recursive=recursive)
                return
            info = self._be.info(self._path)
            if info.is_dir and recursive:  # the files, for their events: one walk
                self._remove_files(sorted(entry.path for entry in self._be.walk(self._path)))
                return
            self._be.delete(self._path)
            if not info.is_dir:
                notify_deleted(node)
            return
        history = self._need_history()
        info = self._be.info(self._path)
        if not info.is_dir:
            history.delete(self._path)
            notify_deleted(node)
            return
        if not recursive:
            self._be.delete(self._path)
            return
        self._remove_files(sorted(entry.path for entry in self._be.walk(self._path)))

    def _remove_files(self, files: list[str]) -> None:
        """Delete exactly ``files`` (paths below this directory node), then the directories
        below it, and itself unless it is the mount root, that this left empty; a
        ``file_deleted`` event for each file.

        Used by recursive deletes and by moves, which delete only what they copied.
        """
        from storied.core.eventing import needs_events, notify_deleted

        self._need_delete()
        history = self._history if self._portable else None
        related: Any = self
        announce = needs_events(related, "file_deleted")  # else no node per file is made
        if history is not None:
            for path in files:
                history.delete(path)
                if announce:
                    notify_deleted(related._related(path))
        else:
            self._be.delete_many([(path, None) for path in files])
            for path in files if announce else ():
                notify_deleted(related._related(path))
        prune_empty_dirs(self._be, self._path)
