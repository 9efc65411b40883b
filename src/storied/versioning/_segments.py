"""Sealed segments (schema 3): a file's oldest records, moved out of its live directory.

A file's live history directory ``versions/<path>/`` is listed by every read right after a
write, so it must stay small whatever the history's length. Once it holds more than
:data:`LIVE_MAX` records, a writer holding the maintenance lease (ADR 0005) *seals* the oldest
ones: it writes one immutable segment object listing their names, then deletes the record
objects. Segments live in their own tree (``versions/a/`` also holds the history of ``a/b``)::

    <root>/segments/<path>/<lo>_<hi>_<gen:06d>.seg

``lo`` and ``hi`` are version ids (``<ts_ns>.<writer>``) bounding the records the segment
*covers* (inclusive), ``gen`` its generation. The body is ``storied-segment 1 <count>`` and
then the record names, sorted, one a line. A segment is created create-only and never changes.

A segment T **supersedes** a segment S when ``T.gen > S.gen`` and T's range contains S's.
Readers use the *effective* segments (those nobody supersedes) plus the live records, deduped
by name (a crash between a segment's creation and the removal of its records leaves both).
Every new segment (a seal, a merge, a rewrite after a deletion) is written with a generation
above every segment its range overlaps and holds every record of the effective segments in
its range, so superseding never hides a record that should stay; the old ones are deleted
after it. All of this happens under the maintenance lease only, so segment writers never race.
See ``docs/FORMAT.md`` §2.2 and ADR 0011.
"""

from __future__ import annotations

import builtins
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import pairwise

from storied.backends.base import Backend
from storied.errors import InvalidContentError, StorageError, StorageNotFoundError
from storied.versioning.engine import Version
from storied.versioning.records import is_record_name

__all__ = [
    "LIVE_KEEP",
    "LIVE_MAX",
    "SEAL_AGE_NS",
    "SEAL_CHECK",
    "Segment",
    "SegmentStore",
    "decode_segment",
    "effective",
    "encode_segment",
    "parse_segment_name",
    "plan_segment",
]

#: A live directory holding more records than this is sealed (by a writer that checks it).
LIVE_MAX = 64
#: The newest records a seal leaves live (at least 1: convergence reads the live records).
LIVE_KEEP = 16
#: Only records at least this old are sealed (0: any; a writer that undoes a record sealed
#: meanwhile drops it from the segments itself, see ``_sealing.unseal``).
SEAL_AGE_NS = 0
#: A writer checks its file's live directory once in about this many writes (and on its
#: first write of the file where listings are cheap).
SEAL_CHECK = 32
_HEADER = b"storied-segment 1 "
_RECORD_LINE = re.compile(  # a record name alone on its line (records.py's pattern)
    rb"^\d{19}\.[0-9a-f]{12}\.(?:w\.\d+\.[0-9a-f]{32}\.[0-9a-f]{64}|d)$", re.ASCII | re.MULTILINE)
_NAME = re.compile(r"^(\d{19}\.[0-9a-f]{12})_(\d{19}\.[0-9a-f]{12})_(\d{6})\.seg\Z", re.ASCII)
_CACHED_NAMES = 400_000  # parsed segment contents kept (immutable objects), all files together
MAX_GEN = 999_999


@dataclass(frozen=True, order=True)
class Segment:
    """One segment object's name, parsed: the version-id range it covers and its generation."""

    lo: str
    hi: str
    gen: int

    @property
    def name(self) -> str:
        return f"{self.lo}_{self.hi}_{self.gen:06d}.seg"

    def contains(self, other: Segment) -> bool:
        """True when ``other``'s range lies within this one's."""
        return self.lo <= other.lo and other.hi <= self.hi

    def overlaps(self, lo: str, hi: str) -> bool:
        """True when the range ``[lo, hi]`` meets this one's."""
        return not (self.hi < lo or hi < self.lo)

    def holds(self, name: str) -> bool:
        """True when record ``name`` falls in this segment's range."""
        return self.lo <= name[:32] <= self.hi


def parse_segment_name(name: str) -> Segment | None:
    """The segment named ``name``, or None when it is not a segment name."""
    match = _NAME.match(name)
    if match is None or match[1] > match[2]:
        return None
    return Segment(match[1], match[2], int(match[3]))


def effective(segments: list[Segment]) -> list[Segment]:
    """The segments no other one supersedes (higher generation, containing range), by ``lo``."""
    return sorted(s for s in segments
                  if not any(t.gen > s.gen and t.contains(s) for t in segments))


def encode_segment(names: list[str]) -> bytes:
    """The body of a segment holding the sorted record ``names``."""
    return _HEADER + str(len(names)).encode() + b"\n" + "\n".join(names).encode("ascii")


