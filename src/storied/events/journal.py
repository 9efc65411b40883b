"""The event journal of a history: an append-only, gap-free, numbered log in the storage.

Layout under the history root (``.storied/`` by default; see docs/EVENTS.md)::

    journal/<seq // 1000, 9 digits>/<seq, 12 digits>.json    one entry per event

An entry is created create-only (the storage's conditional write) at "last known number + 1";
when that number is taken (another writer, another process), the next one is tried. A number is
thus only ever taken after its predecessor exists: the numbers have no gaps and every reader
sees the same order. The writer appends *before* the write it records returns (an outbox in
the storage itself), so a process killed after an acknowledged write loses none of its events.

Readers list from their cursor (one listing page per bucket of 1,000 entries) and read each
entry. Upkeep (:meth:`JournalStore.expire`, :mod:`storied.events._upkeep`) seals full buckets
older than two hours into one object each (one GET per 1,000 old events) and removes whole
buckets older than ``keep_days``, never the newest bucket (so numbering never restarts). A
cursor older than the oldest kept entry raises a clear error.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from storied import errors
from storied.errors import (
    InvalidArgumentError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
)
from storied.events._codec import _encoded, _frozen
from storied.info import WriteMode
from storied.versioning._wp_fast import reserved_adapter

if TYPE_CHECKING:
    from storied.backends.base import Backend

__all__ = [
    "BUCKET",
    "DEFAULT_KEEP_DAYS",
    "JOURNALED",
    "JournalStore",
    "parse_cursor",
]

#: Entries per bucket (one listing page on object stores).
BUCKET = 1000
#: Default age after which a full bucket may expire (``JournalStore.expire``).
DEFAULT_KEEP_DAYS = 30.0
#: The events a journal records. ``file_written`` on a versioned mount is the
#: ``version_created`` entry (one entry per write); ``node.lock()`` events are not journaled.
#: Legal hold and retention changes are (they change what may be deleted; one entry per
#: change, nothing on an ordinary write).
JOURNALED = frozenset({
    "version_created", "version_deleted", "file_deleted", "tag_created", "tag_deleted",
    "version_annotated", "snapshot_created", "snapshot_restored", "snapshot_deleted",
    "legal_hold_changed", "retention_changed",
})
_REFRESH = 3600.0  # seconds a cached tail is trusted before it is listed again
#: Seconds between a reader's checks, per bucket, that a bucket which looks like the tail (its
#: entries end before its last number) is not a sealed bucket with a hole: a failed or killed
#: upkeep write-back on an Object Lock bucket (EVENTS.md §6). One GET (usually a 404) per
#: bucket and process this often; a reader parked on such a hole reads on within it.
HOLE_CHECK_EVERY = 60.0
#: Seconds a full bucket's newest entry must have aged before it is sealed (more than the
#: hour a writer trusts its tail: no writer can still try a number in it).
SEAL_AFTER = 2 * 3600.0
_CLOCK_SLACK = 600.0  # seconds of clock difference allowed between a writer and an upkeep
_MAX_ATTEMPTS = 10_000
_READERS = 8
_CHUNK = 32  # entries read ahead in parallel (a reader that stops early wastes <= this)
log: logging.Logger = logging.getLogger("storied.events")


_IDS: list[str] = []  # random event ids drawn ahead (one getrandom per 64 events)
os.register_at_fork(after_in_child=_IDS.clear)  # a child never reuses its parent's ids


def _new_id() -> str:
    """32 random hex digits (lock-free: list pop and extend are atomic)."""
    try:
        return _IDS.pop()
    except IndexError:
        raw = os.urandom(16 * 64).hex()
        _IDS.extend(raw[i:i + 32] for i in range(32, len(raw), 32))
        return raw[:32]


def _entry_name(seq: int) -> str:
    return f"{seq:012d}.json"


def _bucket_name(seq: int) -> str:
    return f"{seq // BUCKET:09d}"


def _seq_of(name: str) -> int | None:
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "json" and len(stem) == 12 and stem.isdigit() else None


def _expired(message: str) -> Exception:
    cls = getattr(errors, "JournalCursorExpiredError", StorageNotFoundError)
    return cls(message)


def parse_cursor(cursor: object) -> int:
    """The sequence number a cursor names (``'0'``: before the first event).

    Raises:
        InvalidArgumentError: Not a cursor this journal gave out (1 to 15 ASCII digits).
    """
    if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) <= 15:
        return int(cursor)
    raise InvalidArgumentError(f"Invalid journal cursor {cursor!r}")


class JournalStore:
    """The journal objects of one history (``backend`` is the history's meta backend).

    Thread-safe; one per engine (see :func:`store_of`). Paths in entries are engine paths.
    """

    backend: Backend
    root: str

    def __init__(self, backend: Backend, root: str) -> None:
        self.backend, self.root = backend, root
        self._tail: int | None = None
        self._tail_at = 0.0
        self._lock = threading.Lock()
        self._entries = self._key("")  # "<root>/journal": entry keys are built on it
        self._fast: Any = None  # the adapter's create_new, found on the first append
        self._deferred: Any = None  # its create_deferred (process-local stores), if any
        self._hole_checked: dict[int, float] = {}  # bucket -> monotonic time of its check
        self._existed = 0  # the newest number :meth:`_holds` found (kept while it lives)
        self._young: dict[int, float] = {}  # bucket -> monotonic time it may be sealed from

    def _creator(self) -> Any:
        """How an entry is created: the adapter's ``create_new`` (no ``Info`` built, one
        ``fstat`` fewer on disks) when every layer above it passes storied's reserved area
        through untouched and the journal is in that area, else :meth:`_create`."""
        adapter = reserved_adapter(self.backend, self.root)
        fast = getattr(adapter, "create_new", None)
        if fast is None or not self.backend.capabilities.conditional_write:
            fast = self._create
        else:
            self._deferred = getattr(adapter, "create_deferred", None)
        self._fast = fast
        return fast

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.root, "journal", *parts) if p)

    def _entry_key(self, seq: int) -> str:
        return f"{self._entries}/{seq // BUCKET:09d}/{seq:012d}.json"

    # ---------------------------------------------------------------- listing
    def _names(self, folder: str, start_after: str | None = None) -> list[tuple[str, bool]]:
        try:
            return list(self.backend.list_names(folder, start_after))
        except (StorageNotFoundError, NotADirectoryError):
            return []

    def _buckets(self) -> list[int]:
        return sorted(int(n) for n, is_dir in self._names(self._key())
                      if is_dir and len(n) == 9 and n.isdigit())

    def _layout(self) -> tuple[list[int], set[int]]:
        """``(bucket folders, sealed buckets)`` from one listing of the journal."""
        dirs, sealed = [], set()
        for name, is_dir in self._names(self._key()):
            stem, dot, ext = name.partition(".")
            if len(stem) == 9 and stem.isdigit():
                if is_dir and not dot:
                    dirs.append(int(stem))
                elif not is_dir and ext == "jsonl":
                    sealed.add(int(stem))
        return sorted(dirs), sealed

    def _sealed_key(self, bucket: int) -> str:
        return self._key(f"{bucket:09d}.jsonl")

    def _load_sealed(self, bucket: int, cache: dict[int, dict[int, dict[str, Any]] | None]
                     ) -> dict[int, dict[str, Any]] | None:
        """The entries of sealed ``bucket`` (one GET, once per read), or None."""
        if bucket not in cache:
            try:
                raw = self.backend.read_bytes(self._sealed_key(bucket))
            except StorageNotFoundError:
                cache[bucket] = None
                return None
            body: dict[int, dict[str, Any]] = {}
            for line in raw.splitlines():
                try:
                    entry = json.loads(line)
                    seq = int(entry.pop("seq"))
                except (ValueError, TypeError, KeyError, AttributeError):
                    raise errors.InvalidContentError(
                        f"Sealed journal bucket {bucket} holds a bad line") from None
                body[seq] = entry
            cache[bucket] = body
        return cache[bucket]

    def _in_bucket(self, bucket: int, after: int | None = None) -> list[int]:
        start = _entry_name(after) if after is not None else None
        found = (_seq_of(n) for n, is_dir in self._names(self._key(f"{bucket:09d}"), start)
                 if not is_dir)
        return sorted(s for s in found if s is not None and (after is None or s > after))

    def tail(self) -> int:
        """The newest entry's number (0 when the journal is empty): two listings."""
        for bucket in reversed(self._buckets()):
            found = self._in_bucket(bucket)
            if found:
                return found[-1]
        return 0

    def head(self) -> int:
        """The oldest kept entry's number (0 when the journal is empty)."""
        dirs, sealed = self._layout()
        for bucket in sorted(set(dirs) | sealed):
            if bucket in sealed:
                return max(1, bucket * BUCKET)  # sealed buckets are complete
            found = self._in_bucket(bucket)
            if found:
                return found[0]
        return 0

    # ---------------------------------------------------------------- writing
    def append(self, event: str, path: str, version_id: str | None,
               info: dict[str, Any]) -> int:
        """Record one event; its number. One create-only write when this process knows the
        tail; when another writer took that number, one listing of the entries after it
        finds the newest, and the number after that is tried.

        Raises:
            StorageError: The entry could not be written (the event is not recorded).
        """
        ident, when = _new_id(), time.time()
        if self._fast is None:
            self._creator()
        create: Any
        if self._deferred is not None:  # a process-local store: encoded when first read
            create = self._deferred
            payload: Any = functools.partial(_encoded, event, path, version_id, when, ident,
                                             _frozen(info))
        else:
            create, payload = self._fast, _encoded(event, path, version_id, when, ident, info)
        with self._lock:
            now = time.monotonic()
            if self._tail is None or now - self._tail_at > _REFRESH:
                self._tail, self._tail_at = self.tail(), now
            seq = self._tail + 1
            for _ in range(_MAX_ATTEMPTS):
                try:
                    create(self._entry_key(seq), payload)
                except StorageAlreadyExistsError:  # another writer took it
                    seq = self._newest_from(seq) + 1
                    continue
                self._tail, self._tail_at = seq, time.monotonic()
                self._young[seq // BUCKET] = self._tail_at + SEAL_AFTER - _CLOCK_SLACK
                return seq
        raise StorageAlreadyExistsError(f"Journal {self._key()!r}: too much contention")

    def _newest_from(self, seq: int) -> int:
        """The newest number, knowing ``seq`` exists: one listing of its bucket after it
        (the full tail listing when that bucket is full)."""
        found = self._in_bucket(seq // BUCKET, seq)
        newest = found[-1] if found else seq
        return max(newest, self.tail()) if newest % BUCKET == BUCKET - 1 else newest

    def _create(self, key: str, data: bytes) -> None:
        if self.backend.capabilities.conditional_write:
            self.backend.write(key, data, mode=WriteMode.CREATE)
            return
        if self.backend.exists(key):  # not atomic: one writer process only on such storages
            raise StorageAlreadyExistsError(f"Already exists: {key!r}")
        self.backend.write(key, data)

    # ---------------------------------------------------------------- reading
    def read(self, since: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(number, entry)`` after ``since`` (None: from the oldest kept entry), in order.

        Raises:
            StorageNotFoundError: ``since`` is older than the oldest kept entry (expired);
                the message says which entries are kept.
            InvalidArgumentError: ``since`` is ahead of the journal (neither it nor anything
                after it exists).
            InvalidContentError: An entry is not a JSON object.
        """
        start = since + 1 if since is not None else max(self.head(), 1)
        bucket, expected = start // BUCKET, start
        # the cursor's own entry is looked for in the same listing (free): a cursor ahead of
        # the journal (another journal's, or one recreated since) is refused, not waited on
        verify = since is not None and since >= 1 and since // BUCKET == bucket
        # known: entry expected - 1 exists (so an idle poll needs one listing, nothing more)
        known = since is not None and since >= 1 and not verify
        unseen = known  # ... assumed (a bucket's last number): checked before ending empty
        cache: dict[int, dict[int, dict[str, Any]] | None] = {}  # sealed buckets read
        body: dict[int, dict[str, Any]] | None = None  # the sealed copy read from, if any
        with ThreadPoolExecutor(_READERS) as pool:
            while True:
                if body is None:
                    low = expected - 2 if verify else expected - 1
                    found = self._in_bucket(bucket, low)
                    idle = not found and known and not verify and expected % BUCKET
                    if not idle and not (found and found[0] in (low + 1, expected)):
                        body = self._load_sealed(bucket, cache)  # off the common path only
                        if body is not None:
                            found = sorted(seq for seq in body if seq > low)
                    if verify:
                        verify = False
                        if found and found[0] == expected - 1:
                            found, known = found[1:], True
                    if body is None and found and found[-1] - found[0] + 1 != len(found):
                        body = self._load_sealed(bucket, cache)  # a hole: its sealed copy
                        found = found if body is None else sorted(s for s in body
                                                                  if s >= expected)
                else:
                    found = sorted(seq for seq in body if seq >= expected)
                if not found and known and expected % BUCKET and body is None:
                    body = self._hidden(bucket, expected, cache)
                    if body is None:
                        return  # sequential numbers: nothing can follow a missing one
                    continue
                if not found:
                    first = self._first_after(bucket)
                    if first is None:
                        if since is not None and since >= 1 and (
                                not known or (unseen and not self._holds(since, cache))):
                            raise InvalidArgumentError(
                                f"Journal cursor {since} is ahead of the journal "
                                f"{self._key()!r} (newest event: {self.tail()}): a cursor "
                                "of another journal, or the journal was recreated")
                        return
                    if first != expected:
                        raise self._gap(expected, first, since)
                    bucket, known, unseen, body = first // BUCKET, True, False, None
                    continue
                if found[0] != expected:
                    raise self._gap(expected, found[0], since)
                known, unseen = True, False
                run = [seq for i, seq in enumerate(found) if seq == expected + i]
                yield from self._bodies(bucket, run, body, pool, cache)
                expected += len(run)
                if len(run) != len(found):
                    raise self._gap(expected, found[len(run)], since)
                if expected % BUCKET:
                    if body is not None:
                        return  # the sealed copy ends here: so does the bucket
                    body = self._hidden(bucket, expected, cache)
                    if body is None:
                        return  # the bucket is not full: that was the tail
                    continue
                bucket, body = bucket + 1, None

    def _bodies(self, bucket: int, run: list[int], body: dict[int, dict[str, Any]] | None,
                pool: ThreadPoolExecutor, cache: dict[int, dict[int, dict[str, Any]] | None]
                ) -> Iterator[tuple[int, dict[str, Any]]]:
        """The entries numbered ``run`` of ``bucket``: from its sealed copy ``body``, or read
        a chunk ahead in parallel (the newest one read tells how young the bucket is)."""
        if body is not None:
            yield from ((seq, body[seq]) for seq in run)
            return
        for at in range(0, len(run), _CHUNK):
            chunk = run[at:at + _CHUNK]  # read ahead a chunk, not the bucket
            read = functools.partial(self._read_entry, cache=cache)
            bodies = list(pool.map(read, chunk) if len(chunk) > 2 else map(read, chunk))
            if at + _CHUNK >= len(run):
                self._note_age(bucket, bodies[-1])
            yield from zip(chunk, bodies, strict=True)

    def _note_age(self, bucket: int, entry: dict[str, Any]) -> None:
        """Remember until when ``bucket`` cannot be sealed, from the time of its newest
        entry read (sealing waits :data:`SEAL_AFTER` after a bucket's newest entry)."""
        try:
            when = datetime.fromisoformat(str(entry.get("time"))).timestamp()
        except (ValueError, TypeError, OverflowError):
            return
        left = when + SEAL_AFTER - _CLOCK_SLACK - time.time()
        if left > 0:
            self._young[bucket] = max(self._young.get(bucket, 0.0), time.monotonic() + left)

    def _hidden(self, bucket: int, expected: int,
                cache: dict[int, dict[int, dict[str, Any]] | None]
                ) -> dict[int, dict[str, Any]] | None:
        """The sealed copy of ``bucket`` when it holds ``expected`` that the listing, which
        ended before it, did not show: a hole a failed or killed upkeep write-back left above
        a held entry (EVENTS.md §6), else None. A tail looks the same from its listing, so
        the sealed copy is looked for only when it may exist: not while the bucket is too
        young to be sealed (this process appended to it, or read a recent entry of it), and
        at most once per :data:`HOLE_CHECK_EVERY` seconds unless this process knows a newer
        entry than the listing showed."""
        now = time.monotonic()
        if not (self._tail is not None and self._tail >= expected):
            if self._young.get(bucket, 0.0) > now:
                return None
            if now - self._hole_checked.get(bucket, -HOLE_CHECK_EVERY - 1.0) < HOLE_CHECK_EVERY:
                return None
        self._hole_checked[bucket] = now
        body = self._load_sealed(bucket, cache)
        return body if body is not None and expected in body else None

    def _holds(self, seq: int, cache: dict[int, dict[int, dict[str, Any]] | None]) -> bool:
        """True when entry ``seq`` exists: this process appended it (or a later one), its
        bucket lists it, or its bucket's sealed copy holds it."""
        if seq <= self._existed or (self._tail is not None and self._tail >= seq):
            return True  # known: an idle poll from such a cursor pays nothing more
        if seq not in self._in_bucket(seq // BUCKET, seq - 1):
            body = self._load_sealed(seq // BUCKET, cache)
            if body is None or seq not in body:
                return False
        self._existed = max(self._existed, seq)
        return True

    def _first_after(self, bucket: int) -> int | None:
        """The first number kept in a bucket after ``bucket`` (one listing of the journal,
        one of a bucket folder), or None."""
        dirs, sealed = self._layout()
        for later in sorted(b for b in set(dirs) | sealed if b > bucket):
            if later in sealed:
                return max(1, later * BUCKET)
            found = self._in_bucket(later)[:1]
            if found:
                return found[0]
        return None

    def _gap(self, expected: int, found: int, since: int | None) -> Exception:
        if since is not None and expected == since + 1:
            return _expired(
                f"Journal cursor {since} has expired: the oldest kept event is {found} "
                f"(read from the start with since=None, or from cursor {found - 1})"
            )
        return _expired(f"Journal {self._key()!r}: entries {expected}..{found - 1} are gone "
                        "(expired while being read)")

    def _read_entry(self, seq: int,
                    cache: dict[int, dict[int, dict[str, Any]] | None] | None = None
                    ) -> dict[str, Any]:
        try:
            raw = self.backend.read_bytes(self._entry_key(seq))
        except StorageNotFoundError:
            body = self._load_sealed(seq // BUCKET, cache if cache is not None else {})
            if body is not None and seq in body:  # sealed while being read
                return body[seq]
            raise _expired(f"Journal entry {seq} expired while being read") from None
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            entry = None
        if not isinstance(entry, dict):
            raise errors.InvalidContentError(f"Journal entry {seq} is not a JSON object")
        return entry

    # ---------------------------------------------------------------- sealing & expiry
    def seal(self, now: datetime | None = None) -> int:
        """Seal old full buckets into one object each; see :func:`storied.events._upkeep.seal`."""
        from storied.events._upkeep import seal

        return seal(self, now)

    def expire(self, keep_days: float = DEFAULT_KEEP_DAYS, now: datetime | None = None) -> int:
        """Seal, then remove buckets older than ``keep_days``; how many entries went. See
        :func:`storied.events._upkeep.expire`.

        Raises:
            InvalidArgumentError: ``keep_days`` < 1.
        """
        from storied.events._upkeep import expire

        return expire(self, keep_days, now)
