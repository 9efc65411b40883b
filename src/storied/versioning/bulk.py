"""Operations over every file under a prefix: bulk compaction and cleanup, snapshots.

Each works on both engines. Deletions are collected first and sent in batches (S3: one
DeleteObjects per 1,000 versions), after one listing per file.

Per-file requests (a snapshot's listing of each file, a restore's listing and write of each
file) and removal batches run on a bounded pool: ``workers=`` (default 8 on a remote storage,
1 on a local disk or in memory; see :func:`storied.core._parallel.default_workers`). Progress
and events are reported from the calling thread. The first error stops the work (nothing new
is started, what runs finishes) and is raised with a per-key report as ``.report``
(:class:`storied.core._parallel.BulkReport`); a snapshot or a restore's plan that fails
writes nothing.

On an S3 Object Lock bucket the server is the final judge: a version it refuses to delete
(a legal hold or retention set outside storied, which storied's plan could not see) is left,
logged and reported in the result's ``kept_by_server`` (``{fullpath: [version ids]}``, see
:class:`BulkResult`), and every other version still goes; the result then counts only what
was removed.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.core._parallel import check_workers, default_workers, pool_map
from storied.errors import (
    AmbiguousSnapshotError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.policies.retention import check_rules, plan_retention
from storied.versioning.catalog import Locks, Refs, Snapshot
from storied.versioning.engine import Version
from storied.versioning.history import (
    MountHistory,
    compact_plan,
    merged_lock_reasons,
    native_lock_backend,
)
from storied.versioning.maintenance import ProtectionGuard, maintenance

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = [
    "BulkResult",
    "bulk_cleanup",
    "bulk_compact",
    "create_snapshot",
    "delete_snapshot",
    "get_snapshot",
    "list_snapshots",
    "restore_snapshot",
]

Progress = Callable[[int, int], object]
_BATCH = 1000  # removal items per request (S3 DeleteObjects' limit); the lease is kept between
_BULK_TTL = 120.0  # seconds: one flat listing step of a large prefix must fit in 3/4 of it
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_log = logging.getLogger(__name__)
Item = tuple[str, str | None]


class BulkResult(dict[str, Any]):
    """What a bulk cleanup or compaction removed (a ``dict`` as before: ``{fullpath: ...}``),
    plus ``kept_by_server``: ``{fullpath: [version ids]}`` of the versions an S3 Object Lock
    bucket refused to delete (locked outside storied); empty when the server refused none."""

    kept_by_server: dict[str, list[str]]

    def __init__(self, found: dict[str, Any] | None = None,
                 kept_by_server: dict[str, list[str]] | None = None) -> None:
        super().__init__(found or {})
        self.kept_by_server = dict(kept_by_server or {})


def _workers(manager: StorageManager, mount: str, workers: int | None) -> int:
    check_workers(workers)
    if workers is not None:
        return workers
    backend = manager.get_backend(mount)
    return default_workers(backend, backend)


def _split(manager: StorageManager, prefix: str) -> tuple[str, str, MountHistory]:
    mount, sub = paths.split_fullpath(prefix)
    history = manager.history(mount)
    if history is None:
        raise UnsupportedOperation(f"Mount {mount!r} keeps no history")
    return mount, paths.check_public(paths.normalize(sub)), history


def _files(history: MountHistory, sub: str) -> list[str]:
    return sorted(history.history_paths(sub))


Holds = dict[str, tuple[str, ...]]  # version id -> why a legal hold or retention keeps it
Choose = Callable[[list[Version], Refs, dict[str, list[str]], Holds], list[Version]]


def _bulk(manager: StorageManager, prefix: str, dry_run: bool, progress: Progress | None,
          choose: Choose, workers: int | None = None
          ) -> tuple[dict[str, list[Version]], dict[str, list[str]]]:
    """One flat listing of every version under ``prefix``, one listing of the refs (plus a read
    per file that has tags or annotations), the snapshot manifests once; then ``choose`` picks
    each file's doomed versions and they are deleted in batches (on the pool; the lease is
    renewed from the calling thread as batches finish).

    Returns ``(removed, kept_by_server)``: the versions removed per fullpath, and the version
    ids an Object Lock bucket refused to delete (see :func:`_remove_batch`)."""
    mount, sub, history = _split(manager, prefix)
    pool = _workers(manager, mount, workers)
    _need_delete(manager, mount, dry_run)
    if dry_run:
        return _plan_bulk(mount, sub, history, progress, choose)[0], {}
    # versions, refs and manifests are read under the lease: a tag or snapshot set meanwhile
    # by another process is either read here or checked by its setter (maintenance.py)
    owners: list[tuple[str, Version]] = []
    finished: dict[int, list[Item]] = {}  # removal batches done: the items the server kept
    batches, aligned = 0, False
    locked = native_lock_backend(history.engine) is not None
    try:
        with maintenance(history.engine.catalog, ttl=_BULK_TTL) as lease:
            result, items = _plan_bulk(mount, sub, history, progress, choose, lease.keep)
            owners = [(path, v) for path, doomed in result.items() for v in doomed]
            aligned = len(owners) == len(items)  # one removal item per version (both engines)
            batches = -(-len(items) // _BATCH)

            def removed(number: int, kept: list[Item]) -> None:
                finished[number] = kept
                lease.keep()

            lease.keep()
            pool_map(list(range(batches)),
                     lambda n: _remove_batch(history, items[n * _BATCH:(n + 1) * _BATCH],
                                             locked),
                     min(pool, max(batches, 1)), after=removed)
    finally:  # the events of what went, after the lease (taggers wait on it)
        refused = {item for kept in finished.values() for item in kept}
        if aligned:
            gone = [o for n in sorted(finished)
                    for o, item in zip(owners[n * _BATCH:(n + 1) * _BATCH],
                                       items[n * _BATCH:(n + 1) * _BATCH], strict=True)
                    if item not in refused]
        else:
            gone = owners if owners and len(finished) == batches else []
        _announce_removed(manager, gone)
    _expire_journal(history)
    if not refused:
        return result, {}
    kept_by_server: dict[str, list[str]] = {}
    for (fullpath, version), item in zip(owners, items, strict=True):  # aligned: native
        if item in refused:
            kept_by_server.setdefault(fullpath, []).append(version.version_id)
            result[fullpath] = [v for v in result[fullpath] if v is not version]
    return {p: v for p, v in result.items() if v}, kept_by_server


def _remove_batch(history: MountHistory, batch: list[Item], locked: bool) -> list[Item]:
    """Remove one batch; the items an S3 Object Lock bucket refused because the version is
    locked there (a lock set outside storied). When the server refused part of the batch,
    the items it named (S3 DeleteObjects reports every refused key, AWS with its version
    id; nothing named: the whole batch) are sent again one at a time, and an item refused
    again is kept only when :func:`~storied.core.objectlock.lock_refusal` finds a lock on
    it. Any other refusal, and every refusal on other storages, is raised."""
    from storied.backends._s3_support import refusals_of
    from storied.core.objectlock import lock_refusal

    try:
        history.engine.remove_items(batch)
        return []
    except StoragePermissionError as exc:
        if not locked:
            raise
        named = {(r.key, r.version_id) for r in refusals_of(exc)}
    backend: Any = history.engine.backend  # type: ignore[attr-defined]
    kept = []
    for item in batch:
        key = str(backend.location(item[0])[1])
        if named and not {(key, item[1]), (key, None)} & named:
            continue  # removed by the batch (a refusal without a version id names the key)
        try:
            history.engine.remove_items([item])
        except StoragePermissionError:
            reasons = lock_refusal(history, *item)
            if not reasons:
                raise  # not a lock: no delete permission, a policy... stop as before
            _log.warning("%s: the server keeps locked version %s (%s)", item[0], item[1],
                         ", ".join(reasons))
            kept.append(item)
    return kept


def _expire_journal(history: MountHistory) -> None:
    """Bulk cleanup and compaction also do the journal's upkeep: full buckets older than two
    hours are sealed, buckets older than :data:`~storied.events.journal.DEFAULT_KEEP_DAYS`
    removed (never the newest; docs/EVENTS.md §6). Two listings of the journal and one per
    bucket looked at when there is nothing to do. Entries an S3 Object Lock bucket keeps
    are skipped and logged by the upkeep itself (:mod:`storied.events._upkeep`); any other
    failure raises."""
    from storied.events.view import store_of

    store_of(history).expire()


def _announce_removed(manager: StorageManager, owners: list[tuple[str, Version]]) -> None:
    """``version_deleted`` for each ``(fullpath, version)`` removed."""
    from storied.core.eventing import notify, version_info

    for fullpath, version in owners:
        node = manager.node(fullpath)
        notify(node, "version_deleted", functools.partial(version_info, version),
               version.version_id)


def _announce(manager: StorageManager, mount: str, sub: str, event: str,
              info: dict[str, Any]) -> None:
    """A mount-wide event (snapshots) on the node of ``mount:sub``."""
    from storied.core.eventing import notify

    notify(manager.node(mount, sub), event, lambda: info)


def _plan_bulk(mount: str, sub: str, history: MountHistory, progress: Progress | None,
               choose: Choose, keep: Callable[[], None] = lambda: None,
               ) -> tuple[dict[str, list[Version]], list[tuple[str, str | None]]]:
    """The doomed versions and their removal items; ``keep`` renews the lease between steps
    (it raises when a step took so long that the lease could have lapsed)."""
    root = history._p(sub)
    everything = _all_versions(history, root)
    keep()
    refs, locks = history.engine.catalog.records_below(root)
    keep()
    snapshots = history.engine.catalog.snapshot_refs()
    keep()
    result: dict[str, list[Version]] = {}
    items: list[tuple[str, str | None]] = []
    files = sorted(everything)
    for done, path in enumerate(files, start=1):
        holds = merged_lock_reasons(history.engine, everything[path], locks.get(path, Locks()))
        doomed = choose(everything[path], refs.get(path, Refs()), snapshots.get(path, {}), holds)
        if doomed:
            result[f"{mount}:{paths.relative_to(path, history.prefix)}"] = doomed
            items += history.engine.removal_items(path, doomed)
        if progress:
            progress(done, len(files))
            keep()
    return result, items


def _all_versions(history: MountHistory, root: str) -> dict[str, list[Version]]:
    """``{engine path: versions}`` below ``root`` from one flat listing (or the file ``root``)."""
    everything = history.engine.all_versions(root)
    if not everything and root:  # the prefix may name a single file
        found = history.engine.versions(root)
        everything = {root: found} if found else {}
    return everything


def _tag_map(refs: Refs) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for name, vid in refs.tags.items():
        tags.setdefault(vid, []).append(name)
    return tags


def bulk_compact(manager: StorageManager, prefix: str, dry_run: bool = False,
                 progress: Progress | None = None, *, workers: int | None = None
                 ) -> dict[str, int]:
    """Compact every file with history under ``prefix``; ``{fullpath: versions removed}`` (a
    :class:`BulkResult`: versions an Object Lock bucket refused are in ``kept_by_server``)."""

    def choose(found: list[Version], refs: Refs, snaps: dict[str, list[str]],
               holds: Holds) -> list[Version]:
        return compact_plan(found, set(refs.tags.values()) | set(snaps) | set(holds))

    found, kept = _bulk(manager, prefix, dry_run, progress, choose, workers)
    return BulkResult({p: len(v) for p, v in found.items()}, kept)


def bulk_cleanup(manager: StorageManager, prefix: str, keep_last: int | None = None,
                 keep_days: float | None = None, dry_run: bool = False,
                 progress: Progress | None = None, *, workers: int | None = None
                 ) -> dict[str, list[str]]:
    """Apply retention to every file under ``prefix``; ``{fullpath: [removed version ids]}``
    (a :class:`BulkResult`: versions an Object Lock bucket refused are in ``kept_by_server``).

    Raises:
        InvalidArgumentError: (a ``ValueError``) a rule of the wrong type or range.
    """
    check_rules(keep_last, keep_days)
    now = datetime.now(UTC)

    def choose(found: list[Version], refs: Refs, snaps: dict[str, list[str]],
               holds: Holds) -> list[Version]:
        plan = plan_retention(found, now, keep_last, keep_days, _tag_map(refs), snaps, holds)
        return [v for v, d in zip(found, plan, strict=True) if not d.keep]

    result, kept = _bulk(manager, prefix, dry_run, progress, choose, workers)
    return BulkResult({p: [v.version_id for v in found] for p, found in result.items()}, kept)


def _need_delete(manager: StorageManager, mount: str, dry_run: bool) -> None:
    if not dry_run and not manager.get_backend(mount).capabilities.delete:
        from storied.errors import StoragePermissionError

        raise StoragePermissionError(f"Mount {mount!r} does not have delete permission")


# ---------------------------------------------------------------------------------- snapshots
def create_snapshot(manager: StorageManager, prefix: str, tag: str, *,
                    workers: int | None = None) -> dict[str, Any]:
    """Record which version of every file under ``prefix`` is current (no content copied).

    Each file's current version comes from its own listing, so a file written meanwhile is
    recorded at a version that really existed. Files without a current version (deleted)
    are left out. When a version deletion ran while the snapshot was taken (another process's
    cleanup, see :mod:`storied.versioning.maintenance`), the recorded versions are checked
    again; a manifest naming a version that is gone is taken back.

    Raises:
        StorageAlreadyExistsError: A snapshot with that tag exists on any versioned mount.
        StorageConfigError: The tag is not a plain name.
        StorageNotFoundError: A recorded version was deleted meanwhile (no snapshot is left).
        UnsupportedOperation: The storage has no conditional writes (as for tags: a manifest
            could not be created safely, nor protect its versions from a concurrent cleanup).
    """
    if not _TAG.match(tag):
        raise StorageConfigError(f"Invalid snapshot tag {tag!r}: use letters, digits, _ . -")
    mount, sub, history = _split(manager, prefix)
    if not manager.get_backend(mount).capabilities.write:
        from storied.errors import StoragePermissionError

        raise StoragePermissionError(f"Mount {mount!r} is read-only")
    catalog = history.engine.catalog
    if not catalog.backend.capabilities.conditional_write:
        raise UnsupportedOperation(
            f"Mount {mount!r}: snapshots need conditional writes, which this storage does not "
            "offer"
        )
    if _candidates(manager, tag):
        raise StorageAlreadyExistsError(f"Snapshot {tag!r} already exists")
    pool = _workers(manager, mount, workers)
    guard = ProtectionGuard(catalog)  # before the listings: see maintenance.py
    listed = pool_map(_files(history, sub), history.versions, pool)  # one listing per file
    files: dict[str, str] = {}
    for path in sorted(listed):
        current = [v for v in listed[path] if v.is_latest]
        if current:
            files[history._p(path)] = current[0].version_id
    snapshot = Snapshot(tag, f"{mount}:{sub}", time.time(), files, history._p(sub))
    catalog.create_snapshot(snapshot)
    try:
        missing = [] if guard.settle() else _missing(history, snapshot)
    except BaseException:
        # not known to be safe (the lease or a listing could not be read, or a deleter ran
        # too long): the manifest must not stay, it may name a version being deleted
        catalog.delete_snapshot(tag)
        raise
    if missing:
        catalog.delete_snapshot(tag)
        raise StorageNotFoundError(
            f"Snapshot {tag!r} not created: version(s) deleted while it was taken: "
            + ", ".join(missing)
        )
    _announce(manager, mount, sub, "snapshot_created", _thin(snapshot))
    return _describe(snapshot)


def _thin(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot event's info: tag, prefix, creation time, file count (not the files)."""
    return {"tag": snapshot.tag, "prefix": snapshot.prefix,
            "created": datetime.fromtimestamp(snapshot.created, UTC),
            "file_count": len(snapshot.files)}


