"""Webhook messages read from a versioned mount's event journal (the outbox written with the
version commit), with a per-endpoint delivery cursor kept next to the journal.

The cursor object is ``<history root>/webhooks/<endpoint key>.json`` (``{"cursor": ...}``):
the journal cursor of the last event this endpoint is done with (delivered, filtered out or
failed for good). It starts at the journal's tail when the endpoint is first registered, and
moves forward only, by a write conditional on the etag it was read with (compare-and-swap:
``WriteMode.IF_MATCH``; plain overwrite on a storage without conditional writes). It is
advanced after a batch has been delivered, so a process killed between a commit and the send,
or between the send and the cursor's update, loses nothing: the next process (on any machine)
that registers the endpoint sends from the cursor, the already sent ones again with the same
``webhook-id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from storied.core.config import location
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
)
from storied.events.webhook_spool import FileLock, Message
from storied.events.webhooks import Webhook, message_body, redact_url
from storied.info import WriteMode

if TYPE_CHECKING:
    from storied.backends.base import Backend
    from storied.events.model import Event
    from storied.events.view import Journal

__all__ = ["JournalSource"]

log: logging.Logger = logging.getLogger("storied.webhooks")

#: How often a worker reads the journal for events of other processes (seconds); events of
#: its own process wake it at once.
JOURNAL_POLL = 5.0
#: Events read per batch (the cursor is written once per batch).
BATCH = 200
#: Shortest time between two reads of a remote journal (seconds): a burst of writes is read
#: and its cursor written once, not once per event (about 3 requests per read on S3).
MIN_GAP = 0.2
#: The same on a local disk, where a read costs a few system calls.
MIN_GAP_LOCAL = 0.01


def _later(a: str, b: str) -> bool:
    """True when cursor ``a`` is after cursor ``b`` (digit strings; else: different)."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a != b


