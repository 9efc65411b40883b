"""A file's record names, sorted once, parsed lazily, cached while provably unchanged.

Record names sort in history order as plain strings (``ts_ns`` is zero-padded to 19 digits,
the writer id is fixed-width hex), so a listing is sorted as strings, never as parsed records,
and ``-1``, ``-2`` or ``as_of`` parse only the names they return.

Caching: on storages whose paths are local files (``local_path``), a history directory's
modification time changes whenever a record is added or removed. A listing is cached with
the directory's mtime read *before* it, and only when that mtime was already more than
:data:`QUIET_SECONDS` old: any later change then happens on a later clock tick and gives the
directory a different mtime, so the cached listing is used only while the directory is
unchanged (this assumes the directory's timestamps come from this machine's clock, or one
within :data:`QUIET_SECONDS` of it). Each use costs one ``stat``. Elsewhere nothing is cached.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING

from storied.backends.base import Backend
from storied.errors import StorageError, StorageNotFoundError
from storied.versioning.engine import Version, to_datetime
from storied.versioning.records import Record, is_record_name, match_record, parse_record

if TYPE_CHECKING:
    from storied.versioning._segments import Segment, SegmentStore

#: In a live directory: the file has sealed segments (sorts after every record name, so a
#: listing that ends without it began and ended before any seal of the file started).
SEALED_MARK = "9" * 19 + ".ffffffffffff.s"

__all__ = ["QUIET_SECONDS", "Listing", "Listings", "as_version", "versions_of"]

#: A history directory unchanged for this long may have its listing cached.
QUIET_SECONDS = 1.0
#: What a cached listing is valid for: a directory's (mtime_ns, ctime_ns, inode, device).
Stamp = tuple[int, int, int, int]
_ABSENT: Stamp = (0, 0, 0, 0)  # the stamp of a directory that does not exist
#: Record names, one a line (``versions_of`` matches a whole listing in one call).
_RECORD_LINE = re.compile(
    r"^(\d{19}\.[0-9a-f]{12})\.(?:w\.(\d+)\.([0-9a-f]{32})\.([0-9a-f]{64})|(d))$",
    re.ASCII | re.MULTILINE,
)
_RECORD_WHOLE = re.compile(
    r"^\d{19}\.[0-9a-f]{12}\.(?:w\.\d+\.[0-9a-f]{32}\.[0-9a-f]{64}|d)$", re.ASCII | re.MULTILINE
)
_CACHED_NAMES = 200_000  # ~30 MB of names at most, over all cached directories
_CACHED_SEALED = 4096  # segment listings of that many files


def as_version(record: Record, is_latest: bool) -> Version:
    """The public :class:`Version` of a content record."""
    return Version(
        version_id=record.version_id,
        last_modified=to_datetime(record.ts_ns / 1e9),
        size=record.size,
        etag=record.md5,
        is_latest=is_latest,
        sha256=record.sha256,
    )


def versions_of(names: list[str]) -> list[Version]:
    """The versions named by sorted record names, oldest first, in one pass (no records).

    The names are matched as one text, a name a line, in a single regular-expression call
    (the same pattern as :func:`~storied.versioning.records.match_record`); when a name
    holds a line break (it could pass for several records) each is matched on its own.
    """
    text = "\n".join(names)
    if text.count("\n") != max(0, len(names) - 1):
        return _versions_one_by_one(names)
    found: list[Version] = []
    append, when = found.append, datetime.fromtimestamp
    live = False
    for version_id, size, md5, sha, deleted in _RECORD_LINE.findall(text):
        live = not deleted
        if live:
            append(Version(version_id, when(int(version_id[:19]) / 1e9, UTC), int(size), md5,
                           False, sha))
    if live:
        found[-1] = replace(found[-1], is_latest=True)
    return found


def _versions_one_by_one(names: list[str]) -> list[Version]:
    found: list[Version] = []
    live = False
    for name in names:
        match = match_record(name)
        if match is None:
            continue
        live = not match["d"]
        if live:
            found.append(Version(name[:32], to_datetime(int(name[:19]) / 1e9),
                                 int(match["size"]), match["md5"], False, match["sha"]))
    if live:
        found[-1] = replace(found[-1], is_latest=True)
    return found


@dataclass
class Listing:
    """The sorted record names of one file; ``versions`` is filled in by the first full use.

    On a schema-3 history ``names`` starts as the live records only and ``sealed`` lists the
    effective segments (see :mod:`storied.versioning._segments`), read only when an answer
    may lie in them: ``-1``, ``-2`` or ``as_of`` newer than every sealed record are answered
    from the live names; anything else merges the segments in first (:meth:`merge`).
    """

    names: list[str]
    versions: list[Version] | None = None
    _write_names: list[str] | None = None
    _checked: bool = False
    sealed: list[Segment] = field(default_factory=list)
    store: SegmentStore | None = None
    path: str = ""
    marked: bool = False  # the live directory holds the sealed mark

    def _top(self) -> str:
        """The highest version id any sealed record may have ('' when none is sealed)."""
        return max((s.hi for s in self.sealed), default="")

    def merge(self) -> None:
        """Read the sealed segments into ``names`` (deduplicated: a record left both live and
        sealed by a crash is one record)."""
        if not self.sealed or self.store is None:
            return
        union = set(self.names)
        for seg in self.sealed:
            union.update(self.store.names(self.path, seg))
        self.names, self.sealed = sorted(union), []
        self._write_names, self._checked = None, False

    def all_versions(self) -> list[Version]:
        """Every content version, oldest first (filled in once). Segments that follow one
        another and precede every live record are stacked from their cached versions."""
        if self.versions is not None:
            return self.versions
        store, sealed = self.store, self.sealed
        if sealed and store is not None and self._stacked():
            found: list[Version] = []
            for seg in sealed:
                found += store.versions(self.path, seg)
            self.versions = found + versions_of(self.names)
            return self.versions
        self.merge()
        self.versions = versions_of(self.names)
        return self.versions

    def _stacked(self) -> bool:
        """True when the segments do not overlap one another and every live name is newer
        than all of them, and the newest live name is a record (it decides ``is_latest``)."""
        order = self.sealed
        if any(a.hi >= b.lo for a, b in pairwise(order)):
            return False
        return bool(self.names) and self.names[0][:32] > order[-1].hi and \
            _last_valid(self.names) >= 0

    def check(self) -> None:
        """Drop names that are shaped like records but are not (parses every name once)."""
        if not self._checked:
            text = "\n".join(self.names)
            if text.count("\n") == max(0, len(self.names) - 1):  # a name a line: one call
                self.names = _RECORD_WHOLE.findall(text)
            else:
                self.names = [n for n in self.names if is_record_name(n)]
            self._write_names, self._checked = None, True

    def _writes(self) -> list[str]:
        if self._write_names is None:
            self._write_names = [n for n in self.names if n[33] == "w"]
        return self._write_names

    def _version(self, writes: list[str], position: int) -> Version:
        record = parse_record(writes[position])
        assert record is not None  # callers pass checked names only
        latest = _last_valid(writes) == position and self.names[_last_valid(self.names)][33] == "w"
        return as_version(record, latest)

    def at(self, index: int) -> tuple[Version | None, int]:
        """``(version at index, -1)``, or ``(None, number of versions)`` when out of range.
        Checks only the names between the end it counts from and the one it returns."""
        if self.versions is not None:
            count = len(self.versions)
            return (self.versions[index] if -count <= index < count else None), count
        if self.sealed:
            if index < 0:
                top, writes = self._top(), self._writes()
                need = -index
                for position in range(len(writes) - 1, -1, -1):
                    if writes[position][:32] < top:
                        break
                    if self._checked or is_record_name(writes[position]):
                        need -= 1
                        if not need:
                            return self._version(writes, position), -1
            if self._stacked():  # the cached versions of the segments, then the live ones
                self.all_versions()
                return self.at(index)
            self.merge()
        writes = self._writes()
        need = -index if index < 0 else index + 1
        order = range(len(writes) - 1, -1, -1) if index < 0 else range(len(writes))
        for position in order:
            if self._checked or is_record_name(writes[position]):
                need -= 1
                if not need:
                    return self._version(writes, position), -1
        self.check()
        return None, len(self._writes())

    def as_of(self, moment: datetime) -> Version | None:
        """The newest version whose ``last_modified`` is at or before ``moment``."""
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if self.sealed:
            top = self._top()
            self.check()
            found = self._as_of(moment)
            if found is not None and found.version_id >= top:
                return found  # no sealed record is newer than it
            if self._stacked():
                everything = self.all_versions()
                pos = bisect_right(everything, moment, key=lambda v: v.last_modified)
                return everything[pos - 1] if pos else None
            self.merge()
        self.check()
        return self._as_of(moment)

    def _as_of(self, moment: datetime) -> Version | None:
        writes = self._writes()
        if not writes:
            return None
        # a first guess by name, then exact: the predicate is the one on Version objects
        guess = f"{max(0, int(moment.timestamp() * 1e9) + 1000):019d}"
        pos = min(bisect_right(writes, guess), len(writes)) - 1

        def fits(i: int) -> bool:
            return to_datetime(int(writes[i][:19]) / 1e9) <= moment

        while pos >= 0 and not fits(pos):
            pos -= 1
        while pos + 1 < len(writes) and fits(pos + 1):
            pos += 1
        return self._version(writes, pos) if pos >= 0 else None


def _last_valid(names: list[str]) -> int:
    """The position of the last real record name in ``names`` (-1 when none)."""
    for position in range(len(names) - 1, -1, -1):
        if is_record_name(names[position]):
            return position
    return -1


def _shaped(name: str) -> bool:
    """A cheap test that ``name`` looks like a record (``Listing.check`` is the exact one)."""
    return len(name) >= 34 and name[19] == "." and name[32] == "." and name[33] in "wd"


class Listings:
    """Listings of the history directories of one engine (see the module doc for caching).

    Args:
        meta: The backend holding the history.
        folder_of: Maps an engine path to its history directory in ``meta``.
        segments: Reads the history's sealed segments (schema 3), if any.
    """

    def __init__(self, meta: Backend, folder_of: Callable[[str], str],
                 segments: SegmentStore | None = None) -> None:
        self.meta, self.folder_of, self.segments = meta, folder_of, segments
        #: Paths whose live directory a read found longer than ``LIVE_MAX`` (schema-2 histories
        #: and unsealed ones): the engine's next write of one looks at sealing it.
        self.long: set[str] = set()
        self._cache: OrderedDict[str, tuple[Stamp, Stamp | None, Listing]] = OrderedDict()
        self._sealed_cache: OrderedDict[str, tuple[Stamp, list[Segment]]] = OrderedDict()
        self._lock = threading.Lock()
        self._stampable: bool | None = None
        self._held = 0

    def _stamp(self, folder: str, absent: Stamp | None = None) -> Stamp | None:
        """``(mtime_ns, ctime_ns, inode, device)`` of ``folder``, or None (not cacheable);
        ``absent`` when ``folder`` does not exist (a segment directory may be missing).
        The ctime changes with every entry added, removed or renamed and cannot be set back
        (``utime`` sets the mtime: ``rsync -a`` restoring one must not revive a listing); a
        stamp of another directory never matches (inode and device)."""
        if self._stampable is None:
            try:
                self._stampable = self.meta.local_path(folder) is not None
            except StorageError:
                self._stampable = False
        if not self._stampable:
            return None
        try:
            direct = getattr(self.meta, "dir_stamp", None)  # the local backend itself
            if direct is not None:
                return direct(folder)  # type: ignore[no-any-return]
            where = self.meta.local_path(folder)
            if where is None:
                return None
            st = os.stat(where, follow_symlinks=False)
        except (StorageNotFoundError, FileNotFoundError):
            return absent
        except (StorageError, OSError):
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        return st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev

    def _names(self, folder: str) -> tuple[list[str], bool]:
        """The sorted record-shaped file names in ``folder`` (one listing), and whether the
        sealed mark is among them (the file has segments: FORMAT.md §2.2)."""
        lister = getattr(self.meta, "list_file_names", None)  # the local backend itself
        if lister is not None:
            found: list[str] = lister(folder)
        else:
            found = [n for n, is_dir in self.meta.list_names(folder) if not is_dir]
        names = [n for n in found if len(n) >= 34 and n[19] == "." and n[32] == "."
                 and n[33] in "wd"]  # _shaped, inlined: thousands of names
        names.sort()
        return names, SEALED_MARK in found

    def _sealed(self, path: str, stamp: Stamp | None, started: int) -> list[Segment]:
        """The effective segments of ``path`` (``stamp``: its segment directory's, taken after
        the live listing: the reading order). The segment directory changes only when a seal
        or a deletion rewrites it, so its listing is cached on its own stamp (the rule of the
        module doc)."""
        from storied.versioning._segments import effective

        store = self.segments
        assert store is not None
        folder = store.folder(path)
        if stamp is not None:
            with self._lock:
                hit = self._sealed_cache.get(folder)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        found = [] if stamp == _ABSENT else effective(store.list(path))
        if stamp is not None and stamp[1] < started - int(QUIET_SECONDS * 1e9):
            with self._lock:
                self._sealed_cache[folder] = (stamp, found)
                while len(self._sealed_cache) > _CACHED_SEALED:
                    self._sealed_cache.popitem(last=False)
        return found

    def live(self, folder: str) -> tuple[list[str], bool]:
        """The sorted record-shaped names in the live directory ``folder`` and whether it
        holds the sealed mark (never cached)."""
        try:
            return self._names(folder)
        except (StorageNotFoundError, NotADirectoryError):
            return [], False

    def live_names(self, folder: str) -> list[str]:
        """The sorted record-shaped names in the live directory ``folder`` (never cached)."""
        return self.live(folder)[0]

    def get(self, path: str) -> Listing:
        """The listing of ``path``'s history (empty when it has none): the live records
        first, then, only when they hold the sealed mark, the segment directory (small; its
        segments are read only when needed). Cached only while the directories it read are
        provably unchanged (module doc)."""
        folder = self.folder_of(path)
        started = time.time_ns()
        stamp = self._stamp(folder)
        store = self.segments
        if stamp is not None:
            with self._lock:
                hit = self._cache.get(folder)
            if hit is not None and hit[0] == stamp and store is not None and (
                    hit[1] is None or hit[1] == self._stamp(store.folder(path), _ABSENT)):
                return hit[2]
        names, marked = self.live(folder)
        listing = Listing(names)
        sealed_stamp: Stamp | None = None
        if store is not None:
            from storied.versioning._segments import LIVE_MAX

            if len(names) > LIVE_MAX and len(self.long) < 4096:
                self.long.add(path)
            if marked:
                listing.marked = True
                sealed_stamp = self._stamp(store.folder(path), _ABSENT)
                listing.sealed = self._sealed(path, sealed_stamp, started)
                listing.store, listing.path = store, path
        if not names and not listing.sealed:
            return listing
        old = started - int(QUIET_SECONDS * 1e9)
        quiet = stamp is not None and stamp[1] < old and store is not None and (
            not marked or (sealed_stamp is not None and sealed_stamp[1] < old))
        if quiet and stamp is not None and len(names) <= _CACHED_NAMES:
            with self._lock:
                self._cache[folder] = (stamp, sealed_stamp if marked else None, listing)
                self._cache.move_to_end(folder)
                self._held = sum(len(item.names) for _, _, item in self._cache.values())
                while self._held > _CACHED_NAMES:
                    _, (_, _, dropped) = self._cache.popitem(last=False)
                    self._held -= len(dropped.names)
        return listing