def _missing(history: MountHistory, snapshot: Snapshot) -> list[str]:
    """``'path@version_id'`` for each manifest entry whose version no longer exists."""
    everything = _all_versions(history, snapshot.root)
    missing = []
    for path, vid in sorted(snapshot.files.items()):
        if all(v.version_id != vid for v in everything.get(path, [])):
            missing.append(f"{path}@{vid}")
    return missing


def _histories(manager: StorageManager) -> list[tuple[str, MountHistory]]:
    found = []
    for mount in manager.get_mount_names():
        if mount in manager._parents:
            continue
        history = manager.history(mount)
        if history is not None:
            found.append((mount, history))
    return found


def _candidates(manager: StorageManager, name: str) -> list[tuple[str, MountHistory, str]]:
    """``(mount, history, tag)`` of every stored snapshot ``name`` names: ``'tag'`` on any
    versioned mount, ``'mount:tag'`` on that mount only (a relative mount means its parent's
    history, where its snapshots are kept)."""
    if ":" in name:
        mount, tag = name.split(":", 1)
        while mount in manager._parents:
            mount = manager._parents[mount][0]
        history = manager.history(mount)
        places = [(mount, history)] if history is not None else []
    else:
        tag, places = name, _histories(manager)
    return [(m, h, tag) for m, h in places if tag in set(h.engine.catalog.snapshot_tags())]


