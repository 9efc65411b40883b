"""Streaming transfers of large files: ``stream_download`` and ``stream_upload`` (issue 10).

Placeholder mixin: the methods land here (owned by the streaming work)."""

from __future__ import annotations

__all__ = ["StreamingMethods"]


class StreamingMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""
