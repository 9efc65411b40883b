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
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from storied.backends.base import Backend
from storied.errors import StorageError, StorageNotFoundError
from storied.versioning.engine import Version, to_datetime
from storied.versioning.records import Record, is_record_name, match_record, parse_record

__all__ = ["QUIET_SECONDS", "Listing", "Listings", "as_version", "versions_of"]

#: A history directory unchanged for this long may have its listing cached.
QUIET_SECONDS = 1.0
#: What a cached listing is valid for: a directory's (mtime_ns, ctime_ns, inode, device).
Stamp = tuple[int, int, int, int]
#: Record names, one a line (``versions_of`` matches a whole listing in one call).
_RECORD_LINE = re.compile(
    r"^(\d{19}\.[0-9a-f]{12})\.(?:w\.(\d+)\.([0-9a-f]{32})\.([0-9a-f]{64})|(d))$",
    re.ASCII | re.MULTILINE,
)
_RECORD_WHOLE = re.compile(
    r"^\d{19}\.[0-9a-f]{12}\.(?:w\.\d+\.[0-9a-f]{32}\.[0-9a-f]{64}|d)$", re.ASCII | re.MULTILINE
)
_CACHED_NAMES = 200_000  # ~30 MB of names at most, over all cached directories


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
    """The sorted record names of one file; ``versions`` is filled in by the first full use."""

    names: list[str]
    versions: list[Version] | None = None
    _write_names: list[str] | None = None
    _checked: bool = False

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
        self.check()
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
    """

    def __init__(self, meta: Backend, folder_of: Callable[[str], str]) -> None:
        self.meta, self.folder_of = meta, folder_of
        self._cache: OrderedDict[str, tuple[Stamp, Listing]] = OrderedDict()
        self._lock = threading.Lock()
        self._stampable: bool | None = None
        self._held = 0

    def _stamp(self, folder: str) -> Stamp | None:
        """``(mtime_ns, ctime_ns, inode, device)`` of ``folder``, or None (not cacheable).
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
        except (StorageError, OSError):
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        return st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev

    def _names(self, folder: str) -> list[str]:
        """The sorted record-shaped file names in ``folder`` (one listing)."""
        lister = getattr(self.meta, "list_file_names", None)  # the local backend itself
        if lister is not None:
            found: list[str] = lister(folder)
        else:
            found = [n for n, is_dir in self.meta.list_names(folder) if not is_dir]
        names = [n for n in found if len(n) >= 34 and n[19] == "." and n[32] == "."
                 and n[33] in "wd"]  # _shaped, inlined: thousands of names
        names.sort()
        return names

    def get(self, path: str) -> Listing:
        """The listing of ``path``'s history (empty when it has none)."""
        folder = self.folder_of(path)
        started = time.time_ns()
        stamp = self._stamp(folder)
        if stamp is not None:
            with self._lock:
                hit = self._cache.get(folder)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        try:
            names = self._names(folder)
        except (StorageNotFoundError, NotADirectoryError):
            return Listing([])
        listing = Listing(names)
        quiet = stamp is not None and stamp[1] < started - int(QUIET_SECONDS * 1e9)
        if quiet and stamp is not None and len(names) <= _CACHED_NAMES:
            with self._lock:
                self._cache[folder] = (stamp, listing)
                self._cache.move_to_end(folder)
                self._held = sum(len(item.names) for _, item in self._cache.values())
                while self._held > _CACHED_NAMES:
                    _, (_, dropped) = self._cache.popitem(last=False)
                    self._held -= len(dropped.names)
        return listing
