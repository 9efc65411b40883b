"""Operations over every file under a prefix: bulk compaction and cleanup, snapshots.

Each works on both engines. Deletions are collected first and sent in batches (S3: one
DeleteObjects per 1,000 versions), after one listing per file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.errors import (
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.policies.retention import plan_retention
from storied.versioning.catalog import Refs, Snapshot
from storied.versioning.engine import Version
from storied.versioning.history import MountHistory, compact_plan

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = [
    "bulk_cleanup",
    "bulk_compact",
    "create_snapshot",
    "delete_snapshot",
    "get_snapshot",
    "list_snapshots",
    "restore_snapshot",
]

Progress = Callable[[int, int], object]
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def _split(manager: StorageManager, prefix: str) -> tuple[str, str, MountHistory]:
    mount, sub = paths.split_fullpath(prefix)
    history = manager.history(mount)
    if history is None:
        raise UnsupportedOperation(f"Mount {mount!r} keeps no history")
    return mount, paths.check_public(paths.normalize(sub)), history


def _files(history: MountHistory, sub: str) -> list[str]:
    return sorted(history.history_paths(sub))


Choose = Callable[[list[Version], Refs, dict[str, list[str]]], list[Version]]


def _bulk(manager: StorageManager, prefix: str, dry_run: bool, progress: Progress | None,
          choose: Choose) -> dict[str, list[Version]]:
    """One flat listing of every version under ``prefix``, one listing of the refs (plus a read
    per file that has tags or annotations), the snapshot manifests once; then ``choose`` picks
    each file's doomed versions and they are deleted in batches."""
    mount, sub, history = _split(manager, prefix)
    _need_delete(manager, mount, dry_run)
    root = history._p(sub)
    everything = history.engine.all_versions(root)
    if not everything and root:  # the prefix may name a single file
        found = history.engine.versions(root)
        everything = {root: found} if found else {}
    refs = history.engine.catalog.refs_below(root)
    snapshots = history.engine.catalog.snapshot_refs()
    result: dict[str, list[Version]] = {}
    items: list[tuple[str, str | None]] = []
    files = sorted(everything)
    for done, path in enumerate(files, start=1):
        doomed = choose(everything[path], refs.get(path, Refs()), snapshots.get(path, {}))
        if doomed:
            result[f"{mount}:{paths.relative_to(path, history.prefix)}"] = doomed
            items += history.engine.removal_items(path, doomed)
        if progress:
            progress(done, len(files))
    if items and not dry_run:
        history.engine.remove_items(items)
    return result


def _tag_map(refs: Refs) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for name, vid in refs.tags.items():
        tags.setdefault(vid, []).append(name)
    return tags


def bulk_compact(manager: StorageManager, prefix: str, dry_run: bool = False,
                 progress: Progress | None = None) -> dict[str, int]:
    """Compact every file with history under ``prefix``; ``{fullpath: versions removed}``."""

    def choose(found: list[Version], refs: Refs, snaps: dict[str, list[str]]) -> list[Version]:
        return compact_plan(found, set(refs.tags.values()) | set(snaps))

    return {p: len(v) for p, v in _bulk(manager, prefix, dry_run, progress, choose).items()}


def bulk_cleanup(manager: StorageManager, prefix: str, keep_last: int | None = None,
                 keep_days: float | None = None, dry_run: bool = False,
                 progress: Progress | None = None) -> dict[str, list[str]]:
    """Apply retention to every file under ``prefix``; ``{fullpath: [removed version ids]}``."""
    now = datetime.now(UTC)

    def choose(found: list[Version], refs: Refs, snaps: dict[str, list[str]]) -> list[Version]:
        plan = plan_retention(found, now, keep_last, keep_days, _tag_map(refs), snaps)
        return [v for v, d in zip(found, plan, strict=True) if not d.keep]

    result = _bulk(manager, prefix, dry_run, progress, choose)
    return {p: [v.version_id for v in found] for p, found in result.items()}


def _need_delete(manager: StorageManager, mount: str, dry_run: bool) -> None:
    if not dry_run and not manager.get_backend(mount).capabilities.delete:
        from storied.errors import StoragePermissionError

        raise StoragePermissionError(f"Mount {mount!r} does not have delete permission")


# ---------------------------------------------------------------------------------- snapshots
def create_snapshot(manager: StorageManager, prefix: str, tag: str) -> dict[str, Any]:
    """Record which version of every file under ``prefix`` is current (no content copied).

    Each file's current version comes from its own listing, so a file written meanwhile is
    recorded at a version that really existed. Files without a current version (deleted)
    are left out.

    Raises:
        StorageAlreadyExistsError: A snapshot with that tag exists on any versioned mount.
        StorageConfigError: The tag is not a plain name.
    """
    if not _TAG.match(tag):
        raise StorageConfigError(f"Invalid snapshot tag {tag!r}: use letters, digits, _ . -")
    mount, sub, history = _split(manager, prefix)
    if not manager.get_backend(mount).capabilities.write:
        from storied.errors import StoragePermissionError

        raise StoragePermissionError(f"Mount {mount!r} is read-only")
    if _find(manager, tag) is not None:
        raise StorageAlreadyExistsError(f"Snapshot {tag!r} already exists")
    files: dict[str, str] = {}
    for path in _files(history, sub):
        current = [v for v in history.versions(path) if v.is_latest]
        if current:
            files[history._p(path)] = current[0].version_id
    snapshot = Snapshot(tag, f"{mount}:{sub}", time.time(), files, history._p(sub))
    history.engine.catalog.create_snapshot(snapshot)
    return _describe(snapshot)


