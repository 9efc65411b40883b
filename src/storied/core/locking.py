"""Lease locks on nodes (``node.lock()``) and the guard writes check (docs/adr/0014-lease-locks.md).

A lock is one small JSON object per locked path, ``<history root>/locks/paths/<sha256 of the
path>`` in the mount's reserved area (``.storied`` unless ``history:`` names another place),
written through the raw backend with conditional writes only: ``{owner, state: held|released,
token, ttl, nonce, path, time, pad}``.

- acquire: absent -> create-only write; ``released`` -> ``IF_MATCH`` write, ``token + 1``;
  ``held`` -> watch it, and take it over (``IF_MATCH`` on the etag seen, ``token + 1``) only
  after a full ``ttl`` without a rewrite, measured on this process's own clock;
- renew: a daemon thread rewrites it (``IF_MATCH``, new nonce) each third of ``ttl``; the
  thread is started by the process's lock timer (:mod:`storied.core._lock_timer`) at the first
  renewal, so a lock released before then costs no thread;
- release: an ``IF_MATCH`` write of ``released`` that keeps the token, so the fencing token
  strictly increases over every grant of the path;
- lost: the holder trusts its lease until the send time of its last write plus 0.9 ``ttl`` on
  ``CLOCK_BOOTTIME``; after that (or a refused renewal) :attr:`Lock.lost` is True,
  :func:`guard_write` refuses writes to the node, and leaving the ``with`` raises
  :class:`~storied.errors.LockLostError`.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Hashable
from functools import partial
from typing import TYPE_CHECKING, Any

from storied.backends.base import Backend
from storied.core._lock_store import MAX_TTL as _MAX_TTL
from storied.core._lock_store import check_lockable as _check_lockable
from storied.core._lock_store import parse as _parse
from storied.core._lock_store import read_tagged as _read_tagged
from storied.core._lock_store import where as _where
from storied.core._lock_timer import TIMER
from storied.errors import (
    InvalidArgumentError,
    LockLostError,
    LockTimeout,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.info import WriteMode

if TYPE_CHECKING:
    from types import TracebackType

    from storied.core.node import StorageNode

__all__ = ["Lock", "LockMethods", "guard_write"]

_POLL = 0.02  # first pause while the lock is busy, doubled up to _MAX_POLL
_MAX_POLL = 0.5
_MIN_TTL = 0.1  # renewals every third of it: shorter would hammer the storage
_LOST = (PreconditionFailedError, StorageNotFoundError, StorageAlreadyExistsError)
_CLOCK: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _now() -> float:
    """Seconds on a clock that never steps and counts suspends (``CLOCK_BOOTTIME``)."""
    return time.clock_gettime(_CLOCK) if _CLOCK is not None else time.monotonic()


_HELD: dict[tuple[Hashable, str], list[Lock]] = {}  # lock object location -> locks held here
_RELEASED: dict[tuple[Hashable, str], tuple[str, int]] = {}  # our last release: (etag, token)
_TABLES = threading.Lock()


def _check_seconds(name: str, value: object, *, allow_none: bool, minimum: float) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not minimum <= value <= _MAX_TTL
    ):
        allowed = "None or " if allow_none else ""
        raise InvalidArgumentError(
            f"{name} must be {allowed}a number of seconds in [{minimum:g}, {_MAX_TTL:g}], "
            f"not {value!r}"
        )


# --------------------------------------------------------------------------- the lock
class Lock:
    """An exclusive lease on one path, across processes and machines. Made by
    :meth:`LockMethods.lock`; use it as a context manager or call :meth:`acquire` and
    :meth:`release`. Not re-entrant: a second lock on the same path in the same process waits
    like any other contender.

    Attributes:
        timeout: Seconds :meth:`acquire` waits (None: forever; 0: one try).
        ttl: Seconds the lease lasts after each (re)write.
        owner: This lock's owner id (``host:pid:uuid``), written in the lock object.
        token: The fencing token of the current (or last) grant: strictly increasing over every
            grant of the path. None before the first grant.
    """

    node: StorageNode
    timeout: float | None
    ttl: float
    owner: str

    def __init__(self, node: StorageNode, timeout: float | None = 30, ttl: float = 60) -> None:
        _check_seconds("timeout", timeout, allow_none=True, minimum=0.0)
        _check_seconds("ttl", ttl, allow_none=False, minimum=_MIN_TTL)
        self.node, self.timeout, self.ttl = node, timeout, float(ttl)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.token: int | None = None
        self._held = False
        self._lost = False
        self._taken = False  # a renewal or release found the object rewritten by another
        self._etag: str | None = None
        self._expires = 0.0  # _now() at which the holder stops trusting its lease
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: list[Any] | None = None  # the timer call that starts the renewals
        self._backend: Backend | None = None
        self._key = self._path = ""
        self._where: tuple[Hashable, str] | None = None
        self._holder_thread = self._pid = 0

    # ----------------------------------------------------------------- state
    @property
    def held(self) -> bool:
        """True between a grant and :meth:`release` while the lease is not lost."""
        return self._held and not self.lost

    @property
    def lost(self) -> bool:
        """True once the lease was lost (taken over, or expired on the holder's own clock)."""
        if self._held and not self._lost and _now() >= self._expires:
            self._lost = True
        return self._lost

    def _document(self, state: str, nonce: str, token: int | None) -> bytes:
        """The lock object. Its size is padded to ``token`` modulo 4: a storage whose etag is
        inode-mtime-size (local disk) cannot give one etag to two grants written in one
        clock tick on a reused inode (the A-B-A an ``IF_MATCH`` would not see)."""
        body = {"owner": self.owner, "state": state, "token": token, "ttl": self.ttl,
                "nonce": nonce, "path": self._path, "time": round(time.time(), 3), "pad": ""}
        size = len(json.dumps(body, sort_keys=True).encode())
        body["pad"] = " " * (((token or 0) - size) % 4)
        return json.dumps(body, sort_keys=True).encode()

    # ----------------------------------------------------------------- acquire
    def acquire(self) -> Lock:
        """Take the lease, waiting up to :attr:`timeout` seconds. A ``lock_acquired``
        callback that raises a ``BaseException`` (``KeyboardInterrupt``) gets it released
        before that propagates.

        Raises:
            LockTimeout: Another owner kept it for longer than ``timeout``.
            UnsupportedOperation: The mount cannot lock safely (no conditional writes).
            StoragePermissionError: The mount is read-only.
            InvalidArgumentError: This lock is already held.
        """
        with self._mutex:
            if self._held:
                raise InvalidArgumentError(f"Lock on {self.node.fullpath} is already held")
            backend, self._key, self._path = _where(self.node)
            _check_lockable(self.node, backend)
            self._backend, self._where = backend, backend.location(self._key)
            deadline = None if self.timeout is None else _now() + self.timeout
            while True:
                self._grant(backend, deadline)
                if _now() < self._expires or self._rescued():
                    break
            self._held, self._lost, self._taken = True, False, False
            self._holder_thread, self._pid = threading.get_ident(), os.getpid()
            self._stop = threading.Event()
            with _TABLES:
                if not _HELD:  # (again) after the last lock went: the newest exit hook
                    atexit.unregister(_release_at_exit)
                    atexit.register(_release_at_exit)
                _HELD.setdefault(self._where, []).append(self)
            self._thread = None  # started at the first renewal, if still held then
            self._timer = TIMER.call_later(self.ttl / 3, partial(self._start_renewals,
                                                                 self._stop))
        try:
            self._emit("lock_acquired")
        except BaseException:  # a callback's KeyboardInterrupt: no ``with`` would release it
            self.release()
            raise
        return self

    def _grant(self, backend: Backend, deadline: float | None) -> None:
        """Loop until this process wrote the grant (sets token, etag, expiry)."""
        pause, watched, since = _POLL, None, 0.0
        busy_by = "another owner"
        cached = _RELEASED.get(self._where) if self._where else None
        while True:
            try:
                if cached is not None:  # we released it last: try straight over our etag
                    ours, last, cached = cached[0], cached[1], None
                    if self._write_grant(backend, ours, last + 1):
                        return
                    continue
                seen = _read_tagged(backend, self._key)
                checked = _now()
                if seen is None:
                    if self._write_grant(backend, None, 1):
                        return
                    continue
                raw, etag = seen
                doc = _parse(raw)
                if doc is None or doc["state"] == "released":
                    token = doc["token"] if doc else 0
                    if self._write_grant(backend, etag, token + 1):
                        return
                    continue
                busy_by = f"{doc.get('owner')} (token {doc['token']})"
                if watched != (etag, raw):
                    watched, since = (etag, raw), checked
                elif checked - since >= doc["ttl"]:  # a full lease without a rewrite
                    if self._write_grant(backend, etag, doc["token"] + 1):
                        return
                    watched = None
                    continue
            except TransientStorageError:
                if deadline is not None and _now() >= deadline:
                    raise
            if deadline is not None and _now() >= deadline:
                raise LockTimeout(
                    f"Lock on {self.node.fullpath} not acquired within {self.timeout:g} s: "
                    f"held by {busy_by}"
                )
            left = math.inf if deadline is None else deadline - _now()
            time.sleep(max(0.0, min(pause * random.uniform(0.5, 1.5), left)))
            pause = min(_MAX_POLL, pause * 2)

    def _rescued(self) -> bool:
        """After a grant so slow (retries) that its lease ran out on our clock before the write
        returned: renew at once. Any other write changes the etag, so a renewal that applies
        proves nobody was granted meanwhile. False: granted elsewhere since; try again."""
        try:
            self._rewrite("held")
        except StorageError:
            return False
        return _now() < self._expires

    def _write_grant(self, backend: Backend, etag: str | None, token: int) -> bool:
        """One conditional write of a ``held`` grant with ``token``; True when it is ours."""
        nonce = uuid.uuid4().hex
        body = self._document("held", nonce, token)
        sent = _now()
        try:
            if etag is None:
                written = backend.write(self._key, body, mode=WriteMode.CREATE).etag
            else:
                written = backend.write(self._key, body, mode=WriteMode.IF_MATCH, etag=etag).etag
        except _LOST:
            written = self._confirm(backend, nonce)  # a retried write may have landed first
            if written is None:
                return False
        self.token, self._etag, self._expires = token, written, sent + self.ttl * 0.9
        return True

    def _confirm(self, backend: Backend, nonce: str) -> str | None:
        """The etag of the lock object when it holds our write with ``nonce`` (a write the
        retry layer sent twice: the first landed, the second was refused), else None."""
        try:
            seen = _read_tagged(backend, self._key)
        except StorageError:
            return None
        if seen is None:
            return None
        doc = _parse(seen[0])
        if doc and doc.get("owner") == self.owner and doc.get("nonce") == nonce:
            return seen[1] or ""
        return None

    # ----------------------------------------------------------------- renew
    def _start_renewals(self, stop: threading.Event) -> None:
        """From the timer, a third of a TTL after the grant: start the renewal thread when
        this grant (``stop``: its event) is still held. Quick: never waits for ``_mutex``."""
        if stop.is_set() or not self._held:
            return
        thread = threading.Thread(target=self._renew_loop, args=(stop, 0.0), daemon=True,
                                  name=f"storied-lock-{self._key[-8:]}")
        thread.start()  # a release racing this: the loop sees ``stop`` set and ends at once
        self._thread = thread  # after start: a release may join it at any time

    def _renew_loop(self, stop: threading.Event, first: float) -> None:
        interval = self.ttl / 3
        wait = first
        while not stop.wait(wait):
            wait = interval
            with self._mutex:
                if stop.is_set() or not self._held or self.lost:
                    return
                try:
                    self._rewrite("held")
                except _LOST:
                    self._lost = self._taken = True
                    return
                except StorageError:
                    wait = min(interval, 1.0)  # unreachable for now: retry soon, until expiry

    def _rewrite(self, state: str) -> None:
        """One ``IF_MATCH`` rewrite of the lock object (new nonce), under ``_mutex``."""
        assert self._backend is not None
        nonce = uuid.uuid4().hex
        sent = _now()
        try:
            body = self._document(state, nonce, self.token)
            written = self._backend.write(self._key, body, mode=WriteMode.IF_MATCH,
                                          etag=self._etag)
            etag = written.etag
        except _LOST:
            confirmed = self._confirm(self._backend, nonce)
            if confirmed is None:
                raise
            etag = confirmed
        self._etag, self._expires = etag, sent + self.ttl * 0.9

    # ----------------------------------------------------------------- release
    def release(self) -> None:
        """Give the lease back (a no-op when not held). A lease already lost is left alone;
        one that cannot be written now expires after ``ttl``."""
        with self._mutex:
            if not self._held:
                return
            if self._pid != os.getpid():  # a forked child unwinding the parent's ``with``
                self._held = False
                return
            self._stop.set()
            if self._timer is not None:
                TIMER.cancel(self._timer)
                self._timer = None
            was_lost = self.lost
            self._held = False
            with _TABLES:
                held = _HELD.get(self._where, [])  # type: ignore[arg-type]
                if self in held:
                    held.remove(self)
                if not held:
                    _HELD.pop(self._where, None)  # type: ignore[arg-type]
            try:  # also when only expired on our clock: if nobody took it, it is freed now
                if self._taken:
                    raise PreconditionFailedError("taken over")  # known: no request
                self._rewrite("released")
            except _LOST:
                self._lost = self._taken = True
            except StorageError:
                pass  # unreachable: the lease runs out by itself
            else:
                if self._where is not None and self.token is not None and self._etag:
                    with _TABLES:
                        _RELEASED[self._where] = (self._etag, self.token)
                self._lost = was_lost
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._emit("lock_released")

    def _emit(self, event: str) -> None:
        info: dict[str, Any] = {"token": self.token, "ttl": self.ttl, "owner": self.owner}
        if event == "lock_released":
            info["lost"] = self._lost
        self.node._manager.bus.emit(event, self.node, info)

    # ----------------------------------------------------------------- guard
    def check(self) -> None:
        """Raise :class:`~storied.errors.LockLostError` when the lease is lost."""
        if self._held and self.lost:
            raise LockLostError(
                f"Lock on {self.node.fullpath} (token {self.token}) was lost: another process "
                "may hold it now; the write was refused"
            )

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self._pid != os.getpid():
            self._held = False  # a forked child: the lock is its parent's
            return
        lost = self._held and self.lost
        self.release()
        lost = lost or self._lost
        if not lost:
            return
        message = (f"Lock on {self.node.fullpath} (token {self.token}) was lost before the "
                   "block ended: another process may have held it meanwhile")
        if exc is None:
            raise LockLostError(message)
        if not isinstance(exc, LockLostError):
            exc.add_note(message)

    def __repr__(self) -> str:
        state = "lost" if self.lost else "held" if self._held else "not held"
        return f"Lock({self.node.fullpath!r}, token={self.token}, {state})"


def _forget_in_child() -> None:
    """A forked child holds none of its parent's locks (their renewal threads did not
    follow it): it must neither release them at exit nor judge its writes by them."""
    _HELD.clear()
    _RELEASED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _release_at_exit() -> None:
    """Give back the locks still held when the interpreter exits normally (a crash leaves
    them to expire after their ttl). Registered at the first grant, so it runs before the
    exit hooks of backends configured earlier (which close their handles)."""
    with _TABLES:
        held = [lock for locks in _HELD.values() for lock in locks]
    for lock in held:
        try:
            lock.release()
        except Exception:  # best effort at exit, never a traceback
            pass


def guard_write(node: StorageNode) -> None:
    """Called by every write and delete of ``node`` before it touches storage: raises
    :class:`~storied.errors.LockLostError` when this process holds a lock on the node's path
    whose lease is lost (taken over, or expired on the holder's own clock).

    The write is judged by the most recent grant on that path held in this process, preferring
    those the writing thread took through the node's manager (the innermost ``with``): a
    stale holder's write is refused while a new holder in the same process writes freely.

    Free when no lock is held in the process. A lease that runs out *after* this check (the
    process paused between the check and the storage receiving the write) is not caught: that
    window is what the fencing token (:attr:`Lock.token`) is for (docs/adr/0014-lease-locks.md).
    """
    if not _HELD or node.mount_name is None:
        return
    try:
        backend, key, _ = _where(node)
    except KeyError:
        return  # a node of a mount removed since: it holds no lock of this manager
    locks = list(_HELD.get(backend.location(key), ()))
    if not locks:
        return
    thread, manager = threading.get_ident(), node._manager
    same = [lock for lock in locks if lock.node._manager is manager]
    mine = [lock for lock in same if lock._holder_thread == thread]
    (mine or same or locks)[-1].check()


class LockMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""

    def lock(self, timeout: float | None = 30, ttl: float = 60) -> Lock:
        """An exclusive lease on this node's path across processes and machines.

        ``with node.lock(timeout=30, ttl=60) as lock:`` acquires on entry, renews in the
        background and releases on exit; ``lock.token`` is the grant's fencing token. Writes
        to this node inside the block are refused with ``LockLostError`` once the lease is
        lost, and leaving the block then raises ``LockLostError``.

        Args:
            timeout: Seconds to wait for the lock (None: forever; 0: one try). A crashed
                holder's lock is free only after its ``ttl``, so a shorter wait cannot get it.
            ttl: Seconds the lease lasts without renewal (a crashed holder's lock is taken
                over after that).

        Raises:
            LockTimeout: Not acquired within ``timeout`` (on entering the block).
            UnsupportedOperation: The mount cannot lock safely (no conditional writes).
            InvalidArgumentError: ``timeout`` or ``ttl`` out of range.
        """
        node: StorageNode = self  # type: ignore[assignment]
        return Lock(node, timeout, ttl)
