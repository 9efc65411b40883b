"""The manager's event methods: ``on``/``off`` (in-process), ``events``/``watch`` (journal)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storied.events.bus import Callback, EventBus, Subscription

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["EventMethods", "bus_of"]


def bus_of(node: StorageNode) -> EventBus:
    """The event bus of the manager ``node`` belongs to."""
    return node._manager.bus


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