def _histories(manager: StorageManager) -> list[tuple[str, MountHistory]]:
    found = []
    for mount in manager.get_mount_names():
        if mount in manager._parents:
            continue
        history = manager.history(mount)
        if history is not None:
            found.append((mount, history))
    return found


def _find(manager: StorageManager, tag: str) -> tuple[str, MountHistory, Snapshot] | None:
    for mount, history in _histories(manager):
        if tag in set(history.engine.catalog.snapshot_tags()):
            return mount, history, history.engine.catalog.snapshot(tag)
    return None


def _describe(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "tag": snapshot.tag,
        "prefix": snapshot.prefix,
        "created": datetime.fromtimestamp(snapshot.created, UTC),
        "files": dict(snapshot.files),
    }


def list_snapshots(manager: StorageManager, prefix: str | None = None) -> list[dict[str, Any]]:
    """Snapshots (tag, prefix, created, file count), optionally only those within ``prefix``."""
    rows = []
    for _mount, history in _histories(manager):
        for tag in history.engine.catalog.snapshot_tags():
            snap = history.engine.catalog.snapshot(tag)
            if prefix is None or _within(snap.prefix, prefix):
                row = _describe(snap)
                row["file_count"] = len(row.pop("files"))
                rows.append(row)
    return sorted(rows, key=lambda r: r["created"])


def _within(snapshot_prefix: str, prefix: str) -> bool:
    mount, sub = paths.split_fullpath(snapshot_prefix)
    want_mount, want_sub = paths.split_fullpath(prefix)
    return mount == want_mount and paths.is_under(sub, paths.normalize(want_sub))


def get_snapshot(manager: StorageManager, tag: str) -> dict[str, Any]:
    """The snapshot's tag, prefix, creation time and ``files`` (``{path: version_id}``)."""
    found = _find(manager, tag)
    if found is None:
        raise StorageNotFoundError(f"No snapshot {tag!r}")
    return _describe(found[2])


def delete_snapshot(manager: StorageManager, tag: str) -> None:
    """Remove a snapshot (its versions lose that protection; nothing else changes)."""
    found = _find(manager, tag)
    if found is None:
        raise StorageNotFoundError(f"No snapshot {tag!r}")
    mount, history, _ = found
    _need_delete(manager, mount, False)
    history.engine.catalog.delete_snapshot(tag)


def restore_snapshot(manager: StorageManager, tag: str, dry_run: bool = False,
                     delete_new: bool = False, progress: Progress | None = None
                     ) -> dict[str, list[str]]:
    """Bring every file of a snapshot back to its recorded version, as new versions.

    Files already at the recorded content are left alone. Files created under the prefix after
    the snapshot are reported in ``new`` and deleted only with ``delete_new=True``.

    Returns:
        ``{'restored': [...], 'unchanged': [...], 'new': [...], 'deleted': [...]}`` (paths).
    """
    found = _find(manager, tag)
    if found is None:
        raise StorageNotFoundError(f"No snapshot {tag!r}")
    mount, history, snap = found
    sub = paths.relative_to(snap.root, history.prefix)
    report: dict[str, list[str]] = {"restored": [], "unchanged": [], "new": [], "deleted": []}
    recorded = {paths.relative_to(p, history.prefix): vid for p, vid in snap.files.items()}
    for done, (path, vid) in enumerate(sorted(recorded.items()), start=1):
        _restore_one(manager, mount, history, path, vid, dry_run, report)
        if progress:
            progress(done, len(recorded))
    for path in _files(history, sub):
        node = manager.node(mount, path) if path else None
        if path not in recorded and node is not None and node.exists():
            report["new"].append(path)
            if delete_new and not dry_run:
                node.delete()
                report["deleted"].append(path)
    return report


def _restore_one(manager: StorageManager, mount: str, history: MountHistory, path: str,
                 vid: str, dry_run: bool, report: dict[str, list[str]]) -> None:
    versions = history.versions(path)
    target = next((v for v in versions if v.version_id == vid), None)
    if target is None:
        raise StorageNotFoundError(f"Snapshot version {vid} of {path!r} no longer exists")
    current = next((v for v in versions if v.is_latest), None)
    if current is not None and current.etag and current.etag == target.etag:
        report["unchanged"].append(path)
        return
    report["restored"].append(path)
    if not dry_run:
        with history.open_version(path, target) as stream:
            manager.node(mount, path)._store(stream)
