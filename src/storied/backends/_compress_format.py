"""Byte layout of storied's compressed objects (docs/adr/0021-transparent-compression.md).

A compressed object is a standard gzip (RFC 1952, multi-member) or zstd (RFC 8878,
multi-frame) stream that ``gzip -d`` / ``zstd -d`` open, laid out as::

    gzip:  member(block 0) member(block 1) ... member(block n-1) trailer-member
    zstd:  head-frame [tag-frame frame(block 0)] ... [tag-frame frame(block n-1)] trailer-frame

Every block is ``block`` bytes of the original (the last one shorter), compressed on its own,
so the block holding any offset can be decompressed alone. Each member carries a 12-byte
*label*: the object id (8 random bytes chosen per write, also in the index) and its block
number (u32 LE), so a ranged read that meets a member of another write (the object was
replaced after its index was read) fails instead of returning spliced bytes. Markers:

- gzip: every data member's header starts with the fixed :data:`GZIP_HEAD_SIG`: ``FEXTRA``
  with one subfield ``St`` (24 bytes: ``b"storied\x01"``, block size u32, label). The trailer
  member has ``FCOMMENT`` (hex of the index, see below) and an empty deflate body: it
  decompresses to nothing. The object's last :data:`GZIP_FOOT` bytes are the hex of the
  index's last 16 bytes, the comment's NUL, the empty body and CRC/ISIZE (``03 00`` + 8 zero
  bytes).
- zstd: a skippable frame (magic ``0x184D2A5D``) holding ``b"storied\x01"`` and the block
  size opens the object; each data frame follows a skippable tag frame (``0x184D2A5F``,
  12 bytes: the label); the index is a last skippable frame (``0x184D2A5E``).

The index (binary, little endian): ``b"STRDIDX1"``, object id (8 bytes), block size u32,
original size u64, MD5 of the original (16 bytes; 16 zero bytes: not recorded), count u32,
then ``count + 1`` offsets u64 (where each block's member starts in the object, and where
the trailer starts), then the trailer's own offset u64 and ``b"STRDEND1"`` (so a reader of
the last bytes finds the trailer).
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from storied.errors import InvalidContentError, MissingDependencyError

__all__ = [
    "BLOCK",
    "CODECS",
    "DEFLATERS",
    "PEEK",
    "Codec",
    "Index",
    "codec_named",
    "detect",
    "parse_index",
]

#: Bytes of original content per independent member (frame).
BLOCK = 4 * 1024 * 1024
#: How many leading bytes tell a storied-compressed object from any other.
PEEK = 40
_SIG = b"storied\x01"
_IDX = b"STRDIDX1"
_END = b"STRDEND1"
_HEAD = struct.Struct("<8s8sIQ16sI")  # signature, object id, block, size, md5, count
GZIP_HEAD_SIG = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x1c\x00St\x18\x00" + _SIG
GZIP_FOOT = 32 + 1 + 10
_GZIP_TAIL = b"\x00\x03\x00" + b"\x00" * 8
_GZIP_TRAILER_HEAD = b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff"
ZSTD_HEAD_SIG = struct.pack("<II", 0x184D2A5D, 12) + _SIG
_ZSTD_TRAILER_MAGIC = struct.pack("<I", 0x184D2A5E)
_ZSTD_TAG_MAGIC = struct.pack("<II", 0x184D2A5F, 12)


def tag(obj: bytes, number: int) -> bytes:
    """The 12 bytes naming block ``number`` of object ``obj`` (8 random bytes per write)."""
    return obj + struct.pack("<I", number)


@dataclass(frozen=True)
class Index:
    """Where a compressed object's blocks are.

    Attributes:
        codec: ``"gzip"`` or ``"zstd"``.
        block: Original bytes per block.
        size: The original size.
        md5: Hex MD5 of the original content; None when the writer did not compute it
            (stored as 16 zero bytes, which no content hashes to in practice).
        offsets: ``count + 1`` stored offsets: block ``i`` is ``[offsets[i], offsets[i+1])``;
            the last one is where the trailer starts.
        obj: The object id every member carries (8 random bytes chosen by the writer).
    """

    codec: str
    block: int
    size: int
    md5: str | None
    offsets: tuple[int, ...]
    obj: bytes = b"\x00" * 8

    def payload(self, trailer_at: int) -> bytes:
        """The index as bytes, ending with ``trailer_at`` and the end signature."""
        count = len(self.offsets) - 1
        head = _HEAD.pack(_IDX, self.obj, self.block, self.size, _md5_bytes(self.md5), count)
        body = struct.pack(f"<{count + 1}Q", *self.offsets)
        return head + body + struct.pack("<Q", trailer_at) + _END


def _md5_bytes(md5: str | None) -> bytes:
    return bytes(16) if md5 is None else bytes.fromhex(md5)


class Decoder(Protocol):
    """One member's (frame's) decompressor: zlib's and zstandard's decompressobj."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


