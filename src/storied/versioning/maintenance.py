"""The maintenance lease: version deletions and new protections (tags, snapshots, legal holds,
retention periods) never cross.

A deleter (``delete_version``, ``compact_versions``, ``cleanup_versions``, the bulk forms) and a
protector (``tag_version``, ``create_snapshot``, ``set_legal_hold(True)``, ``set_retention``) in
different processes must never end with a tag, snapshot entry or lock naming a version that was
deleted, nor with a version deleted after its lock was acknowledged. Both sides use one small
object per history, ``<root>/locks/maintenance`` (``.storied/locks/maintenance`` by default),
written only with conditional writes::

    {"owner": "<uuid>", "state": "held" | "released", "expires": <unix time>, "nonce": "<uuid>"}

Every write carries a new ``nonce``, so two reads that return the same bytes prove that nobody
wrote the lease in between.

Deleter (:class:`MaintenanceLease`): acquire (create-only when absent; an ``IF_MATCH`` write over
a released or expired lease; wait, bounded, while another owner holds it) -> read versions,
refs and snapshot manifests fresh -> delete, calling :meth:`MaintenanceLease.keep` before each
deletion (renews when a third of the time to live is used; refuses to go on once the lease is
too close to expiry, so a paused deleter never deletes on stale knowledge) -> release.

Protector (:class:`ProtectionGuard`): read the lease (``before``; while a deleter holds it, wait
for the end first, so a running cleanup rarely costs a rollback) -> resolve the version(s) ->
compare-and-swap the tag / create the manifest -> :meth:`ProtectionGuard.settle`: read the lease
again. When it is unchanged and was not held, no deletion ran between the resolution and the
catalog write, and every later deleter reads the new tag: done (two small reads in all). Else
wait until no lease is held (bounded) and report that the caller must check its versions still
exist; the caller rolls its catalog change back and raises ``StorageNotFoundError`` when one is
gone. Correctness assumes the clocks of the processes agree within a quarter of the time to live
(15 s by default).

Storages without conditional writes (SFTP, WebDAV) refuse tags and snapshots, so nothing can
protect a version there concurrently and deleters need no lease (:func:`maintenance` is then a
no-op).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
)
from storied.info import WriteMode
from storied.versioning.catalog import Catalog

__all__ = ["DEFAULT_TTL", "DEFAULT_WAIT", "MaintenanceLease", "ProtectionGuard", "maintenance"]

DEFAULT_TTL = 60.0
DEFAULT_WAIT = 60.0
_POLL = 0.02  # first pause while another owner holds the lease; doubled up to _MAX_POLL
_MAX_POLL = 0.5  # a wait costs at most ~2 lease reads a second (requests, on S3), not 50


class _Pauses:
    """Growing pauses between looks at a busy lease, never past ``deadline`` (monotonic)."""

    def __init__(self, deadline: float) -> None:
        self.deadline, self.pause = deadline, _POLL

    def sleep(self) -> None:
        time.sleep(max(0.0, min(self.pause, self.deadline - time.monotonic())))
        self.pause = min(_MAX_POLL, self.pause * 2)


@dataclass(frozen=True)
class LeaseState:
    """One parsed lease object."""

    owner: str
    held: bool
    expires: float
    nonce: str

    def active(self, now: float | None = None) -> bool:
        """True while an owner holds it and it has not expired."""
        return self.held and self.expires > (time.time() if now is None else now)


def _parse(raw: bytes | None) -> LeaseState | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return LeaseState(str(data["owner"]), data["state"] == "held", float(data["expires"]),
                          str(data["nonce"]))
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: treated as not held (the next acquirer overwrites it)


def lease_key(catalog: Catalog) -> str:
    """Where the lease of ``catalog``'s history lives."""
    return catalog._key("locks", "maintenance")


def _peek(catalog: Catalog) -> bytes | None:
    try:
        return catalog.backend.read_bytes(lease_key(catalog))
    except StorageNotFoundError:
        return None


def _needed(catalog: Catalog) -> bool:
    return bool(catalog.backend.capabilities.conditional_write)


