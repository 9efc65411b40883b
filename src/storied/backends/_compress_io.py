"""Streams of the compression layer: the encoder a write hands to the storage, and the
decoders reads return (sequential, ranged, seekable). Memory stays bounded by a few blocks
(:data:`~storied.backends._compress_format.BLOCK`) whatever the file size."""

from __future__ import annotations

import hashlib
import io
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import BinaryIO, cast

from storied.backends import _compress_pool
from storied.backends._compress_format import (
    BLOCK,
    PEEK,
    Codec,
    Index,
    codec_named,
    detect,
    is_marked,
    parse_index,
    tag,
)
from storied.backends._compress_read import Decoded
from storied.backends.base import read_full
from storied.errors import InvalidContentError, StorageIOError

__all__ = [
    "Decoded", "Encoder", "Prepended", "Restartable", "choose", "encode_one", "load_index",
    "read_full",
]

_READ = 1024 * 1024




_OBJS: list[bytes] = []  # object ids drawn ahead (one getrandom per 64 writes)
os.register_at_fork(after_in_child=_OBJS.clear)  # a child never reuses its parent's ids


def _new_obj() -> bytes:
    """8 random bytes naming one compressed object (lock-free: list pop/extend are atomic)."""
    try:
        return _OBJS.pop()
    except IndexError:
        raw = os.urandom(8 * 64)
        _OBJS.extend(raw[i:i + 8] for i in range(8, len(raw), 8))
        return raw[:8]


def choose(codec: Codec | None, first: bytes | memoryview,
           min_size: int) -> tuple[Codec | None, bytes]:
    """``(codec, object id)`` for content starting with block ``first``: ``codec`` None when
    it is stored plain without a trial (empty, or under ``min_size`` bytes); whether a trial
    shrinks enough is :meth:`Encoder.shrinks`. Content that starts with storied's marker is
    always compressed (with gzip when ``codec`` is None), so that a stored object starting
    with the marker is always a compressed one."""
    marked = is_marked(first)
    if marked and codec is None:
        codec = codec_named("gzip")
    obj = _new_obj()
    if codec is None or not len(first) or (len(first) < min_size and not marked):
        return None, obj
    return codec, obj


def encode_one(codec: Codec, data: bytes | memoryview, obj: bytes,
               min_gain: float) -> bytes | None:
    """The whole stored object for content of at most one block (what :class:`Encoder`
    makes of it, byte for byte, without its stream, futures and pool), or None when the
    member is larger than ``min_gain`` of the content (worth storing plain). No MD5 is
    recorded (callers that need one pass the content through :class:`Encoder`)."""
    assert len(data) <= BLOCK
    member = codec.member(data, tag(obj, 0))
    if len(member) > min_gain * len(data):
        return None
    pre = codec.preamble(BLOCK)
    at = len(pre) + len(member)
    index = Index(codec.name, BLOCK, len(data), None, (len(pre), at), obj)
    return b"".join((pre, member, codec.trailer(index.payload(at))))