class Codec:
    """How one compression format writes and recognises storied's layout."""

    name = ""
    head_sig = b""
    foot = 0

    def preamble(self, block: int) -> bytes:
        """Bytes written once before the first member."""
        return b""

    def member(self, data: bytes | memoryview, label: bytes) -> bytes:
        """``data`` compressed as one independent member (frame) carrying ``label``
        (:func:`tag`: which object, which block)."""
        raise NotImplementedError

    def trailer(self, payload: bytes) -> bytes:
        """The closing member/frame carrying ``payload`` (decompresses to nothing)."""
        raise NotImplementedError

    def decoder(self) -> Decoder:
        """A decompressor for one member."""
        raise NotImplementedError

    def starts_member(self, buf: bytes) -> tuple[bool | None, bytes, int]:
        """At a member boundary: ``(True, label, bytes to drop before decompressing)`` for a
        data member, ``(False, ...)`` for the trailer, ``(None, ...)`` when ``buf`` (at least
        :data:`PEEK` bytes unless the stream ended) is neither."""
        raise NotImplementedError

    def trailer_payload(self, trailer: bytes) -> bytes:
        """The index payload inside the trailer bytes (from its start to the object's end)."""
        raise NotImplementedError

    def trailer_offset(self, tail: bytes) -> int | None:
        """Where the trailer starts, from the object's last :attr:`foot` bytes (None: no
        storied trailer there)."""
        raise NotImplementedError

    #: Where a data member's label sits from the member's first byte.
    label_at = 0

    def decode(self, member: bytes | memoryview, size: int) -> bytes:
        """The original bytes of one whole data member (from its first byte after the
        ``strip`` of :meth:`starts_member`), ``size`` the most it may hold (its block):
        never more is decompressed (a member that holds more, a decompression bomb, is
        refused after at most ``size + 1`` bytes of output). Thread-safe: pool workers call
        it at once.

        Raises:
            InvalidContentError: The member holds more than ``size`` bytes, or is not one
                whole member.
            Exception: The member is corrupt (the codec library's own error).
        """
        raise NotImplementedError

    def split_last(self, data: bytes, size: int) -> tuple[bytes, bytes]:
        """``(original bytes, what follows)`` of the member at the start of ``data`` (a whole
        read's last member, followed by the trailer), decompressing at most ``size + 1``
        bytes (as :meth:`decode`).

        Raises:
            InvalidContentError: The member holds more than ``size`` bytes, or is cut.
            Exception: The member is corrupt (the codec library's own error).
        """
        dec = self.decoder()
        out = self._bounded(dec, data, size)
        if not dec.eof:
            raise InvalidContentError("compressed object: a member is cut short")
        return out, dec.unused_data

    def _bounded(self, dec: Decoder, data: bytes | memoryview, size: int) -> bytes:
        """``dec.decompress(data)``, refused past ``size`` bytes of output."""
        raise NotImplementedError


@dataclass(frozen=True)
class Deflater:
    """One deflate implementation: ``compress(data, level, wbits)``, ``crc32(data)``,
    ``decompress(data, wbits, bufsize)``, ``decompressobj(wbits)`` and the level used."""

    compress: Callable[..., bytes]
    crc32: Callable[..., int]
    decompress: Callable[..., bytes]
    decompressobj: Callable[[int], Decoder]
    level: int


def _deflaters() -> dict[str, Deflater]:
    """Deflate implementations by name: ``zlib`` always; ``isal`` (ISA-L, the
    ``storied[isal]`` extra: about 4x faster than zlib at level 1, similar ratio) when
    installed. Both write standard deflate: any gzip reader decodes either's output."""
    found = {"zlib": Deflater(zlib.compress, zlib.crc32, zlib.decompress,
                              zlib.decompressobj, 1)}
    try:
        from isal import isal_zlib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return found
    found["isal"] = Deflater(isal_zlib.compress, isal_zlib.crc32, isal_zlib.decompress,
                             isal_zlib.decompressobj, 1)
    return found


DEFLATERS = _deflaters()


