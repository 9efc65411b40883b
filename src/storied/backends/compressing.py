"""Transparent compression of a mount's matching files (the ``compress`` key, issue 10 §3).

``compress: ['*.json', 'logs/*.log']`` (globs matched with :func:`fnmatch.fnmatchcase` on the
mount path and on the file name) and ``compression: 'gzip' | 'zstd'`` (default gzip; zstd
needs ``storied[zstd]``). The layout of a compressed object is in
:mod:`storied.backends._compress_format` and docs/adr/0021-transparent-compression.md.

What the layer guarantees, for matching paths:

- ``open_read`` (whole, ranged, seeking), ``read_bytes``, ``open_version`` give the original
  bytes; a range read decompresses only the members (4 MiB of original each) it covers.
- ``info()`` gives the original ``size`` and, on storages whose plain files come with an MD5
  (object stores: ``hash_on_metadata``/``metadata``), the original's ``md5`` (from the
  object's metadata where the storage keeps it, else from the index at the object's end: two
  small reads). Elsewhere (disks) ``md5`` is None, as for their plain files, and
  ``md5hash()`` reads the content. ``etag`` stays the stored object's, so conditional writes
  work unchanged.
- Listings (``list``/``walk``) show the *stored* size of a compressed file unless the listing
  carries its metadata, and never an MD5 for a matching file (the stored bytes' MD5 is not the
  content's): ask ``info()``/``size()``/``md5hash()`` for the original.
- A matching file smaller than 4 KiB, or whose first block does not shrink by 10%, is stored
  plain; a plain object is read back unchanged whatever its bytes (an ordinary ``.gz`` too):
  only storied's own marker (a gzip FEXTRA subfield ``St`` / a zstd skippable frame) makes an
  object compressed, and content that starts with that marker is always stored compressed.
- Paths in storied's reserved area are never compressed (the history engine compresses its
  blobs itself). ``local_path`` and ``url`` are None for matching paths (they would expose the
  stored bytes).
"""

from __future__ import annotations

import builtins
import fnmatch
import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, BinaryIO, cast

from storied import paths
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
    choose,
    load_index,
    read_full,
)
from storied.backends.base import Backend, WrappedBackend, as_stream
from storied.errors import StorageConfigError, StorageNotFoundError
from storied.info import Data, Info, ObjectVersion, WriteMode

__all__ = ["MIN_SIZE", "Compressing", "wrap"]

#: Files smaller than this are stored plain.
MIN_SIZE = 4096
#: A first block that does not shrink below this fraction is stored plain.
MIN_GAIN = 0.9
#: Concurrent HEADs while a listing resolves the original sizes of matching files.
_LIST_WORKERS = 8
#: No compressed object is smaller (marker, one member, trailer).
_SMALLEST = 64
_KEYS = ("storied-zcodec", "storied-zsize", "storied-zmd5")
_FORWARD = frozenset({"create_linked", "through_link", "holding", "versioning_status",
                      "dir_stamp", "list_file_names"})


def wrap(name: str, config: Mapping[str, Any], backend: Backend) -> Backend:
    """``backend`` with the compression layer the mount's ``compress`` key asks for.

    Raises:
        StorageConfigError: ``compress`` is not a list of non-empty glob strings.
    """
    globs = config.get("compress")
    if not globs:
        return backend
    if isinstance(globs, str):
        globs = [globs]
    if not all(isinstance(g, str) and g for g in globs):
        raise StorageConfigError(f"Mount {name!r}: 'compress' must be a list of glob strings")
    return Compressing(backend, list(globs), str(config.get("compression") or "gzip"))


