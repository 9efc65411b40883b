"""Streams of the compression layer: the encoder a write hands to the storage, and the
decoders reads return (sequential, ranged, seekable). Memory stays bounded by a few blocks
(:data:`~storied.backends._compress_format.BLOCK`) whatever the file size."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from storied.backends._compress_format import (
    BLOCK,
    PEEK,
    Codec,
    Decoder,
    Index,
    codec_named,
    detect,
    index_totals,
    is_marked,
    parse_index,
    tag,
)
from storied.backends.base import read_full
from storied.errors import InvalidContentError, StorageIOError

__all__ = [
    "Decoded", "Encoder", "Prepended", "Restartable", "first_member", "load_index", "read_full",
]

_READ = 1024 * 1024




def first_member(codec: Codec | None, first: bytes, min_size: int,
                 min_gain: float) -> tuple[bytes | None, Codec | None, bytes]:
    """``(first block compressed, codec, object id)`` when content starting with block
    ``first`` is to be stored compressed, ``(None, codec, id)`` when plain: empty, under
    ``min_size`` bytes, or compressed to more than ``min_gain`` of its size. Content that
    starts with storied's marker is always compressed (with gzip when ``codec`` is None), so
    that a stored object starting with the marker is always a compressed one."""
    marked = is_marked(first)
    if marked and codec is None:
        codec = codec_named("gzip")
    obj = os.urandom(8)
    if codec is None or not first or (len(first) < min_size and not marked):
        return None, codec, obj
    member = codec.member(first, tag(obj, 0))
    if len(member) > min_gain * len(first) and not marked:
        return None, codec, obj
    return member, codec, obj


class _ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._buf):
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf, self._pos = nxt, 0
        n = min(len(buffer), len(self._buf) - self._pos)
        buffer[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n


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
    """The compressed form of ``first`` + the rest of ``stream``, produced block by block.

    After the stream is read to its end, :attr:`size`, :attr:`md5` and :attr:`index` describe
    the original content.
    """

    def __init__(self, codec: Codec, first: bytes, member0: bytes, stream: BinaryIO,
                 obj: bytes) -> None:
        self.codec, self.obj = codec, obj
        self.size = 0
        self._md5 = hashlib.md5()
        self.index: Index | None = None
        super().__init__(self._produce(first, member0, stream))

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    def _produce(self, block: bytes, member: bytes, stream: BinaryIO) -> Iterator[bytes]:
        """Members in order; the next blocks are compressed meanwhile on a small thread pool
        (zlib and zstd release the GIL), at most :data:`AHEAD` blocks ahead of the writer."""
        codec = self.codec
        pre = codec.preamble(BLOCK)
        at = len(pre)
        if pre:
            yield pre
        offsets: list[int] = []
        queue: deque[bytes | Future[bytes]] = deque()
        pool = _pool()
        eof = not block
        if block:
            self._md5.update(block)
            self.size += len(block)
            queue.append(member)
        while queue:
            while not eof and len(queue) <= AHEAD:
                nxt = read_full(stream, BLOCK)
                if not nxt:
                    eof = True
                    break
                self._md5.update(nxt)
                self.size += len(nxt)
                label = tag(self.obj, len(offsets) + len(queue))
                queue.append(pool.submit(codec.member, nxt, label) if pool
                             else codec.member(nxt, label))
            head = queue.popleft()
            done = head if isinstance(head, bytes) else head.result()
            offsets.append(at)
            at += len(done)
            yield done
        offsets.append(at)
        self.index = Index(codec.name, BLOCK, self.size, self.md5, tuple(offsets), self.obj)
        yield codec.trailer(self.index.payload(at))


#: Blocks compressed ahead of the one being written (memory: about AHEAD + 2 blocks).
AHEAD = max(1, min(3, (os.cpu_count() or 1) - 1))
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor | None:
    """The shared compression pool (None on a one-core machine)."""
    if (os.cpu_count() or 1) < 2:
        return None
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="storied-z"))
        return _POOL[0]


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


class Decoded(io.RawIOBase):
    """The original bytes ``[start, end)`` of a compressed object, decoded member by member.

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
        self._close_raw()
        self._pos, self._out, self._out_at, self._done = pos, b"", 0, False
        self._in, self._skip, self._drop = b"", 0, 0
        self._dec: Decoder | None = None
        self._obj: bytes | None = None  # the object id every member must carry
        self._number = 0  # the block the next member must be
        self._produced = 0  # original bytes decoded (before a range's skip)
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
        self._obj, self._number = index.obj, first
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

    # ------------------------------------------------------------------ decoding
    def _fill(self) -> bool:
        """Decode more original bytes into ``_out``; False at the end."""
        assert self._raw is not None
        while True:
            if self._dec is None:
                while len(self._in) < PEEK + self._drop:
                    chunk = self._raw.read(_READ)
                    if not chunk:
                        break
                    self._in += chunk
                self._in, self._drop = self._in[self._drop :], 0
                if not self._in:
                    if self._whole:  # cut at a member boundary: never a silent short read
                        raise StorageIOError("compressed object is truncated (no trailer)")
                    return False  # a ranged read ends at a member boundary
                kind, label, strip = self._codec.starts_member(self._in)
                if kind is None:
                    raise StorageIOError("compressed object is corrupt (no member where one "
                                         "should start)")
                if kind is False:  # the trailer: the content ended
                    if self._whole:
                        self._check_trailer()
                    return False
                if self._obj is None:
                    self._obj = label[:8]
                if label != tag(self._obj, self._number):  # rewritten since the index was read
                    raise StorageIOError("compressed object changed while read (or is corrupt): "
                                         f"block {self._number} is not where its index says")
                self._number += 1
                self._in = self._in[strip:]
                self._dec = self._codec.decoder()
            data, self._in = self._in, b""
            if not data:
                data = self._raw.read(_READ)
                if not data:
                    raise StorageIOError("compressed object is truncated")
            try:
                out = self._dec.decompress(data)
            except Exception as exc:  # zlib.error, zstandard.ZstdError
                raise StorageIOError(f"compressed object is corrupt: {exc}") from None
            self._produced += len(out)
            if self._dec.eof:
                self._in, self._dec = self._dec.unused_data, None
            if self._skip:
                cut = min(self._skip, len(out))
                out, self._skip = out[cut:], self._skip - cut
            if out:
                self._out, self._out_at = out, 0
                return True

    def _check_trailer(self) -> None:
        """A whole read ends only at an intact trailer whose index agrees with what was
        decoded (size, block count): a truncated or spliced object is an error."""
        assert self._raw is not None
        trailer = self._in + self._raw.read()
        try:
            size, count = index_totals(self._codec.trailer_payload(trailer))
        except InvalidContentError as exc:
            raise StorageIOError(f"compressed object is truncated or corrupt: {exc}") from None
        if (size, count) != (self._produced, self._number):
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
        data = b"".join(parts)
        if self._end is not None:
            data = data[: max(0, self._end - self._pos)]
        self._pos += len(data)
        return data

    def _close_raw(self) -> None:
        raw, self._raw = getattr(self, "_raw", None), None
        if raw is not None:
            raw.close()

    def close(self) -> None:
        try:
            self._close_raw()
        finally:
            super().close()


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
