"""The manager's record/replay methods (``record_mode``, ``replay_mode``, ``stop_cassette``).

A cassette sits on each chosen mount's raw backend (below the reserved-area and permission
layers, above retries: what the version engines write through), so the calls recorded are the
storage calls of storied's backend API, one format for every backend (docs/CASSETTE.md).
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from storied.errors import MountNotFoundError, StorageConfigError

if TYPE_CHECKING:
    from storied.backends.base import Backend
    from storied.backends.wrappers import HideReserved
    from storied.testing.recording import CassetteSession

__all__ = ["RecordingMethods"]


class RecordingMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    if TYPE_CHECKING:
        _raw: dict[str, Backend]
        _hiders: dict[str, HideReserved]
        _configs: dict[str, dict[str, Any]]
        _parents: dict[str, tuple[str, str]]
        _histories: dict[str, Any]

        def _chain(self, name: str) -> list[str]: ...

    def record_mode(
        self, path: str | os.PathLike[str], mounts: Iterable[str] | None = None
    ) -> CassetteSession:
        """Record every storage call of every mount (or only of ``mounts``) to the JSON
        cassette at ``path`` (replacing it; large bodies go to ``<stem>.bodies/`` beside it).

        Recording lasts until :meth:`stop_cassette`, the end of a ``with`` block on the
        returned session, or the end of the process; the cassette is written then. Mounts
        added afterwards are not recorded. Credentials never reach the cassette.

        Raises:
            MountNotFoundError: ``mounts`` names an unknown mount.
        """
        from storied.testing.recording import CassetteSession

        return self._start_cassette(CassetteSession(path, "record", self._secrets()), mounts)

    def replay_mode(
        self,
        path: str | os.PathLike[str],
        mode: str = "none",
        mounts: Iterable[str] | None = None,
    ) -> CassetteSession:
        """Answer the storage calls of the recorded mounts (or only of ``mounts``) from the
        cassette at ``path``, with no storage at all. The mounts must be configured (their
        names and types; a server need not be reachable).

        Args:
            path: The cassette.
            mode: ``'none'``: a call the cassette lacks raises
                :class:`~storied.testing.recording.ReplayMismatchError` (naming the closest
                recorded call); ``'new_episodes'``: it is passed to the storage and recorded.
            mounts: The mounts to replay (default: every configured mount the cassette has).

        Raises:
            StorageIOError: No cassette at ``path`` (mode ``'none'``) or it is not one.
            InvalidArgumentError: An unknown ``mode``.
        """
        from storied.testing.recording import CassetteSession

        session = CassetteSession(path, mode, self._secrets())
        if mounts is None:
            mounts = [m for m in session.mounts if m in self._raw] or None
        return self._start_cassette(session, mounts)

    def stop_cassette(self) -> None:
        """End recording or replay: the mounts talk to their storages again, and the cassette
        is written if anything was recorded. A no-op when no cassette is in use."""
        session: CassetteSession | None = self.__dict__.pop("_cassette", None)
        if session is not None:
            session.stop()

    # ---------------------------------------------------------------- internals
    def _secrets(self) -> set[str]:
        from storied.testing.recording import secrets_of

        found: set[str] = set()
        for config in self._configs.values():
            found |= secrets_of({k: v for k, v in config.items() if k != "backend"})
        return found

    def _roots(self, mounts: Iterable[str] | None) -> list[str]:
        if mounts is None:
            return list(self._raw)
        if isinstance(mounts, str):
            mounts = [mounts]
        roots: list[str] = []
        for name in mounts:
            if name not in self._configs:
                raise MountNotFoundError(f"Mount point {name!r} not found (record/replay)")
            root = self._chain(name)[-1]
            if root not in roots:
                roots.append(root)
        return roots

    def _start_cassette(
        self, session: CassetteSession, mounts: Iterable[str] | None
    ) -> CassetteSession:
        self.stop_cassette()
        try:
            roots = self._roots(mounts)
            for name in roots:
                if name not in self._hiders:
                    raise StorageConfigError(f"Mount {name!r} cannot be recorded or replayed")
            for name in roots:
                self._wrap_in_cassette(session, name)
        except BaseException:
            session.stop()  # a refused start leaves no clock or id stand-ins behind
            raise
        self._histories.clear()  # engines are rebuilt over the cassette (and back after)
        self.__dict__["_cassette"] = session
        self.__dict__["_cassette_all"] = mounts is None
        _ACTIVE.add(session)
        return session

    def _wrap_in_cassette(self, session: CassetteSession, name: str) -> None:
        from storied.testing.recording import CassetteBackend

        hider, raw = self._hiders[name], self._raw[name]
        wrapped = CassetteBackend(raw, name, session)
        hider.inner = wrapped
        self._raw[name] = wrapped
        session.on_stop(_undo(self, name, hider, raw, wrapped))

    def _cassette_mount_added(self, name: str) -> None:
        """Hook for the manager after it added (or replaced) mount ``name``: while a cassette
        covers every mount, the new mount is recorded or replayed too."""
        session: CassetteSession | None = self.__dict__.get("_cassette")
        if session is None or not self.__dict__.get("_cassette_all") or name not in self._hiders:
            return
        if getattr(self._raw[name], "session", None) is session:
            return  # already covered (the hook is idempotent)
        self._wrap_in_cassette(session, name)
        self._histories.pop(name, None)


def _undo(manager: Any, name: str, hider: Any, raw: Any, wrapped: Any) -> Any:
    def undo() -> None:
        if hider.inner is wrapped:
            hider.inner = raw
        if manager._raw.get(name) is wrapped:
            manager._raw[name] = raw
        manager._histories.clear()
        if manager.__dict__.get("_cassette") is wrapped.session:
            del manager.__dict__["_cassette"]

    return undo


#: Sessions still open, saved when the process ends (``record_mode`` without ``with``).
_ACTIVE: weakref.WeakSet[CassetteSession] = weakref.WeakSet()


@atexit.register
def _save_open_sessions() -> None:
    for session in list(_ACTIVE):
        try:
            session.save()
        except OSError:  # pragma: no cover - nothing to report to at exit
            pass
