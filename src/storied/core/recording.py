"""The manager's record/replay methods (``record_mode``, ``replay_mode``)."""

from __future__ import annotations

__all__ = ["RecordingMethods"]


class RecordingMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""
