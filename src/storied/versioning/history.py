"""A mount's view of an engine, and the version operations the node API offers.

A relative mount shares its parent's engine, with its sub-path as prefix, so writes through
either mount land in the same history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from storied import paths
from storied.errors import StorageNotFoundError
from storied.info import Data
from storied.versioning.engine import VerifyReport, Version, VersionEngine

__all__ = ["MountHistory", "compact_plan"]


@dataclass(frozen=True)
class MountHistory:
    """The history of one mount: an engine and the mount's path prefix inside it."""

    engine: VersionEngine
    prefix: str = ""

    def _p(self, path: str) -> str:
        return paths.join(self.prefix, path) if path else self.prefix

    @property
    def name(self) -> str:
        """The engine's name (``native`` or ``portable``)."""
        return self.engine.name

    def versions(self, path: str) -> list[Version]:
        return self.engine.versions(self._p(path))

    def open_version(self, path: str, version: Version) -> BinaryIO:
        return self.engine.open_version(self._p(path), version)

    def write(self, path: str, data: Data, metadata: dict[str, str] | None = None) -> Version:
        return self.engine.write(self._p(path), data, metadata)

    def delete(self, path: str) -> None:
        self.engine.delete(self._p(path))

    def delete_version(self, path: str, version: Version) -> None:
        self.engine.delete_version(self._p(path), version)

    def verify(self, prefix: str = "") -> VerifyReport:
        return self.engine.verify(self._p(prefix))

    def history_paths(self, prefix: str = "") -> Iterator[str]:
        for path in self.engine.history_paths(self._p(prefix)):
            yield paths.relative_to(path, self.prefix)

    # ---------------------------------------------------------------- resolution
    def resolve(
        self, path: str, version: int | str | None, as_of: datetime | None = None
    ) -> Version:
        """The version named by an index (``-1`` latest, ``0`` oldest), an id, or a date.

        Raises:
            IndexError: No versions, or the index is out of range (genro-storage messages).
            StorageNotFoundError: No version has that id, or none existed at ``as_of``.
        """
        found = self.versions(path)
        if as_of is not None:
            return _at_date(found, as_of, path)
        if isinstance(version, int) and not isinstance(version, bool):
            return _at_index(found, version, path)
        for item in found:
            if item.version_id == version:
                return item
        raise StorageNotFoundError(f"No version {version!r} of {path!r}")


def _at_index(found: list[Version], index: int, path: str) -> Version:
    if not found:
        raise IndexError(f"No versions available for {path}")
    try:
        return found[index]
    except IndexError:
        n = len(found)
        raise IndexError(
            f"Version index {index} out of range. Available versions: 0 to {n - 1} or -1 to -{n}"
        ) from None


def _at_date(found: list[Version], as_of: datetime, path: str) -> Version:
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    before = [v for v in found if v.last_modified <= moment]
    if not before:
        raise StorageNotFoundError(f"No version found before {moment.isoformat()} for {path}")
    return before[-1]


def compact_plan(found: list[Version]) -> list[Version]:
    """The versions ``compact_versions`` removes.

    Each run of consecutive versions with the same (known) etag keeps one member: the current
    version when the run holds it, else the oldest. So ``A, A, B, B, A`` loses two and the
    current version is never removed.
    """
    doomed: list[Version] = []
    run: list[Version] = []
    for version in [*found, None]:
        same = version is not None and run and version.etag and version.etag == run[0].etag
        if same:
            run.append(version)  # type: ignore[arg-type]
            continue
        if len(run) > 1:
            keep = next((v for v in run if v.is_latest), run[0])
            doomed.extend(v for v in run if v is not keep)
        run = [version] if version is not None else []
    return doomed


def version_dicts(found: list[Version]) -> list[dict[str, Any]]:
    """The genro-storage-compatible list of dicts, oldest first."""
    return [v.as_dict() for v in found]