def _find(manager: StorageManager, name: str) -> tuple[str, MountHistory, Snapshot]:
    """The one snapshot ``name`` (``'tag'`` or ``'mount:tag'``) names.

    Raises:
        StorageNotFoundError: No such snapshot.
        AmbiguousSnapshotError: (a ``LookupError`` and ``ValueError``) several mounts have a
            snapshot of that name; the message names them as ``'mount:tag'``.
    """
    found = _candidates(manager, name)
    if not found:
        raise StorageNotFoundError(f"No snapshot {name!r}")
    if len(found) > 1:
        names = ", ".join(repr(f"{m}:{t}") for m, _, t in found)
        raise AmbiguousSnapshotError(
            f"Snapshot {name!r} exists on several mounts ({names}): name one as 'mount:tag'"
        )
    mount, history, tag = found[0]
    return mount, history, history.engine.catalog.snapshot(tag)


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
    """The snapshot's tag, prefix, creation time and ``files`` (``{path: version_id}``).

    ``tag`` is ``'name'`` (any mount) or ``'mount:name'``; a name several mounts have is an
    ``AmbiguousSnapshotError`` (a ``LookupError``/``ValueError``) naming the candidates. The
    same holds for :func:`delete_snapshot` and :func:`restore_snapshot`.
    """
    return _describe(_find(manager, tag)[2])


