"""The manager's storage optimisation methods (``find_duplicates``, ``deduplicate``)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.optimize.dedup import DuplicateGroup

__all__ = ["OptimizeMethods"]


class OptimizeMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    def find_duplicates(self, prefix: str, *, min_size: int = 1,
                        progress: Callable[[int, int], object] | None = None,
                        workers: int | None = None, executor: Executor | None = None
                        ) -> list[DuplicateGroup]:
        """Groups of identical files below ``'mount:prefix'``, most wasted bytes first (see
        :mod:`storied.optimize.dedup` for what is read: files of a unique size never are).
        ``workers``: files hashed at once (default 1 on local disks, 8 elsewhere);
        ``executor``: any ``concurrent.futures.Executor`` to hash on instead."""
        from storied.optimize.dedup import find_duplicates

        return find_duplicates(cast("StorageManager", self), prefix, min_size=min_size,
                               progress=progress, workers=workers, executor=executor)

    def deduplicate(self, prefix: str, strategy: str = "reference", dry_run: bool = False,
                    keep: Callable[[DuplicateGroup], Any] | None = None, *,
                    workers: int | None = None, executor: Executor | None = None
                    ) -> dict[str, Any]:
        """Keep one copy of each group of identical files below ``'mount:prefix'``; see
        :mod:`storied.optimize.apply` for the strategies and guarantees (``workers`` /
        ``executor``: groups handled at once, as for :meth:`find_duplicates`)."""
        from storied.optimize.apply import deduplicate

        return deduplicate(cast("StorageManager", self), prefix, strategy, dry_run, keep,
                           workers=workers, executor=executor)

    def collect_references(self, mount: str, *, grace: float = 3600.0,
                           dry_run: bool = False) -> dict[str, Any]:
        """Remove the content copies of ``strategy='reference'`` that no reference names any
        more (two passes ``grace`` seconds apart, safe against a concurrent deduplicate; see
        :func:`storied.optimize.references.collect`)."""
        from storied.optimize.references import collect

        return collect(cast("StorageManager", self), mount.rstrip(":"), grace=grace,
                       dry_run=dry_run)
