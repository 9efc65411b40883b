"""A mount's view of an engine, and the version operations the node API offers.

A relative mount shares its parent's engine, with its sub-path as prefix, so writes through
either mount land in the same history.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from storied import paths
from storied.errors import VersionNotFoundError
from storied.info import Data
from storied.policies.retention import CLOCK_MARGIN, Lock, clock, lock_reasons
from storied.versioning.catalog import Locks, Refs
from storied.versioning.engine import VerifyReport, Version, VersionEngine

__all__ = ["MountHistory", "compact_plan", "default_locks", "merged_lock_reasons",
           "native_lock_backend", "object_lock_adapter"]

def object_lock_adapter(backend: Any) -> Any | None:
    """The S3 adapter below ``backend`` when its bucket has Object Lock, else None (no
    request on other storages; the first call on a bucket costs one
    GetObjectLockConfiguration, cached by the adapter)."""
    inner = backend.unwrap() if backend is not None else None
    enabled = getattr(inner, "object_lock_enabled", None)
    return inner if callable(enabled) and enabled() else None


def native_lock_backend(engine: VersionEngine) -> Any | None:
    """The S3 adapter below a native engine whose bucket has Object Lock, else None."""
    if engine.name != "native":
        return None
    return object_lock_adapter(getattr(engine, "backend", None))


def default_locks(engine: VersionEngine, found: list[Version]) -> dict[str, Lock]:
    """The retention a bucket's default rule gave each version, computed from the listing
    (no request per version): ``{}`` unless the engine is native on an Object Lock bucket
    with a default retention."""
    inner = native_lock_backend(engine)
    rule = inner.object_lock_default() if inner is not None else None
    if rule is None:
        return {}
    mode, period = rule
    return {v.version_id: Lock(False, mode, v.last_modified + period + CLOCK_MARGIN)
            for v in found}


def merged_lock_reasons(engine: VersionEngine, found: list[Version], locks: Locks,
                        now: datetime | None = None) -> dict[str, tuple[str, ...]]:
    """``{version_id: reasons}`` of the versions in ``found`` a legal hold or retention
    protects now: the recorded locks (storied's own, or its record of the locks it set on an
    Object Lock bucket) plus the bucket's default retention (for ``plan_retention(holds=)``)."""
    now = now or clock()
    alive = {v.version_id for v in found}
    merged = {vid: lock for vid, lock in locks.versions.items() if vid in alive}
    reasons = lock_reasons(merged, now)
    for vid, lock in default_locks(engine, found).items():
        extra = tuple(r for r in lock.reasons(now) if r not in reasons.get(vid, ()))
        if extra and not any(r.startswith("retention:") for r in reasons.get(vid, ())):
            reasons[vid] = (*reasons.get(vid, ()), *extra)
    return reasons


#: ``paths.join`` (pure: same arguments, same result or the same error) remembered for the
#: paths written lately: a write joins its path twice (the engine's and the journal's).
_joined = functools.lru_cache(maxsize=4096)(paths.join)


