"""Names of the portable engine's objects: record names carry the whole version record.

A version record is an empty object whose *name* is the record, so listing a file's history
directory is enough to build its version list (one listing per 1,000 versions, no reads)::

    <ts_ns:019d>.<writer:12 hex>.w.<size>.<md5>.<sha256>     a content version
    <ts_ns:019d>.<writer:12 hex>.d                           a tombstone (the file was deleted)

Schema 3 moves a file's oldest records into sealed segments (:mod:`storied.versioning._segments`);
the names inside a segment are the same record names. See ``docs/FORMAT.md`` for the layout
and the invariants.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "BASE_SCHEMA",
    "READ_SCHEMA",
    "SCHEMA_VERSION",
    "Record",
    "blob_path",
    "is_record_name",
    "match_record",
    "new_writer_id",
    "next_timestamp",
    "parse_record",
]

#: The schema a writer marks before its first sealed segment (3: sealed segments, ADR 0011).
SCHEMA_VERSION = 3
#: The newest history schema this storied reads (4: blobs may be compressed, FORMAT.md §2).
READ_SCHEMA = 4
#: The schema a new history starts with; a writer raises it to 3 before its first segment.
BASE_SCHEMA = 2
_RECORD = re.compile(
    r"^(?P<ts>\d{19})\.(?P<writer>[0-9a-f]{12})\."
    r"(?:(?P<w>w)\.(?P<size>\d+)\.(?P<md5>[0-9a-f]{32})\.(?P<sha>[0-9a-f]{64})|(?P<d>d))\Z",
    re.ASCII,
)
_clock_lock = threading.Lock()
_last_ts = 0


@dataclass(frozen=True, order=True)
class Record:
    """One parsed version record; records sort in history order (time, then writer id).

    Attributes:
        ts_ns: Write time in nanoseconds since the epoch (strictly increasing per process).
        writer: The writing engine instance's random id (breaks ties between processes).
        deleted: True for a tombstone.
        size: Content size (0 for a tombstone).
        md5: Hex MD5 of the content ('' for a tombstone).
        sha256: Hex SHA-256 of the content, naming its blob ('' for a tombstone).
    """

    ts_ns: int
    writer: str
    deleted: bool = False
    size: int = 0
    md5: str = ""
    sha256: str = ""

    @cached_property
    def name(self) -> str:
        """The record's object name (computed once)."""
        head = f"{self.ts_ns:019d}.{self.writer}"
        if self.deleted:
            return f"{head}.d"
        return f"{head}.w.{self.size}.{self.md5}.{self.sha256}"

    @property
    def version_id(self) -> str:
        """The public version id: ``<ts_ns>.<writer>`` (unique, sortable)."""
        return f"{self.ts_ns:019d}.{self.writer}"


def parse_record(name: str) -> Record | None:
    """The record named ``name``, or None when the name is not a record."""
    match = _RECORD.match(name)
    if match is None:
        return None
    ts, writer = int(match["ts"]), match["writer"]
    if match["d"]:
        return Record(ts, writer, deleted=True)
    return Record(ts, writer, False, int(match["size"]), match["md5"], match["sha"])


def match_record(name: str) -> re.Match[str] | None:
    """The regular-expression match of a record name (groups ``ts``, ``writer``, ``w``,
    ``size``, ``md5``, ``sha``, ``d``), None when ``name`` is not a record."""
    return _RECORD.match(name)


def is_record_name(name: str) -> bool:
    """True when ``name`` is a record name (no parsing)."""
    return _RECORD.match(name) is not None


def new_writer_id() -> str:
    """A random 12-hex-digit writer id (one per engine instance)."""
    return os.urandom(6).hex()


def next_timestamp() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process."""
    global _last_ts
    with _clock_lock:
        _last_ts = max(time.time_ns(), _last_ts + 1)
        return _last_ts


def blob_path(sha256: str) -> str:
    """Where the blob of content ``sha256`` lives, relative to the history root."""
    return f"blobs/{sha256[:2]}/{sha256}"
