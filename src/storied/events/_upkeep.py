"""Upkeep of an event journal: sealing old full buckets and expiring old ones
(docs/EVENTS.md §6). Called through :meth:`JournalStore.seal` and :meth:`JournalStore.expire`.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from storied.errors import (
    InvalidArgumentError,
    InvalidContentError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
)
from storied.events.journal import (
    BUCKET,
    DEFAULT_KEEP_DAYS,
    SEAL_AFTER,
    JournalStore,
    _seq_of,
)

if TYPE_CHECKING:
    from storied.info import Info

__all__ = ["expire", "seal"]

_READERS = 8


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
        _drop(store, folder, entries)
    return count


def _drop(store: JournalStore, folder: str, entries: list[Info]) -> None:
    if entries:
        store.backend.delete_many(_removal(store, folder, entries))
    try:
        store.backend.delete(folder)
    except Exception:  # an object store has no directory to remove
        pass


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
        if bucket in sealed:
            key = store._sealed_key(bucket)
            try:
                info = store.backend.info(key)
            except StorageNotFoundError:
                continue
            if info.mtime is None or info.mtime >= cutoff:
                break
            if store.backend.capabilities.native_versions:  # every version of it
                store.backend.delete_many([(key, v.version_id)
                                          for v in store.backend.list_versions(key)])
            else:
                store.backend.delete(key)
            removed += BUCKET - (bucket == 0)
            continue
        folder = store._key(f"{bucket:09d}")
        try:
            entries = [e for e in store.backend.list(folder) if not e.is_dir]
        except (StorageNotFoundError, NotADirectoryError):
            continue
        if any(e.mtime is None or e.mtime >= cutoff for e in entries):
            break
        _drop(store, folder, entries)
        removed += len(entries)
    return removed


def _removal(store: JournalStore, folder: str, entries: list[Info]
             ) -> list[tuple[str, str | None]]:
    """What to delete for ``entries``: on a storage that keeps versions (a versioned S3
    bucket), every version of them (a plain delete would only stack delete markers)."""
    if not store.backend.capabilities.native_versions:
        return [(e.path, None) for e in entries]
    names = {e.path for e in entries}
    return [(v.path, v.version_id) for v in store.backend.walk_versions(folder)
            if v.path in names]
