"""Sealing a file's oldest records into segments, and removing sealed versions (schema 3).

The layout and the reading rules are in :mod:`storied.versioning._segments`; this module
changes segments, always under the history's maintenance lease (ADR 0005): sealing deletes
record objects, so it must not race ``delete_version``, compaction or retention, and two
sealers must not race each other.

Seal (:func:`seal`): list the live records; take the oldest ones beyond the newest
:data:`LIVE_KEEP` that are at least :data:`SEAL_AGE_NS` old; merge in the newest effective
segments while they hold fewer than twice as many records as what is merged so far (segment
sizes then grow like a binary counter: about log2(n / 48) segments for n records), and every
effective segment the range straddles; write the new segment (create-only, a generation above
everything its range overlaps); delete the segments it supersedes; delete the sealed record
objects. A crash after any step leaves a state readers resolve: superseded segments are
ignored, a record both live and sealed is one record.

Removing sealed versions (:func:`drop_sealed`): rewrite the segment(s) holding them without
them, as a superseding segment of the same range, then delete the old ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from storied import paths
from storied.backends._compress_blobs import raise_schema
from storied.errors import (
    InvalidContentError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageError,
    StorageNotFoundError,
)
from storied.versioning import _segments
from storied.versioning._listing import SEALED_MARK
from storied.versioning._segments import Segment, effective, parse_segment_name, plan_segment
from storied.versioning.engine import Version
from storied.versioning.records import SCHEMA_VERSION, Record, is_record_name

if TYPE_CHECKING:
    from storied.versioning.portable import PortableEngine

__all__ = ["drop_sealed", "history_names", "maybe_seal", "removal_items", "remove_items",
           "seal", "seal_under_lease", "sealed_names"]

_BATCH = 1000
_SEEN = 4096  # paths whose writes an engine counts (bounded)


def can_seal(engine: PortableEngine) -> bool:
    """Sealing needs the maintenance lease, so a storage with conditional writes."""
    return bool(engine.meta.capabilities.conditional_write)


def maybe_seal(engine: PortableEngine, path: str, counts: dict[str, int]) -> None:
    """After a write or delete of ``path``: look at the live directory, and seal it when it is
    too long, on every :data:`SEAL_CHECK`-th write of ``path`` by this engine (``counts``,
    bounded) or when a read of this engine found it long (the read listed it anyway). Other
    writes list nothing (FORMAT.md §4: a write's cost does not grow with the history). Never
    blocks on another deleter (the lease is only tried) and never fails the write."""
    if not can_seal(engine):
        return
    hinted = path in engine._listings.long
    engine._listings.long.discard(path)
    done = counts.pop(path, 0) + 1
    counts[path] = done % max(1, _segments.SEAL_CHECK)
    while len(counts) > _SEEN:
        counts.pop(next(iter(counts)))
    if not hinted and counts[path]:
        return
    try:
        if sealable(engine._listings.live_names(engine._history_dir(path))):
            seal(engine, path, wait=0.0)
    except (StorageError, OSError):
        pass  # sealing is an optimisation: the write itself succeeded


def sealable(names: list[str]) -> bool:
    """True when a live directory of these sorted names has records to seal: more than
    :data:`LIVE_MAX`, and its oldest at least :data:`SEAL_AGE_NS` old (no lease is tried
    for a directory that only holds young records)."""
    if len(names) <= _segments.LIVE_MAX:
        return False
    oldest = next((n for n in names if is_record_name(n)), None)
    return oldest is not None and int(oldest[:19]) <= time.time_ns() - _segments.SEAL_AGE_NS


def seal(engine: PortableEngine, path: str, wait: float = 60.0) -> int:
    """Seal ``path``'s oldest records, taking the maintenance lease (waiting at most ``wait``
    seconds for another holder; with 0 a busy lease means nothing is done). Returns how many
    records were sealed.

    Raises:
        PreconditionFailedError: The lease stayed busy for ``wait`` seconds (``wait > 0``).
    """
    from storied.versioning.maintenance import MaintenanceLease

    if not can_seal(engine):
        return 0
    lease = MaintenanceLease(engine.catalog, wait=wait)
    try:
        lease.acquire()
    except PreconditionFailedError:
        if wait > 0:
            raise
        return 0
    try:
        return seal_under_lease(engine, path, lease.keep)
    finally:
        lease.release()


def _upgrade_format(engine: PortableEngine) -> None:
    """Mark the history schema 3 before its first segment (older readers then refuse it); a
    newer schema is never lowered."""
    raise_schema(engine, SCHEMA_VERSION)


def seal_under_lease(engine: PortableEngine, path: str,
                     keep: Callable[[], None] = lambda: None) -> int:
    """:func:`seal` for a caller that holds the lease (``keep`` renews it)."""
    engine._ensure_format()
    folder = engine._history_dir(path)
    listed, marked = engine._listings.live(folder)
    records = [n for n in listed if is_record_name(n)]
    if len(records) <= _segments.LIVE_MAX:
        return 0
    horizon = time.time_ns() - _segments.SEAL_AGE_NS
    keep_live = max(1, _segments.LIVE_KEEP)
    chosen = [n for n in records[:-keep_live] if int(n[:19]) <= horizon]
    if not chosen:
        return 0
    store = engine.segments
    found = store.list(path)
    lo, hi = chosen[0][:32], chosen[-1][:32]
    # the newest effective segments below the new one join it while they are small
    size = len(chosen)
    for seg in reversed([s for s in effective(found) if s.hi < lo]):
        count = len(store.names(path, seg))
        if count >= 2 * size:
            break
        lo, size = seg.lo, size + count
    lo, hi, merged, gen = plan_segment(found, lo, hi)
    names = set(chosen)
    for seg in merged:
        names.update(store.names(path, seg))
    keep()
    _upgrade_format(engine)
    if not marked:  # readers look for segments only where the mark is (before the first one)
        engine.meta.write(f"{folder}/{SEALED_MARK}", b"")
    new = Segment(lo, hi, gen)
    store.write(path, new, sorted(names))
    for seg in found:  # merged ones and stale leftovers: all superseded by the new segment
        if seg != new and new.contains(seg) and seg.gen < new.gen:
            keep()
            store.remove(path, seg)
    doomed: list[tuple[str, str | None]] = [(f"{folder}/{n}", None) for n in chosen]
    for start in range(0, len(doomed), _BATCH):
        keep()
        engine.meta.delete_many(doomed[start:start + _BATCH])
    return len(chosen)


def drop_sealed(engine: PortableEngine, path: str, version_ids: Collection[str],
                keep: Callable[[], None] = lambda: None, kinds: str = "w") -> int:
    """Remove the sealed records of ``version_ids`` of ``path`` (content versions; ``kinds``
    ``"wd"``: tombstones too): each effective segment holding one is replaced by a
    superseding segment without them (caller holds the lease). Returns how many sealed
    records were dropped."""
    wanted = set(version_ids)
    if not wanted:
        return 0
    store = engine.segments
    dropped = 0

    def doomed(name: str) -> bool:
        return name[:32] in wanted and name[33] in kinds

    while True:
        found = store.list(path)
        hit = next((seg for seg in effective(found)
                    if any(seg.lo <= vid <= seg.hi for vid in wanted)
                    and any(doomed(n) for n in store.names(path, seg))), None)
        if hit is None:
            return dropped
        lo, hi, merged, gen = plan_segment(found, hit.lo, hit.hi)
        union: set[str] = set()
        for seg in merged:
            names = store.names(path, seg)
            kept = [n for n in names if not doomed(n)]
            dropped += len(names) - len(kept)
            union.update(kept)
        keep()
        new = Segment(lo, hi, gen)
        store.write(path, new, sorted(union))
        for old in found:
            if old != new and new.contains(old) and old.gen < new.gen:
                keep()
                store.remove(path, old)
        if not union:  # nothing left in the range: the empty segment may go too
            store.remove(path, new)


def sealed_names(engine: PortableEngine, path: str, found: list[Segment] | None = None,
                 after: str = "") -> set[str]:
    """The record names in ``path``'s effective segments (only those whose range reaches past
    ``after``, and only names after it). A segment deleted while this reads (a concurrent
    seal superseded it) sends it back to the segment listing, up to three times.

    Raises:
        InvalidContentError: A segment is malformed.
    """
    store = engine.segments
    for attempt in range(3):
        segs = store.list(path) if found is None or attempt else found
        try:
            names: set[str] = set()
            for seg in effective(segs):
                if seg.hi > after[:32]:
                    names.update(n for n in store.names(path, seg) if n > after)
            return names
        except StorageNotFoundError:
            if attempt == 2:
                raise
    return set()  # pragma: no cover - the loop returns or raises


def _walk(engine: PortableEngine, folder: str) -> list[str]:
    try:
        return [entry.path for entry in engine.meta.walk(folder)]
    except (StorageNotFoundError, NotADirectoryError, NotADirectoryStorageError):
        return []


def history_names(engine: PortableEngine, prefix: str = "", problems: list[str] | None = None,
                  read_segments: bool = True) -> dict[str, list[str]]:
    """``{path: sorted record names}`` for every file with history below ``prefix`` (or the
    file ``prefix``): one flat walk of the live records, then one of the segments (in that
    order, as every reader), then the effective segments' contents (``read_segments``; without
    it a path with segments maps to whatever live names it has). Names that are neither
    records nor segments, and malformed segments, are added to ``problems`` (else ignored)."""
    base = engine._history_dir("")
    groups: dict[str, set[str]] = {}
    marked: set[str] = set()
    for key in _walk(engine, engine._history_dir(prefix)):
        parent, _, name = key.rpartition("/")
        if is_record_name(name):
            groups.setdefault(paths.relative_to(parent, base), set()).add(name)
        elif name == SEALED_MARK:
            marked.add(paths.relative_to(parent, base))
        elif problems is not None:
            problems.append(f"not a version record: {key}")
    store = engine.segments
    seg_base = store.folder("")
    found: dict[str, list[Segment]] = {}
    for key in _walk(engine, store.folder(prefix)):
        parent, _, name = key.rpartition("/")
        seg = parse_segment_name(name)
        if seg is not None:
            found.setdefault(paths.relative_to(parent, seg_base), []).append(seg)
        elif problems is not None:
            problems.append(f"not a segment: {key}")
    for path, segs in sorted(found.items()):
        if path not in marked and problems is not None:
            problems.append(f"segments of {path} without the sealed mark (readers miss them): "
                            f"{engine._history_dir(path)}/{SEALED_MARK}")
        into = groups.setdefault(path, set())
        if not read_segments:
            continue
        try:
            into.update(sealed_names(engine, path, segs))
        except InvalidContentError as exc:
            if problems is None:
                raise
            problems.append(f"unreadable segment of {path}: {exc}")
    return {p: sorted(n) for p, n in groups.items()}


def unseal(engine: PortableEngine, path: str, record: Record) -> None:
    """Undoing a failed write or delete whose record object was just deleted: if a seal took
    the record meanwhile, drop it from the segments too, under the lease (best effort, on
    the failure path only: the caller re-raises its original error)."""
    from storied.versioning.maintenance import maintenance

    try:
        if not engine._listings.live(engine._history_dir(path))[1]:
            return  # no segments
        if record.name not in sealed_names(engine, path):
            return
        with maintenance(engine.catalog) as lease:
            drop_sealed(engine, path, {record.version_id}, lease.keep, kinds="wd")
    except (StorageError, OSError):
        pass


def removal_items(engine: PortableEngine, path: str,
                  versions: list[Version]) -> list[tuple[str, str | None]]:
    """What :func:`remove_items` deletes to drop ``versions`` of ``path``, named from the
    versions alone (no listing): each record object ``(key, None)``, and
    ``(segment folder, version id)`` for its sealed entry, if it has one."""
    items: list[tuple[str, str | None]] = []
    for v in versions:
        ts, writer = v.version_id.split(".")
        record = Record(int(ts), writer, False, v.size, v.etag, v.sha256 or "")
        items.append((engine._meta("versions", path, record.name), None))
        items.append((engine.segments.folder(path), v.version_id))
    return items


def remove_items(engine: PortableEngine, items: list[tuple[str, str | None]]) -> None:
    """Delete what :func:`removal_items` named: the record objects batched by the storage,
    then each file's sealed entries by segment rewrites (the caller holds the lease; one
    segment listing per file, and a segment is read only when its range holds a doomed
    version)."""
    engine.meta.delete_many([item for item in items if item[1] is None])
    sealed: dict[str, set[str]] = {}
    for folder, vid in items:
        if vid is not None:
            sealed.setdefault(folder, set()).add(vid)
    base = engine.segments.folder("")
    for folder, vids in sealed.items():
        drop_sealed(engine, paths.relative_to(folder, base), vids)
