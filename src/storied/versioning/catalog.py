"""The catalog: storied's own records next to a history (tags, annotations, snapshots).

Layout under the history root (``.storied/`` by default)::

    refs/<path>/refs.json     {"schema_version": 1, "tags": {name: version_id},
                               "annotations": {version_id: {key: value}},
                               "locks": {version_id: {"legal_hold": true,
                                                      "mode": "GOVERNANCE", "until": "<iso>"}}}
    snapshots/<tag>.json      {"schema_version": 1, "tag", "prefix", "created", "files": {path: id}}
    locks/maintenance         the maintenance lease (storied.versioning.maintenance)

A file's ``refs.json`` changes only by compare-and-swap (the backend's conditional write:
replace-if-etag-matches, create-only when absent), retried on conflict, so two processes
tagging or annotating the same file at once lose nothing. ``locks`` (legal holds and retention
periods, see :mod:`storied.core.objectlock`) live in the same object, changed the same way, so
a cleanup learns a file's tags and locks from the one read it already makes. Every writer keeps
the keys it does not change (``Refs`` carries unknown top-level keys through), so a tag writer
never drops a lock.
Snapshot manifests are written once, create-only, and never change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from storied import paths
from storied.backends.base import Backend
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.info import WriteMode
from storied.policies.retention import Lock

__all__ = ["Catalog", "Locks", "Refs", "Snapshot"]

SCHEMA_VERSION = 1
_MAX_ATTEMPTS = 50


@dataclass
class Refs:
    """The mutable records of one file: tag names, per-version annotations, legal holds and
    retention periods (``locks``), and any other top-level key a newer writer added
    (``extra``, written back unchanged)."""

    tags: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    locks: dict[str, Lock] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def tags_of(self, version_id: str) -> list[str]:
        """Tag names pointing at ``version_id``, sorted."""
        return sorted(name for name, vid in self.tags.items() if vid == version_id)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {**self.extra, "schema_version": SCHEMA_VERSION,
                                "tags": self.tags, "annotations": self.annotations}
        if self.locks:
            body["locks"] = {vid: lock.to_json() for vid, lock in self.locks.items()}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Refs:
        data = json.loads(raw)
        locks = data.get("locks") or {}
        extra = {k: v for k, v in data.items()
                 if k not in ("schema_version", "tags", "annotations", "locks")}
        return cls(dict(data.get("tags", {})), dict(data.get("annotations", {})),
                   {str(vid): Lock.from_json(entry) for vid, entry in locks.items()
                    if isinstance(entry, dict)}, extra)


@dataclass
class Locks:
    """The legal holds and retention periods of one file's versions (``Refs.locks``)."""

    versions: dict[str, Lock] = field(default_factory=dict)

    def get(self, version_id: str) -> Lock:
        """The lock of ``version_id`` (an empty :class:`Lock` when none)."""
        return self.versions.get(version_id, Lock())

    def set(self, version_id: str, lock: Lock) -> None:
        """Record ``lock`` (an empty one removes the entry)."""
        if lock.to_json():
            self.versions[version_id] = lock
        else:
            self.versions.pop(version_id, None)


