"""Seekable read streams over S3 GETs (private to :mod:`storied.backends.s3`).

A stream starts from the GET that ``open_read`` / ``open_version`` sends (so a missing key fails
at open, and a sequential read of the whole object stays one request). From that first response
it learns the size (``Content-Length``, or the total of ``Content-Range``; one pinned HEAD when
a server sends the body chunked with neither) and pins the object:
its ``VersionId`` when the bucket has one, else its ``ETag`` (``If-Match``). After that:

- ``seek`` / ``tell`` / ``seek(0, 2)`` send nothing; a seek drops the current body when the
  next read is not close ahead of it (forward gaps up to :data:`SKIP` are read and dropped).
- A read at a new position sends one bounded ranged GET of :data:`READ_AHEAD` bytes (more if the
  read asks for more), kept in memory as one block; near the end the block is aligned to the end
  of the object, so the tail reads of ``zipfile`` (end record, zip64 locator, central directory)
  cost one GET together. Reading on past a block streams bounded GETs of doubling size (up to
  :data:`MAX_WINDOW`), never the whole object.
- ``read()`` to the end streams the rest in one GET.
- A connection lost in the middle of a body is resumed from where it broke (pinned GET,
  :data:`RESUMES` times per read) instead of failing the whole read.
- Every GET after the first is pinned; when the object was overwritten meanwhile the read
  raises :class:`~storied.errors.PreconditionFailedError` instead of splicing two versions.
- A ranged answer must start where it was asked (its ``Content-Range``); one that starts
  elsewhere is :class:`~storied.errors.StorageIOError`, never bytes at the wrong offset.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any, BinaryIO

from storied.backends._s3_prefetch import Prefetcher, sequential_hint
from storied.backends._s3_support import RangeNotSatisfiable, byte_range, mapped, unquote
from storied.errors import (
    PreconditionFailedError,
    StorageIOError,
    TransientStorageError,
)
from storied.info import check_range

__all__ = [
    "MAX_WINDOW", "READ_AHEAD", "RESUMES", "SKIP", "S3ReadStream", "check_range", "open_stream",
]  # fmt: skip

#: Bytes fetched by the bounded GET after a seek (and the block kept in memory).
READ_AHEAD = 1024 * 1024
#: Upper bound of one streamed GET when reading on sequentially past a block.
MAX_WINDOW = 32 * 1024 * 1024
#: A forward seek of at most this many bytes reads and drops them instead of a new GET.
SKIP = 256 * 1024
#: How often one read resumes a body whose connection broke (each time one pinned GET).
RESUMES = 2
#: The buffer of the :class:`io.BufferedReader` returned to callers.
BUFFER = 256 * 1024

_TOTAL = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_PIECE = 1024 * 1024  # bytes per body read of a prefetched chunk
_log = logging.getLogger("storied.s3")


class S3ReadStream(io.RawIOBase):
    """Bytes ``[base, base + size)`` of one S3 object version, seekable (positions from 0).

    Built by :func:`open_stream` from the first GET's response; see the module docstring for
    the requests each operation costs.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, base: int, size: int, response: dict[str, Any],
        version_id: str | None, body_end: int | None = None, workers: int = 1,
    ) -> None:  # fmt: skip
        self._client, self._bucket, self._key = client, bucket, key
        self._base, self._size = base, size
        self._etag = unquote(response.get("ETag"))
        version = version_id or response.get("VersionId")
        # "null" (an object written while the bucket was unversioned) is pinned by its id only
        # when the caller asked for that version; the null version can be replaced, so its
        # ETag is checked too (see _pin)
        self._version = version if version and (version != "null" or version_id) else None
        self._pos = 0
        self._body: Any = response["Body"]
        self._body_pos = 0
        self._body_end = size if body_end is None else min(size, body_end)
        self._last_end = self._body_end  # the end of the last GET's range
        self._block, self._block_start = b"", 0
        self._window = 2 * READ_AHEAD
        self._workers = max(1, workers)
        self._prefetch: Prefetcher | None = None
        chunk = sequential_hint()
        if chunk is not None and self._body_end < size:  # read in chunks: fetch ahead now
            self._prefetch = Prefetcher(self._fetch_range, self._body_end, size, chunk, workers)

    @property
    def storied_size(self) -> int:
        """How many bytes the stream holds (known from the first response)."""
        return self._size

    # ------------------------------------------------------------------ io protocol
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (no request). Beyond the end is allowed; reads there give b""."""
        self._check_open()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._pos = target
        return target

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the block, the current body, or one new bounded GET."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        if self._block_start <= self._pos < self._block_start + len(self._block):
            offset = self._pos - self._block_start
            return self._deliver(view, memoryview(self._block)[offset : offset + want])
        if not self._body_ready():
            if not self._take_prefetched():
                self._fetch(want)
            if self._block_start <= self._pos < self._block_start + len(self._block):
                return self.readinto(view)
        chunk = self._read_body(min(want, self._body_end - self._body_pos))
        if not chunk:
            raise StorageIOError(f"S3 object {self._key!r} ended early at byte {self._pos}")
        return self._deliver(view, chunk)

    def readall(self) -> bytes:
        """The rest of the stream: what is buffered, then at most one GET for the remainder
        (its body read in one piece: no copy through an intermediate buffer)."""
        self._check_open()
        parts: list[bytes] = []
        while self._pos < self._size:
            if self._block_start <= self._pos < self._block_start + len(self._block):
                chunk = self._block[self._pos - self._block_start :]
            else:
                if not self._body_ready():
                    if self._take_prefetched():
                        continue
                    if self._size - self._pos <= READ_AHEAD:
                        self._fetch_block()  # a short tail: keep it (zipfile reads it again)
                        continue
                    self._request(self._pos, self._size)
                chunk = self._read_body(self._body_end - self._body_pos)
                if not chunk:
                    raise StorageIOError(f"S3 object {self._key!r} ended early at {self._pos}")
            self._pos += len(chunk)
            parts.append(chunk)
        return parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            self._stop_prefetch()
            self._drop_body()
            self._block = b""
        super().close()

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed S3 stream")

    def _deliver(self, view: memoryview, chunk: bytes | memoryview) -> int:
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def _body_ready(self) -> bool:
        """Whether the current body can serve ``self._pos`` (dropping a few bytes if needed)."""
        if self._body is None:
            return False
        gap = self._pos - self._body_pos
        if gap < 0 or gap > SKIP or self._pos >= self._body_end:
            self._drop_body()
            return False
        while gap > 0:
            skipped = len(self._read_body(gap))
            if not skipped:
                return False
            gap -= skipped
        return True

    def _read_body(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current body. A connection lost mid-body is resumed
        where it broke with a GET pinned to the same version (:data:`RESUMES` times)."""
        for attempt in range(RESUMES + 1):
            try:
                with mapped(self._key, self._bucket):
                    chunk = bytes(self._body.read(size))
                break
            except TransientStorageError:
                if attempt == RESUMES:
                    raise
                self._request(self._body_pos, self._body_end)
        self._body_pos += len(chunk)
        if self._body_pos >= self._body_end:
            self._drop_body()
        return chunk

    def _drop_body(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            try:
                body.close()
            except Exception:  # closing a dropped connection may fail: nothing to do
                pass

    def _fetch(self, want: int) -> None:
        """One GET serving ``self._pos``: a block after a seek, a doubling window after that."""
        if self._pos == self._last_end and self._pos > 0:  # reading on: stream a larger window
            end = min(self._size, self._pos + max(want, self._window))
            self._window = min(MAX_WINDOW, self._window * 2)
            self._block = b""
            self._request(self._pos, end)
            return
        self._window = 2 * READ_AHEAD
        if want > READ_AHEAD:
            self._block = b""
            self._request(self._pos, min(self._size, self._pos + want))
            return
        self._fetch_block()

    def _fetch_block(self) -> None:
        """One GET of the :data:`READ_AHEAD` bytes around ``self._pos``, kept as the block.

        The block starts at the position, or ends at the end of the object when that is
        closer (so the tail structures of archives are fetched together).
        """
        start = max(0, min(self._pos, self._size - READ_AHEAD))
        end = min(self._size, start + READ_AHEAD)
        self._block = b""
        self._request(start, end)
        self._block, self._block_start = self._read_body_fully(end - start), start

    def _read_body_fully(self, size: int) -> bytes:
        parts, left = [], size
        while left > 0:
            chunk = self._read_body(left)
            if not chunk:
                raise StorageIOError(f"S3 object {self._key!r} ended early")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    # ------------------------------------------------------------------ prefetching
    def _take_prefetched(self) -> bool:
        """Serve the position from the prefetched chunks when it is where they continue (the
        chunk becomes the block); a read elsewhere (a seek) stops the prefetching."""
        if self._prefetch is None:
            return False
        chunk = self._prefetch.take(self._pos)
        if chunk is None:
            self._stop_prefetch()
            return False
        self._drop_body()
        self._block, self._block_start = chunk, self._pos
        self._last_end = self._pos + len(chunk)
        return True

    def _stop_prefetch(self) -> None:
        if self._prefetch is not None:
            prefetch, self._prefetch = self._prefetch, None
            prefetch.close()

    def _fetch_range(self, start: int, end: int) -> bytes:
        """Exactly stream bytes ``[start, end)`` by pinned GETs (thread-safe: no shared state).
        A connection lost mid-body is resumed from the last byte received, never from
        ``start`` again; the failure after :data:`RESUMES` resumes of one range raises."""
        buffer = bytearray(end - start)
        view, done, failures = memoryview(buffer), 0, 0
        while done < end - start:
            try:
                body = self._pinned_get(start + done, end)
                try:
                    while done < end - start:
                        with mapped(self._key, self._bucket):
                            piece = body.read(min(_PIECE, end - start - done))
                        if not piece:
                            raise TransientStorageError(
                                f"S3 body of {self._key!r} ended early at byte {start + done}"
                            )
                        view[done : done + len(piece)] = piece
                        done += len(piece)
                finally:
                    body.close()
            except TransientStorageError as exc:
                failures += 1
                if failures > RESUMES:
                    raise
                _log.info("S3 GET of %r broke at byte %d (%s): resuming there",
                          self._key, self._base + start + done, exc)
        return buffer  # type: ignore[return-value]  # bytes-like; no copy of a whole chunk

    # ------------------------------------------------------------------ requests
    def _request(self, start: int, end: int) -> None:
        """A pinned GET of stream bytes ``[start, end)`` becomes the current body."""
        self._drop_body()
        self._body = self._pinned_get(start, end)
        self._body_pos, self._body_end = start, end
        self._last_end = end

    def _pinned_get(self, start: int, end: int) -> Any:
        """The body of one GET of stream bytes ``[start, end)`` pinned to the object first
        read (its range and ETag checked)."""
        pin = _pin(self._version, self._etag)
        try:
            with mapped(self._key, self._bucket):
                response = self._client.get_object(
                    Bucket=self._bucket, Key=self._key,
                    **byte_range(self._base + start, self._base + end), **pin,
                )  # fmt: skip
        except (PreconditionFailedError, RangeNotSatisfiable) as exc:
            raise self._changed() from exc
        etag = unquote(response.get("ETag"))
        first = _range_start(response)
        if (self._etag and etag and etag != self._etag) or first != self._base + start:
            response["Body"].close()
            if first is None:
                raise StorageIOError(f"The S3 server ignored a Range request for {self._key!r}")
            if first != self._base + start:
                raise StorageIOError(_wrong_range(self._key, self._base + start, first))
            raise self._changed()
        return response["Body"]

    def _changed(self) -> PreconditionFailedError:
        return PreconditionFailedError(
            f"S3 object {self._key!r} in bucket {self._bucket!r} changed while it was being "
            f"read (etag {self._etag!r}); reopen it to read the new content"
        )


def _pin(version: str | None, etag: str | None) -> dict[str, str]:
    """The arguments pinning a GET/HEAD to one object: its version id (an immutable version),
    else or also (the ``"null"`` version, which a PUT on a suspended bucket replaces) its ETag."""
    pin = {"VersionId": version} if version else {}
    if (not version or version == "null") and etag:
        pin["IfMatch"] = f'"{etag}"'
    return pin


def _wrong_range(key: str, asked: int, got: int) -> str:
    return (
        f"The S3 server answered a Range request for {key!r} from byte {got}, not {asked} as "
        f"asked; refusing to splice the wrong bytes"
    )


def _range_start(response: dict[str, Any]) -> int | None:
    """The first byte of a ranged response (None when the server answered the whole object)."""
    match = _TOTAL.match(response.get("ContentRange") or "")
    return int(match.group(1)) if match else None


def _total_size(response: dict[str, Any], start: int, end: int | None) -> tuple[int, int | None]:
    """``(base, size)`` of the stream: where the body starts in the object and its length
    (size None when the response says neither ``Content-Range`` total nor ``Content-Length``)."""
    match = _TOTAL.match(response.get("ContentRange") or "")
    if match and match.group(3) != "*":
        total = int(match.group(3))
        first = int(match.group(1))
        stop = total if end is None else min(end, total)
        return first, max(0, stop - first)
    first = start if match is None else int(match.group(1))
    if response.get("ContentLength") is None:
        return first, None
    return first, int(response["ContentLength"])


def _size_by_head(
    client: Any, bucket: str, key: str, response: dict[str, Any], version_id: str | None,
    base: int, end: int | None,
) -> int:  # fmt: skip
    """The stream's size from a HEAD pinned to the object the GET answered: for servers (or
    front proxies) that send a GET body chunked, without ``Content-Length``. Without it the
    stream would read as empty."""
    version = version_id or response.get("VersionId")
    pin = _pin(version if version != "null" or version_id else None, unquote(response.get("ETag")))
    with mapped(key, bucket):
        head = client.head_object(Bucket=bucket, Key=key, **pin)
    if head.get("ContentLength") is None:
        response["Body"].close()
        raise StorageIOError(f"The S3 server gives no size for {key!r} (no Content-Length)")
    total = int(head["ContentLength"])
    stop = total if end is None else min(end, total)
    return max(0, stop - base)


def open_stream(
    client: Any, bucket: str, key: str, start: int = 0, end: int | None = None,
    version_id: str | None = None, workers: int = 1,
) -> BinaryIO:  # fmt: skip
    """One GET of bytes ``[start, end)`` of ``key`` (a version if given), as a seekable stream.

    Inside :func:`~._s3_prefetch.sequential_reads` the GET is bounded to one chunk and the
    next chunks are fetched ahead, ``workers`` at a time (see :mod:`._s3_prefetch`).

    Raises:
        StorageNotFoundError: No such key or version (mapped from the GET).
    """
    extra = {"VersionId": version_id} if version_id else {}
    chunk = sequential_hint()
    first_end = end
    if chunk is not None and (end is None or end - start > chunk):
        first_end = start + chunk
    try:
        with mapped(key, bucket):
            response = client.get_object(
                Bucket=bucket, Key=key, **byte_range(start, first_end), **extra
            )
    except RangeNotSatisfiable:
        return io.BytesIO(b"")
    if start or first_end is not None:
        first = _range_start(response)
        if first != start:
            response["Body"].close()
            if first is None:
                raise StorageIOError(f"The S3 server ignored a Range request for {key!r}")
            raise StorageIOError(_wrong_range(key, start, first))
    base, size = _total_size(response, start, end)
    total = _TOTAL.match(response.get("ContentRange") or "")
    if size is None or (first_end != end and not (total and total.group(3) != "*")):
        size = _size_by_head(client, bucket, key, response, version_id, base, end)
    body_end = None if first_end is None else first_end - base
    raw = S3ReadStream(client, bucket, key, base, size, response, version_id, body_end, workers)
    return io.BufferedReader(raw, BUFFER)