class _ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _ready(self) -> bool:
        """Make ``_buf[_pos:]`` non-empty; False at the end."""
        while self._pos >= len(self._buf):
            nxt = next(self._chunks, None)
            if nxt is None:
                return False
            self._buf, self._pos = nxt, 0
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._ready():
            return 0
        n = min(len(buffer), len(self._buf) - self._pos)
        buffer[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes, at most one chunk's worth: a whole chunk is handed on as it
        is (no copy), a part of one is one slice."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if size is None or size < 0:
            return self.readall()
        if not size or not self._ready():
            return b""
        if self._pos == 0 and size >= len(self._buf):
            out, self._pos = self._buf, len(self._buf)
            return out
        out = self._buf[self._pos : self._pos + size]
        self._pos += len(out)
        return out


class Prepended(_ChunkStream):
    """``head`` followed by the rest of ``stream`` (a peeked stream, replayed); closing it
    closes ``stream`` when ``owned``."""

    def __init__(self, head: bytes, stream: BinaryIO, owned: bool = True) -> None:
        self._stream, self._owned = stream, owned

        def chunks() -> Iterator[bytes]:
            if head:
                yield head
            while chunk := stream.read(_READ):
                yield chunk

        super().__init__(chunks())

    def close(self) -> None:
        try:
            if self._owned:
                self._stream.close()
        finally:
            super().close()


class Encoder(_ChunkStream):
    """The compressed form of ``first`` + ``rest`` (a stream, or the rest of a buffer), made
    member by member on the shared pool (:mod:`~storied.backends._compress_pool`): the
    members are compressed in parallel, at most :func:`ahead` in flight, and handed on in
    order. Building it starts the work (the first blocks are read and submitted at once), so
    :meth:`shrinks` can decide from the real first member while the next ones compress.

    After the stream is read to its end, :attr:`size`, :attr:`md5` and :attr:`index` describe
    the original content. ``md5`` (hex), when given, is the original's MD5 already known (it
    is not computed again); with ``hashing=False`` and no ``md5`` none is computed (MD5 runs
    at ~600 MB/s on one core, slower than the codecs on two: the index then records none,
    and :attr:`md5` is None). Closing it cancels the members not yet started.
    """

    def __init__(self, codec: Codec, first: bytes | memoryview, rest: BinaryIO | memoryview,
                 obj: bytes, *, md5: str | None = None, hashing: bool = True) -> None:
        self.codec, self.obj = codec, obj
        self.size = 0
        self._known = md5
        self._md5 = hashlib.md5() if hashing and md5 is None else None
        self.index: Index | None = None
        self._rest, self._taken, self._count, self._eof = rest, 0, 0, False
        self._queue: deque[tuple[bytes | memoryview, Future[bytes]]] = deque()
        self._pool = _compress_pool.pool()
        self._push(first)
        self._eof = len(first) < BLOCK
        self._top_up()
        super().__init__(self._produce())

    @property
    def md5(self) -> str | None:
        if self._known is not None:
            return self._known
        return None if self._md5 is None else self._md5.hexdigest()

    def _push(self, block: bytes | memoryview) -> None:
        if not len(block):
            self._eof = True
            return
        label = tag(self.obj, self._count)
        if self._count == 0 and len(block) < BLOCK:  # a one-member file: nothing to overlap
            fut: Future[bytes] = Future()
            fut.set_result(self.codec.member(block, label))
        else:
            fut = self._pool.submit(self.codec.member, block, label)
        self._queue.append((block, fut))
        self._count += 1
        self.size += len(block)
        if self._md5 is not None:
            self._md5.update(block)  # while the workers compress (hashlib releases the GIL)

    def _top_up(self) -> None:
        """Read and submit blocks until :func:`ahead` are in flight (or the content ends)."""
        limit = _compress_pool.ahead()
        while not self._eof and len(self._queue) < limit:
            if isinstance(self._rest, memoryview):
                block: bytes | memoryview = self._rest[self._taken : self._taken + BLOCK]
                self._taken += len(block)
            else:
                block = read_full(self._rest, BLOCK)
            self._push(block)
            if len(block) < BLOCK:
                self._eof = True

    def shrinks(self, min_gain: float) -> bool:
        """True when the first member is at most ``min_gain`` of its block (worth storing
        compressed); waits for that member only."""
        if not self._queue:
            return False
        block, fut = self._queue[0]
        return len(fut.result()) <= min_gain * len(block)

    def plain(self) -> BinaryIO:
        """The original content as a stream (the blocks read so far, then the rest of a
        stream ``rest``), for a caller that stores it plain after :meth:`shrinks`; this
        encoder is closed."""
        head = b"".join(bytes(block) for block, _ in self._queue)
        self.close()
        if isinstance(self._rest, memoryview):
            return io.BytesIO(head + bytes(self._rest[self._taken :]))
        return cast(BinaryIO, Prepended(head, self._rest, owned=False))

    def _produce(self) -> Iterator[bytes]:
        codec = self.codec
        pre = codec.preamble(BLOCK)
        at = len(pre)
        if pre:
            yield pre
        offsets: list[int] = []
        while self._queue:
            _block, fut = self._queue.popleft()
            member = fut.result()
            self._top_up()  # keep the workers busy while the storage takes this member
            offsets.append(at)
            at += len(member)
            yield member
        offsets.append(at)
        self.index = Index(codec.name, BLOCK, self.size, self.md5, tuple(offsets), self.obj)
        yield codec.trailer(self.index.payload(at))

    def close(self) -> None:
        try:
            _compress_pool.cancel(fut for _block, fut in self._queue)
            self._queue.clear()
            self._eof = True
        finally:
            super().close()


class Restartable(io.RawIOBase):
    """A stream made by ``make()`` that can be rewound to its start (``seek(0)`` makes it
    again), so a retrying layer can send it twice."""

    def __init__(self, make: Callable[[], BinaryIO]) -> None:
        super().__init__()
        self._make = make
        self._cur = make()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (offset, whence) not in ((0, io.SEEK_SET), (self._pos, io.SEEK_SET), (0, io.SEEK_CUR)):
            raise io.UnsupportedOperation("only a rewind to the start is possible")
        if offset == 0 and whence == io.SEEK_SET and self._pos:
            self._cur.close()
            self._cur, self._pos = self._make(), 0
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._cur.read(len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def load_index(opener: Callable[[int, int | None], BinaryIO], stored_size: int,
               head: bytes | None = None) -> Index | None:
    """The index of the stored object (``stored_size`` bytes), or None when it is not a
    storied-compressed object. Two reads at most (its head, its tail); one when small.

    Raises:
        StorageIOError: It starts like one but its trailer is missing or malformed.
    """
    tail_len = 64 * 1024
    whole = None
    if head is None:
        if stored_size <= tail_len:
            with opener(0, None) as stream:
                whole = stream.read()
            head = whole[:PEEK]
        else:
            with opener(0, PEEK) as stream:
                head = read_full(stream, PEEK)
    codec = detect(head)
    if codec is None:
        return None
    if whole is not None:
        tail, tail_at = whole, 0
    else:
        tail_at = max(0, stored_size - tail_len)
        with opener(tail_at, None) as stream:
            tail = stream.read()
        stored_size = tail_at + len(tail)
    at = codec.trailer_offset(tail)
    if at is None or at >= stored_size:
        raise StorageIOError("compressed object has no index (truncated or not written by "
                             "storied)")
    if at < tail_at:
        with opener(at, None) as stream:
            trailer = stream.read()
    else:
        trailer = tail[at - tail_at :]
    try:
        return parse_index(codec, codec.trailer_payload(trailer), stored_size, at)
    except InvalidContentError as exc:
        raise StorageIOError(str(exc)) from None
