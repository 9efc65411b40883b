"""Small records shared by every layer: what a backend says about a path, and how to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import BinaryIO

__all__ = ["Data", "Info", "ObjectVersion", "WriteMode", "check_range"]

#: What a backend's ``write`` accepts: bytes, or a binary stream read to its end.
Data = bytes | bytearray | memoryview | BinaryIO


class WriteMode(StrEnum):
    """How a write treats an existing object.

    ``OVERWRITE`` replaces whatever is there. ``CREATE`` writes only if nothing is at the path
    (else :class:`~storied.errors.StorageAlreadyExistsError`). ``IF_MATCH`` replaces only if the
    current etag equals the one given (else :class:`~storied.errors.PreconditionFailedError`;
    a missing object is :class:`~storied.errors.StorageNotFoundError`).
    """

    OVERWRITE = "overwrite"
    CREATE = "create"
    IF_MATCH = "if_match"


@dataclass(frozen=True)
class Info:
    """What a backend knows about one path, from one request.

    Attributes:
        path: The path relative to the backend (or mount) root, ``/``-separated, no leading slash;
            ``""`` is the root.
        is_dir: True for a directory (or an object-store prefix).
        size: Size in bytes; 0 for directories.
        mtime: Last modification as a Unix timestamp, None if the backend does not know.
        etag: An opaque token that changes whenever the content changes (used by conditional
            writes). None if the backend has none.
        md5: The lowercase hex MD5 of the content, only when it is known without reading the
            content (a single-part S3 ETag, a memory object). Never a multipart ETag.
        metadata: User metadata when the request returned it, else None.
        version_id: The backend's version id for this content, when it has one.
        storage_class: The storage class (S3: ``STANDARD``, ``GLACIER``...) when the request
            that made this record reported it, else None.
    """

    path: str
    is_dir: bool = False
    size: int = 0
    mtime: float | None = None
    etag: str | None = None
    md5: str | None = None
    metadata: dict[str, str] | None = field(default=None, compare=False)
    version_id: str | None = None
    storage_class: str | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The last segment of the path."""
        return self.path.rsplit("/", 1)[-1]

    def moved(self, path: str) -> Info:
        """The same record under another path (used by prefix wrappers)."""
        return Info(
            path=path,
            is_dir=self.is_dir,
            size=self.size,
            mtime=self.mtime,
            etag=self.etag,
            md5=self.md5,
            metadata=self.metadata,
            version_id=self.version_id,
            storage_class=self.storage_class,
        )


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a storage's own version list (S3 bucket versioning), delete markers included.

    Attributes:
        path: The object's path (relative, like :class:`Info`).
        version_id: The storage's version id.
        mtime: Unix timestamp of the version.
        size: Content size (0 for a delete marker).
        etag: The storage's etag ('' for a delete marker).
        md5: The true MD5 when the etag is one, else None.
        is_latest: The storage's own "current" flag.
        is_delete_marker: True for a delete marker (no content).
    """

    path: str
    version_id: str
    mtime: float
    size: int = 0
    etag: str = ""
    md5: str | None = None
    is_latest: bool = False
    is_delete_marker: bool = False


def check_range(start: object, end: object) -> None:
    """Refuse a byte range ``[start, end)`` that ``Backend.open_read`` cannot be asked for.

    A negative or non-integer ``start`` would be a malformed ``Range`` header (which S3 silently
    ignores, answering the whole object) or a slice from the end (memory); every backend refuses
    it the same way, before any request.

    Raises:
        InvalidArgumentError: ``start`` is not an integer >= 0 or ``end`` not an integer/None.
    """
    from storied.errors import InvalidArgumentError

    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise InvalidArgumentError(f"Byte range start must be an integer >= 0, not {start!r}")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int)):
        raise InvalidArgumentError(f"Byte range end must be an integer or None, not {end!r}")