class MaintenanceLease:
    """The deleter's side: an exclusive, expiring, renewable lease on one history.

    Args:
        catalog: The catalog of the history (the lease lives next to it).
        ttl: Seconds the lease is valid after each write.
        wait: Seconds :meth:`acquire` waits for another owner before giving up.
    """

    catalog: Catalog
    ttl: float
    wait: float
    owner: str

    def __init__(self, catalog: Catalog, ttl: float = DEFAULT_TTL,
                 wait: float = DEFAULT_WAIT) -> None:
        self.catalog, self.ttl, self.wait = catalog, ttl, wait
        self.owner = uuid.uuid4().hex
        self._etag: str | None = None
        self._expires = 0.0  # time.monotonic() at which the lease runs out for the holder

    @property
    def key(self) -> str:
        return lease_key(self.catalog)

    def _body(self, held: bool) -> tuple[bytes, float]:
        """The lease document, and when it runs out on this process's monotonic clock.

        Others judge expiry by the wall-clock ``expires`` written here; the holder judges it
        by the monotonic clock from the moment it wrote that, so a step of its own wall clock
        (NTP, a suspended VM) never makes it believe it has more time than the others see.
        """
        expires = time.time() + self.ttl if held else 0.0
        body = {"owner": self.owner, "state": "held" if held else "released",
                "expires": expires, "nonce": uuid.uuid4().hex}
        return json.dumps(body, sort_keys=True).encode(), time.monotonic() + self.ttl

    def acquire(self) -> None:
        """Take the lease, waiting (at most ``wait`` seconds) while another owner holds it.

        Raises:
            PreconditionFailedError: Another owner kept it for longer than ``wait``.
        """
        backend, deadline = self.catalog.backend, time.monotonic() + self.wait
        pauses = _Pauses(deadline)
        while True:
            try:
                info = backend.info(self.key)
                state = _parse(backend.read_bytes(self.key))
            except StorageNotFoundError:
                info, state = None, None
            if info is not None and state is not None and state.active():
                if time.monotonic() > deadline:
                    raise PreconditionFailedError(
                        f"Version maintenance is busy: lease {self.key!r} held by {state.owner} "
                        f"for more than {self.wait:g} s; try again later"
                    )
                pauses.sleep()
                continue
            body, expires = self._body(True)
            try:
                if info is None:
                    written = backend.write(self.key, body, mode=WriteMode.CREATE)
                else:
                    written = backend.write(self.key, body, mode=WriteMode.IF_MATCH,
                                            etag=info.etag)
            except (PreconditionFailedError, StorageAlreadyExistsError, StorageNotFoundError):
                # someone else wrote it first: look again, within the same bounded wait
                if time.monotonic() > deadline:
                    raise PreconditionFailedError(
                        f"Version maintenance is busy: lease {self.key!r} kept changing for "
                        f"more than {self.wait:g} s; try again later"
                    ) from None
                pauses.sleep()
                continue
            self._etag, self._expires = written.etag, expires
            return

    def _rewrite(self, held: bool) -> None:
        body, expires = self._body(held)
        written = self.catalog.backend.write(self.key, body, mode=WriteMode.IF_MATCH,
                                             etag=self._etag)
        self._etag, self._expires = written.etag, expires

    def keep(self) -> None:
        """Call before each deletion: renew when a third of the lease is used.

        Raises:
            PreconditionFailedError: The lease is within a quarter of its time to live of
                expiring (or expired, or taken over): the caller must stop deleting.
        """
        left = self._expires - time.monotonic()
        if left > self.ttl * 2 / 3:
            return
        if left < self.ttl / 4:
            raise PreconditionFailedError(
                f"Version maintenance stopped: lease {self.key!r} is about to expire"
            )
        try:
            self._rewrite(True)
        except (PreconditionFailedError, StorageNotFoundError):
            raise PreconditionFailedError(
                f"Version maintenance stopped: lease {self.key!r} was taken over"
            ) from None

    def release(self) -> None:
        """Give the lease back (best effort: a lease taken over after expiry is left alone)."""
        try:
            self._rewrite(False)
        except StorageError:
            pass  # expired and taken over, or unreachable: it expires by itself

    def __enter__(self) -> MaintenanceLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _NoLease:
    """The lease of a history that needs none (no conditional writes, so nothing can tag)."""

    def keep(self) -> None:
        """Nothing to renew."""


@contextmanager
def maintenance(catalog: Catalog, ttl: float = DEFAULT_TTL,
                wait: float = DEFAULT_WAIT) -> Iterator[MaintenanceLease | _NoLease]:
    """Hold the maintenance lease of ``catalog``'s history for the block (a no-op where the
    storage has no conditional writes)."""
    if not _needed(catalog):
        yield _NoLease()
        return
    with MaintenanceLease(catalog, ttl, wait) as lease:
        yield lease


class ProtectionGuard:
    """The protector's side. Create it BEFORE resolving the versions to protect.

    Args:
        catalog: The catalog the tag or manifest is written to.
        wait: Seconds :meth:`settle` waits for a deleter to finish.
    """

    catalog: Catalog
    wait: float
    needed: bool
    before: bytes | None

    def __init__(self, catalog: Catalog, wait: float = DEFAULT_WAIT) -> None:
        self.catalog, self.wait = catalog, wait
        self.needed = _needed(catalog)
        self.before = self._quiet(_peek(catalog)) if self.needed else None

    def _quiet(self, seen: bytes | None) -> bytes | None:
        """Wait (bounded) until no deleter holds the lease; return the lease as last read.

        Raises:
            PreconditionFailedError: A deleter kept it for longer than ``wait``.
        """
        deadline = time.monotonic() + self.wait
        pauses = _Pauses(deadline)
        while (state := _parse(seen)) is not None and state.active():
            if time.monotonic() > deadline:
                raise PreconditionFailedError(
                    f"Version maintenance (lease {lease_key(self.catalog)!r}) kept running for "
                    f"more than {self.wait:g} s; try again later"
                )
            pauses.sleep()
            seen = _peek(self.catalog)
        return seen

    def settle(self) -> bool:
        """Call after the catalog write. True: safe, nothing to check. False: a deleter ran or
        runs; it has now finished, and the caller must check its versions still exist.

        Raises:
            PreconditionFailedError: A deleter kept the lease for longer than ``wait`` (the
                caller rolls its change back).
        """
        if not self.needed:
            return True
        after = _peek(self.catalog)
        if after == self.before:
            return True  # not held when first read (see __init__), and nobody wrote since
        self._quiet(after)
        return False
