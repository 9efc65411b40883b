"""The manager's bulk version management and snapshot methods (implemented in
:mod:`storied.versioning.bulk`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["BulkMethods"]


def _m(mixin: object) -> StorageManager:
    return cast("StorageManager", mixin)


class BulkMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    def bulk_compact_versions(self, prefix: str, dry_run: bool = False,
                              progress: Callable[[int, int], object] | None = None, *,
                              workers: int | None = None) -> dict[str, int]:
        """Compact every file with history under ``'mount:prefix'``; the removal batches run
        on ``workers`` threads (default 8 on a remote storage, else 1).

        Returns:
            ``{fullpath: versions removed}`` (with ``dry_run``: that would be removed).
        """
        from storied.versioning.bulk import bulk_compact

        return bulk_compact(_m(self), prefix, dry_run, progress, workers=workers)

    def bulk_cleanup_versions(self, prefix: str, keep_last: int | None = None,
                              keep_days: float | None = None, dry_run: bool = False,
                              progress: Callable[[int, int], object] | None = None, *,
                              workers: int | None = None) -> dict[str, list[str]]:
        """Apply ``cleanup_versions`` rules to every file under ``'mount:prefix'``; the
        removal batches run on ``workers`` threads (default 8 on a remote storage, else 1).

        Returns:
            ``{fullpath: [removed version ids]}`` (with ``dry_run``: that would be removed).
        """
        from storied.versioning.bulk import bulk_cleanup

        return bulk_cleanup(_m(self), prefix, keep_last, keep_days, dry_run, progress,
                            workers=workers)

    def create_snapshot(self, prefix: str, tag: str, *, workers: int | None = None
                        ) -> dict[str, Any]:
        """Record the current version of every file under ``'mount:prefix'`` as ``tag``
        (each file's versions listed on ``workers`` threads: default 8 on a remote storage,
        else 1)."""
        from storied.versioning.bulk import create_snapshot

        return create_snapshot(_m(self), prefix, tag, workers=workers)

    def list_snapshots(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every snapshot (optionally only those within ``'mount:prefix'``), oldest first."""
        from storied.versioning.bulk import list_snapshots

        return list_snapshots(_m(self), prefix)

    def get_snapshot(self, tag: str) -> dict[str, Any]:
        """A snapshot's tag, prefix, creation time and files (``{path: version_id}``)."""
        from storied.versioning.bulk import get_snapshot

        return get_snapshot(_m(self), tag)

    def restore_snapshot(self, tag: str, dry_run: bool = False, delete_new: bool = False,
                         progress: Callable[[int, int], object] | None = None, *,
                         workers: int | None = None) -> dict[str, list[str]]:
        """Write every file of snapshot ``tag`` back as it was (new versions), each file on
        ``workers`` threads (default 8 on a remote storage, else 1); see
        :func:`storied.versioning.bulk.restore_snapshot`."""
        from storied.versioning.bulk import restore_snapshot

        return restore_snapshot(_m(self), tag, dry_run, delete_new, progress, workers=workers)

    def delete_snapshot(self, tag: str) -> None:
        """Remove snapshot ``tag``."""
        from storied.versioning.bulk import delete_snapshot

        delete_snapshot(_m(self), tag)

