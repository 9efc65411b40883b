"""Upkeep of an event journal: sealing old full buckets and expiring old ones
(docs/EVENTS.md §6). Called through :meth:`JournalStore.seal` and :meth:`JournalStore.expire`.

On an S3 Object Lock bucket the server may refuse to delete entries (its default retention, or
a hold set outside storied). Upkeep then never raises for that: it removes a bucket's entries
oldest first so that what stays of a bucket is always its newest entries (the entries a reader
reads from the oldest kept one, §5), skips the rest, logs it (``storied.events``) and does
not count it, and stops expiring at that bucket. Entries the default retention still protects
are not even sent (their retention is computed from their listed time, no request). A batch
the server refused in part leaves holes above the oldest refused entry: those entries are
written back from their bodies (read before the batch, or the sealed object), create-only.
Any refusal that is not a lock's (one HEAD per refused entry says) still raises.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from storied.errors import (
    InvalidArgumentError,
    InvalidContentError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.events._codec import _ENCODER
from storied.events.journal import (
    BUCKET,
    DEFAULT_KEEP_DAYS,
    SEAL_AFTER,
    JournalStore,
    _seq_of,
    log,
)

if TYPE_CHECKING:
    from storied.info import Info

__all__ = ["expire", "seal"]

_READERS = 8
Bodies = dict[int, dict[str, Any]]


def seal(store: JournalStore, now: datetime | None = None) -> int:
    """Seal each full bucket whose newest entry is older than :data:`SEAL_AFTER` (never
    the newest bucket) into one object, ``journal/<bucket>.jsonl``, then remove its
    entries: reading 1,000 old events then costs one GET. How many buckets were sealed.

    Oldest first, stopping at the first bucket too young. The sealed object is created
    create-only (two sealers: one wins, both remove the entries); a reader that listed
    the entries before they went reads them from it.
    """
    cutoff = (now or datetime.now(UTC)).timestamp() - SEAL_AFTER
    dirs, sealed = store._layout()
    count = 0
    for bucket in dirs[:-1]:
        folder = store._key(f"{bucket:09d}")
        try:
            entries = [e for e in store.backend.list(folder) if not e.is_dir]
        except (StorageNotFoundError, NotADirectoryError):
            continue
        seqs = sorted(s for s in (_seq_of(e.name) for e in entries) if s is not None)
        if bucket not in sealed:
            if seqs != list(range(max(1, bucket * BUCKET), (bucket + 1) * BUCKET)):
                continue  # not complete (partly expired): left as it is
            if any(e.mtime is None or e.mtime >= cutoff for e in entries):
                break
            try:
                with ThreadPoolExecutor(_READERS) as pool:
                    bodies = list(pool.map(store._read_entry, seqs))
            except InvalidContentError:
                break  # a damaged entry stays readable as it is (and reported there)
            lines = (json.dumps({**body, "seq": seq}, separators=(",", ":"),
                                sort_keys=True) for seq, body in zip(seqs, bodies,
                                                                     strict=True))
            try:
                store._create(store._sealed_key(bucket), "\n".join(lines).encode())
            except StorageAlreadyExistsError:
                pass  # another process sealed it
            count += 1
            _drop(store, folder, entries, dict(zip(seqs, bodies, strict=True)))
        else:  # what a drop the server refused in part left
            _drop(store, folder, entries, functools.partial(_sealed_bodies, store, bucket))
    return count


def _drop(store: JournalStore, folder: str, entries: list[Info],
          bodies: Bodies | Callable[[], Bodies] | None = None) -> int:
    """Remove ``entries`` of one bucket folder, then the folder when all went; how many
    went. On an Object Lock bucket see the module docstring (``bodies``: the entries' bodies,
    or how to get them, needed only there)."""
    locks = _lock_backend(store)
    if locks is None:
        if entries:
            store.backend.delete_many(_removal(store, folder, entries))
        _remove_folder(store, folder)
        return len(entries)
    ordered = sorted(entries, key=lambda e: _seq_of(e.name) or 0)
    doomed = _unretained(locks, ordered)
    if doomed:
        known = bodies() if callable(bodies) else bodies
        if known is None:
            known = _read_bodies(store, doomed)
        kept = _delete_locked(store, locks, folder, doomed, known)
        if kept:
            return len(doomed) - kept
    if len(doomed) < len(ordered):
        _kept_log(store, folder, len(ordered) - len(doomed), "the bucket's default retention")
        return len(doomed)
    _remove_folder(store, folder)
    return len(entries)


def _remove_folder(store: JournalStore, folder: str) -> None:
    try:
        store.backend.delete(folder)
    except Exception:  # an object store has no directory to remove
        pass


def _lock_backend(store: JournalStore) -> Any | None:
    """The S3 adapter below the journal when its bucket has Object Lock, else None."""
    from storied.versioning.history import object_lock_adapter

    return object_lock_adapter(store.backend)


def _unretained(locks: Any, ordered: list[Info]) -> list[Info]:
    """The oldest entries up to the first the bucket's default retention still protects
    (computed from the listed time: no request)."""
    from storied.policies.retention import CLOCK_MARGIN, clock

    rule = locks.object_lock_default()
    if rule is None:
        return ordered
    limit = (clock() - rule[1] - CLOCK_MARGIN).timestamp()
    for n, entry in enumerate(ordered):
        if entry.mtime is None or entry.mtime >= limit:
            return ordered[:n]
    return ordered


def _read_bodies(store: JournalStore, entries: list[Info]) -> Bodies:
    seqs = [s for s in (_seq_of(e.name) for e in entries) if s is not None]
    with ThreadPoolExecutor(_READERS) as pool:
        return dict(zip(seqs, pool.map(store._read_entry, seqs), strict=True))


def _sealed_bodies(store: JournalStore, bucket: int) -> Bodies:
    return store._load_sealed(bucket, {}) or {}


def _delete_locked(store: JournalStore, locks: Any, folder: str, doomed: list[Info],
                   bodies: Bodies) -> int:
    """One batch for ``doomed`` (oldest first) on an Object Lock bucket; how many entries
    the server kept. Refused entries are checked (one HEAD each) to be locked, else the
    refusal raises; entries removed above the oldest kept one are written back."""
    from storied.backends._s3_support import refusals_of

    items = _removal(store, folder, doomed)
    try:
        store.backend.delete_many(items)
        return 0
    except StoragePermissionError as exc:
        named = {r.key for r in refusals_of(exc)}
        refusal = exc
    found: set[int] = set()
    for path, vid in items:
        key = str(store.backend.location(path)[1])
        if named and key not in named:
            continue  # removed by the batch
        if not _locked(locks, key, vid):
            raise refusal  # not a lock: no delete permission, a policy...
        found.add(_seq_of(path.rsplit("/", 1)[-1]) or 0)
    kept = sorted(found)
    if not kept:
        raise refusal
    # Holes above the oldest kept entry are written back: the ones this batch made, and
    # (from a sealed bucket's bodies, which hold all of it) any an upkeep killed or failing
    # before its write-back left, so what stays of a bucket is again its newest entries.
    for seq in sorted(bodies):
        if seq > kept[0] and seq not in kept:
            data = _ENCODER.encode(bodies[seq]).encode()  # as the entry was written
            try:
                store._create(store._entry_key(seq), data)
            except StorageAlreadyExistsError:
                pass
    kept_from = sum(1 for e in doomed if (_seq_of(e.name) or 0) >= kept[0])
    _kept_log(store, folder, kept_from, f"a lock on entry {kept[0]}")
    return kept_from


def _locked(locks: Any, key: str, version_id: str | None) -> bool:
    """Whether the server keeps version ``version_id`` of ``key`` because it is locked
    (one HEAD)."""
    return version_id is not None and bool(locks.refusal_reasons(key, version_id))


def _kept_log(store: JournalStore, where: str, count: int, why: str) -> None:
    log.warning("journal upkeep of %r: the bucket's Object Lock keeps %d entries of %s "
                "(%s); they stay, readable, until it no longer does", store._key(), count,
                where, why)


def expire(store: JournalStore, keep_days: float = DEFAULT_KEEP_DAYS,
           now: datetime | None = None) -> int:
    """Seal what :meth:`seal` seals, then remove each bucket (sealed or not) whose newest
    entry is older than ``keep_days`` (never the newest bucket); how many entries went.
    Oldest first, stopping at the first bucket that stays.

    Raises:
        InvalidArgumentError: ``keep_days`` < 1 (a writer may trust a tail it learned up
            to an hour ago; see the module docstring).
    """
    if (not isinstance(keep_days, (int, float)) or isinstance(keep_days, bool)
            or keep_days < 1):
        raise InvalidArgumentError(f"keep_days must be a number >= 1, not {keep_days!r}")
    seal(store, now)
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=keep_days)).timestamp()
    dirs, sealed = store._layout()
    removed = 0
    for bucket in sorted(set(dirs[:-1]) | {b for b in sealed if not dirs or b < dirs[-1]}):
        folder = store._key(f"{bucket:09d}")
        if bucket in sealed:
            key = store._sealed_key(bucket)
            try:
                info = store.backend.info(key)
            except StorageNotFoundError:
                continue
            if info.mtime is None or info.mtime >= cutoff:
                break
            if bucket in dirs and not _drop_all(store, folder, functools.partial(
                    _sealed_bodies, store, bucket)):
                break  # entries left by a refused seal stay, and so does their sealed copy
            if not _drop_sealed(store, key):
                break
            removed += BUCKET - (bucket == 0)
            continue
        try:
            entries = [e for e in store.backend.list(folder) if not e.is_dir]
        except (StorageNotFoundError, NotADirectoryError):
            continue
        if any(e.mtime is None or e.mtime >= cutoff for e in entries):
            break
        went = _drop(store, folder, entries)
        removed += went
        if went < len(entries):
            break
    return removed


def _drop_all(store: JournalStore, folder: str, bodies: Callable[[], Bodies]) -> bool:
    """Remove what is left in ``folder`` (see :func:`_drop`); True when all of it went."""
    try:
        entries = [e for e in store.backend.list(folder) if not e.is_dir]
    except (StorageNotFoundError, NotADirectoryError):
        return True
    return _drop(store, folder, entries, bodies) == len(entries)


def _drop_sealed(store: JournalStore, key: str) -> bool:
    """Remove sealed object ``key`` (every version of it); False when an Object Lock keeps
    it (checked with one HEAD per version; any other refusal raises)."""
    if not store.backend.capabilities.native_versions:
        store.backend.delete(key)
        return True
    versions = [v.version_id for v in store.backend.list_versions(key)]
    try:
        store.backend.delete_many([(key, v) for v in versions])
        return True
    except StoragePermissionError:
        locks = _lock_backend(store)
        full = str(store.backend.location(key)[1])
        if locks is None or not any(_locked(locks, full, v) for v in versions):
            raise
    _kept_log(store, key, BUCKET, "a lock on the sealed bucket")
    return False


def _removal(store: JournalStore, folder: str, entries: list[Info]
             ) -> list[tuple[str, str | None]]:
    """What to delete for ``entries``: on a storage that keeps versions (a versioned S3
    bucket), every version of them (a plain delete would only stack delete markers)."""
    if not store.backend.capabilities.native_versions:
        return [(e.path, None) for e in entries]
    names = {e.path for e in entries}
    return [(v.path, v.version_id) for v in store.backend.walk_versions(folder)
            if v.path in names]
