"""S3 Object Lock, legal hold and storage classes: methods mixed into the S3 backend.

Placeholder mixin: the methods land here (owned by the object-lock work)."""

from __future__ import annotations

__all__ = ["S3ObjectLockMixin"]


class S3ObjectLockMixin:
    """Mixed into :class:`~storied.backends.s3.S3Backend`."""
