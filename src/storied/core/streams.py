"""File objects returned by ``StorageNode.open``: buffered atomic writers and hashing helpers."""

from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO, cast

from storied.backends.base import CHUNK
from storied.errors import TextDecodeError, TextEncodeError

__all__ = [
    "SPOOL_LIMIT",
    "AtomicTextWriter",
    "AtomicWriter",
    "TextReader",
    "decode_error",
    "encode_error",
    "iter_chunks",
    "md5_of_stream",
]

#: Writers keep up to this many bytes in memory before spilling to a temporary file.
SPOOL_LIMIT = 8 * 1024 * 1024


class AtomicWriter(io.BufferedIOBase):
    """A writable binary file that reaches storage only when closed without an error.

    The content is spooled (in memory up to :data:`SPOOL_LIMIT`, then in a temporary file) and
    handed to ``commit`` on :meth:`close`. Leaving a ``with`` block by an exception discards
    it, so a failed write never replaces the old content.

    Args:
        commit: Called with the spooled stream (positioned at 0) when the file closes cleanly.
        initial: Existing content to start from (append and update modes).
        position_at_end: Start writing after ``initial`` (append) rather than over it.
    """

    def __init__(
        self,
        commit: Callable[[BinaryIO], object],
        initial: BinaryIO | None = None,
        position_at_end: bool = False,
    ) -> None:
        super().__init__()
        self._commit = commit
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)  # noqa: SIM115
        self._discard = False
        if initial is not None:
            with initial:
                while chunk := initial.read(CHUNK):
                    self._spool.write(chunk)
            if not position_at_end:
                self._spool.seek(0)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self._spool.write(data)

    def read(self, size: int | None = -1) -> bytes:
        return self._spool.read(-1 if size is None else size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._spool.seek(offset, whence)

    def tell(self) -> int:
        return self._spool.tell()

    def truncate(self, size: int | None = None) -> int:
        return self._spool.truncate(size)

    def abort(self) -> None:
        """Make the coming :meth:`close` write nothing to storage."""
        self._discard = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        self.close()

    def __del__(self) -> None:
        """A writer nobody closed is never committed: the garbage collector may reach it after
        an exception interrupted the writing (a half-written file must not replace the old
        one). A ``ResourceWarning`` says so."""
        try:
            if not self.closed:
                self._discard = True
                warnings.warn("a storied writer was never closed: nothing was written (use "
                              "'with node.open(...)' or close())", ResourceWarning, stacklevel=2)
        finally:
            super().__del__()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._discard:
                self._spool.seek(0)
                self._commit(self._spool)  # type: ignore[arg-type]
        finally:
            self._spool.close()
            super().close()


def decode_error(exc: UnicodeDecodeError, where: str) -> TextDecodeError:
    """The storied form of ``exc`` (still a ``UnicodeDecodeError``), naming ``where``."""
    return TextDecodeError(exc.encoding, exc.object, exc.start, exc.end, f"{exc.reason} ({where})")


def encode_error(exc: UnicodeEncodeError, where: str) -> TextEncodeError:
    """The storied form of ``exc`` (still a ``UnicodeEncodeError``), naming ``where``."""
    return TextEncodeError(exc.encoding, exc.object, exc.start, exc.end, f"{exc.reason} ({where})")


class TextReader(io.TextIOWrapper):
    """Text layer of ``open('r')``: undecodable content is a
    :class:`~storied.errors.TextDecodeError` naming the file (also a ``UnicodeDecodeError``)."""

    def __init__(self, buffer: BinaryIO, encoding: str, where: str,
                 errors: str | None = None, newline: str | None = None) -> None:
        super().__init__(buffer, encoding=encoding, errors=errors, newline=newline)
        self._where = where

    def read(self, size: int | None = -1) -> str:
        try:
            return super().read(size)
        except UnicodeDecodeError as exc:
            raise decode_error(exc, self._where) from None

    def readline(self, size: int = -1) -> str:  # type: ignore[override]
        try:
            return super().readline(size)
        except UnicodeDecodeError as exc:
            raise decode_error(exc, self._where) from None

    def readlines(self, hint: int = -1) -> list[str]:  # type: ignore[override]
        try:
            return super().readlines(hint)
        except UnicodeDecodeError as exc:
            raise decode_error(exc, self._where) from None

    def __next__(self) -> str:  # type: ignore[override]
        try:
            return super().__next__()
        except UnicodeDecodeError as exc:
            raise decode_error(exc, self._where) from None


class AtomicTextWriter(io.TextIOWrapper):
    """Text layer over an :class:`AtomicWriter` that discards on an exception too; text the
    encoding cannot represent is a :class:`~storied.errors.TextEncodeError`."""

    def __init__(self, buffer: AtomicWriter, encoding: str, where: str = "",
                 errors: str | None = None, newline: str | None = None) -> None:
        super().__init__(cast(BinaryIO, buffer), encoding=encoding, errors=errors,
                         newline=newline)
        self._where = where

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except UnicodeEncodeError as exc:
            raise encode_error(exc, self._where) from None

    def __del__(self) -> None:
        """Like :meth:`AtomicWriter.__del__`: never committed by the garbage collector."""
        try:
            if not self.closed:
                cast(AtomicWriter, self.buffer).abort()
        except (AttributeError, ValueError):
            pass
        super().__del__()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.buffer.abort()  # type: ignore[attr-defined]
        self.close()


def iter_chunks(stream: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    """Yield ``stream``'s content in chunks of at most ``size`` bytes, then close it."""
    with stream:
        while chunk := stream.read(size):
            yield chunk


def md5_of_stream(stream: BinaryIO) -> str:
    """The lowercase hex MD5 of everything left in ``stream`` (read in chunks, then closed)."""
    digest = hashlib.md5()
    for chunk in iter_chunks(stream):
        digest.update(chunk)
    return digest.hexdigest()