class _Gzip(Codec):
    name = "gzip"
    head_sig = GZIP_HEAD_SIG
    foot = GZIP_FOOT
    label_at = 28

    def __init__(self, impl: str | None = None) -> None:
        """``impl``: ``"isal"`` or ``"zlib"`` (None: isal when installed, else zlib)."""
        self.impl = impl or ("isal" if "isal" in DEFLATERS else "zlib")
        self._d = DEFLATERS[self.impl]
        self.level = self._d.level

    def member(self, data: bytes | memoryview, label: bytes) -> bytes:
        body = self._d.compress(data, self.level, -15)
        tail = struct.pack("<II", self._d.crc32(data), len(data) & 0xFFFFFFFF)
        return b"".join((GZIP_HEAD_SIG, struct.pack("<I", BLOCK), label, body, tail))

    def decode(self, member: bytes | memoryview, size: int) -> bytes:
        dec = self._d.decompressobj(31)
        out = self._bounded(dec, member, size)
        if not dec.eof or dec.unused_data:
            raise InvalidContentError("compressed object: a member is cut or padded")
        return out

    def _bounded(self, dec: Decoder, data: bytes | memoryview, size: int) -> bytes:
        out: bytes = cast(Any, dec).decompress(data, size + 1)  # zlib/isal: max_length
        if len(out) > size:
            raise InvalidContentError(f"compressed object: a member holds more than {size} "
                                      "bytes (its block)")
        return out

    def trailer(self, payload: bytes) -> bytes:
        return _GZIP_TRAILER_HEAD + payload.hex().encode() + _GZIP_TAIL

    def decoder(self) -> Decoder:
        return self._d.decompressobj(31)

    def starts_member(self, buf: bytes) -> tuple[bool | None, bytes, int]:
        if buf.startswith(GZIP_HEAD_SIG) and len(buf) >= PEEK:
            return True, buf[28:40], 0
        if buf.startswith(_GZIP_TRAILER_HEAD):
            return False, b"", 0
        return None, b"", 0

    def trailer_payload(self, trailer: bytes) -> bytes:
        if not trailer.startswith(_GZIP_TRAILER_HEAD) or not trailer.endswith(_GZIP_TAIL):
            raise InvalidContentError("compressed object: malformed gzip trailer")
        try:
            return bytes.fromhex(trailer[len(_GZIP_TRAILER_HEAD) : -len(_GZIP_TAIL)].decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidContentError("compressed object: malformed gzip index") from None

    def trailer_offset(self, tail: bytes) -> int | None:
        if len(tail) < GZIP_FOOT or not tail.endswith(_GZIP_TAIL):
            return None
        try:
            end = bytes.fromhex(tail[-GZIP_FOOT : -len(_GZIP_TAIL)].decode())
        except (ValueError, UnicodeDecodeError):
            return None
        return struct.unpack("<Q", end[:8])[0] if end[8:] == _END else None


class _Zstd(Codec):
    name = "zstd"
    head_sig = ZSTD_HEAD_SIG
    foot = 16
    label_at = 8
    impl = "zstandard"

    def __init__(self, level: int = 1) -> None:
        import zstandard

        self._zstd, self.level = zstandard, level
        self._local = threading.local()  # (de)compressors are not thread-safe: one per thread

    def preamble(self, block: int) -> bytes:
        return ZSTD_HEAD_SIG + struct.pack("<I", block)

    def member(self, data: bytes | memoryview, label: bytes) -> bytes:
        compressor = getattr(self._local, "c", None)
        if compressor is None:
            compressor = self._local.c = self._zstd.ZstdCompressor(level=self.level,
                                                                   write_checksum=True)
        return b"".join((_ZSTD_TAG_MAGIC, label, compressor.compress(data)))

    def decode(self, member: bytes | memoryview, size: int) -> bytes:
        dctx = getattr(self._local, "d", None)
        if dctx is None:
            dctx = self._local.d = self._zstd.ZstdDecompressor()
        self._check_size(member, size)
        return dctx.decompress(member, max_output_size=max(size, 1))  # type: ignore[no-any-return,unused-ignore]

    def _check_size(self, frame: bytes | memoryview, size: int) -> None:
        """Refuse a frame that does not announce its content size or announces more than
        ``size``: zstandard allocates what a frame announces, whatever ``max_output_size``
        says, and libzstd refuses to decode more than it announced (storied's writer always
        records the size)."""
        announced = self._zstd.frame_content_size(bytes(frame[:18]))
        if not 0 <= announced <= size:
            raise InvalidContentError(f"compressed object: a frame announces {announced} "
                                      f"bytes (unknown: -1), more than {size} (its block)")

    def _bounded(self, dec: Decoder, data: bytes | memoryview, size: int) -> bytes:
        self._check_size(data, size)
        return dec.decompress(bytes(data))

    def trailer(self, payload: bytes) -> bytes:
        return _ZSTD_TRAILER_MAGIC + struct.pack("<I", len(payload)) + payload

    def decoder(self) -> Decoder:
        return self._zstd.ZstdDecompressor().decompressobj()  # type: ignore[no-any-return,unused-ignore]

    def starts_member(self, buf: bytes) -> tuple[bool | None, bytes, int]:
        if buf.startswith(_ZSTD_TAG_MAGIC) and len(buf) >= 20:
            return True, buf[8:20], 20
        if buf.startswith(_ZSTD_TRAILER_MAGIC):
            return False, b"", 0
        return None, b"", 0

    def trailer_payload(self, trailer: bytes) -> bytes:
        if len(trailer) < 8 or not trailer.startswith(_ZSTD_TRAILER_MAGIC):
            raise InvalidContentError("compressed object: malformed zstd trailer")
        (length,) = struct.unpack("<I", trailer[4:8])
        if length != len(trailer) - 8:
            raise InvalidContentError("compressed object: malformed zstd trailer")
        return trailer[8:]

    def trailer_offset(self, tail: bytes) -> int | None:
        if len(tail) < 16 or tail[-8:] != _END:
            return None
        return struct.unpack("<Q", tail[-16:-8])[0]  # type: ignore[no-any-return]


def codec_named(name: str) -> Codec:
    """The codec called ``name`` (``gzip`` or ``zstd``).

    Raises:
        MissingDependencyError: ``zstd`` without the ``zstandard`` package.
    """
    if name == "zstd":
        try:
            return _Zstd()
        except ImportError:
            raise MissingDependencyError(
                "compression 'zstd' needs the zstandard package: pip install 'storied[zstd]'"
            ) from None
    return _Gzip()


#: Codec per name, built on first use (zstd only when installed).
CODECS: dict[str, Codec] = {}


def _codec(name: str) -> Codec:
    if name not in CODECS:
        CODECS[name] = codec_named(name)
    return CODECS[name]


def detect(head: bytes) -> Codec | None:
    """The codec of an object starting with ``head`` (its first :data:`PEEK` bytes), or None
    when it is not a storied-compressed object (any plain file, ordinary ``.gz`` included).

    Raises:
        MissingDependencyError: A zstd object and no ``zstandard`` package.
    """
    if head.startswith(GZIP_HEAD_SIG):
        return _codec("gzip")
    if head.startswith(ZSTD_HEAD_SIG):
        return _codec("zstd")
    return None


def is_marked(data: bytes | memoryview) -> bool:
    """True when plain ``data`` would be taken for a compressed object (so it must be
    stored compressed, never plain)."""
    head = bytes(data[:PEEK])
    return head.startswith(GZIP_HEAD_SIG) or head.startswith(ZSTD_HEAD_SIG)


def index_totals(payload: bytes) -> tuple[int, int]:
    """``(original size, block count)`` from an index payload (a whole read's final check).

    Raises:
        InvalidContentError: The payload is malformed.
    """
    try:
        sig, _obj, _block, size, _md5, count = _HEAD.unpack_from(payload)
    except struct.error:
        raise InvalidContentError("compressed object: truncated index") from None
    if sig != _IDX or not payload.endswith(_END):
        raise InvalidContentError("compressed object: malformed index")
    return size, count


def parse_index(codec: Codec, payload: bytes, stored_size: int, trailer_at: int) -> Index:
    """The :class:`Index` in ``payload`` (checked against the object's geometry).

    Raises:
        InvalidContentError: The payload is malformed or does not fit the object.
    """
    try:
        sig, obj, block, size, md5, count = _HEAD.unpack_from(payload)
        offsets = struct.unpack_from(f"<{count + 1}Q", payload, _HEAD.size)
        (at,) = struct.unpack_from("<Q", payload, _HEAD.size + 8 * (count + 1))
    except struct.error:
        raise InvalidContentError("compressed object: truncated index") from None
    ok = (
        sig == _IDX and 0 < block <= BLOCK and at == trailer_at == offsets[-1] < stored_size
        and list(offsets) == sorted(offsets) and size <= block * count
        and (count == 0 or size > block * (count - 1))
        and len(payload) == _HEAD.size + 8 * (count + 2) + len(_END)
    )
    if not ok:
        raise InvalidContentError("compressed object: inconsistent index")
    return Index(codec.name, block, size, md5.hex() if any(md5) else None, offsets, obj)
