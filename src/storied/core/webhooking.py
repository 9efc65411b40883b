"""The manager's webhook methods (``add_webhook``, ``flush_webhooks``)."""

from __future__ import annotations

__all__ = ["WebhookMethods"]


class WebhookMethods:
    """Mixed into :class:`~storied.core.manager.StorageManager`."""