def decode_segment(data: bytes, segment: Segment) -> list[str]:
    """The record names of a segment body, checked: header, count, record shape, order, range.

    Raises:
        InvalidContentError: The body is not a well-formed segment for ``segment``'s name.
    """
    head, _, body = data.partition(b"\n")
    if not head.startswith(_HEADER) or not head[len(_HEADER):].isdigit():
        raise InvalidContentError(f"segment {segment.name}: not a storied segment")
    try:
        names = body.decode("ascii").split("\n") if body else []
    except UnicodeDecodeError:
        raise InvalidContentError(f"segment {segment.name}: not ASCII") from None
    if len(names) != int(head[len(_HEADER):]):
        raise InvalidContentError(f"segment {segment.name}: holds {len(names)} names, "
                                  f"its header says {int(head[len(_HEADER):])}")
    if len(_RECORD_LINE.findall(body)) != len(names) or not names_in_order(names) or (
            names and not (segment.holds(names[0]) and segment.holds(names[-1]))):
        bad = next((n for n in names if not is_record_name(n) or not segment.holds(n)), "")
        raise InvalidContentError(f"segment {segment.name}: bad or unsorted entry {bad[:120]!r}")
    return names


def names_in_order(names: list[str]) -> bool:
    """True when ``names`` are strictly increasing (so also free of duplicates)."""
    return all(a < b for a, b in pairwise(names))


def plan_segment(found: list[Segment], lo: str, hi: str) -> tuple[str, str, list[Segment], int]:
    """The range, the effective segments to merge in and the generation of a new segment that
    must cover ``[lo, hi]``: the range grows until no effective segment straddles it, and the
    generation exceeds that of every segment (effective or not) the final range overlaps."""
    live = effective(found)
    merged: list[Segment] = []
    grown = True
    while grown:
        grown = False
        for seg in live:
            if seg not in merged and seg.overlaps(lo, hi):
                merged.append(seg)
                lo, hi, grown = min(lo, seg.lo), max(hi, seg.hi), True
    gen = 1 + max((s.gen for s in found if s.overlaps(lo, hi)), default=0)
    if gen > MAX_GEN:
        raise InvalidContentError(f"segment generation overflow in range {lo}..{hi}")
    return lo, hi, sorted(merged), gen


class SegmentStore:
    """Reads the segments of one history root; parsed contents are cached by object name
    (a segment never changes once written, so its name fixes its content).

    Args:
        meta: The backend holding the history.
        root: The history root inside ``meta``.
    """

    meta: Backend
    root: str

    def __init__(self, meta: Backend, root: str) -> None:
        self.meta, self.root = meta, root
        self._cache: OrderedDict[str, tuple[list[str], list[Version] | None]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def folder(self, path: str) -> str:
        """The segment directory of ``path`` inside ``meta``."""
        return "/".join(p for p in (self.root, "segments", path) if p)

    def list(self, path: str) -> list[Segment]:
        """Every segment object of ``path`` (superseded ones included), sorted; [] when none."""
        try:  # start_after: every segment name sorts after "0"; an object store then needs
            # no second request to tell a missing directory from a file
            listed = self.meta.list_names(self.folder(path), start_after="0")
            found = [n for n, is_dir in listed if not is_dir]
        except (StorageNotFoundError, NotADirectoryError):
            return []
        return sorted(s for s in map(parse_segment_name, found) if s is not None)

    def names(self, path: str, segment: Segment) -> builtins.list[str]:
        """The record names ``segment`` of ``path`` holds (one read, then cached).

        Raises:
            InvalidContentError: The object is not a well-formed segment.
        """
        key = f"{self.folder(path)}/{segment.name}"
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit[0]
        names = decode_segment(self.meta.read_bytes(key), segment)
        self._keep(key, names, None)
        return names

    def versions(self, path: str, segment: Segment) -> builtins.list[Version]:
        """The content versions ``segment`` holds, oldest first, none marked latest (cached)."""
        from storied.versioning._listing import versions_of

        key = f"{self.folder(path)}/{segment.name}"
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] is not None:
            return hit[1]
        names = self.names(path, segment)
        found = versions_of([*names, _FENCE])  # a tombstone last: nothing marked latest
        self._keep(key, names, found)
        return found

    def _keep(self, key: str, names: builtins.list[str],
              found: builtins.list[Version] | None) -> None:
        if len(names) > _CACHED_NAMES:
            return
        with self._lock:
            old = self._cache.pop(key, None)
            self._held -= len(old[0]) if old else 0
            self._cache[key] = (names, found)
            self._held += len(names)
            while self._held > _CACHED_NAMES:
                _, (dropped, _) = self._cache.popitem(last=False)
                self._held -= len(dropped)

    def write(self, path: str, segment: Segment, names: builtins.list[str]) -> None:
        """Create ``segment`` of ``path`` holding ``names`` (create-only where the storage can).

        Raises:
            StorageAlreadyExistsError: An object of that name exists already.
        """
        from storied.info import WriteMode

        key = f"{self.folder(path)}/{segment.name}"
        body = encode_segment(names)
        if self.meta.capabilities.conditional_write:
            self.meta.write(key, body, mode=WriteMode.CREATE)
        else:  # segments are only written under the lease, which needs conditional writes
            raise StorageError("segments need a storage with conditional writes")
        self._keep(key, names, None)

    def remove(self, path: str, segment: Segment) -> None:
        """Delete a superseded segment object (gone already is fine)."""
        try:
            self.meta.delete(f"{self.folder(path)}/{segment.name}")
        except StorageNotFoundError:
            pass


#: A tombstone name sorting after every record: ends a listing with "deleted", so
#: ``versions_of`` marks no version of a segment as the latest.
_FENCE = "9" * 19 + ".ffffffffffff.d"
