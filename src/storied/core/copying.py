"""Copy and move of nodes: the thin node methods over :mod:`storied.core.transfer`."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from storied.core._filecopy import SkipStrategy
from storied.core._parallel import OnError

if TYPE_CHECKING:
    from storied.core._parallel import TransferReport
    from storied.core.node import StorageNode

__all__ = ["TransferMethods"]


class TransferMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`: ``copy_to`` and ``move_to``."""

    def copy_to(
        self,
        dest: StorageNode | str,
        *,
        include: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        filter: Callable[[StorageNode, str], bool] | None = None,
        skip: SkipStrategy | str = SkipStrategy.NEVER,
        skip_fn: Callable[[StorageNode, StorageNode], bool] | None = None,
        progress: Callable[[int, int], object] | None = None,
        on_file: Callable[[StorageNode], object] | None = None,
        on_skip: Callable[[StorageNode, str], object] | None = None,
        workers: int | None = None,
        executor: Executor | None = None,
        progress_bytes: Callable[[int, int], object] | None = None,
        on_error: OnError = "raise",
        report: TransferReport | None = None,
    ) -> StorageNode:
        """Copy this file or directory to ``dest`` (a node or ``'mount:path'``); return the
        destination node (genro-storage behaviour).

        Args:
            dest: Where to copy; a directory copy creates it.
            include: fnmatch glob(s) on the path relative to the copied directory: only these.
            exclude: Glob(s) of files left out.
            filter: ``filter(node, relpath)`` returns False to leave a file out.
            skip: When to leave an existing destination file alone: ``'never'``, ``'exists'``,
                ``'size'``, ``'hash'``, ``'custom'`` (see :class:`SkipStrategy`).
            skip_fn: ``skip_fn(src, dest)`` for ``skip='custom'``.
            progress: ``progress(done, total)`` after every file (copied, skipped or failed).
            on_file: ``on_file(src_node)`` after each file copied.
            on_skip: ``on_skip(src_node, reason)`` for each file left out.
            workers: Files copied at once (default 8 when either side is remote, 1 for
                local-to-local).
            executor: Any ``concurrent.futures.Executor`` to run the copies on (a thread pool,
                a process pool, a Dask client's ``get_executor()``).
            progress_bytes: ``progress_bytes(done, total)`` in bytes, also within large files.
            on_error: ``'raise'`` stops at the first failed file; ``'continue'`` copies the
                others; either raises the first error at the end, with ``.report``.
            report: A :class:`~storied.core.transfer.TransferReport` filled in file by file.

        Every option is keyword-only (as before, when they were ``**options``). Every callback
        is called from the calling thread. Full contract:
        :func:`storied.core.transfer.copy_node`.
        """
        from storied.core.transfer import copy_node

        node: StorageNode = self  # type: ignore[assignment]
        return copy_node(node, node._resolve_dest(dest), include, exclude, filter, skip,
                         skip_fn, progress, on_file, on_skip, workers=workers,
                         executor=executor, progress_bytes=progress_bytes, on_error=on_error,
                         report=report)

    def move_to(
        self,
        dest: StorageNode | str,
        *,
        workers: int | None = None,
        executor: Executor | None = None,
        progress: Callable[[int, int], object] | None = None,
        progress_bytes: Callable[[int, int], object] | None = None,
        on_error: OnError = "raise",
        report: TransferReport | None = None,
    ) -> StorageNode:
        """Move this file or directory: a rename when both are on the same mount, else copy +
        delete. This node then points at the destination (genro-storage behaviour).

        Across mounts the copies run as in :meth:`copy_to` (``workers``, ``executor``,
        ``progress``, ``progress_bytes``, ``report``); a source file is deleted only after its
        copy is verified. ``on_error='raise'`` deletes nothing when any copy failed;
        ``'continue'`` deletes the sources of the verified copies only. See
        :func:`storied.core.transfer.move_node`.
        """
        from storied.core.transfer import move_node

        node: StorageNode = self  # type: ignore[assignment]
        target = move_node(node, node._resolve_dest(dest), workers=workers, executor=executor,
                           progress=progress, progress_bytes=progress_bytes, on_error=on_error,
                           report=report)
        node._mount_name, node._path = target._mount_name, target._path
        node._backend, node._listed = target._backend, None
        return node

    def _resolve_dest(self, dest: StorageNode | str) -> StorageNode:
        node: StorageNode = self  # type: ignore[assignment]
        return node._manager.node(dest) if isinstance(dest, str) else dest
