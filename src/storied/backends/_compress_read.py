"""The decoding stream of the compression layer: a compressed object's original bytes, its
members decompressed in parallel on the shared pool (:mod:`~storied.backends._compress_pool`)
and handed on in order, at most :func:`~storied.backends._compress_pool.ahead` in flight."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO

from storied.backends import _compress_pool
from storied.backends._compress_format import BLOCK, PEEK, Codec, Index, parse_index, tag
from storied.errors import InvalidContentError, StorageIOError

__all__ = ["Decoded"]

_READ = 1024 * 1024
_CHANGED = "compressed object changed while read (or is corrupt): "


class Decoded(io.RawIOBase):
    """The original bytes ``[start, end)`` of a compressed object.

    A whole read (``start=0, end=None``) streams the object once and finds where each member
    ends from the next member's label (object id + block number: 8 random bytes per write,
    so no content can fake it), checks each label, and ends only at an intact trailer whose
    index agrees with what was decoded (size, block count, every member's offset): a
    truncated or spliced object raises :class:`StorageIOError`, never a short read. A ranged
    read fetches only the members covering the range (one request), cut at the offsets of
    the index, each label checked against it ("changed while read": the object was replaced
    since its index was read). Members decompress in parallel; memory stays at a few members.

    Args:
        codec: The object's codec.
        opener: ``opener(a, b)`` streams stored bytes ``[a, b)`` (``b=None``: to the end).
        index: The object's index, or a callable fetching it (needed for ranges and seeks;
            a whole-object read needs none).
        start, end: The original-byte range (``end=None``: to the end).
    """

    def __init__(
        self,
        codec: Codec,
        opener: Callable[[int, int | None], BinaryIO],
        index: Index | Callable[[], Index] | None,
        start: int = 0,
        end: int | None = None,
    ) -> None:
        super().__init__()
        self._codec, self._opener, self._index_src = codec, opener, index
        self._end = end
        self._pos = start
        self._raw: BinaryIO | None = None
        self._pending: deque[tuple[Future[Any], bool, int | None]] = deque()
        self._out = b""
        self._out_at = 0
        self._open_at(start)

    # ------------------------------------------------------------------ positioning
    def _index(self) -> Index:
        if not isinstance(self._index_src, Index):
            if self._index_src is None:
                raise StorageIOError("compressed object: no index to seek with")
            self._index_src = self._index_src()
        return self._index_src

    def _open_at(self, pos: int) -> None:
        self._stop()
        self._pos, self._out, self._out_at, self._done = pos, b"", 0, False
        self._buf = bytearray()
        self._base = 0  # the stored offset of _buf[0]
        self._eof = False  # the stored stream is read to its end
        self._launched = False  # every member is submitted (or the trailer reached)
        self._drop = 0  # stored bytes to drop before the first member (zstd's head frame)
        self._starts: list[int] = []  # the stored offset of each member submitted
        self._trailer: bytes | None = None
        self._trailer_at = 0
        self._obj: bytes | None = None  # the object id every member must carry
        self._number = 0  # the block the next member must be
        self._last: int | None = None  # the last block a ranged read covers
        self._offsets: tuple[int, ...] = ()
        self._produced = 0  # original bytes decoded (before a range's skip)
        self._skip = 0
        self._whole = pos == 0 and self._end is None  # the whole object, trailer included
        if self._whole:
            self._raw = self._opener(0, None)
            self._drop = len(self._codec.preamble(BLOCK))
            return
        index = self._index()
        end = index.size if self._end is None else min(self._end, index.size)
        if pos >= end:
            self._done = True
            return
        first, last = pos // index.block, (end - 1) // index.block
        self._skip = pos - first * index.block
        self._obj, self._number, self._last = index.obj, first, last
        self._offsets, self._base = index.offsets, index.offsets[first]
        self._raw = self._opener(index.offsets[first], index.offsets[last + 1])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._index().size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence!r}")
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if offset != self._pos:
            self._open_at(offset)
        return self._pos

    # ------------------------------------------------------------------ splitting
    def _more(self) -> bool:
        """Read more stored bytes into the buffer; False at the stream's end."""
        assert self._raw is not None
        if self._eof:
            return False
        chunk = self._raw.read(_READ)
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _launch(self) -> None:
        """Cut the next member from the stored stream and submit its decompression (or, at
        the trailer or the range's end, mark every member launched)."""
        buf = self._buf
        while len(buf) < PEEK + self._drop and self._more():
            pass
        if self._drop:
            cut = min(self._drop, len(buf))
            del buf[:cut]
            self._base, self._drop = self._base + cut, 0
        if not buf:
            if self._whole:  # cut at a member boundary: never a silent short read
                raise StorageIOError("compressed object is truncated (no trailer)")
            if self._last is not None and self._number <= self._last:
                raise StorageIOError(_CHANGED + f"the range ends before block {self._number}")
            self._launched = True
            return
        kind, label, strip = self._codec.starts_member(bytes(buf[:PEEK]))
        if kind is None:
            raise StorageIOError("compressed object is corrupt (no member where one should "
                                 "start)")
        if kind is False:  # the trailer: the content ended
            if not self._whole:
                raise StorageIOError(_CHANGED + f"no block {self._number} in the range")
            while self._more():
                pass
            self._trailer, self._trailer_at = bytes(buf), self._base
            self._launched = True
            return
        if self._obj is None:
            self._obj = label[:8]
        if label != tag(self._obj, self._number):  # rewritten since the index was read
            raise StorageIOError(_CHANGED + f"block {self._number} is not where its index says")
        self._starts.append(self._base)
        self._number += 1
        end = self._member_end()
        last = end is None or (self._last is not None and self._number > self._last)
        if end is None:  # the whole object's last member: up to the trailer
            self._submit(self._tail, bytes(buf[strip:]), last=True, tail=True)
            self._base += len(buf)
            buf.clear()
        else:
            self._submit(self._codec.decode, bytes(buf[strip:end]), self._expected(),
                         last=last, size=self._expected())
            del buf[:end]
            self._base += end
        self._launched = last

    def _expected(self) -> int:
        """The original bytes the member just cut (block ``_number - 1``) must hold: a whole
        block before the last one of a whole read; what the index says in a ranged read."""
        if self._whole:
            return BLOCK
        index = self._index()
        return min(index.block, index.size - (self._number - 1) * index.block)

    def _member_end(self) -> int | None:
        """Where the member at the buffer's start ends in the buffer (None: a whole read's
        last member, which ends where the trailer starts)."""
        buf = self._buf
        if not self._whole:  # a ranged read: cut at the index's offsets
            length = self._offsets[self._number] - self._offsets[self._number - 1]
            while len(buf) < length and self._more():
                pass
            if len(buf) < length:
                raise StorageIOError(_CHANGED + f"block {self._number - 1} is cut short")
            return length
        assert self._obj is not None
        needle, at = tag(self._obj, self._number), self._codec.label_at
        start = at + len(needle)
        while True:
            found = buf.find(needle, start)
            if found >= 0:
                end = found - at
                while len(buf) < end + PEEK and self._more():
                    pass
                kind, label, _ = self._codec.starts_member(bytes(buf[end : end + PEEK]))
                if kind and label == needle:
                    return end
                start = found + 1
                continue
            start = max(start, len(buf) - len(needle) + 1)
            if not self._more():
                return None

    def _tail(self, data: bytes) -> tuple[bytes, bytes]:
        """``(original bytes, what follows)`` of the last member at the start of ``data``
        (at most a block: a member that holds more is refused, never decompressed whole)."""
        try:
            return self._codec.split_last(data, BLOCK)
        except InvalidContentError as exc:
            raise StorageIOError(f"compressed object is truncated or corrupt: {exc}") from None

    def _submit(self, fn: Callable[..., Any], *args: Any, last: bool, tail: bool = False,
                size: int | None = None) -> None:
        """Run ``fn(*args)`` on the pool, or here when it is the only member left to decode
        (nothing to overlap it with: a small file or a short range). ``size``: the exact
        number of bytes the member must decode to (checked by :meth:`_fill`)."""
        if last and not self._pending:
            fut: Future[Any] = Future()
            try:
                fut.set_result(fn(*args))
            except Exception as exc:
                fut.set_exception(exc)
        else:
            fut = _compress_pool.pool().submit(fn, *args)
        self._pending.append((fut, tail, size))

    # ------------------------------------------------------------------ decoding
    def _fill(self) -> bool:
        """Decode more original bytes into ``_out``; False at the end."""
        limit = _compress_pool.ahead()
        while True:
            while not self._launched and len(self._pending) < limit:
                self._launch()
            if not self._pending:
                if self._whole:
                    self._check_trailer()
                return False
            fut, tail, size = self._pending.popleft()
            try:
                got = fut.result()
            except StorageIOError:
                raise
            except Exception as exc:  # zlib.error, IsalError, zstandard.ZstdError
                raise StorageIOError(f"compressed object is corrupt: {exc}") from None
            if size is not None and len(got) != size:
                raise StorageIOError(f"compressed object is corrupt: a member holds {len(got)} "
                                     f"bytes where its index says {size}")
            if tail:
                out, self._trailer = got
                self._trailer_at = self._base - len(self._trailer)
                if self._codec.starts_member(self._trailer[:PEEK])[0]:
                    raise StorageIOError(_CHANGED + "a member of another write follows block "
                                         f"{self._number - 1}")
            else:
                out = got
            self._produced += len(out)
            if self._skip:
                cut = min(self._skip, len(out))
                out, self._skip = out[cut:], self._skip - cut
            if out:
                self._out, self._out_at = out, 0
                return True

    def _check_trailer(self) -> None:
        """A whole read ends only at an intact trailer whose index agrees with what was
        decoded: size, block count, object id and where every member started."""
        if self._trailer is None:
            raise StorageIOError("compressed object is truncated (no trailer)")
        stored = self._trailer_at + len(self._trailer)
        try:
            payload = self._codec.trailer_payload(self._trailer)
            index = parse_index(self._codec, payload, stored, self._trailer_at)
        except InvalidContentError as exc:
            raise StorageIOError(f"compressed object is truncated or corrupt: {exc}") from None
        if (index.size, index.offsets[:-1], index.obj) != (
                self._produced, tuple(self._starts), self._obj or index.obj):
            raise StorageIOError("compressed object is corrupt: its index does not match "
                                 "its members")

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._done:
            return 0
        want = len(buffer)
        if self._end is not None:
            want = min(want, self._end - self._pos)
        if want <= 0:
            return 0
        if self._out_at >= len(self._out) and not self._fill():
            self._done = True
            return 0
        n = min(want, len(self._out) - self._out_at)
        buffer[:n] = self._out[self._out_at : self._out_at + n]
        self._out_at += n
        self._pos += n
        return n

    def readall(self) -> bytes:
        parts: list[bytes] = []
        if self._out_at < len(self._out):
            parts.append(self._out[self._out_at :])
            self._out_at = len(self._out)
        while not self._done and self._fill():
            parts.append(self._out)
            self._out_at = len(self._out)
        self._done = True
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if self._end is not None:
            data = data[: max(0, self._end - self._pos)]
        self._pos += len(data)
        return data

    def _stop(self) -> None:
        """Drop the members in flight and close the stored stream."""
        pending = getattr(self, "_pending", None)
        if pending:
            _compress_pool.cancel(fut for fut, _tail, _size in pending)
            pending.clear()
        raw, self._raw = getattr(self, "_raw", None), None
        if raw is not None:
            raw.close()

    def close(self) -> None:
        try:
            self._stop()
        finally:
            super().close()
