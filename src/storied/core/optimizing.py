"""The manager's storage optimisation methods (``find_duplicates``, ``deduplicate``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.optimize.dedup import DuplicateGroup

__all__ = ["OptimizeMethods"]


class OptimizeMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    def find_duplicates(self, prefix: str, *, min_size: int = 1,
                        progress: Callable[[int, int], object] | None = None
                        ) -> list[DuplicateGroup]:
        """Groups of identical files below ``'mount:prefix'``, most wasted bytes first (see
        :mod:`storied.optimize.dedup` for what is read: files of a unique size never are)."""
        from storied.optimize.dedup import find_duplicates

        return find_duplicates(cast("StorageManager", self), prefix, min_size=min_size,
                               progress=progress)

    def deduplicate(self, prefix: str, strategy: str = "reference", dry_run: bool = False,
                    keep: Callable[[DuplicateGroup], Any] | None = None) -> dict[str, Any]:
        """Keep one copy of each group of identical files below ``'mount:prefix'``; see
        :mod:`storied.optimize.apply` for the strategies and guarantees."""
        from storied.optimize.apply import deduplicate

        return deduplicate(cast("StorageManager", self), prefix, strategy, dry_run, keep)
