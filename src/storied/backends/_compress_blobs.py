"""The portable engine's compressed history blobs (history schema 4, docs/FORMAT.md §2).

A blob is named by the SHA-256 of the *original* content, as always. Its stored bytes are
either that content (plain, every blob before schema 4) or the content in storied's
compressed layout (:mod:`storied.backends._compress_format`, zstd: a standard multi-frame
stream with a block index). A blob is compressed when ``zstandard`` is installed, it is
larger than 4 KiB, its first block shrinks by 10% or more, and (for blobs held in memory) the
result takes fewer 4 KiB allocation units than the content: a 4 KiB file costs one disk block
however small it compresses. Content that itself starts with
storied's compression marker is always stored compressed (zstd, else gzip), so a stored blob
that starts with the marker is always a compressed one: readers tell the two apart from the
first bytes, with no metadata and no other name.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING, BinaryIO, cast

from storied.backends._compress_format import (
    BLOCK,
    PEEK,
    Codec,
    Index,
    codec_named,
    detect,
    is_marked,
)
from storied.backends._compress_io import (
    Decoded,
    Encoder,
    Prepended,
    Restartable,
    choose,
    encode_one,
    load_index,
    read_full,
)
from storied.backends.base import CHUNK, Backend
from storied.errors import MissingDependencyError, PreconditionFailedError, StorageIOError
from storied.info import Data, WriteMode

if TYPE_CHECKING:
    from storied.versioning.portable import PortableEngine

__all__ = [
    "COMPRESSED_SCHEMA", "blob_codec", "encode_blob", "hash_blob", "mark_schema", "open_blob",
    "raise_schema",
]

#: The history schema that allows compressed blobs (older storied refuses it: "reads up to 3").
COMPRESSED_SCHEMA = 4
#: Filesystem allocation unit: a blob is compressed only when that saves at least one.
_BLOCK = 4096
_codec_cache: list[Codec | None] = []


def blob_codec() -> Codec | None:
    """zstd when ``zstandard`` is installed, else None (blobs stay plain)."""
    if not _codec_cache:
        try:
            _codec_cache.append(codec_named("zstd"))
        except MissingDependencyError:
            _codec_cache.append(None)
    return _codec_cache[0]


def encode_blob(data: Data) -> tuple[Data, bool]:
    """``(what to store, compressed?)`` for a blob holding ``data`` (bytes stay bytes, so the
    local hard-link fast path keeps working; a stream becomes a compressing stream)."""
    whole = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else None
    if whole is not None:
        view = memoryview(whole)
        first: bytes | memoryview = view[:BLOCK]
    else:
        source = cast(BinaryIO, data)
        first = read_full(source, BLOCK)
    codec, obj = choose(blob_codec(), first, _BLOCK + 1)
    if codec is None:
        if whole is not None:
            return whole, False
        return cast(BinaryIO, Prepended(bytes(first), source, owned=False)), False
    if whole is not None and len(whole) <= BLOCK:  # one member: no stream machinery
        one = encode_one(codec, whole, obj, 0.9)
        if one is None and is_marked(whole):
            one = encode_one(codec, whole, obj, float("inf"))
        if one is None or (-(-len(one) // _BLOCK) >= -(-len(whole) // _BLOCK)
                           and not is_marked(whole)):
            return whole, False
        return one, True
    if whole is not None:
        encoder = Encoder(codec, first, view[BLOCK:], obj, hashing=False)
        with encoder:
            if not encoder.shrinks(0.9) and not is_marked(whole):
                return whole, False
            packed = b"".join(iter(lambda: encoder.read(CHUNK), b""))
        if -(-len(packed) // _BLOCK) >= -(-len(whole) // _BLOCK) and not is_marked(whole):
            return whole, False  # no disk block saved
        return packed, True
    rest_at = source.tell() if source.seekable() else None
    encoder = Encoder(codec, first, source, obj, hashing=False)
    if not encoder.shrinks(0.9) and not is_marked(first):
        return encoder.plain(), False
    if rest_at is None:
        return cast(BinaryIO, encoder), True
    made = [encoder]

    def make() -> BinaryIO:  # rewound by a retrying layer: encode again from the spool
        if made:
            return cast(BinaryIO, made.pop())
        source.seek(rest_at)
        return cast(BinaryIO, Encoder(codec, first, source, obj, hashing=False))

    return cast(BinaryIO, Restartable(make)), True


def open_blob(backend: Backend, key: str) -> BinaryIO:
    """The original content of the blob at ``key`` (plain or compressed), streamed; seekable
    when compressed (only the blocks needed are read after a seek)."""
    stream = backend.open_read(key)
    try:
        head = read_full(stream, PEEK)
        codec = detect(head)
    except BaseException:
        stream.close()
        raise
    if codec is None:  # a plain blob: the storage's own stream (seekable where it is)
        if stream.seekable():
            stream.seek(0)
            return stream
        return cast(BinaryIO, io.BufferedReader(Prepended(head, stream)))
    first = [True]

    def opener(a: int, b: int | None) -> BinaryIO:
        if first[0] and a == 0 and b is None:
            first[0] = False
            return cast(BinaryIO, io.BufferedReader(Prepended(head, stream)))
        return backend.open_read(key, a, b)

    def index() -> Index:
        found = load_index(opener, backend.info(key).size, head)
        if found is None:  # pragma: no cover - a blob never changes
            raise StorageIOError(f"history blob {key!r} changed while read")
        return found

    return cast(BinaryIO, io.BufferedReader(Decoded(codec, opener, index), 256 * 1024))


def hash_blob(backend: Backend, key: str) -> str:
    """The SHA-256 hex of the blob's original content (what its name must be)."""
    digest = hashlib.sha256()
    with open_blob(backend, key) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mark_schema(engine: PortableEngine) -> None:
    """Raise the history's ``format.json`` to schema 4 before its first compressed blob, so an
    older storied refuses the history (its "reads up to N" error) instead of serving
    compressed bytes (see :func:`raise_schema`)."""
    raise_schema(engine, COMPRESSED_SCHEMA)


def raise_schema(engine: PortableEngine, target: int) -> None:
    """Raise the history's ``format.json`` to at least schema ``target``. Never lowers a schema;
    a compare-and-swap (replace-if-etag-matches, retried) where the storage has conditional
    writes, so a concurrent rewrite of the marker (another process raising it further) is never
    overwritten with older content.

    Raises:
        StorageIOError: The marker kept changing (another writer rewrote it 8 times running).
    """
    if engine._schema >= target:
        return
    marker = engine._meta("format.json")
    meta = engine.meta
    for _ in range(8):
        etag = meta.info(marker).etag if meta.capabilities.conditional_write else None
        found = engine._read_format(marker)
        schema = found.get("schema_version", 0)
        if isinstance(schema, int) and schema >= target:
            break
        found["schema_version"] = schema = target
        body = json.dumps(found).encode()
        if etag is None:
            engine._put(marker, body)
            break
        try:
            meta.write(marker, body, mode=WriteMode.IF_MATCH, etag=etag)
            break
        except PreconditionFailedError:
            continue  # rewritten meanwhile: read it again
    else:
        raise StorageIOError(f"History marker {marker!r} keeps changing; try again")
    engine._schema = max(engine._schema, schema)
