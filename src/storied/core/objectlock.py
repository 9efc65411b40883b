"""Legal hold, retention and storage class of a node's versions (issue 11).

Two engines, one set of rules (:func:`storied.policies.retention.check_retention_change`):

- **S3 with Object Lock** (the bucket was created with Object Lock; probed once per mount with
  GetObjectLockConfiguration): the native calls (PutObjectLegalHold, PutObjectRetention with
  ``BypassGovernanceRetention``; reads are one HEAD of the version). storied checks the rules
  itself before it sends anything (a server that does not, such as moto, cannot be talked into
  shortening a COMPLIANCE period) and records what it set in the catalog too (``locks`` in
  ``refs/<path>/refs.json``), so a cleanup knows which versions are locked from the listing and
  the refs read it makes anyway, without a request per version. The server stays the final judge: a
  delete it refuses is a :class:`~storied.errors.StoragePermissionError`.
- **Every other versioned mount** (the portable engine anywhere, native S3 without Object
  Lock): storied records holds and retention in ``refs/<path>/refs.json`` (key ``locks``),
  changed only by compare-and-swap (like tags), so every process sees them and they survive
  restarts; storied enforces them in every deletion path (``delete_version``, ``cleanup_versions``,
  ``compact_versions``, the bulk forms). It needs conditional writes (SFTP/WebDAV histories
  refuse, as they refuse tags).

A hold or retention that protects is set like a tag (see :mod:`storied.versioning.maintenance`):
it waits while a cleanup holds the maintenance lease, and when a cleanup ran between resolving
the version and recording the lock, it checks that the version still exists; if it is gone the
record is taken back and :class:`~storied.errors.StorageNotFoundError` raised. A cleanup reads
the locks under the lease, so it never deletes a version locked before it started planning.

Deleting the file itself (a delete marker / tombstone) stays allowed, as S3 allows it.
Mounts without history raise :class:`~storied.errors.UnsupportedOperation`.

A change that changes something emits an event through :func:`storied.core.eventing.notify`
(ADR 0013), after it is settled: :data:`HOLD_EVENT` (info ``version_id``, ``legal_hold``,
``previous``) and :data:`RETENTION_EVENT` (info ``version_id``, ``retention``: ``{'mode',
'until'}`` or None, ``previous``). Setting what is already set emits nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from storied.errors import (
    InvalidArgumentError,
    IsADirectoryStorageError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    UnsupportedOperation,
    VersionNotFoundError,
)
from storied.policies.retention import Lock, check_retention_change, clock

if TYPE_CHECKING:
    from storied.backends.base import Backend
    from storied.info import Info
    from storied.versioning.catalog import Locks
    from storied.versioning.history import MountHistory

__all__ = ["HOLD_EVENT", "RETENTION_EVENT", "CleanupResult", "ObjectLockMethods", "lock_refusal"]

#: The event a legal hold put on or taken off emits.
HOLD_EVENT = "legal_hold_changed"
#: The event a retention period set, extended, shortened or removed emits.
RETENTION_EVENT = "retention_changed"

Compute = Callable[[Lock], Lock]
Apply = Callable[[Any, str, str, Lock, Lock], None]


class CleanupResult(list[dict[str, Any]]):
    """What a single file's ``cleanup_versions`` removed (a ``list`` of version dicts as
    before), plus ``kept_by_server``: the ids of versions an S3 Object Lock bucket refused to
    delete (locked outside storied); empty when the server refused none."""

    kept_by_server: list[str]

    def __init__(self, removed: list[dict[str, Any]] | None = None,
                 kept_by_server: list[str] | None = None) -> None:
        super().__init__(removed or [])
        self.kept_by_server = list(kept_by_server or [])


def lock_refusal(history: MountHistory, path: str, version_id: str | None
                 ) -> tuple[str, ...]:
    """Why the Object Lock of ``history``'s bucket keeps version ``version_id`` of engine
    path ``path``, whose deletion the server just refused (one HEAD): the lock's reasons, or
    ``()`` when the refusal is not a lock's (no Object Lock, no lock on that version, the
    version gone): the caller then raises the refusal."""
    from storied.versioning.history import native_lock_backend

    native: Any = native_lock_backend(history.engine)
    if native is None or version_id is None:
        return ()
    backend: Any = history.engine.backend  # type: ignore[attr-defined]
    return tuple(native.refusal_reasons(str(backend.location(path)[1]), version_id))


class ObjectLockMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""

    if TYPE_CHECKING:
        _path: str
        _version: int | str | None
        _mount_name: str | None
        _listed: Info | None

        @property
        def fullpath(self) -> str: ...

        @property
        def _be(self) -> Backend: ...

        def _need_history(self, what: str = "versioning") -> MountHistory: ...

        @property
        def _history(self) -> MountHistory | None: ...

        def require_writable(self) -> None: ...

    # ---------------------------------------------------------------- legal hold
    def set_legal_hold(self, on: bool, version: int | str = -1) -> None:
        """Put a legal hold on a version (``on=True``) or take it off.

        ``version`` is an index (``-1``: the latest), a version id or a tag; a node pinned to a
        version means that version by default. A held version is never removed until the
        hold is taken off; a hold is independent of any retention period.

        Raises:
            InvalidArgumentError: ``on`` is not a bool.
            StoragePermissionError: The mount is read-only.
            IsADirectoryStorageError: The path is a folder (without a history of its own).
            StorageNotFoundError: No such version (or it was deleted while being held).
            UnsupportedOperation: The mount keeps no history, or its storage has no
                conditional writes.
        """
        if not isinstance(on, bool):
            raise InvalidArgumentError(f"on must be True or False, not {on!r}")

        def apply(inner: Any, key: str, vid: str, old: Lock, new: Lock) -> None:
            if old.legal_hold != new.legal_hold:
                inner.put_legal_hold(key, vid, on)

        vid, old, new = self._change_lock("legal holds", version,
                                          lambda cur: replace(cur, legal_hold=on), on, apply)
        if old.legal_hold != new.legal_hold:
            self._announce(HOLD_EVENT, vid, {"legal_hold": new.legal_hold,
                                             "previous": old.legal_hold})

    def get_legal_hold(self, version: int | str = -1) -> bool:
        """Whether a legal hold is on the version (one request, after the version is found).

        Raises:
            StorageNotFoundError: No such version.
            UnsupportedOperation: The mount keeps no history.
        """
        return self._read_lock("legal holds", version).legal_hold

    # ---------------------------------------------------------------- retention
    def set_retention(
        self,
        mode: str | None = "GOVERNANCE",
        until: datetime | None = None,
        version: int | str = -1,
        bypass_governance: bool = False,
    ) -> dict[str, Any] | None:
        """Set (or with ``mode=None, until=None`` remove) a version's retention period.

        ``until`` is a timezone-aware datetime in the future, kept to the second (rounded
        up). S3 Object Lock's rules, on every engine: COMPLIANCE can only be extended;
        GOVERNANCE can be extended or raised to COMPLIANCE, and shortened or removed only with
        ``bypass_governance=True``; a period that has expired (judged by
        :func:`storied.policies.retention.clock`) restricts nothing and protects nothing.

        Returns:
            The retention now in force: ``{'mode', 'until'}``, or None when removed.

        Raises:
            InvalidArgumentError: An unknown mode, a naive or past ``until``, ``mode`` without
                ``until`` or the reverse.
            StoragePermissionError: The rules refuse the change (the message names the
                version and the rule), or the mount is read-only.
            IsADirectoryStorageError: The path is a folder (without a history of its own).
            StorageNotFoundError: No such version (or it was deleted while being locked).
            UnsupportedOperation: The mount keeps no history, or its storage has no
                conditional writes.
        """
        if not isinstance(bypass_governance, bool):
            raise InvalidArgumentError(
                f"bypass_governance must be True or False, not {bypass_governance!r}")
        label = [""]

        def compute(current: Lock) -> Lock:
            new_mode, new_until = check_retention_change(
                label[0], current, mode, until, bypass_governance, clock())
            return replace(current, mode=new_mode, until=new_until)

        def apply(inner: Any, key: str, vid: str, old: Lock, new: Lock) -> None:
            if (old.mode, old.until) != (new.mode, new.until):
                bypass = bypass_governance and old.mode == "GOVERNANCE" and old.retained()
                inner.put_retention(key, vid, new.mode, new.until, bypass)

        vid, old, lock = self._change_lock("retention", version, compute, mode is not None,
                                           apply, label)
        if old.retention() != lock.retention():
            self._announce(RETENTION_EVENT, vid, {"retention": lock.retention(),
                                                  "previous": old.retention()})
        return lock.retention()

    def get_retention(self, version: int | str = -1) -> dict[str, Any] | None:
        """``{'mode': 'GOVERNANCE'|'COMPLIANCE', 'until': datetime}`` of the version, or None
        without a retention period (an expired one is still reported, as S3 does; it no
        longer protects). One request after the version is found.

        Raises:
            StorageNotFoundError: No such version.
            UnsupportedOperation: The mount keeps no history.
        """
        return self._read_lock("retention", version).retention()

    # ---------------------------------------------------------------- plumbing
    def _wanted(self, version: int | str) -> int | str:
        if version == -1 and self._version is not None and not isinstance(version, bool):
            return self._version
        return version

    def _lock_where(self, what: str) -> tuple[MountHistory, Any | None]:
        from storied.versioning.history import native_lock_backend

        history = self._need_history(what)
        return history, native_lock_backend(history.engine)

    def _native_key(self, history: MountHistory) -> str:
        backend = history.engine.backend  # type: ignore[attr-defined]
        return str(backend.location(history._p(self._path))[1])

    def _lock_target(self, history: MountHistory, what: str, version: int | str) -> Any:
        """The version ``version`` names; a folder without versions is named as such.

        Raises:
            IsADirectoryStorageError: The path is a folder with no history of its own.
            VersionNotFoundError: No such version.
        """
        try:
            return history.resolve(self._path, self._wanted(version))
        except VersionNotFoundError as exc:
            if self._is_folder() and not history.versions(self._path):
                raise IsADirectoryStorageError(
                    f"{self.fullpath} is a folder: {what} apply to the versions of a file"
                ) from exc
            raise

    def _read_lock(self, what: str, version: int | str) -> Lock:
        history, native = self._lock_where(what)
        target = self._lock_target(history, what, version)
        if native is not None:
            found: Lock = native.object_lock(self._native_key(history), target.version_id)
            return found
        return history.locks(self._path).get(target.version_id)

    def _announce(self, event: str, vid: str, info: dict[str, Any]) -> None:
        """``event`` for version ``vid`` of this file (after the change is settled)."""
        from storied.core.eventing import notify

        node: Any = self
        notify(node, event, lambda: {"version_id": vid, **info}, vid)

    def _change_lock(self, what: str, version: int | str, compute: Compute, protecting: bool,
                     apply: Apply, label: list[str] | None = None) -> tuple[str, Lock, Lock]:
        """Resolve the version, compute its new lock from the current one (rules checked),
        apply it (natively, then the catalog record; or the catalog alone, by compare-and-
        swap) and, for a protecting change, settle with the maintenance lease; ``(version id,
        lock before, lock now)`` (before: the server's on an Object Lock bucket)."""
        from storied.versioning.maintenance import ProtectionGuard

        if not self._be.capabilities.write:
            raise StoragePermissionError(
                f"{self.fullpath}: mount is read-only. Write operations are not permitted.")
        history, native = self._lock_where(what)
        catalog = history.engine.catalog
        guard = ProtectionGuard(catalog) if protecting else None  # before resolving
        target = self._lock_target(history, what, version)
        vid = target.version_id
        if label is not None:
            label[0] = f"Version {vid} of {self.fullpath}"
        before: list[Lock] = [Lock()]
        if native is not None:
            key = self._native_key(history)
            current = native.object_lock(key, vid)
            previous = current
            new = compute(current)
            apply(native, key, vid, current, new)
            before[0] = history.locks(self._path).get(vid)
            if catalog.backend.capabilities.conditional_write:
                history.update_locks(self._path, lambda locks: locks.set(vid, new))
        else:

            def change(locks: Locks) -> None:
                before[0] = locks.get(vid)
                locks.set(vid, compute(before[0]))

            new = history.update_locks(self._path, change).get(vid)
            previous = before[0]
        if guard is not None:
            self._settle(history, guard, vid, before[0], new)
        return vid, previous, new

    def _settle(self, history: MountHistory, guard: Any, vid: str, before: Lock,
                new: Lock) -> None:
        """After a protecting change: when a cleanup may have run since the version was
        resolved, check it still exists; else take the record back and raise."""
        try:
            alive = None if guard.settle() else {v.version_id
                                                  for v in history.versions(self._path)}
        except BaseException:
            self._undo_lock(history, vid, before, new)
            raise
        if alive is not None and vid not in alive:
            self._undo_lock(history, vid, before, new)
            raise StorageNotFoundError(
                f"Version {vid} of {self.fullpath} was deleted while it was being locked; "
                "nothing was set"
            )

    def _undo_lock(self, history: MountHistory, vid: str, before: Lock, new: Lock) -> None:
        def change(locks: Locks) -> None:
            if locks.get(vid) == new:
                locks.set(vid, before)

        try:
            history.update_locks(self._path, change)
        except StorageError:
            pass  # the original error wins; the record names a version that may be gone

    # ---------------------------------------------------------------- storage class
    def _s3_target(self, what: str) -> tuple[Any, str]:
        inner = self._be.unwrap()
        if not callable(getattr(inner, "change_storage_class", None)):
            raise UnsupportedOperation(
                f"{self._mount_name} backend does not support {what} (S3, GCS and Azure only). "
                f"Supported features: {self._be.capabilities}"
            )
        if not self._path:
            raise IsADirectoryStorageError(
                f"{self.fullpath} is a folder (the mount's root): {what} apply to files")
        return inner, str(self._be.location(self._path)[1])

    def _is_folder(self) -> bool:
        """Whether a folder is at this path (one request; only asked on an error path)."""
        if not self._path:
            return True
        try:
            return bool(self._be.info(self._path).is_dir)
        except StorageError:
            return False

    def _not_a_folder(self, exc: StorageNotFoundError) -> None:
        """Raise :class:`IsADirectoryStorageError` when this missing file is a folder."""
        if self._is_folder():
            raise IsADirectoryStorageError(
                f"{self.fullpath} is a folder: storage classes apply to files") from exc

    def storage_class(self) -> str:
        """The file's storage class (``'STANDARD'``, ``'GLACIER'``...): no request when this
        node came from a listing that carried it, else one HEAD.

        Raises:
            IsADirectoryStorageError: The path is a folder.
            StorageNotFoundError: No such file.
            UnsupportedOperation: The storage has no storage classes.
        """
        known: Info | None = getattr(self, "_listed", None)  # what a listing said, if any
        listed = getattr(known, "storage_class", None) if known is not None else None
        inner, key = self._s3_target("storage classes")
        if isinstance(listed, str) and listed:
            return listed
        try:
            return str(inner.storage_class_of(key))
        except StorageNotFoundError as exc:
            self._not_a_folder(exc)
            raise

    def set_storage_class(self, name: str) -> None:
        """Move the file to storage class ``name`` (S3: a copy onto itself that keeps
        metadata, content type and tags; a new version on a versioned bucket, recorded in its
        history; multipart part copies at or above 5 GiB).

        Raises:
            InvalidArgumentError: Not a class of this storage (S3: STANDARD, GLACIER...;
                GCS: STANDARD, NEARLINE, COLDLINE, ARCHIVE; Azure: Hot, Cool, Cold, Archive).
            ArchivedObjectError: The file is archived and not restored.
            IsADirectoryStorageError: The path is a folder.
            StorageNotFoundError: No such file.
            PreconditionFailedError: The file was being written meanwhile (S3: the copy onto
                itself never undoes such a write; nothing was changed, try again).
            StoragePermissionError: The mount is read-only.
            UnsupportedOperation: The storage has no storage classes, or the mount keeps a
                portable history (its versions live in storied's blobs, which keep their
                class; change the class of the bucket's objects with a lifecycle rule).
        """
        from storied.core.eventing import notify_version, notify_written
        from storied.core.locking import guard_write
        from storied.versioning.native import version_from_info

        self.require_writable()  # a pinned node refuses too: this writes the current content
        inner, key = self._s3_target("storage classes")
        history = self._history
        if history is not None and history.name != "native":
            raise UnsupportedOperation(
                f"{self.fullpath}: storage classes are not offered on a mount with a portable "
                "history (its versions are storied's blobs; a bucket lifecycle rule moves them)"
            )
        guard_write(self)  # type: ignore[arg-type]
        try:
            info = inner.change_storage_class(key, name)
        except StorageNotFoundError as exc:
            self._not_a_folder(exc)
            raise
        self._listed = None  # a listing's class is stale now
        node: Any = self
        if history is None:
            notify_written(node, None)
        else:
            notify_version(node, version_from_info(info))

    def restore_archived(self, days: int = 1) -> bool:
        """Start restoring an archived (Glacier, Deep Archive) file for ``days`` days; True
        when a restore was started (or a finished one extended), False when one is already
        in progress. Reads work once the restore has finished (hours on AWS). On Azure an
        archived blob is rehydrated to Hot for good (``days`` is checked, not used); GCS has
        no restores (every class is readable).

        Raises:
            InvalidArgumentError: ``days`` is not an int >= 1, or the file is not archived.
            StorageNotFoundError: No such file.
            UnsupportedOperation: The storage has no storage classes.
        """
        if not self._be.capabilities.write:
            raise StoragePermissionError(
                f"{self.fullpath}: mount is read-only. Write operations are not permitted.")
        inner, key = self._s3_target("archive restores")
        return bool(inner.restore_archived(key, days))
