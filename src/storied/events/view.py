"""The journal as storied's callers see it: one :class:`JournalStore` per history engine
(:func:`store_of`), and :class:`Journal`, the view of one mount (entries below its prefix,
paths relative to it), which ``storage.events``, ``storage.watch`` and webhook delivery read.
The storage layout and its rules are in :mod:`storied.events.journal`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storied import errors, paths
from storied.errors import InvalidArgumentError
from storied.events._codec import _revive
from storied.events.journal import JournalStore, log, parse_cursor
from storied.events.model import Event

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.versioning.history import MountHistory

__all__ = ["Journal", "journal_for", "store_of"]


_STORES: weakref.WeakKeyDictionary[object, JournalStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def store_of(history: MountHistory) -> JournalStore:
    """The journal store of ``history``'s engine (one per engine object, kept with it)."""
    engine = history.engine
    store = engine.__dict__.get("_journal_store")  # the common case: kept on the engine
    if store is not None:
        return store  # type: ignore[no-any-return]
    store = _STORES.get(engine)
    with _STORES_LOCK:
        store = _STORES.get(engine)
        if store is None:
            catalog = engine.catalog
            store = _STORES[engine] = JournalStore(catalog.backend, catalog.root)
        engine.__dict__["_journal_store"] = store
        return store


class Journal:
    """The journal as one mount sees it: entries below the mount's prefix, paths relative to
    the mount. ``Journal.read`` is what ``storage.events`` and webhook delivery read."""

    store: JournalStore
    mount: str
    prefix: str

    def __init__(self, store: JournalStore, mount: str, prefix: str = "") -> None:
        self.store, self.mount, self.prefix = store, mount, prefix

    def tail_cursor(self) -> str:
        """The cursor of the newest event now (``'0'`` when none): reading from it yields
        only events appended later."""
        return str(self.store.tail())

    def read(self, since: str | None = None, limit: int | None = None,
             path: str = "") -> Iterator[Event]:
        """Events after cursor ``since`` (None: the oldest kept), in journal order, at most
        ``limit``, only those at or below mount-relative ``path``.

        Raises:
            InvalidArgumentError: A malformed cursor or limit (at the call), or a cursor ahead
                of the journal (when iterating).
            StorageNotFoundError: ``since`` has expired (older than the oldest kept entry).
        """
        after = parse_cursor(since) if since is not None else None
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise InvalidArgumentError(f"limit must be an int >= 0, not {limit!r}")
        return self._read(after, limit, path)

    def _read(self, after: int | None, limit: int | None, path: str) -> Iterator[Event]:
        if limit == 0:
            return
        count = 0
        for seq, entry in self.store.read(after):
            event = self._event(seq, entry, path)
            if event is None:
                continue
            yield event
            count += 1
            if limit is not None and count >= limit:
                return

    def _event(self, seq: int, entry: dict[str, Any], below: str) -> Event | None:
        try:
            full = paths.normalize(str(entry.get("path", "")))
        except errors.StorageError:  # '..', control characters: not a path storied wrote
            log.warning("journal entry %d names no valid path; skipped", seq)
            return None
        if self.prefix and not paths.is_under(full, self.prefix):
            return None
        rel = paths.relative_to(full, self.prefix) if self.prefix else full
        if below and not paths.is_under(rel, below):
            return None
        try:
            when = datetime.fromisoformat(str(entry.get("time")))
        except ValueError:
            when = datetime.fromtimestamp(0, UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        raw = entry.get("info")
        info = _revive(dict(raw) if isinstance(raw, dict) else {})
        info["event"] = str(entry.get("type"))
        vid = entry.get("version_id")
        return Event(type=str(entry.get("type")), mount=self.mount, path=rel,
                     version_id=None if vid is None else str(vid), time=when, info=info,
                     cursor=str(seq), id=str(entry.get("id") or seq))


def journal_for(manager: StorageManager, mount: str) -> Journal | None:
    """The journal ``mount`` reads (its history's, filtered to the mount's prefix), or None
    for a mount without history.

    Raises:
        MountNotFoundError: No such mount.
    """
    history = manager.history(mount)
    if history is None:
        return None
    return Journal(store_of(history), mount, history.prefix)
