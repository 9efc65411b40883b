"""The portable engine: content-addressed history on any writable backend.

History lives under a root (default ``.storied/`` in the mount itself)::

    <root>/format.json                 {"format": "storied-history", "schema_version": 2, ...}
    <root>/blobs/<sha[:2]>/<sha256>    one content, immutable (zstd-compressed from schema 4)
    <root>/versions/<path>/<record>    one empty object per write or delete (see records.py)
    <root>/recent/<h[:2]>/<h>/<record> announcements of recent records (see _recent.py)
    <root>/segments/<path>/<segment>   sealed records, schema 3 (see _segments.py)

Write order: blob, then record (and its announcement), then the working copy at ``<path>``;
read in reverse. Records never change; each write creates a new uniquely named one, so
concurrent writers cannot lose a version. The working copy converges to the newest record: a
writer that finds a newer record after writing re-materialises the newest one
(``docs/FORMAT.md`` §4).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime
from typing import BinaryIO, TypeVar

from storied import paths
from storied.backends._compress_blobs import encode_blob, hash_blob, mark_schema, open_blob
from storied.backends.base import CHUNK, Backend
from storied.errors import (
    InvalidContentError,
    IsADirectoryStorageError,
    PathEscapeError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.info import Data, WriteMode
from storied.versioning import _sealing, _segments
from storied.versioning._content import Content as _Content
from storied.versioning._listing import SEALED_MARK, Listing, Listings, as_version, versions_of
from storied.versioning._recent import Recent
from storied.versioning._wp_fast import holding_of, reserved_adapter
from storied.versioning.catalog import Catalog
from storied.versioning.engine import VerifyReport, Version
from storied.versioning.records import (
    BASE_SCHEMA,
    Record,
    blob_path,
    new_writer_id,
    next_timestamp,
    parse_record,
)
from storied.versioning.records import (
    READ_SCHEMA as SCHEMA_VERSION,
)

__all__ = ["PortableEngine"]

_CONVERGE_ROUNDS = 8
_T = TypeVar("_T")


def _hash(backend: Backend, path: str) -> str:
    """The SHA-256 hex of a stored object's content (streamed)."""
    digest = hashlib.sha256()
    with backend.open_read(path) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class PortableEngine:
    """Version history kept by storied itself, in the storage.

    Args:
        data: The mount's backend (below permissions): where working copies live.
        meta: The backend that holds the history (often the same as ``data``).
        root: The history root inside ``meta`` (default ``.storied``).
    """

    data: Backend  # the instance attributes, typed for API tools (pyright --verifytypes)
    meta: Backend
    root: str
    writer: str
    segments: _segments.SegmentStore
    catalog: Catalog
    name = "portable"

    def __init__(self, data: Backend, meta: Backend, root: str = paths.RESERVED) -> None:
        self.data, self.meta, self.root = data, meta, paths.normalize(root)
        self.writer = new_writer_id()
        self._format_checked = False
        self._recent: Recent | None = None
        self._schema = BASE_SCHEMA
        self._seal_counts: dict[str, int] = {}
        self.segments = _segments.SegmentStore(meta, self.root)
        self._listings = Listings(meta, self._history_dir, self.segments)
        self.catalog = Catalog(meta, self.root)
        self._hold = holding_of(meta, data)  # parent directories walked once per write
        self._own = reserved_adapter(meta, self.root)  # for blobs, records, announcements

    # ---------------------------------------------------------------- layout
    def _meta(self, *parts: str) -> str:
        return "/".join(p for p in (self.root, *parts) if p)

    def _history_dir(self, path: str) -> str:
        return self._meta("versions", path)

    def _ensure_format(self) -> None:
        """Create ``format.json`` (schema 2) or check it; upgrade a schema-1 history in place.

        Schema 2 names how writers converge (``converge``): ``recent`` (announcements, see
        :mod:`storied.versioning._recent`) on storages with real directories, whose listings
        read every entry; ``listing`` on object stores, whose listings start after a name. The
        choice is made once per history and read by every writer, so all writers of one history
        converge the same way. Records are unchanged from schema 1.
        """
        if self._format_checked:
            return
        marker = self._meta("format.json")
        way = "recent" if self.meta.capabilities.empty_dirs else "listing"
        mine = {"format": "storied-history", "schema_version": BASE_SCHEMA, "converge": way}
        try:
            self._create(marker, json.dumps(mine).encode())
            found = mine
        except StorageAlreadyExistsError:
            found = self._read_format(marker)
            schema = found.get("schema_version", 0)
            if not isinstance(schema, int) or schema > SCHEMA_VERSION:
                raise UnsupportedOperation(
                    f"History at {marker!r} has schema {schema!r}; "
                    f"this storied reads up to {SCHEMA_VERSION}"
                ) from None
            if schema < BASE_SCHEMA:  # records are unchanged: the upgrade names the way
                self._put(marker, json.dumps(mine).encode())
                found = self._read_format(marker)
            self._schema = max(BASE_SCHEMA, schema)  # 3 once sealed (_sealing)
        way = str(found.get("converge", "listing"))
        if way not in ("recent", "listing"):
            raise UnsupportedOperation(f"History at {marker!r} converges by {way!r}, unknown here")
        self._recent = Recent(self._own, self.root) if way == "recent" else None
        self._format_checked = True

    def _read_format(self, marker: str) -> dict[str, object]:
        try:
            found = json.loads(self.meta.read_bytes(marker))
        except (ValueError, UnicodeDecodeError):
            raise InvalidContentError(f"History marker {marker!r} is not valid JSON") from None
        if not isinstance(found, dict):
            raise InvalidContentError(f"History marker {marker!r} is not a JSON object")
        return found

    def _create(self, path: str, data: Data) -> None:
        """Create-only where the backend can; else check then write (same-content objects)."""
        if self.meta.capabilities.conditional_write:
            fast = getattr(self._own, "create_new", None)
            if fast is not None and isinstance(data, bytes):
                return fast(path, data)  # type: ignore[no-any-return]  # builds no Info
            self.meta.write(path, data, mode=WriteMode.CREATE)
            return
        if self.meta.exists(path):
            raise StorageAlreadyExistsError(f"Already exists: {path!r}")
        self._put(path, data)

    def _put(self, path: str, data: Data) -> None:
        """Write so that no reader sees a partial object, even on non-atomic backends."""
        if self.meta.capabilities.atomic_operations:
            self.meta.write(path, data)
            return
        tmp = self._meta("tmp", uuid.uuid4().hex)
        self.meta.write(tmp, data)
        self.meta.move(tmp, path)

    # ---------------------------------------------------------------- records
    def _read(self, path: str, use: Callable[[Listing], _T]) -> _T:
        """``use(listing of path)``; a segment deleted between the listing and its read (a
        concurrent seal superseded it) means the listing is outdated: list again (3 tries)."""
        for attempt in range(3):
            try:
                return use(self._listings.get(path))
            except StorageNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def records(self, path: str) -> list[Record]:
        """Every record of exactly ``path``, live and sealed, in history order (one listing,
        or none when a cached listing is still valid: see
        :class:`~storied.versioning._listing.Listings`; plus the segments it needs)."""

        def names(listing: Listing) -> list[str]:
            listing.merge()
            return listing.names

        return [r for r in map(parse_record, self._read(path, names)) if r is not None]

    def versions(self, path: str) -> list[Version]:
        return list(self._read(path, Listing.all_versions))

    def version_at(self, path: str, index: int) -> tuple[Version | None, int]:
        """``(version at index, -1)``, or ``(None, number of versions)`` when out of range;
        parses only the names it passes (and reads no segment for -1/-2 usually)."""
        return self._read(path, lambda listing: listing.at(index))

    def version_as_of(self, path: str, moment: datetime) -> Version | None:
        """The newest version written at or before ``moment`` (tz-aware), or None."""
        return self._read(path, lambda listing: listing.as_of(moment))

    def seal(self, path: str, wait: float = 60.0) -> int:
        """Seal ``path``'s oldest records into a segment now (see
        :mod:`storied.versioning._sealing`); how many were sealed."""
        return _sealing.seal(self, path, wait)

    def open_version(self, path: str, version: Version) -> BinaryIO:
        if not version.sha256:
            raise StorageNotFoundError(f"Version {version.version_id} of {path!r} has no content")
        return open_blob(self.meta, self._meta(blob_path(version.sha256)))

    # ---------------------------------------------------------------- writing
    def write(
        self,
        path: str,
        data: Data,
        metadata: dict[str, str] | None = None,
        *,
        exclusive: bool = False,
        if_match: str | None = None,
    ) -> Version:
        """Write ``data`` as a new version of ``path``: blob, record, working copy, converge.

        A write that raises leaves no version that looks acknowledged: a target that is a
        directory (or whose parent is a file) is refused before the record is created, and when
        the working-copy write fails after it, the record is removed (best effort) and the
        storage's error re-raised.

        With ``exclusive`` the write happens only if no file is at ``path``: where the storage
        has conditional writes the working copy is created create-only *before* the record (the
        claim is atomic; a crash right after it leaves a working copy without its version,
        which ``verify`` reports as stale), elsewhere it is an existence check (not atomic).

        With ``if_match`` the working-copy write is the storage's replace-if-etag-matches;
        when it is refused the record is undone, as for any failed working-copy write.

        Raises:
            StorageAlreadyExistsError: ``exclusive`` and a file is at ``path``.
            PreconditionFailedError: ``if_match`` differs from the working copy's etag.
            IsADirectoryStorageError: ``path`` is a directory.
            NotADirectoryStorageError: a parent of ``path`` is a file.
        """
        with self._hold():
            return self._write(path, data, metadata, exclusive, if_match)

    def _write(
        self, path: str, data: Data, metadata: dict[str, str] | None, exclusive: bool,
        if_match: str | None = None,
    ) -> Version:
        self._ensure_format()
        content = _Content(data)
        claimed = False
        try:
            if exclusive:
                claimed = self._claim(path, content, metadata)
            elif self._recent is None or not self._recent.knows(path):
                self._check_target(path)  # a path this engine just wrote was a file then
            try:
                record = self._store(path, content)
            except BaseException:
                if claimed:
                    self._quiet_delete(self.data, path)
                raise
            renamed: str | None = None
            try:
                renamed = self._announce(path, record)
                if if_match is None:
                    self.data.write(path, content.stream(), metadata=metadata)
                else:
                    self.data.write(path, content.stream(), mode=WriteMode.IF_MATCH,
                                    etag=if_match, metadata=metadata)
            except BaseException:
                self._quiet_delete(self.meta, self._record_key(path, record))
                _sealing.unseal(self, path, record)
                if self._recent is not None:
                    self._recent.withdraw(path, record, renamed)
                if claimed:
                    self._quiet_delete(self.data, path)
                self._repair_after_undo(path, content.sha256)
                raise
        finally:
            content.close()
        self._converge(path, record)
        _sealing.maybe_seal(self, path, self._seal_counts)  # now and then (FORMAT.md §4)
        return as_version(record, True)

    def _claim(self, path: str, content: _Content, metadata: dict[str, str] | None) -> bool:
        """Make sure nothing is at ``path`` for an exclusive write; True when this created the
        working copy (create-only), False after a mere existence check."""
        self._refuse_alias(path)
        if not self.data.capabilities.conditional_write:
            if self.data.exists(path):
                raise StorageAlreadyExistsError(f"Already exists: {path!r}")
            self._check_target(path)
            return False
        self.data.write(path, content.stream(), mode=WriteMode.CREATE, metadata=metadata)
        return True

    def _check_target(self, path: str) -> None:
        """Refuse, before any record exists, a target the working-copy write would refuse:
        a directory, or a path below a file. Only storages with real directories can refuse
        (one stat); on object stores a key and a prefix coexist. Skipped for a path this
        engine wrote last time (still a file then); if it became a directory since, the
        working-copy write fails and the record is undone."""
        if not self.data.capabilities.empty_dirs:
            return
        self._refuse_alias(path)
        try:
            info = self.data.info(path)
        except StorageNotFoundError:
            return
        if info.is_dir:
            raise IsADirectoryStorageError(f"Is a directory: {path!r}")

    def _refuse_alias(self, path: str) -> None:
        """Refuse a path whose parent is reached through a symbolic link (local mounts):
        ``cur/f.txt`` with ``cur -> .`` is ``f.txt``, whose history would not see the write."""
        through = getattr(self.data, "through_link", None)
        if through is not None and through(path):
            raise PathEscapeError(
                f"{path!r} passes through a symbolic link: a versioned write must name the "
                "file's own path (its history is kept under that path)"
            )

    @staticmethod
    def _quiet_delete(backend: Backend, path: str) -> None:
        """Best-effort removal while undoing a failed write (the original error wins)."""
        try:
            backend.delete(path)
        except StorageError:
            pass

    def _record_key(self, path: str, record: Record) -> str:
        return self._meta("versions", path, record.name)

    def _add_record(self, path: str, record: Record) -> None:
        """Create the uniquely named record object: one request.

        Where the storage has hard links the record is another name of its (immutable) blob,
        which costs a link instead of a file creation; elsewhere it is an empty object.
        Readers use only the name.
        """
        key = self._meta("versions", path, record.name)
        if record.deleted or not self.meta.capabilities.hard_links:
            self.meta.write(key, b"")
            return
        self.meta.link(self._meta(blob_path(record.sha256)), key)

    def _store(self, path: str, content: _Content) -> Record:
        """Blob, then record: one call where the storage can create a file and link it
        (local disks: ``create_linked``), else :meth:`_store_blob` and :meth:`_add_record`."""
        fused = getattr(self._own, "create_linked", None)
        raw, packed = encode_blob(content.stream())  # compressed when that pays (schema 4)
        if packed:
            mark_schema(self)
        if fused is None or not isinstance(raw, bytes) or not self.meta.capabilities.hard_links:
            self._store_blob(content, raw)
            record = Record(next_timestamp(), self.writer, False, content.size, content.md5,
                            content.sha256)
            self._add_record(path, record)
            return record
        record = Record(next_timestamp(), self.writer, False, content.size, content.md5,
                        content.sha256)
        fused(self._meta(blob_path(content.sha256)), raw, self._record_key(path, record))
        return record

    def _store_blob(self, content: _Content, raw: Data) -> None:
        try:
            self._create(self._meta(blob_path(content.sha256)), raw)
        except StorageAlreadyExistsError:
            pass  # identical content is stored once

    def delete(self, path: str) -> None:
        """Delete the working copy, keeping the history: a tombstone record, then the removal.
        A removal that fails (other than the file being gone already) undoes the tombstone
        and raises the storage's error, like a failed write."""
        self._ensure_format()
        self._refuse_alias(path)
        record = Record(next_timestamp(), self.writer, deleted=True)
        self._add_record(path, record)
        renamed: str | None = None
        try:
            renamed = self._announce(path, record)
            try:
                self.data.delete(path)
            except StorageNotFoundError:
                pass
        except BaseException:
            self._quiet_delete(self.meta, self._record_key(path, record))
            _sealing.unseal(self, path, record)
            if self._recent is not None:
                self._recent.withdraw(path, record, renamed)
            self._repair_after_undo(path, None)
            raise
        self._converge(path, record)
        _sealing.maybe_seal(self, path, self._seal_counts)  # now and then (FORMAT.md §4)

    def _repair_after_undo(self, path: str, failed_sha256: str | None) -> None:
        """After undoing a failed write (``failed_sha256``: its content) or delete (None):
        an older writer may have converged onto the undone record meanwhile (it was announced
        and findable), leaving the working copy showing a version that was never
        acknowledged. When the working copy shows the undone write's content (or is gone after
        an undone delete) while the newest remaining record says otherwise, the newest record
        is materialised, then newer records are looked for as after any working-copy write
        (FORMAT.md §4). Best effort, on the failure path only: the original error wins."""
        try:
            records = self.records(path)
            if not records:
                return
            newest = records[-1]
            try:
                shown: str | None = self._content_sha256(path)
            except StorageNotFoundError:
                shown = None
            if failed_sha256 is not None:
                stale = shown == failed_sha256 and (newest.deleted
                                                    or newest.sha256 != failed_sha256)
            else:
                stale = shown is None and not newest.deleted
            if stale:
                self._materialize(path, newest)
                self._converge_listing(path, newest)
        except (StorageError, OSError):
            pass

    def _content_sha256(self, path: str) -> str:
        return _hash(self.data, path)

    # ---------------------------------------------------------------- convergence
    def _announce(self, path: str, record: Record) -> str | None:
        """Before the working copy is written: announce ``record`` (``recent`` histories);
        the announcement renamed for it, if any (see :meth:`Recent.withdraw`)."""
        return self._recent.announce(path, record) if self._recent is not None else None

    def _converge(self, path: str, mine: Record) -> None:
        """Make the working copy show the newest record, if a concurrent writer overtook us.

        Every writer makes its record known (the record itself; on ``recent`` histories also
        an announcement) *before* writing the working copy and looks for newer ones *after*,
        so the last working-copy write of all is checked against the newest record
        (FORMAT.md §4). ``listing`` histories (object stores) list only the record names after
        ours: one small request. ``recent`` histories list the file's announcements, about one
        per writer in flight, so the cost does not grow with the history; a writer that finds
        an announcement whose record is gone lists the history.
        """
        recent = self._recent
        if recent is None:
            self._converge_listing(path, mine)
            return
        shown = mine
        for _ in range(_CONVERGE_ROUNDS):
            newer = recent.newer(path, mine, shown)
            if newer is None:
                self._converge_listing(path, shown)
                return
            if not newer:
                return
            if not self.meta.exists(self._record_key(path, newer[-1])):
                self._converge_listing(path, shown)
                return
            shown = newer[-1]
            self._materialize(path, shown)

    def _converge_listing(self, path: str, mine: Record) -> None:
        shown = mine
        for _ in range(_CONVERGE_ROUNDS):
            newer = self._records_after(path, shown)
            if not newer:
                return
            shown = newer[-1]
            self._materialize(path, shown)

    def _records_after(self, path: str, record: Record) -> list[Record]:
        """Records newer than ``record``, live and sealed. A seal leaves the newest
        ``LIVE_KEEP`` records live, so a record newer than ``record`` can be sealed only when
        at least that many newer ones are live: only then are the segments looked at (on
        object stores a write's convergence then costs no segment listing)."""
        try:
            listed = self.meta.list_names(self._history_dir(path), record.name)
            names = {name for name, is_dir in listed if not is_dir}
        except (StorageNotFoundError, NotADirectoryError):
            names = set()
        if SEALED_MARK in names and len(names) > _segments.LIVE_KEEP:
            names |= _sealing.sealed_names(self, path, after=record.name)
        found = [parse_record(name) for name in names]
        return sorted(r for r in found if r is not None and r > record)

    def _materialize(self, path: str, record: Record | None) -> None:
        if record is None or record.deleted:
            try:
                self.data.delete(path)
            except StorageNotFoundError:
                pass
            return
        with open_blob(self.meta, self._meta(blob_path(record.sha256))) as stream:
            self.data.write(path, stream)

    def delete_version(self, path: str, version: Version) -> None:
        """Remove one version: its live record and, if sealed, its entry in the segments
        (rewritten; the caller holds the maintenance lease, as for every deletion)."""
        def both(listing: Listing) -> tuple[list[str], bool]:
            listing.merge()
            return listing.names, listing.marked

        names, marked = self._read(path, both)
        records = [r for r in map(parse_record, names) if r is not None]
        target = next((r for r in records if r.version_id == version.version_id), None)
        if target is None:
            raise StorageNotFoundError(f"No version {version.version_id} of {path!r}")
        with suppress(StorageNotFoundError):  # sealed only
            self.meta.delete(self._meta("versions", path, target.name))
        if marked:
            _sealing.drop_sealed(self, path, {target.version_id})
        if target == records[-1]:
            remaining = [r for r in records if r != target]
            self._materialize(path, remaining[-1] if remaining else None)

    def all_versions(self, prefix: str = "") -> dict[str, list[Version]]:
        """``{path: versions}`` for every file below ``prefix`` (or the file ``prefix``), from
        one flat listing of the live records and one of the segments (plus a read per
        effective segment), not one listing per file."""
        result = {p: versions_of(n) for p, n in _sealing.history_names(self, prefix).items()}
        return {p: v for p, v in result.items() if v}

    def removal_items(self, path: str, versions: list[Version]) -> list[tuple[str, str | None]]:
        """What ``remove_items`` deletes to drop ``versions`` (never the current one) of
        ``path``, named from the versions alone (no listing): see
        :func:`~storied.versioning._sealing.removal_items`."""
        return _sealing.removal_items(self, path, versions)

    def remove_items(self, items: list[tuple[str, str | None]]) -> None:
        """Delete what :meth:`removal_items` named (the caller holds the lease)."""
        _sealing.remove_items(self, items)

    # ---------------------------------------------------------------- listing & checking
    def history_paths(self, prefix: str = "") -> Iterator[str]:
        """Paths below ``prefix`` with live records or segments (one walk of each tree)."""
        yield from _sealing.history_names(self, prefix, read_segments=False)

    def verify(self, prefix: str = "") -> VerifyReport:
        """Check records and blobs below ``prefix``; see :class:`VerifyReport`."""
        from storied.versioning.verify import verify_portable
        return verify_portable(self, prefix)

    def blob_sha256(self, sha256: str) -> str:
        """Hash the stored blob ``sha256`` (for verify)."""
        return hash_blob(self.meta, self._meta(blob_path(sha256)))