@dataclass(frozen=True)
class Snapshot:
    """Which version of every file under a prefix was current at one moment (no content).

    ``prefix`` is what the user named (``'mount:path'``); ``root`` is the same place as a path
    of the engine (a relative mount's prefix included); ``files`` are engine paths.
    """

    tag: str
    prefix: str
    created: float
    files: dict[str, str]
    root: str = ""

    def to_json(self) -> bytes:
        body = {"schema_version": SCHEMA_VERSION, "tag": self.tag, "prefix": self.prefix,
                "root": self.root, "created": self.created, "files": self.files}
        return json.dumps(body, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Snapshot:
        data = json.loads(raw)
        return cls(data["tag"], data["prefix"], float(data["created"]), dict(data["files"]),
                   str(data.get("root", "")))


class Catalog:
    """Reads and compare-and-swaps the catalog objects under ``root`` of ``backend``."""

    backend: Backend
    root: str

    def __init__(self, backend: Backend, root: str = paths.RESERVED) -> None:
        self.backend, self.root = backend, root

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.root, *parts) if p)

    # ---------------------------------------------------------------- refs
    def refs(self, path: str) -> Refs:
        """The refs of ``path`` (empty when none were ever written): one read."""
        try:
            return Refs.from_json(self.backend.read_bytes(self._key("refs", path, "refs.json")))
        except StorageNotFoundError:
            return Refs()

    def update_refs(self, path: str, change: Callable[[Refs], None]) -> Refs:
        """Apply ``change`` to the refs of ``path`` atomically (compare-and-swap, retried).

        ``change`` mutates the :class:`Refs` it is given and may raise to abort; it can run
        more than once when another writer got there first.

        Raises:
            UnsupportedOperation: The storage has no conditional writes, so updates could be lost.
        """
        return self._swap(path, change, "tags and annotations")

    def _swap(self, path: str, change: Callable[[Refs], None], what: str) -> Refs:
        """Compare-and-swap ``refs/<path>/refs.json`` (create-only when absent), retried."""
        if not self.backend.capabilities.conditional_write:
            raise UnsupportedOperation(
                f"{self.backend.protocol}: {what} need conditional writes, "
                "which this storage does not offer"
            )
        key = self._key("refs", path, "refs.json")
        for attempt in range(_MAX_ATTEMPTS):
            found, etag = self._read_with_etag(key)
            change(found)
            try:
                if etag is None:
                    self.backend.write(key, found.to_json(), mode=WriteMode.CREATE)
                else:
                    self.backend.write(key, found.to_json(), mode=WriteMode.IF_MATCH, etag=etag)
                return found
            except (PreconditionFailedError, StorageAlreadyExistsError, StorageNotFoundError):
                time.sleep(min(0.2, 0.002 * 2**attempt))
        raise PreconditionFailedError(f"Too much contention updating the {what} of {path!r}")

    def _read_with_etag(self, key: str) -> tuple[Refs, str | None]:
        try:
            info = self.backend.info(key)
            raw = self.backend.read_bytes(key)
        except StorageNotFoundError:
            return Refs(), None
        return Refs.from_json(raw), info.etag

    def refs_below(self, prefix: str) -> dict[str, Refs]:
        """Refs of every file below ``prefix`` (or of the file ``prefix``): one listing, then one
        read per file that has any (files without refs cost nothing)."""
        base = self._key("refs")
        try:
            entries = list(self.backend.walk(self._key("refs", prefix)))
        except (StorageNotFoundError, NotADirectoryError):
            return {}
        found: dict[str, Refs] = {}
        for entry in entries:
            parent, _, name = entry.path.rpartition("/")
            if name == "refs.json":
                path = paths.relative_to(parent, base)
                found[path] = Refs.from_json(self.backend.read_bytes(entry.path))
        return found

    # ---------------------------------------------------------------- locks
    def locks(self, path: str) -> Locks:
        """The legal holds and retention periods of ``path``'s versions (one read of its
        refs; a caller that has the :class:`Refs` uses ``Locks(refs.locks)``)."""
        return Locks(self.refs(path).locks)

    def update_locks(self, path: str, change: Callable[[Locks], None]) -> Locks:
        """Apply ``change`` to the locks of ``path`` atomically (as :meth:`update_refs`).

        Raises:
            UnsupportedOperation: The storage has no conditional writes.
        """
        refs = self._swap(path, lambda r: change(Locks(r.locks)), "legal holds and retention")
        return Locks(refs.locks)

    def records_below(self, prefix: str) -> tuple[dict[str, Refs], dict[str, Locks]]:
        """:meth:`refs_below`, and the locks of the files that have any (bulk cleanup and
        compaction): one walk, one read per file that has refs."""
        refs = self.refs_below(prefix)
        return refs, {p: Locks(r.locks) for p, r in refs.items() if r.locks}

    # ---------------------------------------------------------------- snapshots
    def create_snapshot(self, snapshot: Snapshot) -> None:
        """Store a manifest; its tag must be new (create-only)."""
        key = self._key("snapshots", f"{snapshot.tag}.json")
        mode = WriteMode.CREATE if self.backend.capabilities.conditional_write else None
        if mode is None and self.backend.exists(key):
            raise StorageAlreadyExistsError(f"Snapshot {snapshot.tag!r} already exists")
        try:
            self.backend.write(key, snapshot.to_json(), mode=mode or WriteMode.OVERWRITE)
        except StorageAlreadyExistsError:
            raise StorageAlreadyExistsError(f"Snapshot {snapshot.tag!r} already exists") from None

    def snapshot(self, tag: str) -> Snapshot:
        """The manifest of snapshot ``tag``."""
        try:
            raw = self.backend.read_bytes(self._key("snapshots", f"{tag}.json"))
            return Snapshot.from_json(raw)
        except StorageNotFoundError:
            raise StorageNotFoundError(f"No snapshot {tag!r}") from None

    def snapshot_tags(self) -> Iterator[str]:
        """Every snapshot tag stored here, sorted: one flat listing (on S3, one request even
        when there is no snapshot, where a directory listing costs three)."""
        folder = self._key("snapshots")
        try:
            entries = list(self.backend.walk(folder))
        except (StorageNotFoundError, NotADirectoryError):
            return
        names = [paths.relative_to(e.path, folder) for e in entries if not e.is_dir]
        for name in sorted(names):
            if "/" not in name and name.endswith(".json"):
                yield name[: -len(".json")]

    def delete_snapshot(self, tag: str) -> None:
        """Remove a snapshot manifest (its versions lose that protection)."""
        try:
            self.backend.delete(self._key("snapshots", f"{tag}.json"))
        except StorageNotFoundError:
            raise StorageNotFoundError(f"No snapshot {tag!r}") from None

    def snapshot_refs(self) -> dict[str, dict[str, list[str]]]:
        """``{path: {version_id: [snapshot tags]}}`` over every snapshot (for retention)."""
        refs: dict[str, dict[str, list[str]]] = {}
        for tag in self.snapshot_tags():
            for path, vid in self.snapshot(tag).files.items():
                refs.setdefault(path, {}).setdefault(vid, []).append(tag)
        return refs