class JournalSource:
    """The journal of one mount as a source of messages for one endpoint."""

    hook: Webhook
    journal: Journal
    mount: str
    backend: Backend
    key: str
    lock: FileLock
    due: bool
    backlog: bool
    read_at: float
    gap: float

    def __init__(self, hook: Webhook, journal: Journal, spool_dir: Path) -> None:
        self.hook, self.journal, self.mount = hook, journal, journal.mount
        store = journal.store
        self.backend = store.backend
        self.key = "/".join(p for p in (store.root, "webhooks", f"{hook.key}.json") if p)
        # one deliverer per machine and cursor: named after where the cursor really is (two
        # processes whose mount 'docs' are different storages do not exclude each other)
        where = hashlib.sha256(repr(location(self.backend, self.key)).encode()).hexdigest()
        self.lock = FileLock(spool_dir / f"journal-{where[:16]}.lock")
        self.cursor: str | None = None
        self.etag: str | None = None
        self.due = True  # read at the next round
        self.backlog = False  # the last read left events undelivered
        self.read_at = 0.0  # monotonic
        self.attempts: dict[str, int] = {}
        self.errors = 0  # journal reads failed in a row (backs the reads off)
        try:
            local = self.backend.local_path("") is not None
        except Exception:  # an adapter that cannot tell counts as remote
            local = False
        self.gap = MIN_GAP_LOCAL if local else MIN_GAP

    # ------------------------------------------------------------------ the cursor object
    def start(self) -> None:
        """Load the cursor, or create it at the journal's tail (first registration). A cursor
        past the tail means the journal was started anew (its history deleted): it restarts
        at ``'0'``, so the new journal's events are sent."""
        if self._load():
            tail = self.journal.tail_cursor()
            if self.cursor is not None and self.cursor.isdigit() and int(self.cursor) > int(
                    tail):
                log.warning("webhook %s: cursor %s is past the journal of %s (tail %s): the "
                            "journal was started anew; sending from its start",
                            redact_url(self.hook.url), self.cursor, self.mount, tail)
                self.advance("0", backwards=True)
            return
        data = json.dumps({"cursor": self.journal.tail_cursor(),
                           "endpoint": redact_url(self.hook.url)}).encode()
        try:
            self.backend.write(self.key, data, mode=self._create_mode())
        except StorageAlreadyExistsError:
            pass  # another process created it meanwhile
        self._load()

    def _create_mode(self) -> WriteMode:
        conditional = self.backend.capabilities.conditional_write
        if not conditional and self.backend.exists(self.key):
            raise StorageAlreadyExistsError(self.key)
        return WriteMode.CREATE if conditional else WriteMode.OVERWRITE

    def _load(self) -> bool:
        try:
            etag = self.backend.info(self.key).etag  # the etag first: a CAS with it is safe
            raw = json.loads(self.backend.read_bytes(self.key))
        except StorageNotFoundError:
            return False
        except ValueError:
            log.error("webhook cursor %s unreadable: starting at the journal's tail", self.key)
            raw = {"cursor": self.journal.tail_cursor()}
            etag = None
        self.cursor, self.etag = str(raw.get("cursor", "0")), etag
        return True

    def advance(self, cursor: str, backwards: bool = False) -> None:
        """Move the persisted cursor to ``cursor`` (never backwards unless ``backwards``)."""
        for _ in range(10):
            if self.cursor is not None and not backwards and not _later(cursor, self.cursor):
                return
            if self.cursor == cursor:
                return
            data = json.dumps({"cursor": cursor,
                               "endpoint": redact_url(self.hook.url)}).encode()
            conditional = self.backend.capabilities.conditional_write and self.etag
            try:
                info = self.backend.write(
                    self.key, data, mode=WriteMode.IF_MATCH if conditional else
                    WriteMode.OVERWRITE, etag=self.etag if conditional else None)
            except (PreconditionFailedError, StorageNotFoundError):
                if not self._load():  # deleted meanwhile: recreate at our cursor
                    self.cursor, self.etag = None, None
                    self._recreate(cursor)
                    return
                continue
            self.cursor, self.etag = cursor, info.etag
            return

    def _recreate(self, cursor: str) -> None:
        data = json.dumps({"cursor": cursor, "endpoint": redact_url(self.hook.url)}).encode()
        try:
            self.backend.write(self.key, data, mode=self._create_mode())
        except StorageAlreadyExistsError:
            pass
        self._load()

    # ------------------------------------------------------------------ reading
    def wanted(self) -> float:
        """Seconds until a read is due (woken, a backlog, or :data:`JOURNAL_POLL` passed),
        at least :attr:`gap` (:data:`MIN_GAP`, local disks :data:`MIN_GAP_LOCAL`) after the
        previous read; 0: now."""
        since = time.monotonic() - self.read_at
        gap = self.gap if (self.due or self.backlog) else JOURNAL_POLL
        return max(0.0, gap - since)

    def read(self) -> list[Event]:
        """The next batch of events after the cursor (all types: the caller filters).

        Raises:
            StorageError: The journal or the cursor could not be read.
        """
        # pending until the caller has delivered the batch and set backlog (flush waits)
        self.due, self.backlog, self.read_at = False, True, time.monotonic()
        if self.cursor is None:
            self.start()
        try:
            return list(self.journal.read(self.cursor, limit=BATCH))
        except StorageNotFoundError as exc:  # the cursor expired: from the oldest kept event
            log.error("webhook %s on %s: %s; resuming at the oldest kept event",
                      redact_url(self.hook.url), self.mount, exc)
            return list(self.journal.read(None, limit=BATCH))

    def caught_up(self) -> bool:
        """For a process that does not deliver this journal (another one holds the lock):
        True when the shared cursor has reached the journal's tail (then nothing of ours is
        pending). Rate-limited like :meth:`read`.

        Raises:
            StorageError: The cursor or the journal could not be read.
        """
        self.read_at = time.monotonic()
        tail = self.journal.tail_cursor()
        if not self._load():
            return False
        return self.cursor is not None and not _later(tail, self.cursor)

    def messages(self, event: Event) -> list[Message]:
        """The messages ``event`` gives this endpoint (ids derived from the event's: stable in
        every process). A ``version_created`` entry is also the write's ``file_written`` (the
        journal records one entry per write), so that event is as durable as the version."""
        out = []
        if self.hook.wants(event.type, self.mount):
            out.append(self._message(f"msg_{event.id}", event.type, event, event.info))
        if event.type == "version_created" and self.hook.wants("file_written", self.mount):
            info = event.info
            written = {"path": event.path, "size": info.get("size"), "etag": info.get("etag"),
                       "version_id": event.version_id or info.get("version_id")}
            out.append(self._message(f"msg_{event.id}_w", "file_written", event, written))
        return out

    def _message(self, msg_id: str, kind: str, event: Event, info: dict[str, object]) -> Message:
        body = message_body(msg_id, kind, self.mount, event.path, dict(info), event.time)
        return Message(event.cursor, msg_id, event.time.timestamp(),
                       self.attempts.get(msg_id, 0), body)


def safe_start(source: JournalSource) -> bool:
    """``source.start()``; False (logged) when the storage refused."""
    try:
        source.start()
    except StorageError as exc:
        log.error("webhook %s: cannot open its cursor on %s (%s); retrying later",
                  redact_url(source.hook.url), source.mount, exc)
        return False
    return True
