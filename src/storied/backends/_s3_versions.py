"""Native versions of S3 (bucket versioning): methods mixed into the S3 backend.

Private to :mod:`storied.backends.s3`; the methods rely on the backend's ``_client``,
``bucket``, ``_mapped`` and ``_get``.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from storied.backends._s3_stream import check_range
from storied.backends._s3_support import by_key, delete_keys, exact_key, version_pages
from storied.info import ObjectVersion

__all__ = ["S3VersionsMixin"]


class S3VersionsMixin:
    """ListObjectVersions, versioned GETs and DELETEs (see :class:`~.s3.S3Backend`)."""

    if TYPE_CHECKING:
        _client: Any
        bucket: str

        def _mapped(self, path: str, create: bool = False) -> Any: ...

        def _get(self, path: str, start: int, end: int | None,
                 version_id: str | None = None) -> BinaryIO: ...

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        """Every version and delete marker of exactly key ``path``, oldest first.

        ListObjectVersions with ``Prefix=path``, one request per 1000 entries; entries of other
        keys (``path.bak``, ``path/x``) are dropped, and the listing stops at the first page
        that reaches them (the key's own entries sort first). The interleaving of versions and
        markers follows the server's XML (see :func:`~._s3_support.oldest_first`). On a bucket
        that never had versioning, the one object is version ``'null'``.
        """
        if not path:
            return []
        return exact_key(version_pages(self._client, self.bucket, path, path), path)

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        """Every version and delete marker of every key below directory ``path``.

        One flat ListObjectVersions per 1000 entries. Keys come in S3's key order, each key's
        entries oldest first. Nothing below ``path`` yields nothing (no error).
        """
        prefix = path + "/" if path else ""
        return by_key(version_pages(self._client, self.bucket, path, prefix))

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        """One GET with ``VersionId`` (and ``Range`` for a slice), streamed.

        Raises:
            StorageNotFoundError: No such version, or ``version_id`` is a delete marker.
        """
        check_range(start, end)
        if end is not None and end <= start:
            with self._mapped(path):
                self._client.head_object(Bucket=self.bucket, Key=path, VersionId=version_id)
            return io.BytesIO(b"")
        return self._get(path, start, end, version_id)

    def delete_version(self, path: str, version_id: str) -> None:
        """One DELETE with ``VersionId``: the version (or delete marker) is gone for good.

        Deleting a delete marker that is the latest entry makes the previous version current
        again. S3 answers success for an id that does not exist.
        """
        with self._mapped(path):
            self._client.delete_object(Bucket=self.bucket, Key=path, VersionId=version_id)

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        """DeleteObjects: one request per 1,000 files or versions."""
        delete_keys(self._client, self.bucket, "", items)
