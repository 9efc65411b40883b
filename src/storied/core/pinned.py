"""Version-pinned nodes: ``storage.node('docs:a.txt', version=-2)`` is a read-only snapshot.

Every read of a pinned node sees its version (content, size, MD5, ``info``, ``exists``, copies,
``local_path('r')``, ranged reads for ``serve``), and every write path refuses it with a
:class:`~storied.errors.StoragePermissionError` (also a ``ValueError``, as genro-storage
raised). Tags and annotations are metadata of the history, not writes of the file: allowed.
The helpers here take the node; :class:`~storied.core.node.StorageNode` calls them when its
``version`` is set.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, cast

from storied.backends.base import CHUNK
from storied.errors import (
    InvalidArgumentError,
    ReadOnlyVersionError,
    StorageNotFoundError,
    UnsupportedOperation,
    VersionNotFoundError,
)
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.node import StorageNode
    from storied.versioning.engine import Version

__all__ = ["open_range", "pinned_info", "pinned_local_path", "pinned_version", "refuse_write"]

def refuse_write(node: StorageNode) -> None:
    """Raise :class:`~storied.errors.ReadOnlyVersionError` (a ``StoragePermissionError`` that
    is also a ``ValueError``, as genro-storage raised) when ``node`` is pinned to a version."""
    if node.version is not None:
        raise ReadOnlyVersionError(
            f"Cannot write to versioned snapshot {node.fullpath} (version {node.version!r}): "
            "a version-pinned node is read-only"
        )


def pinned_version(node: StorageNode) -> Version:
    """The version ``node`` is pinned to, resolved now (an index follows the history).

    Raises:
        StorageNotFoundError: No such version (also an ``IndexError`` for an index out of
            range), or the mount keeps no history.
    """
    try:
        return node._resolve(node.version)
    except IndexError as exc:
        if isinstance(exc, StorageNotFoundError):
            raise
        raise VersionNotFoundError(f"{node.fullpath}: {exc}") from None
    except UnsupportedOperation as exc:
        raise VersionNotFoundError(f"{node.fullpath}: no history ({exc})") from None


def pinned_info(node: StorageNode) -> Info:
    """What ``info()`` says of a pinned node: its version's size, time, MD5 and metadata."""
    version = pinned_version(node)
    md5 = version.etag or None
    return Info(
        node.path,
        False,
        version.size,
        version.last_modified.timestamp(),
        f"{version.version_id}:{version.etag}",
        md5,
        dict(version.metadata),
        version.version_id,
    )


def open_range(node: StorageNode, start: int = 0, end: int | None = None) -> BinaryIO:
    """Bytes ``[start, end)`` of the node's content (its version when pinned), streamed."""
    if node.version is None:
        return node._be.open_read(node.path, start, end)
    stream = cast(BinaryIO, node.open("rb"))
    if not start and end is None:
        return stream
    return cast(BinaryIO, _Window(stream, start, end))


class _Window(io.RawIOBase):
    """A read-only window ``[start, end)`` over a forward-only stream."""

    def __init__(self, inner: BinaryIO, start: int, end: int | None) -> None:
        super().__init__()
        self._inner = inner
        remaining = start
        while remaining:
            skipped = inner.read(min(remaining, CHUNK))
            if not skipped:
                break
            remaining -= len(skipped)
        self._left = None if end is None else max(0, end - start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        if want <= 0:
            return 0
        data = self._inner.read(want)
        buffer[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


@contextmanager
def pinned_local_path(node: StorageNode, mode: str) -> Iterator[str]:
    """``local_path('r')`` of a pinned node: a temporary file holding that version.

    Raises:
        StoragePermissionError: A writing mode (the node is read-only).
        ValueError: ``mode`` is not ``'r'``, ``'w'`` or ``'rw'``.
    """
    if mode not in ("r", "w", "rw"):
        raise InvalidArgumentError(f"local_path mode must be 'r', 'w' or 'rw', not {mode!r}")
    if mode != "r":
        refuse_write(node)
    fd, tmp = tempfile.mkstemp(suffix=node.suffix, prefix="storied-")
    try:
        with os.fdopen(fd, "wb") as out, node.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
