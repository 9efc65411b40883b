"""Streaming transfers of large files: ``stream_download`` and ``stream_upload`` (issue 10 §4).

Both work on every backend through its ordinary reader and write path; S3 makes them fast:

- ``stream_download`` opens the file (its version on a pinned node) inside
  :func:`~storied.backends._s3_prefetch.sequential_reads`. On S3 every GET is then a bounded
  ``Range`` of one chunk pinned to the version (or ETag) the first GET returned, up to the
  mount's ``max_concurrency`` chunks are fetched ahead and handed over in order, and a
  connection lost mid-body resumes from the last byte received. Elsewhere the backend's
  reader is read chunk by chunk.
- ``stream_upload`` hands the source, as a forward-only stream, to the node's normal write
  path (history, events, locks, permissions, conditional writes): S3 sends a multipart upload
  above ``multipart_threshold`` with parts in parallel (``max_concurrency``) and aborts it
  on any failure, so no part is left behind.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from storied.backends._s3_prefetch import sequential_reads
from storied.errors import (
    InvalidArgumentError,
    IsADirectoryStorageError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
)

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["DEFAULT_CHUNK", "DownloadStream", "StreamingMethods"]

#: The default chunk of ``stream_download`` (and S3's ranged GETs while streaming).
DEFAULT_CHUNK = 8 * 1024 * 1024
_READ = 1024 * 1024  # bytes asked of an upload source per read


def _positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive int, not {value!r}")
    return value


class DownloadStream:
    """The chunks of one file (or of bytes ``[start, end)`` of it), in order.

    Iterate it (once) for ``bytes`` chunks of at most ``chunk_size``; use it as a context
    manager, or :meth:`close` it, to release the connection and the prefetching threads early.

    Attributes:
        size: How many bytes the iteration yields in all (``end - start`` clipped to the file).
        bytes_read: How many it has yielded so far.
    """

    bytes_read: int

    def __init__(self, stream: BinaryIO, size: int, chunk_size: int, where: str) -> None:
        self._stream, self._chunk, self._where = stream, chunk_size, where
        self.size = size
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self.bytes_read < self.size:
                chunk = self._stream.read(min(self._chunk, self.size - self.bytes_read))
                if not chunk:
                    raise StorageIOError(
                        f"{self._where} ended at byte {self.bytes_read} of {self.size} while "
                        "it was streamed (it shrank or was replaced meanwhile)"
                    )
                self.bytes_read += len(chunk)
                yield bytes(chunk)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection and stop the prefetching (idempotent)."""
        self._stream.close()

    def __enter__(self) -> DownloadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Source(io.RawIOBase):
    """A forward-only binary stream over bytes, a binary file object or an iterable of bytes,
    reporting progress (the bytes consumed, never decreasing)."""

    def __init__(self, source: object, progress: Callable[[int], object] | None) -> None:
        super().__init__()
        self._progress, self.done = progress, 0
        self._pending, self._offset, self._ended = b"", 0, False
        self._read: Callable[[int], object] | None = None
        self._readinto: Callable[[Any], object] | None = None
        self._chunks: Iterator[object] | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._chunks = iter([bytes(source)])
        elif callable(getattr(source, "read", None)):
            self._read = source.read  # type: ignore[attr-defined]
            if not isinstance(source, io.TextIOBase):  # binary files fill the buffer directly
                self._readinto = getattr(source, "readinto", None)
        elif isinstance(source, Iterable) and not isinstance(source, str):
            self._chunks = iter(source)
        else:
            raise InvalidArgumentError(
                "stream_upload() takes bytes, a binary file object or an iterable of bytes, "
                f"not {type(source).__name__}"
            )

    def readable(self) -> bool:
        return True

    def _next(self, size: int) -> bytes | None:
        """The next non-empty piece of the source, or None at its end."""
        if self._read is not None:
            piece = self._read(size)
            return self._checked(piece) or None
        assert self._chunks is not None
        for item in self._chunks:
            piece = self._checked(item)
            if piece:
                return piece
        return None

    @staticmethod
    def _checked(piece: object) -> bytes:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(
                f"stream_upload() source gave {type(piece).__name__}, not bytes (open files "
                "in binary mode; encode text first)"
            )
        return bytes(piece)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._readinto is not None:
            count = self._readinto(view)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise InvalidArgumentError(
                    f"stream_upload() source's readinto() gave {count!r}, not a byte count"
                )
            return self._count(count)
        if self._offset >= len(self._pending):
            piece = None if self._ended else self._next(max(len(view), _READ))
            if piece is None:
                self._ended = True
                return 0
            self._pending, self._offset = piece, 0
        count = min(len(view), len(self._pending) - self._offset)
        view[:count] = memoryview(self._pending)[self._offset : self._offset + count]
        self._offset += count
        return self._count(count)

    def _count(self, count: int) -> int:
        self.done += count
        if self._progress is not None and count:
            self._progress(self.done)
        return count


class StreamingMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""

    def _info_or_none_dir(self) -> bool:
        """Whether the path is a directory (False when nothing is there or it cannot tell)."""
        node: StorageNode = self  # type: ignore[assignment]
        try:
            return node.info().is_dir
        except StorageError:
            return False

    def stream_download(
        self, chunk_size: int = DEFAULT_CHUNK, start: int = 0, end: int | None = None
    ) -> DownloadStream:
        """The file's bytes ``[start, end)`` (all of it by default) as an iterable of chunks of
        at most ``chunk_size`` bytes, in order, with memory bounded whatever the file's size;
        ``stream.size`` is the total. A version-pinned node streams its version. The bytes are
        the stored ones, as ``open('rb')`` gives them.

        On S3 every request is a bounded ranged GET pinned to the version (or ETag) of the
        first; up to the mount's ``max_concurrency`` chunks are fetched ahead (memory about
        ``(max_concurrency + 2) * chunk_size``); a connection lost mid-body resumes from the
        last byte received; a file replaced meanwhile raises
        :class:`~storied.errors.PreconditionFailedError` (never bytes of two versions).

        Raises:
            InvalidArgumentError: ``chunk_size`` not a positive int, a bad range.
            StorageNotFoundError: No such file (or version).
            IsADirectoryStorageError: A directory.
        """
        from storied.core import pinned
        from storied.info import check_range

        node: StorageNode = self  # type: ignore[assignment]
        chunk_size = _positive("chunk_size", chunk_size)
        check_range(start, end)
        try:
            with sequential_reads(chunk_size):
                stream = pinned.open_range(node, start, end)
        except StorageNotFoundError:
            # S3 answers 404 for an implied directory (a key prefix): say what it is
            if node.version is None and self._info_or_none_dir():
                raise IsADirectoryStorageError(f"Is a directory: {node.fullpath}") from None
            raise
        try:
            known = getattr(getattr(stream, "raw", stream), "storied_size", None)
            if isinstance(known, int) and not isinstance(known, bool):
                size = known
            else:
                total = node.info().size
                stop = total if end is None else min(end, total)
                size = max(0, stop - start)
        except BaseException:
            stream.close()
            raise
        return DownloadStream(stream, size, chunk_size, node.fullpath)

    def stream_upload(
        self,
        source: bytes | BinaryIO | Iterable[bytes],
        progress: Callable[[int], object] | None = None,
        *,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        create_only: bool = False,
        encrypted: bool | str | None = None,
    ) -> int:
        """Write the file from ``source`` (bytes, a binary file object read to its end, or an
        iterable of bytes) without holding it in memory; returns how many bytes it read from
        ``source``.

        The write takes the node's normal path (history records one version, events,
        permissions, locks; ``if_match`` / ``create_only`` / ``metadata`` / ``encrypted`` as
        for :meth:`write_bytes`; encrypting reads the source whole). On S3 a source of
        ``multipart_threshold`` bytes or more is a multipart upload with up to
        ``max_concurrency`` parts in flight (memory about ``(max_concurrency + 1) *
        multipart_chunksize``); a failure aborts it (no part is left). A source that raises,
        or gives text, writes nothing.

        ``progress(done)`` is called with the bytes consumed from the source so far, never
        decreasing; its last call, with the total, comes once the file is written.

        Raises:
            InvalidArgumentError: ``source`` is not bytes, a binary file or bytes iterable.
            PreconditionFailedError / StorageAlreadyExistsError: see :meth:`write_bytes`.
        """
        from storied.core import pinned
        from storied.core.sealed import sealed_for_write
        from storied.core.writing import check_conditions

        node: StorageNode = self  # type: ignore[assignment]
        pinned.refuse_write(node)
        check_conditions(node, if_match, create_only)
        reader = _Source(source, progress)
        data = sealed_for_write(node, io.BufferedReader(reader, _READ), encrypted)
        node._store(data, metadata, exclusive=create_only, if_match=if_match)
        node._listed = None
        if progress is not None:
            progress(reader.done)
        return reader.done