class Compressing(WrappedBackend):
    """Compress files matching ``globs`` on write, decompress them on read (module doc).

    Paths in storied's reserved area pass through untouched (``reserved_passthrough``:
    layers that need the adapter's own calls for ``.storied/`` objects may skip this one).
    """

    globs: tuple[str, ...]
    codec_name: str

    reserved_passthrough = True

    def __init__(self, inner: Backend, globs: list[str], codec: Codec | str) -> None:
        super().__init__(inner)
        self.globs = tuple(globs)
        self._codec = codec if isinstance(codec, Codec) else None
        self.codec_name = codec if isinstance(codec, str) else codec.name
        self._deep = any("/" in g for g in globs)
        self._indexes: OrderedDict[tuple[object, ...], Index | None] = OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # fast paths of the storage (local disks), used only on the reserved area / by name
        if name in _FORWARD:
            return getattr(self.inner, name)
        raise AttributeError(name)

    @property
    def codec(self) -> Codec:
        """The codec new files are written with, loaded at first use: a ``zstd`` mount
        without the zstandard package configures fine (its plain and gzip files stay
        readable, other mounts are untouched); its first compressing write raises.

        Raises:
            MissingDependencyError: ``zstd`` without the zstandard package.
        """
        if self._codec is None:
            self._codec = codec_named(self.codec_name)
        return self._codec

    def applies(self, path: str) -> bool:
        """True when ``path`` is compressed by this layer (it matches a glob and is outside
        storied's reserved area)."""
        if not path or paths.RESERVED in path.split("/"):
            return False
        base = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(base, g)
                   for g in self.globs)

    # ------------------------------------------------------------------ writing
    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        if not self.applies(path):
            return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)
        whole = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else None
        rest: BinaryIO | memoryview
        first: bytes | memoryview
        if whole is not None:  # no copy: the members are compressed from slices of it
            view = memoryview(whole)
            first, rest = view[:BLOCK], view[BLOCK:]
        else:
            rest = as_stream(data)
            first = read_full(rest, BLOCK)
        user = _strip(metadata)
        wanted = bool(first) and (len(first) >= MIN_SIZE or is_marked(first))
        codec, obj = choose(self.codec if wanted else None, first, MIN_SIZE)
        encoder = None
        if codec is not None:
            md5 = None
            caps = self.inner.capabilities
            if whole is not None and caps.metadata:
                md5 = hashlib.md5(whole).hexdigest()  # for the metadata; the encoder reuses it
            # The original's MD5 only where the storage's plain files come with one (object
            # stores); a disk gives none for plain files either, and computes md5hash() by
            # reading. MD5 on one core is the ceiling of a parallel codec's write (ADR 0030).
            encoder = Encoder(codec, first, rest, obj, md5=md5,
                              hashing=caps.metadata or caps.hash_on_metadata)
        if encoder is None or (not encoder.shrinks(MIN_GAIN) and not is_marked(first)):
            body: Data
            if whole is not None:
                body = whole
            elif encoder is not None:
                body = encoder.plain()  # the blocks it read, then the rest of the stream
            else:
                body = cast(BinaryIO, Prepended(bytes(first), cast(BinaryIO, rest), owned=False))
            if encoder is not None:
                encoder.close()
            if self.inner.capabilities.metadata:
                user = {**user, "storied-zcodec": "plain"}
            return self.inner.write(path, body, mode=mode, etag=etag, metadata=user or None)
        assert codec is not None
        extra = dict(user)
        if self.inner.capabilities.metadata:
            extra["storied-zcodec"] = codec.name
            if whole is not None and encoder.md5 is not None:
                extra["storied-zsize"] = str(len(whole))
                extra["storied-zmd5"] = encoder.md5
        with encoder:
            info = self.inner.write(path, cast(BinaryIO, encoder), mode=mode, etag=etag,
                                    metadata=extra or None)
        if encoder.index is None:  # the storage stopped reading early: never acknowledge
            from storied.errors import StorageIOError

            raise StorageIOError(f"{path}: the storage did not take the whole compressed stream")
        self._remember(path, info, encoder.index)
        return replace(info, size=encoder.size, md5=encoder.md5, metadata=user or None)

    def copy(self, src: str, dst: str) -> Info:
        if self.applies(src) == self.applies(dst):
            info = self.inner.copy(src, dst)
            return self._logical(info) if self.applies(dst) else info
        with self.open_read(src) as stream:
            return self.write(dst, stream)

    def move(self, src: str, dst: str) -> None:
        same = self.applies(src) == self.applies(dst)
        if same and not (self._deep and self.inner.info(src).is_dir):
            self.inner.move(src, dst)
            return
        Backend.move(self, src, dst)  # file by file, through this layer

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        ours = {}
        if self.applies(path):
            current = self.inner.get_metadata(path)
            ours = {k: current[k] for k in _KEYS if k in current}
        self.inner.set_metadata(path, {**_strip(metadata), **ours})

    def get_metadata(self, path: str) -> dict[str, str]:
        return _strip(self.inner.get_metadata(path))

    # ------------------------------------------------------------------ describing
    def info(self, path: str) -> Info:
        info = self.inner.info(path)
        return self._logical(info) if self.applies(path) else info

    def _logical(self, info: Info) -> Info:
        """``info`` of a matching path with the original size and MD5."""
        if info.is_dir:
            return info
        meta = info.metadata or {}
        if "storied-zsize" in meta and "storied-zmd5" in meta:
            return replace(info, size=int(meta["storied-zsize"]), md5=meta["storied-zmd5"],
                           metadata=_strip(meta))
        if meta.get("storied-zcodec") == "plain":
            return replace(info, metadata=_strip(meta))
        index = self._index_of(info)
        if index is None:
            return replace(info, metadata=_strip(meta) if info.metadata is not None else None)
        return replace(info, size=index.size, md5=index.md5, metadata=_strip(meta))

    def _listed(self, info: Info) -> Info:
        """A listing entry with the original size and MD5 (costs, for a matching file the
        listing says too little about, what :meth:`info` costs; cached per etag)."""
        if info.is_dir or not self.applies(info.path):
            return info
        meta = info.metadata or {}
        if ("storied-zsize" in meta and "storied-zmd5" in meta) or "storied-zcodec" in meta:
            return self._logical(info)
        if info.size < _SMALLEST:
            return info  # too small to be a compressed object
        if self.inner.capabilities.metadata and info.metadata is None:
            try:
                return self._logical(self.inner.info(info.path))
            except StorageNotFoundError:
                return replace(info, md5=None)  # deleted since the listing
        try:
            return self._logical(info)
        except StorageNotFoundError:
            return replace(info, md5=None)

    def _resolved(self, entries: Iterator[Info]) -> Iterator[Info]:
        """:meth:`_listed` of each entry, in order; on storages that answer with metadata
        (one HEAD per matching file) up to :data:`_LIST_WORKERS` requests run at once."""
        if not self.inner.capabilities.metadata:
            yield from (self._listed(i) for i in entries)
            return
        from concurrent.futures import ThreadPoolExecutor

        pool: ThreadPoolExecutor | None = None
        try:
            while batch := list(itertools.islice(entries, 256)):
                heads = sum(1 for i in batch if i.metadata is None and not i.is_dir
                            and i.size >= _SMALLEST and self.applies(i.path))
                if heads < 2:
                    yield from (self._listed(i) for i in batch)
                    continue
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=_LIST_WORKERS,
                                              thread_name_prefix="storied-zlist")
                yield from pool.map(self._listed, batch)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def list(self, path: str) -> Iterator[Info]:
        return self._resolved(iter(self.inner.list(path)))

    def walk(self, path: str) -> Iterator[Info]:
        return self._resolved(iter(self.inner.walk(path)))

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        shown, hidden = self.inner.walk_split(path)
        return list(self._resolved(iter(shown))), hidden

    def local_path(self, path: str) -> str | None:
        return None if self.applies(path) else self.inner.local_path(path)

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        return None if self.applies(path) else self.inner.url(path, expires_in)

    # ------------------------------------------------------------------ reading
    def _token(self, info: Info) -> tuple[object, ...]:
        return (info.path, info.etag, info.size, info.mtime, info.version_id)

    def _remember(self, path: str, info: Info, index: Index | None) -> None:
        self._cache(self._token(replace(info, path=path)), index)

    def _cache(self, token: tuple[object, ...], index: Index | None) -> None:
        with self._lock:  # parallel transfers share the layer
            self._indexes[token] = index
            while len(self._indexes) > 512:
                self._indexes.popitem(last=False)

    def _cached(self, token: tuple[object, ...]) -> tuple[bool, Index | None]:
        with self._lock:
            if token not in self._indexes:
                return False, None
            self._indexes.move_to_end(token)
            return True, self._indexes[token]

    def _index_of(self, info: Info, head: bytes | None = None) -> Index | None:
        """The index of the stored object ``info`` describes (None: stored plain)."""
        token = self._token(info)
        known, found = self._cached(token)
        if known:
            return found
        path = info.path
        index = load_index(lambda a, b: self.inner.open_read(path, a, b), info.size, head)
        self._remember(path, info, index)
        return index

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        if not self.applies(path):
            return self.inner.open_read(path, start, end)
        if start == 0 and end is None:
            return self._whole(self.inner.open_read(path), path)
        info = self.inner.info(path)
        index = self._index_of(info)
        if index is None:
            return self.inner.open_read(path, start, end)
        opener = self._opener(path)
        return _buffered(Decoded(_codec(index), opener, index, start, end))

    def _opener(self, path: str) -> Any:
        def opener(a: int, b: int | None) -> BinaryIO:
            return self.inner.open_read(path, a, b)
        return opener

    def _whole(self, stream: BinaryIO, path: str, version: str | None = None) -> BinaryIO:
        """The decoded stream of a whole stored object (one request: the one given)."""
        try:
            head = read_full(stream, PEEK)
            codec = detect(head)
        except BaseException:
            stream.close()
            raise
        if codec is None:
            if stream.seekable():
                stream.seek(0)
                return stream
            return _buffered(Prepended(head, stream))
        first = [True]

        def opener(a: int, b: int | None) -> BinaryIO:
            if first[0] and a == 0 and b is None:
                first[0] = False
                return _buffered(Prepended(head, stream))
            if version is None:
                return self.inner.open_read(path, a, b)
            return self.inner.open_version(path, version, a, b)

        def index() -> Index:
            if version is None:
                found = self._index_of(self.inner.info(path), head)
            else:
                found = self._version_index(path, version)
            if found is None:
                from storied.errors import StorageIOError

                raise StorageIOError(f"{path}: changed while read")
            return found

        return _buffered(Decoded(codec, opener, index))

    def read_bytes(self, path: str) -> bytes:
        if not self.applies(path):
            return self.inner.read_bytes(path)
        with self.open_read(path) as stream:
            return stream.read()

    # ------------------------------------------------------------------ native versions
    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        if not self.applies(path):
            return self.inner.open_version(path, version_id, start, end)
        stream = self._whole(self.inner.open_version(path, version_id), path, version_id)
        if start == 0 and end is None:
            return stream
        try:
            stream.seek(start)
        except BaseException:
            stream.close()
            raise
        from storied.core.pinned import _Window

        window = _Window(stream, 0, None if end is None else max(0, end - start))
        return cast(BinaryIO, window)

    def _version_index(self, path: str, version_id: str, size: int | None = None) -> Index | None:
        token: tuple[object, ...] = ("version", path, version_id)
        known, found_index = self._cached(token)
        if known:
            return found_index
        if size is None:
            found = [v for v in self.inner.list_versions(path) if v.version_id == version_id]
            size = found[0].size if found else 0
        index = load_index(lambda a, b: self.inner.open_version(path, version_id, a, b), size)
        self._cache(token, index)
        return index

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        versions = self.inner.list_versions(path)
        if not self.applies(path):
            return versions
        shown = []
        for v in versions:
            index = None if v.is_delete_marker else self._version_index(path, v.version_id, v.size)
            shown.append(v if index is None else replace(v, size=index.size, md5=index.md5))
        return shown

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        for v in self.inner.walk_versions(path):
            yield replace(v, md5=None) if self.applies(v.path) else v


def _strip(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (metadata or {}).items() if k.lower() not in _KEYS}


def _codec(index: Index) -> Codec:
    from storied.backends._compress_format import _codec as named

    return named(index.codec)


def _buffered(raw: Any) -> BinaryIO:
    import io

    return cast(BinaryIO, io.BufferedReader(raw, buffer_size=256 * 1024))
