"""Change notifications: in-process callbacks (:mod:`storied.events.bus`), the event journal
kept in the storage, and webhook deliveries."""

from storied.events.bus import EVENTS, EventBus, Subscription

__all__ = ["EVENTS", "EventBus", "Subscription"]
