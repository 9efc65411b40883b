"""The :class:`Event` record shared by the journal, ``storage.events()``, ``watch`` and
webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event"]


@dataclass(frozen=True)
class Event:
    """One change, as the journal of a mount records it.

    Attributes:
        type: The event name (``'version_created'``, ... see :data:`storied.events.EVENTS`).
        mount: The mount it happened on.
        path: The mount-relative path (``''`` for mount-wide events such as snapshots).
        version_id: The version it concerns, where there is one.
        time: When it happened (tz-aware UTC).
        info: The callback's ``info`` dict (for version events: the version's dict).
        cursor: Opaque; pass it as ``since=`` to resume right after this event.
        id: Unique and stable for this event (the webhook-id of its deliveries).
    """

    type: str
    mount: str
    path: str
    version_id: str | None
    time: datetime
    info: dict[str, Any] = field(default_factory=dict)
    cursor: str = ""
    id: str = ""
