"""In-process event callbacks: ``storage.on(event, callback, mount=, path=)``.

One :class:`EventBus` per :class:`~storied.core.manager.StorageManager`. Emitters call
:meth:`EventBus.emit` *after* the operation succeeded; a callback never undoes or fails it:
whatever a callback raises is logged to the ``storied.events`` logger and swallowed.
Callbacks run synchronously in the emitting thread, in subscription order. A callback may
write to storage (its events are delivered too), nested at most :data:`MAX_DEPTH` deep.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storied.errors import InvalidArgumentError

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["EVENTS", "Callback", "EventBus", "Subscription", "check_event"]

#: Every event name, in the seed's order. ``'*'`` subscribes to all of them.
EVENTS: tuple[str, ...] = (
    "version_created",
    "version_deleted",
    "file_written",
    "file_deleted",
    "tag_created",
    "tag_deleted",
    "version_annotated",
    "snapshot_created",
    "snapshot_restored",
    "snapshot_deleted",
    "lock_acquired",
    "lock_released",
    "legal_hold_changed",
    "retention_changed",
)
_KNOWN = frozenset(EVENTS)
#: Events emitted from inside callbacks nest at most this deep (per thread); deeper ones are
#: logged and not delivered, so a callback that writes what it listens to cannot recurse
#: without end.
MAX_DEPTH = 8

#: ``callback(node, info)``; ``info`` always holds ``'event'``.
Callback = Callable[["StorageNode", dict[str, Any]], object]

log: logging.Logger = logging.getLogger("storied.events")


def check_event(event: object, *, wildcard: bool = True) -> str:
    """``event`` if it names an event (or ``'*'`` when ``wildcard``), else an
    :class:`InvalidArgumentError` (a ``ValueError``) listing the valid names."""
    if isinstance(event, str) and (event in _KNOWN or (wildcard and event == "*")):
        return event
    raise InvalidArgumentError(
        f"Unknown event {event!r}; valid events: {', '.join(EVENTS)}"
        + (", or '*' for all" if wildcard else "")
    )


def _copied(value: Any) -> Any:
    """``value`` with its dicts and lists copied, at any depth (other values shared)."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


class Subscription:
    """One ``storage.on(...)`` registration; :meth:`cancel` ends it (idempotent)."""

    event: str
    callback: Callback
    mount: str | None
    path: str | None

    def __init__(self, bus: EventBus, event: str, callback: Callback,
                 mount: str | None, path: str | None) -> None:
        self.event, self.callback, self.mount, self.path = event, callback, mount, path
        self._bus = bus
        self.active = True

    def matches(self, event: str, mount: str | None, path: str) -> bool:
        """True when this subscription wants ``event`` on ``mount:path``."""
        if self.event != "*" and self.event != event:
            return False
        if self.mount is not None and self.mount != mount:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def cancel(self) -> None:
        """Stop receiving events (no effect when already cancelled)."""
        self._bus._remove(self)

    def __repr__(self) -> str:
        where = f" mount={self.mount!r}" if self.mount else ""
        where += f" path={self.path!r}" if self.path else ""
        return f"Subscription({self.event!r}{where}, active={self.active})"


class EventBus:
    """Subscriptions of one manager, safe to use from several threads."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._local = threading.local()  # emit nesting depth, per thread

    def on(self, event: str, callback: Callback, *, mount: str | None = None,
           path: str | None = None) -> Subscription:
        """Subscribe ``callback`` to ``event`` (``'*'``: every event), optionally only on
        ``mount`` and on paths matching the fnmatch pattern ``path`` (mount-relative).

        Raises:
            InvalidArgumentError: An unknown event, a callback that is not callable, or a
                ``mount`` or ``path`` that is not a str.
        """
        check_event(event)
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, got {type(callback).__name__}")
        for name, value in (("mount", mount), ("path", path)):
            if value is not None and not isinstance(value, str):  # matched on every write
                raise InvalidArgumentError(f"{name} must be a str or None, not {value!r}")
        sub = Subscription(self, event, callback, mount, path)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def off(self, event: str, callback: Callback) -> int:
        """Cancel every subscription of ``callback`` to ``event``; how many were cancelled."""
        check_event(event)
        with self._lock:
            gone = [s for s in self._subs if s.event == event and s.callback == callback]
        for sub in gone:
            self._remove(sub)
        return len(gone)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]
            sub.active = False

    def wants(self, event: str, mount: str | None = None, path: str | None = None) -> bool:
        """True when some subscription would receive ``event`` (lets emitters skip building
        ``info``); with ``path`` None any path counts."""
        for s in self._subs:  # :meth:`Subscription.matches` inlined: this runs on every write
            if (s.event == event or s.event == "*") and (s.mount is None or s.mount == mount) \
                    and (path is None or s.path is None or fnmatch.fnmatchcase(path, s.path)):
                return True
        return False

    def emit(self, event: str, node: StorageNode, info: dict[str, Any]) -> None:
        """Call every matching subscription with ``(node, info)``; ``info['event']`` is set, and
        each gets its own copy of it (dicts and lists at any depth). Errors raised by
        callbacks are logged (``storied.events``), never raised."""
        subs = self._subs  # a snapshot: the list is replaced, never changed in place
        if not subs:
            return
        depth = getattr(self._local, "depth", 0)
        if depth >= MAX_DEPTH:  # a callback that writes, whose write calls it again, ...
            log.error("storied event %s on %s not delivered: callbacks nested %d deep (a "
                      "callback writing what it listens to?)", event, node.fullpath, depth)
            return
        info = {**info, "event": event}
        mount, path = node._mount_name, node._path
        matching = [sub for sub in subs if sub.matches(event, mount, path)]
        self._local.depth = depth + 1
        try:
            for i, sub in enumerate(matching):
                if not sub.active:  # cancelled by an earlier callback of this event
                    continue
                # each its own copy, the last the original: what one changes, no other sees
                given = info if i == len(matching) - 1 else _copied(info)
                try:
                    sub.callback(node, given)
                except Exception:  # a callback never fails the operation
                    log.exception("storied event callback %r for %s on %s failed",
                                  sub.callback, event, node.fullpath)
        finally:
            self._local.depth = depth