def delete_snapshot(manager: StorageManager, tag: str) -> None:
    """Remove a snapshot (its versions lose that protection; nothing else changes)."""
    mount, history, snap = _find(manager, tag)
    _need_delete(manager, mount, False)
    history.engine.catalog.delete_snapshot(snap.tag)
    sub = paths.relative_to(snap.root, history.prefix) if paths.is_under(
        snap.root, history.prefix) else ""
    _announce(manager, mount, sub, "snapshot_deleted", _thin(snap))


def restore_snapshot(manager: StorageManager, tag: str, dry_run: bool = False,
                     delete_new: bool = False, progress: Progress | None = None, *,
                     workers: int | None = None) -> dict[str, list[str]]:
    """Bring every file of a snapshot back to its recorded version, as new versions.

    Files already at the recorded content are left alone. Files created under the prefix after
    the snapshot are reported in ``new`` and deleted only with ``delete_new=True``.

    Returns:
        ``{'restored': [...], 'unchanged': [...], 'new': [...], 'deleted': [...]}`` (paths).
    """
    mount, history, snap = _find(manager, tag)
    sub = paths.relative_to(snap.root, history.prefix)
    report: dict[str, list[str]] = {"restored": [], "unchanged": [], "new": [], "deleted": []}
    recorded = {paths.relative_to(p, history.prefix): vid for p, vid in snap.files.items()}
    # every recorded version is found before anything is written: a snapshot whose versions
    # are not all there restores nothing (never half of it)
    pool = _workers(manager, mount, workers)
    order = sorted(recorded)
    plan = pool_map(order, lambda p: _restore_plan(history, p, recorded[p]), pool)
    outcome = pool_map(order, lambda p: _restore_one(manager, mount, history, *plan[p],
                                                     dry_run), pool, progress)
    for path in order:  # the report in path order, whatever order the pool finished in
        report[outcome[path]].append(path)
    for path in _files(history, sub):
        node = manager.node(mount, path) if path else None
        if path not in recorded and node is not None and node.exists():
            report["new"].append(path)
            if delete_new and not dry_run:
                node.delete()
                report["deleted"].append(path)
    if not dry_run:
        info = {**_thin(snap), **{key: len(found) for key, found in report.items()}}
        _announce(manager, mount, sub, "snapshot_restored", info)
    return report


def _restore_plan(history: MountHistory, path: str, vid: str
                  ) -> tuple[str, Version, Version | None]:
    """``(path, recorded version, current version)`` from one listing.

    Raises:
        StorageNotFoundError: The recorded version no longer exists.
    """
    versions = history.versions(path)
    target = next((v for v in versions if v.version_id == vid), None)
    if target is None:
        raise StorageNotFoundError(f"Snapshot version {vid} of {path!r} no longer exists")
    return path, target, next((v for v in versions if v.is_latest), None)


def _restore_one(manager: StorageManager, mount: str, history: MountHistory, path: str,
                 target: Version, current: Version | None, dry_run: bool) -> str:
    """Write ``target`` back unless it is the current content: ``'restored'`` or
    ``'unchanged'`` (the report key; runs in a pool thread)."""
    if current is not None and current.etag and current.etag == target.etag:
        return "unchanged"
    if not dry_run:
        with history.open_version(path, target) as stream:
            manager.node(mount, path)._store(stream)
    return "restored"