@dataclass(frozen=True)
class MountHistory:
    """The history of one mount: an engine and the mount's path prefix inside it."""

    engine: VersionEngine
    prefix: str = ""

    def _p(self, path: str) -> str:
        return _joined(self.prefix, path) if path else self.prefix

    @property
    def name(self) -> str:
        """The engine's name (``native`` or ``portable``)."""
        return self.engine.name

    def versions(self, path: str) -> list[Version]:
        return self.engine.versions(self._p(path))

    # ---------------------------------------------------------------- catalog
    def refs(self, path: str) -> Refs:
        """Tags and annotations of ``path`` (one read)."""
        return self.engine.catalog.refs(self._p(path))

    def update_refs(self, path: str, change: Callable[[Refs], None]) -> Refs:
        """Compare-and-swap the refs of ``path``; see :meth:`Catalog.update_refs`."""
        return self.engine.catalog.update_refs(self._p(path), change)

    def described(self, path: str) -> list[dict[str, Any]]:
        """Version dicts with ``tags`` and ``metadata`` filled in: the listing plus one read."""
        found = self.versions(path)
        if not found:
            return []
        refs = self.refs(path)
        tagged: dict[str, list[str]] = {}
        for name, vid in sorted(refs.tags.items()):
            tagged.setdefault(vid, []).append(name)
        notes = refs.annotations
        dicts = []
        for version in found:
            vid = version.version_id
            item = version.as_dict(tagged.get(vid))
            if vid in notes:
                item["metadata"] = {**version.metadata, **notes[vid]}
            dicts.append(item)
        return dicts

    def locks(self, path: str) -> Locks:
        """Legal holds and retention periods recorded for ``path`` (one read)."""
        return self.engine.catalog.locks(self._p(path))

    def update_locks(self, path: str, change: Callable[[Locks], None]) -> Locks:
        """Compare-and-swap the locks of ``path``; see :meth:`Catalog.update_locks`."""
        return self.engine.catalog.update_locks(self._p(path), change)

    def protected(self, path: str, found: list[Version] | None = None) -> dict[str, str]:
        """``{version_id: why}`` for versions that may not be removed: tags, snapshots, legal
        holds and unexpired retention (``found``: the listing, when the caller has it; the
        bucket's default retention needs it). ``why`` joins every reason (``'tagged:x,
        legal-hold'``). Costs the refs read (tags and locks) and the snapshot manifests."""
        why: dict[str, list[str]] = {}
        refs = self.refs(path)
        for name, vid in sorted(refs.tags.items()):
            why.setdefault(vid, []).append(f"tagged:{name}")
        full = self._p(path)
        for vid, tags in self.engine.catalog.snapshot_refs().get(full, {}).items():
            why.setdefault(vid, []).append(f"snapshot:{tags[0]}")
        locks = Locks(refs.locks)
        listed = found if found is not None else (
            self.versions(path) if locks.versions or native_lock_backend(self.engine) else [])
        for vid, reasons in merged_lock_reasons(self.engine, listed, locks).items():
            why.setdefault(vid, []).extend(reasons)
        return {vid: ", ".join(reasons) for vid, reasons in why.items()}

    def open_version(self, path: str, version: Version) -> BinaryIO:
        return self.engine.open_version(self._p(path), version)

    def write(
        self,
        path: str,
        data: Data,
        metadata: dict[str, str] | None = None,
        *,
        exclusive: bool = False,
        if_match: str | None = None,
    ) -> Version:
        """Write ``data`` as a new version of ``path``.

        Raises:
            StorageAlreadyExistsError: ``exclusive`` and a file is at ``path`` (nothing is
                written or recorded).
            PreconditionFailedError: ``if_match`` is not the working copy's etag (nothing is
                written or recorded).
        """
        return self.engine.write(self._p(path), data, metadata, exclusive=exclusive,
                                 if_match=if_match)

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
        """The version named by an index (``-1`` latest, ``0`` oldest), an id, a tag, or a date.

        Raises:
            VersionNotFoundError: No versions, the index is out of range (genro-storage
                messages), no version has that id or tag, or none existed at ``as_of``. It is
                both an ``IndexError`` (as genro-storage raised) and a ``StorageNotFoundError``.
        """
        full = self._p(path)
        if as_of is not None:
            by_date = getattr(self.engine, "version_as_of", None)
            if by_date is None:
                return _at_date(self.versions(path), as_of, path)
            hit: Version | None = by_date(full, as_of)
            if hit is None:
                raise _date_error(as_of, path)
            return hit
        if isinstance(version, int) and not isinstance(version, bool):
            by_index = getattr(self.engine, "version_at", None)
            if by_index is None:
                return _at_index(self.versions(path), version, path)
            picked: Version | None
            picked, count = by_index(full, version)
            if picked is None:
                raise _index_error(count, version, path)
            return picked
        if version is None:
            raise VersionNotFoundError(f"No version or tag None of {path!r}")
        return self.resolve_in(path, self.versions(path), version)

    def resolve_in(self, path: str, found: list[Version], version: int | str) -> Version:
        """The version an index, id or tag names in ``found``, a listing of ``path`` already
        made: an index or an id costs no request, a tag name one refs read.

        Raises:
            VersionNotFoundError: As :meth:`resolve`.
        """
        if isinstance(version, int) and not isinstance(version, bool):
            return _at_index(found, version, path)
        for item in found:
            if item.version_id == version:
                return item
        tagged = self.refs(path).tags.get(str(version)) if found else None
        for item in found:
            if item.version_id == tagged:
                return item
        raise VersionNotFoundError(f"No version or tag {version!r} of {path!r}")


def _index_error(count: int, index: int, path: str) -> VersionNotFoundError:
    if not count:
        return VersionNotFoundError(f"No versions available for {path}")
    return VersionNotFoundError(
        f"Version index {index} out of range. Available versions: 0 to {count - 1} "
        f"or -1 to -{count}"
    )


def _at_index(found: list[Version], index: int, path: str) -> Version:
    if not -len(found) <= index < len(found):
        raise _index_error(len(found), index, path)
    return found[index]


def _date_error(as_of: datetime, path: str) -> VersionNotFoundError:
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    return VersionNotFoundError(f"No version found before {moment.isoformat()} for {path}")


def _at_date(found: list[Version], as_of: datetime, path: str) -> Version:
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    before = [v for v in found if v.last_modified <= moment]
    if not before:
        raise _date_error(as_of, path)
    return before[-1]


def compact_plan(found: list[Version], protected: Collection[str] = ()) -> list[Version]:
    """The versions ``compact_versions`` removes.

    Each run of consecutive versions with the same (known) etag keeps one member: the current
    version when the run holds it, else the oldest. So ``A, A, B, B, A`` loses two and the
    current version is never removed. Protected versions (tagged, in a snapshot) stay too.
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
            doomed.extend(v for v in run if v is not keep and v.version_id not in protected)
        run = [version] if version is not None else []
    return doomed


def version_dicts(found: list[Version]) -> list[dict[str, Any]]:
    """The genro-storage-compatible list of dicts, oldest first."""
    return [v.as_dict() for v in found]
