"""The native engine: the storage keeps the history itself (S3 bucket versioning).

Every write is a new version made by the storage, every delete a delete marker; nothing is
written besides the file. The engine only translates the storage's version list into
:class:`~storied.versioning.engine.Version` records, through the backend contract
(:meth:`~storied.backends.base.Backend.list_versions`, ``open_version``, ``delete_version``,
``write``, ``delete`` and ``walk_versions``), so it works over any backend whose capabilities
say ``native_versions``, wrapped or not (mount prefix, retries, permissions).

Request economy on S3: ``versions`` one ListObjectVersions per 1000 entries of the key;
``open_version`` one GET; ``write`` one PUT; ``delete`` HEAD + DELETE (the contract's delete
refuses a missing file instead of stacking delete markers); ``delete_version`` one DELETE;
``verify`` and ``history_paths`` one ListObjectVersions per 1000 entries below the prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

from storied import paths
from storied.errors import StorageAlreadyExistsError
from storied.info import Data, Info, ObjectVersion, WriteMode
from storied.versioning.catalog import Catalog
from storied.versioning.engine import VerifyReport, Version, to_datetime

if TYPE_CHECKING:
    from storied.backends.base import Backend

__all__ = ["NativeEngine", "version_from_info"]


def _version(entry: ObjectVersion, is_latest: bool) -> Version:
    return Version(
        version_id=entry.version_id,
        last_modified=to_datetime(entry.mtime),
        size=entry.size,
        etag=entry.md5 or "",
        is_latest=is_latest,
    )


def version_from_info(info: Info, metadata: dict[str, str] | None = None) -> Version:
    """The new current version a write (or server-side copy) response describes: its
    ``VersionId`` (``'null'`` when none), ``Last-Modified`` (else the local clock, UTC), size
    and MD5; no extra request."""
    when = to_datetime(info.mtime) if info.mtime is not None else datetime.now(UTC)
    return Version(
        version_id=info.version_id or "null",
        last_modified=when,
        size=info.size,
        etag=info.md5 or "",
        is_latest=True,
        metadata=dict(metadata or {}),
    )


class NativeEngine:
    """A :class:`~storied.versioning.engine.VersionEngine` over the storage's own versions.

    Paths are those of ``backend`` (a mount root when it is prefixed). Constructing the engine
    sends no request; the caller has checked ``backend.capabilities.native_versions``.

    Attributes:
        name: ``"native"``.
        backend: The backend whose versions are the history.
    """

    catalog: Catalog

    name = "native"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.catalog = Catalog(backend, paths.RESERVED)

    def versions(self, path: str) -> list[Version]:
        """Every content version of exactly ``path``, oldest first (one listing per 1000).

        Delete markers are not versions: a marker newer than every version leaves no version
        ``is_latest`` (the file is deleted). ``metadata`` is empty (the listing has none).
        """
        entries = self.backend.list_versions(path)
        newest = entries[-1] if entries else None
        return [_version(entry, entry is newest) for entry in entries if not entry.is_delete_marker]

    def open_version(
        self, path: str, version: Version, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        """Stream bytes ``[start, end)`` of one version (one GET).

        Raises:
            StorageNotFoundError: The version does not exist (any more).
        """
        return self.backend.open_version(path, version.version_id, start, end)

    def write(
        self,
        path: str,
        data: Data,
        metadata: dict[str, str] | None = None,
        *,
        exclusive: bool = False,
        if_match: str | None = None,
    ) -> Version:
        """Write ``data`` as the new current version (one PUT below the multipart threshold).

        ``last_modified`` is the PUT response's ``Last-Modified`` when the server sends one
        (moto does), else the local clock in UTC (AWS sends none). The version id is the
        response's ``VersionId`` (``'null'`` if the storage gave none).

        With ``exclusive`` the PUT is create-only (``If-None-Match: *``: a key whose latest
        entry is a delete marker counts as absent) where the server honours it, else a HEAD
        first (not atomic).

        Raises:
            StorageAlreadyExistsError: ``exclusive`` and the file exists.
        """
        mode = WriteMode.OVERWRITE
        if exclusive:
            if self.backend.capabilities.conditional_write:
                mode = WriteMode.CREATE
            elif self.backend.exists(path):
                raise StorageAlreadyExistsError(f"Already exists: {path!r}")
        etag = None
        if if_match is not None:
            mode, etag = WriteMode.IF_MATCH, if_match
        info = self.backend.write(path, data, mode=mode, etag=etag, metadata=metadata)
        return version_from_info(info, metadata)

    def delete(self, path: str) -> None:
        """Delete the file: the storage adds a delete marker and keeps every version.

        Writing ``path`` again continues the same history.

        Raises:
            StorageNotFoundError: Nothing (or an already deleted file) is at ``path``.
        """
        self.backend.delete(path)

    def delete_version(self, path: str, version: Version) -> None:
        """Remove one version for good (one DELETE of that version id)."""
        self.backend.delete_version(path, version.version_id)

    def all_versions(self, prefix: str = "") -> dict[str, list[Version]]:
        """``{path: versions}`` for every file below directory ``prefix``, from one flat
        version listing (one request per 1,000 entries), not one listing per file."""
        groups: dict[str, list[ObjectVersion]] = {}
        for entry in self.backend.walk_versions(prefix):
            if entry.path.split("/", 1)[0] != paths.RESERVED:
                groups.setdefault(entry.path, []).append(entry)
        result = {}
        for path, entries in groups.items():
            newest = entries[-1]
            found = [_version(e, e is newest) for e in entries if not e.is_delete_marker]
            if found:
                result[path] = found
        return result

    def removal_items(self, path: str, versions: list[Version]) -> list[tuple[str, str | None]]:
        """``(path, version_id)`` pairs for :meth:`remove_items`."""
        return [(path, v.version_id) for v in versions]

    def remove_items(self, items: list[tuple[str, str | None]]) -> None:
        """Delete versions in batches (S3: one DeleteObjects per 1,000)."""
        self.backend.delete_many(items)

    def verify(self, prefix: str = "") -> VerifyReport:
        """Count the versions below directory ``prefix``; the storage keeps the invariants.

        Returns:
            A report whose ``checked`` is the number of content versions seen (delete markers
            are not counted) and with no problems.
        """
        checked = sum(1 for entry in self._entries(prefix) if not entry.is_delete_marker)
        return VerifyReport(checked=checked)

    def history_paths(self, prefix: str = "") -> Iterator[str]:
        """Each path below directory ``prefix`` with any version or delete marker, once."""
        last = None
        for entry in self._entries(prefix):
            if entry.path != last:
                last = entry.path
                yield entry.path

    def _entries(self, prefix: str) -> Iterator[ObjectVersion]:
        """Every version and marker below ``prefix``, grouped by path, storied's own hidden."""
        walk = self.backend.walk_versions
        for entry in walk(prefix):
            if entry.path.split("/", 1)[0] != paths.RESERVED:
                yield entry
