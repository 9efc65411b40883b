"""The manager's event methods: ``on``/``off`` (in-process), ``events``/``watch`` (journal),
and :func:`notify`, which every write path calls after it succeeded.

:func:`notify` appends the event to the mount's journal (versioned mounts; see
:mod:`storied.events.journal`) *before* the operation returns, then calls the in-process
subscribers. A mount without history and without subscribers pays nothing: ``info`` is only
built when someone needs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.errors import InvalidArgumentError, UnsupportedOperation
from storied.events.bus import Callback, EventBus, Subscription
from storied.events.journal import JOURNALED
from storied.events.model import Event
from storied.events.view import Journal, journal_for, store_of

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.core.node import StorageNode
    from storied.info import Info
    from storied.versioning.engine import Version

__all__ = ["EventMethods", "Watch", "bus_of", "file_info", "needs_events", "notify",
           "notify_deleted", "notify_version", "notify_written", "version_info"]

log: logging.Logger = logging.getLogger("storied.events")


def bus_of(node: StorageNode) -> EventBus:
    """The event bus of the manager ``node`` belongs to."""
    return node._manager.bus


def needs_events(node: StorageNode, *events: str) -> bool:
    """True when some of ``events`` on ``node``'s mount would be journaled or delivered (lets
    emitters skip the listings an event needs, e.g. the files of a recursive delete)."""
    if node._history is not None and JOURNALED.intersection(events):
        return True
    bus = node._manager._event_bus
    return bus is not None and any(bus.wants(e, node.mount_name) for e in events)


def notify(node: StorageNode, event: str, build: Callable[[], dict[str, Any]],
           version_id: str | None = None) -> None:
    """After a successful operation on ``node``: journal ``event`` (versioned mounts, for
    the events the journal records) and call the subscribers with ``build()``.

    Raises:
        StorageError: The journal entry could not be written (the operation itself is done;
            callbacks are not called, so nothing is reported that is not recorded).
    """
    bus = node._manager._event_bus
    wants = bus is not None and bus.wants(event, node._mount_name, node._path)
    history = node._history if event in JOURNALED else None
    if history is None and not wants:
        return
    info = build()
    if history is not None:
        store_of(history).append(event, history._p(node._path), version_id, info)
    if wants and bus is not None:
        bus.emit(event, node, info)


def version_info(version: Version, metadata: dict[str, Any] | None = None,
                 tags: list[str] | None = None) -> dict[str, Any]:
    """The dict ``node.versions`` shows for ``version`` (``metadata``: its annotations)."""
    info = version.as_dict(tags)
    if metadata:
        info["metadata"] = {**info["metadata"], **metadata}
    return info


def notify_version(node: StorageNode, version: Version,
                   metadata: dict[str, Any] | None = None) -> None:
    """``version_created`` then ``file_written`` for a new version of ``node``."""
    vid = version.version_id
    notify(node, "version_created", lambda: version_info(version, metadata), vid)
    notify(node, "file_written", lambda: {"path": node.path, "size": version.size,
                                          "etag": version.etag, "version_id": vid})


def file_info(node: StorageNode, info: Info | None) -> dict[str, Any]:
    """The ``info`` of a ``file_written`` event on a mount without history."""
    return {"path": node.path, "size": info.size if info else None,
            "etag": (info.md5 or info.etag) if info else None,
            "version_id": info.version_id if info else None}


def notify_written(node: StorageNode, info: Info | None) -> None:
    """``file_written`` for a write on a mount without history (``info``: the write's; None:
    looked up, only when a subscriber wants the event)."""
    notify(node, "file_written", lambda: file_info(node, info or node._info_or_none()))


def notify_deleted(node: StorageNode) -> None:
    """``file_deleted`` for ``node``."""
    notify(node, "file_deleted", lambda: {"path": node.path, "version_id": None})


class Watch:
    """A background tail of a journal (``storage.watch``); :meth:`stop` ends it (also on
    leaving a ``with`` block). ``cursor`` is the last event delivered; ``error`` what stopped
    the thread, if anything did."""

    journal: Journal
    below: str
    callback: Callable[[Event], object]
    poll: float
    cursor: str

    def __init__(self, journal: Journal, below: str, callback: Callable[[Event], object],
                 poll: float, since: str | None) -> None:
        self.journal, self.below, self.callback, self.poll = journal, below, callback, poll
        self.cursor = since if since is not None else journal.tail_cursor()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storied-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self.journal.read(self.cursor, path=self.below):
                    if self._stop.is_set():
                        return
                    try:
                        self.callback(event)
                    except Exception:
                        log.exception("storied watch callback %r failed on %s",
                                      self.callback, event.cursor)
                    except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop, say why
                        self.error = exc
                        log.error("storied watch of %s stopped: its callback raised %r on %s",
                                  self.journal.mount, exc, event.cursor)
                        return
                    self.cursor = event.cursor
            except Exception as exc:  # e.g. the cursor expired: stop and say why
                self.error = exc
                log.error("storied watch of %s stopped: %s", self.journal.mount, exc)
                return
            self._stop.wait(self.poll)

    @property
    def running(self) -> bool:
        """True while the thread tails the journal."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop tailing and wait (up to ``timeout``) for the thread to end."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _journal_of(manager: StorageManager, prefix: str) -> tuple[Journal, str]:
    if not isinstance(prefix, str) or ":" not in prefix:
        raise InvalidArgumentError(f"prefix must be 'mount:' or 'mount:path', not {prefix!r}")
    mount, sub = paths.split_fullpath(prefix)
    journal = journal_for(manager, mount)
    if journal is None:
        raise UnsupportedOperation(
            f"Mount {mount!r} keeps no history, so no event journal (in-process events: "
            "storage.on)"
        )
    return journal, paths.check_public(paths.normalize(sub)) if sub else ""


class EventMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""

    _event_bus: EventBus | None = None

    @property
    def bus(self) -> EventBus:
        """This manager's :class:`~storied.events.bus.EventBus` (made on first use)."""
        if self._event_bus is None:
            self._event_bus = EventBus()
        return self._event_bus

    def on(self, event: str, callback: Callback, *, mount: str | None = None,
           path: str | None = None) -> Subscription:
        """Call ``callback(node, info)`` after every ``event`` (``'*'``: all events) in this
        process, optionally only on ``mount`` and paths matching the fnmatch pattern ``path``.
        Returns a subscription; ``subscription.cancel()`` ends it.

        Raises:
            InvalidArgumentError: ``event`` is not an event name (a ``ValueError``).
        """
        return self.bus.on(event, callback, mount=mount, path=path)

    def off(self, event: str, callback: Callback) -> None:
        """Cancel every subscription of ``callback`` to ``event``."""
        self.bus.off(event, callback)

    def events(self, prefix: str, since: str | None = None,
               limit: int | None = None) -> Iterator[Event]:
        """The journal of a versioned mount: events by any process, oldest first.

        ``prefix`` is ``'mount:'`` or ``'mount:dir'`` (events at or below it). ``since`` is an
        event's ``cursor``: only later events come (None: from the oldest kept). At most
        ``limit`` events. Reading costs one listing per 1,000 journal entries and one read per
        entry.

        Raises:
            UnsupportedOperation: The mount keeps no history (so no journal).
            InvalidArgumentError: A malformed prefix, cursor or limit (at the call); a cursor
                ahead of the journal, e.g. another mount's (when iterating).
            StorageNotFoundError: ``since`` has expired (older than the oldest kept entry).
        """
        journal, below = _journal_of(_m(self), prefix)
        return journal.read(since, limit, path=below)

    def watch(self, prefix: str, callback: Callable[[Event], object], poll: float = 1.0,
              *, since: str | None = None) -> Watch:
        """Tail the journal of ``prefix`` in a daemon thread: ``callback(event)`` for each new
        event (from ``since``, default: events after now), checking every ``poll`` seconds.
        Returns a :class:`Watch` (``stop()``; a context manager too). A callback that raises
        is logged (``storied.events``) and the tail goes on; one that raises a
        ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``) stops it, kept as
        ``watch.error`` (``watch.cursor`` stays before that event).

        Raises:
            UnsupportedOperation: The mount keeps no history.
            InvalidArgumentError: A malformed prefix, cursor or ``poll`` (must be > 0).
        """
        if not isinstance(poll, (int, float)) or isinstance(poll, bool) or poll <= 0:
            raise InvalidArgumentError(f"poll must be a number > 0, not {poll!r}")
        if not callable(callback):
            raise InvalidArgumentError("callback must be callable")
        journal, below = _journal_of(_m(self), prefix)
        if since is not None:
            from storied.events.journal import parse_cursor

            parse_cursor(since)
        return Watch(journal, below, callback, float(poll), since)

    def expire_events(self, mount: str, keep_days: float = 30.0) -> int:
        """Journal upkeep of ``mount``'s history: seal full buckets older than 2 hours into
        one object each, then remove entries older than ``keep_days`` (whole buckets of
        1,000, never the newest); how many entries went. See docs/EVENTS.md §6.

        Raises:
            UnsupportedOperation: The mount keeps no history.
            InvalidArgumentError: ``keep_days`` < 1.
        """
        history = _m(self).history(mount)
        if history is None:
            raise UnsupportedOperation(f"Mount {mount!r} keeps no history")
        return store_of(history).expire(keep_days)


def _m(mixin: object) -> StorageManager:
    return mixin  # type: ignore[return-value]
