"""The version methods of :class:`~storied.core.node.StorageNode`.

They work on any mount with history (native S3 versions or storied's portable engine) and keep
genro-storage's behaviour on mounts without: ``versions == []`` and a ``PermissionError`` for
anything that needs a version. The engines are imported only when a mount has history.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from storied.errors import (
    StorageAlreadyExistsError,
    StorageError,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.info import Data, WriteMode

if TYPE_CHECKING:
    from storied.backends.base import Backend
    from storied.core.manager import StorageManager
    from storied.versioning.engine import Version
    from storied.versioning.history import MountHistory

__all__ = ["VersionMethods"]

_log = logging.getLogger(__name__)


class VersionMethods:
    """Mixed into ``StorageNode``; relies on its ``_manager``, ``_mount_name``, ``_path``,
    ``_version``, ``_be`` and ``fullpath``."""

    _manager: StorageManager
    _mount_name: str | None
    _path: str
    _version: int | str | None
    _history_cache: MountHistory | bool | None = False

    if TYPE_CHECKING:

        @property
        def fullpath(self) -> str: ...

        @property
        def _be(self) -> Backend: ...

        def require_writable(self) -> None: ...

    # ---------------------------------------------------------------- plumbing
    @property
    def _history(self) -> MountHistory | None:
        """The mount's history (None without one); looked up once per node."""
        if self._history_cache is False:
            found = None
            if self._mount_name is not None and self._manager.has_mount(self._mount_name):
                found = self._manager.history(self._mount_name)
            self._history_cache = found
        return self._history_cache  # type: ignore[return-value]

    @property
    def _portable(self) -> bool:
        """True when writes must go through storied's portable engine."""
        history = self._history
        return history is not None and history.name == "portable"

    def _need_history(self, what: str = "versioning") -> MountHistory:
        history = self._history
        if history is None:
            raise UnsupportedOperation(
                f"{self._mount_name} backend does not support {what}. "
                f"Supported features: {self._be.capabilities}"
            )
        return history

    def _store(self, data: Data, metadata: dict[str, str] | None = None, *,
               exclusive: bool = False, if_match: str | None = None) -> None:
        """Write through the history when the mount keeps one, else directly; then the events
        (``version_created`` + ``file_written``, or ``file_written`` alone).

        ``exclusive``: only if nothing is at the path (create-only where the storage can, else
        a check first). ``if_match``: only while the current etag equals it.

        Raises:
            StorageAlreadyExistsError: ``exclusive`` and a file is there (nothing written).
            PreconditionFailedError: ``if_match`` differs (nothing written or recorded).
        """
        from storied.core.eventing import notify_version, notify_written
        from storied.core.locking import guard_write

        self.require_writable()
        guard_write(self)  # type: ignore[arg-type]
        history = self._history
        node: Any = self
        if history is None:
            mode, etag = WriteMode.OVERWRITE, None
            if if_match is not None:
                mode, etag = WriteMode.IF_MATCH, if_match
            elif exclusive and self._be.capabilities.conditional_write:
                mode = WriteMode.CREATE
            elif exclusive and self._be.exists(self._path):
                raise StorageAlreadyExistsError(f"{self.fullpath} already exists")
            info = self._be.write(self._path, data, mode=mode, etag=etag, metadata=metadata)
            notify_written(node, info)
            return
        version = history.write(self._path, data, metadata, exclusive=exclusive,
                                if_match=if_match)
        if metadata:
            history.update_refs(
                self._path,
                lambda refs: refs.annotations.setdefault(version.version_id, {}).update(metadata),
            )
        notify_version(node, version, metadata)

    def _store_exclusive(self, data: Data) -> None:
        """Create-only write through the history (``open('x')``).

        Raises:
            StorageAlreadyExistsError: A file is at this path (nothing is written).
        """
        self._store(data, exclusive=True)

    # ``_remove`` (deletes that keep the reserved area) lives in storied.core.removal.

    def _need_delete(self) -> None:
        caps = self._be.capabilities
        if not caps.delete:
            raise StoragePermissionError(
                f"{self.fullpath}: mount does not have delete permission"
                if caps.write
                else "Mount is read-only. Write operations are not permitted."
            )

    def _resolve(self, version: int | str | None = None, as_of: datetime | None = None) -> Version:
        return self._need_history().resolve(self._path, version, as_of)

    def _open_version(self, version: int | str | None, as_of: datetime | None) -> BinaryIO:
        history = self._need_history()
        return history.open_version(self._path, history.resolve(self._path, version, as_of))

    # genro-storage internals some callers use
    def _resolve_version_index(self, index: int) -> Version:
        return self._resolve(index)

    def _resolve_version_at_date(self, as_of: datetime) -> Version:
        return self._resolve(None, as_of)

    # ---------------------------------------------------------------- public
    @property
    def versions(self) -> list[dict[str, Any]]:
        """The file's versions as dicts, oldest first (``-1`` is the latest); ``[]`` on a
        mount without history. Keys: ``version_id``, ``is_latest``, ``last_modified``
        (tz-aware UTC), ``size``, ``etag`` (MD5 hex), ``sha256``, ``tags``, ``metadata``."""
        history = self._history
        if history is None or self._version is not None:
            return []
        return history.described(self._path)

    @property
    def version_count(self) -> int:
        """``len(versions)``."""
        return len(self.versions)

    def delete_version(self, version: int | str) -> None:
        """Remove one version for good.

        Protected, never removed: the current version (to remove the file, ``delete()`` it,
        which keeps its history; or write a new version first), a tagged version, a version
        a snapshot names, a version under legal hold and a version whose retention period has
        not expired (see :mod:`storied.core.objectlock`). Of a deleted file every unprotected
        version may go (none is current). The check and the removal happen under the
        history's maintenance lease, so a tag, snapshot or hold set meanwhile by another
        process is honoured (see :mod:`storied.versioning.maintenance`).

        Raises:
            StoragePermissionError: The mount has no delete permission, or the version is
                protected (the message names the version, the rule and what to do).
        """
        from storied.versioning.maintenance import maintenance

        self._need_delete()
        history = self._need_history()
        with maintenance(history.engine.catalog):
            found = history.versions(self._path)
            target = history.resolve_in(self._path, found, version)
            if target.is_latest:
                raise StoragePermissionError(
                    f"Version {target.version_id} of {self.fullpath} is the current version, "
                    "which is protected: delete the file (its history is kept) or write a new "
                    "version first"
                )
            why = history.protected(self._path, found).get(target.version_id)
            if why is not None:
                raise StoragePermissionError(
                    f"Version {target.version_id} of {self.fullpath} is protected ({why}); "
                    f"{_unprotect_hint(why)}"
                )
            try:
                history.delete_version(self._path, target)
            except StoragePermissionError as exc:
                self._explain_server_lock(history, target, exc)
                raise
        self._notify_deleted_versions([target])

    def _explain_server_lock(self, history: MountHistory, target: Version,
                             exc: StoragePermissionError) -> None:
        """A DELETE an Object Lock bucket refused (a lock set outside storied): raise an
        error that names the version and the rule (one HEAD), else return."""
        from storied.versioning.history import native_lock_backend

        inner = native_lock_backend(history.engine)
        if inner is None:
            return
        key = history.engine.backend.location(history._p(self._path))[1]  # type: ignore[attr-defined]
        try:
            why = ", ".join(inner.object_lock(key, target.version_id).reasons())
        except StorageError:
            return
        if why:
            raise StoragePermissionError(
                f"Version {target.version_id} of {self.fullpath} is protected on the server "
                f"({why}); {_unprotect_hint(why)}"
            ) from exc

    def _drop_versions(self, history: MountHistory, doomed: list[Version],
                       keep: Callable[[], None], kept: list[str] | None = None
                       ) -> list[Version]:
        """Remove ``doomed`` (none of them current) under the caller's maintenance lease
        (``keep`` renews it); the versions removed. Portable histories remove them in batches
        (a sealed segment is rewritten once, not once per version); native ones one DELETE
        each. On an S3 Object Lock bucket a DELETE the server refuses because the version is
        locked there (a lock set outside storied; one HEAD checks it) leaves that version,
        logged and added to ``kept``, and the others still go; any other refusal raises."""
        from storied.core.objectlock import lock_refusal

        if history.name != "portable":
            gone = []
            for version in doomed:
                keep()
                try:
                    history.delete_version(self._path, version)
                except StoragePermissionError:
                    reasons = lock_refusal(history, history._p(self._path),
                                           version.version_id)
                    if not reasons:
                        raise
                    _log.warning("%s: the server keeps locked version %s (%s)", self.fullpath,
                                 version.version_id, ", ".join(reasons))
                    if kept is not None:
                        kept.append(version.version_id)
                    continue
                gone.append(version)
            return gone
        items = history.engine.removal_items(history._p(self._path), doomed)
        for start in range(0, len(items), 1000):
            keep()
            history.engine.remove_items(items[start:start + 1000])
        return doomed

    def _notify_deleted_versions(self, gone: list[Version]) -> None:
        """``version_deleted`` for each version in ``gone`` (info: its version dict)."""
        from storied.core.eventing import notify, version_info

        for version in gone:
            notify(self, "version_deleted",  # type: ignore[arg-type]
                   functools.partial(version_info, version), version.version_id)

    def compact_versions(self, dry_run: bool = False) -> int:
        """Remove consecutive duplicate versions; return how many (with ``dry_run``, how many
        would go: the same plan, tags and snapshots included).

        Never removed: the current version, tagged versions, versions a snapshot names,
        versions under legal hold or unexpired retention (read under the maintenance lease
        when not a dry run).
        """
        from storied.versioning.history import compact_plan
        from storied.versioning.maintenance import maintenance

        history = self._need_history()
        if dry_run:
            found = history.versions(self._path)
            return len(compact_plan(found, history.protected(self._path, found)))
        self._need_delete()
        with maintenance(history.engine.catalog) as lease:
            found = history.versions(self._path)
            doomed = compact_plan(found, history.protected(self._path, found))
            doomed = self._drop_versions(history, doomed, lease.keep)
        self._notify_deleted_versions(doomed)  # after the lease: taggers wait on it
        return len(doomed)

    def diff_versions(self, v1: int | str = -1, v2: int | str = -2) -> tuple[bytes, bytes]:
        """The contents of two versions, as ``(bytes_of_v1, bytes_of_v2)``."""
        history = self._need_history()
        found = history.versions(self._path)
        result = []
        for wanted in (v1, v2):
            version = history.resolve_in(self._path, found, wanted)
            with history.open_version(self._path, version) as stream:
                result.append(stream.read())
        return result[0], result[1]

    def rollback(self, to_version: int | str = -2, tag: str | None = None) -> bool:
        """Write the content of an older version (or of the version ``tag`` names) as a new
        version; nothing is deleted."""
        self.require_writable()
        history = self._need_history()
        version = history.resolve(self._path, tag if tag is not None else to_version)
        with history.open_version(self._path, version) as stream:
            self._store(stream)
        return True


def _unprotect_hint(why: str) -> str:
    """What lifts the protections ``why`` lists."""
    hints = []
    if "tagged:" in why:
        hints.append("untag it")
    if "snapshot:" in why:
        hints.append("delete the snapshot")
    if "legal-hold" in why:
        hints.append("remove the legal hold (set_legal_hold(False))")
    if "retention:" in why:
        hints.append("wait for the retention period to end")
    return " and ".join(hints) + " first" if hints else "it cannot be removed now"
