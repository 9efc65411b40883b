"""The version-engine interface shared by the native (S3) and portable engines.

An engine keeps the history of the files of one storage. Paths are relative to the engine's
root (a mount root; relative mounts add their prefix before calling). Versions are returned
oldest first; delete markers are not versions but end a file's ``is_latest`` run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from storied.info import Data

if TYPE_CHECKING:
    from storied.versioning.catalog import Catalog

__all__ = ["VerifyReport", "Version", "VersionEngine", "to_datetime"]


def to_datetime(ts: float) -> datetime:
    """A tz-aware UTC datetime from a Unix timestamp."""
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class Version:
    """One stored version of a file.

    Attributes:
        version_id: The engine's id (S3's VersionId on the native engine).
        last_modified: When it was written (tz-aware, UTC).
        size: Content size in bytes.
        etag: Lowercase hex MD5 of the content when known ('' when not, e.g. multipart).
        is_latest: True for the current content (False for every version of a deleted file).
        sha256: Hex SHA-256 of the content (portable engine), else None.
        metadata: Metadata recorded with the version (annotations arrive with tags).
    """

    version_id: str
    last_modified: datetime
    size: int
    etag: str
    is_latest: bool = False
    sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self, tags: list[str] | None = None) -> dict[str, Any]:
        """The genro-storage-compatible version dict (plus ``sha256``, ``tags``, ``metadata``);
        a new dict with its own ``tags`` list and ``metadata`` dict on every call."""
        fields = self.__dict__
        return {
            "version_id": fields["version_id"],
            "is_latest": fields["is_latest"],
            "last_modified": fields["last_modified"],
            "size": fields["size"],
            "etag": fields["etag"],
            "sha256": fields["sha256"],
            "tags": [*tags] if tags else [],
            "metadata": {**fields["metadata"]} if fields["metadata"] else {},
        }


@dataclass
class VerifyReport:
    """What ``verify`` found.

    Attributes:
        ok: True when no invariant is broken (orphans and stale working copies do not count).
        checked: How many version records were checked.
        problems: Broken invariants, one sentence each (a record whose blob is missing or does
            not hash right, an unreadable record).
        orphans: Stored objects nothing refers to (allowed; collectable).
        stale: Files whose working copy differs from their latest version (a writer was
            interrupted between the two; the next write or ``repair`` fixes it).
    """

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class VersionEngine(Protocol):
    """What the node API needs from an engine.

    An engine may also offer ``version_at(path, index) -> (Version | None, count)`` and
    ``version_as_of(path, moment) -> Version | None``; :meth:`MountHistory.resolve` then uses
    them instead of building every version (the portable engine parses only what it returns).
    """

    name: str
    catalog: Catalog

    def versions(self, path: str) -> list[Version]:
        """Every content version of ``path``, oldest first (exact path only)."""
        ...

    def open_version(self, path: str, version: Version) -> BinaryIO:
        """Stream the content of one version."""
        ...

    def write(
        self,
        path: str,
        data: Data,
        metadata: dict[str, str] | None = None,
        *,
        exclusive: bool = False,
        if_match: str | None = None,
    ) -> Version:
        """Write new content to ``path`` as a new version (the working copy included).

        With ``if_match`` the working copy is replaced only while its etag equals
        ``if_match`` (the storage's replace-if-etag-matches), else
        :class:`~storied.errors.PreconditionFailedError` and nothing is recorded.

        With ``exclusive`` the write happens only if no file is at ``path`` now (atomically
        where the storage has conditional writes), else
        :class:`~storied.errors.StorageAlreadyExistsError` and nothing is recorded.
        A write that raises leaves no version that looks acknowledged.
        """
        ...

    def delete(self, path: str) -> None:
        """Delete the working copy, keeping the history (a delete marker / tombstone)."""
        ...

    def delete_version(self, path: str, version: Version) -> None:
        """Remove one version for good."""
        ...

    def verify(self, prefix: str = "") -> VerifyReport:
        """Check the invariants of the history below ``prefix``."""
        ...

    def all_versions(self, prefix: str = "") -> dict[str, list[Version]]:
        """``{path: versions}`` for every file below ``prefix`` from one flat listing."""
        ...

    def removal_items(self, path: str, versions: list[Version]) -> list[tuple[str, str | None]]:
        """Storage items whose deletion drops ``versions`` (not the current one) of ``path``."""
        ...

    def remove_items(self, items: list[tuple[str, str | None]]) -> None:
        """Delete items from :meth:`removal_items`, batched where the storage can."""
        ...

    def history_paths(self, prefix: str = "") -> Iterator[str]:
        """Paths below ``prefix`` that have any history (deleted files included)."""
        ...
