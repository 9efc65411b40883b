"""References: a path that stands for a content copy kept in the reserved area (issue 10 §2).

``deduplicate(strategy='reference')`` replaces each duplicate by a small *reference object*;
this layer makes a reference look like the file it stands for: reads give the original bytes
(one extra request: the content copy), :meth:`info`, listings and walks give the logical size
and MD5, and a write to the path simply replaces the reference (copy on write: the content
copy and the other references are untouched).

The layout (docs/adr/0022-dedup-references.md), below the mount's root::

    .storied/dedup/keys/<keyid>                    a random 32-byte key (hex), never changed
    .storied/dedup/blobs/<sha[0:2]>/<sha>/<gen>    one content copy (the plain bytes)
    .storied/dedup/blobs/<sha[0:2]>/<sha>/<gen>.condemned.<ts_ns>
                                                   gc's mark: no new reference may use <gen>

A reference object is exactly :data:`REF_SIZE` bytes, one line::

    storied-ref/1 <sha256> <size:020d> <md5> <keyid> <gen> <hmac>\\n

``hmac`` is HMAC-SHA256 with the key ``keyid`` over ``sha256:size:md5:gen``. A file is a
reference only when it has exactly that size and form *and* its HMAC checks with a key of this
mount: a user's file holding the same-looking bytes is not (nobody can make one through
storied without reading the reserved area, which the public API refuses), and a reference
copied to another path (a server-side copy, a rename) is still a valid reference of the same
content. The layer sends no request of its own for a plain file read from its start: the first
bytes of the stream decide. Ranged reads and :meth:`info` of a file of exactly ``REF_SIZE``
bytes read it once (cached by etag); ranged reads ask :meth:`info` first once the mount has a
key.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import io
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from storied.backends.base import Backend, WrappedBackend, read_full
from storied.errors import StorageError, StorageIOError, StorageNotFoundError
from storied.info import Info
from storied.paths import is_hidden

__all__ = ["AREA", "BLOBS", "KEYS", "MAGIC", "REF_SIZE", "Ref", "Referencing", "find_layer"]

AREA = ".storied/dedup"
KEYS = f"{AREA}/keys"
BLOBS = f"{AREA}/blobs"
MAGIC = b"storied-ref/1 "
REF_SIZE = len(MAGIC) + 64 + 1 + 20 + 1 + 32 + 1 + 16 + 1 + 12 + 1 + 64 + 1
_LINE = re.compile(rb"storied-ref/1 ([0-9a-f]{64}) ([0-9]{20}) ([0-9a-f]{32}) ([0-9a-f]{16}) "
                   rb"([0-9a-f]{12}) ([0-9a-f]{64})\n")
#: Seconds a "this mount has no key" answer is trusted before the keys are listed again.
KEY_TTL = 2.0
_CACHE = 4096


@dataclass(frozen=True)
class Ref:
    """What a reference stands for: the content's SHA-256, size and MD5, and its copy."""

    sha256: str
    size: int
    md5: str
    gen: str

    @property
    def blob(self) -> str:
        """The content copy's path below the layer's root."""
        return blob_path(self.sha256, self.gen)


def blob_path(sha256: str, gen: str) -> str:
    """``.storied/dedup/blobs/<sha[0:2]>/<sha>/<gen>``."""
    return f"{BLOBS}/{sha256[:2]}/{sha256}/{gen}"


def _mac(key: bytes, sha256: str, size: int, md5: str, gen: str) -> str:
    return hmac.new(key, f"{sha256}:{size}:{md5}:{gen}".encode(), hashlib.sha256).hexdigest()


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream`` (the bytes peeked at are given back)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    @property
    def storied_size(self) -> int | None:
        """The size the stream below announces (S3 streams do), for ``stream_download``."""
        known = getattr(getattr(self._stream, "raw", self._stream), "storied_size", None)
        return known if isinstance(known, int) else None

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


class _Checked(_Prefixed):
    """A content copy's stream checked against its reference: exactly the bytes the range
    covers (``ref.size`` for a whole read) and, for a whole read, their SHA-256 (~1.6 GB/s).
    A mismatch raises :class:`StorageIOError` naming the copy as the bytes run over or at
    the end (a copy's write then fails: nothing is acknowledged). After a seek elsewhere only
    a whole read's size is checked."""

    def __init__(self, stream: BinaryIO, ref: Ref, path: str, start: int,
                 end: int | None) -> None:
        super().__init__(b"", stream)
        self._ref, self._path, self._whole = ref, path, start == 0 and end is None
        self._left: int | None = max(0, (ref.size if end is None else min(end, ref.size))
                                     - start)
        self._sha = hashlib.sha256() if self._whole else None

    def seekable(self) -> bool:
        return self._stream.seekable()

    def tell(self) -> int:
        return self._stream.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        at, pos = self._stream.tell(), self._stream.seek(offset, whence)
        if pos != at:
            self._sha = None
            self._left = max(0, self._ref.size - pos) if self._whole else None
        return pos

    def _fail(self, what: str) -> StorageIOError:
        return StorageIOError(f"{self._path!r} is a reference whose content copy "
                              f"{self._ref.blob} {what} (changed outside storied?)")

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        n = len(data)
        if self._left is not None:
            if n > self._left:
                raise self._fail(f"holds more than the {self._ref.size} bytes it stands for")
            self._left -= n
            if self._sha is not None:
                self._sha.update(data)
            if not n and self._left:
                raise self._fail(f"is cut short ({self._left} bytes missing)")
            if not n and self._sha is not None and self._sha.hexdigest() != self._ref.sha256:
                raise self._fail("does not hold the content it stands for (SHA-256 differs)")
        buffer[:n] = data
        return n


#: The storage's own fast paths that engines look up by name (``getattr``) on the backend
#: they write through: they act on storied's reserved names (history blobs, records and
#: listings), on path resolution (``through_link``) or on probes, never on a user file's
#: content, so the layer hands them on unchanged.
_FORWARD = frozenset({"create_linked", "through_link", "holding", "versioning_status",
                      "dir_stamp", "list_file_names"})


class Referencing(WrappedBackend):
    """The reference layer: a plain wrapper, inserted below ``HideReserved`` (so the reserved
    area stays hidden) and above the adapter (and its compression), so that history engines,
    which write through the layers below ``HideReserved``, see logical files too.

    Everything under ``.storied/`` passes through untouched (``reserved_passthrough``: code
    that reads storied's own records may unwrap this layer).
    """

    reserved_passthrough = True

    def __new__(cls, inner: Backend) -> Referencing:
        """A second reference layer over one is never made: ``Referencing(x)`` where ``x``
        already has one below returns ``x`` itself (two layers would resolve references
        twice and show gc logical sizes instead of the stored objects)."""
        if find_layer(inner, "") is not None:
            return inner  # type: ignore[return-value]
        return super().__new__(cls)

    def __init__(self, inner: Backend) -> None:
        if "_lock" in self.__dict__:  # __new__ handed back an existing layer: keep it as is
            return
        super().__init__(inner)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._keys_checked = float("-inf")
        self._keys_failure: Exception | None = None
        self._refs: OrderedDict[tuple[str, str], Ref | None] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str], Ref] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        if name in _FORWARD:  # see _FORWARD; absent ones stay absent (hasattr is False)
            return getattr(self.inner, name)
        raise AttributeError(name)

    # ----------------------------------------------------------------- keys
    def _load_keys(self, force: bool = False) -> dict[str, bytes]:
        now = time.monotonic()
        with self._lock:
            fresh = now - self._keys_checked < KEY_TTL
        if fresh and not force:
            return self._keys
        found: dict[str, bytes] = {}
        failure: Exception | None = None
        try:
            listable = self.inner.static_capabilities.list_dir
            entries = builtins.list(self.inner.list(KEYS)) if listable else []
        except (StorageNotFoundError, NotADirectoryError):
            entries = []  # no key yet
        except (StorageError, OSError) as exc:
            entries, failure = [], exc  # no key known; parse() refuses to call a line plain
        for entry in entries:
            if entry.is_dir or not re.fullmatch(r"[0-9a-f]{16}", entry.name):
                continue
            if entry.name in self._keys:
                found[entry.name] = self._keys[entry.name]
                continue
            try:
                text = self.inner.read_bytes(entry.path).decode("ascii").strip()
                found[entry.name] = bytes.fromhex(text)
            except StorageNotFoundError:
                continue
            except (StorageError, ValueError, OSError) as exc:
                failure = exc
        with self._lock:
            self._keys.update(found)
            self._keys_checked = now
            self._keys_failure = failure
            return self._keys

    def has_keys(self) -> bool:
        """Whether this mount has a reference key (it can hold references at all); True too
        when the keys could not be listed (then each read checks)."""
        return bool(self._keys or self._load_keys()) or self._keys_failure is not None

    def ensure_key(self) -> tuple[str, bytes]:
        """A key to sign new references with (created on first use; keys never change, and
        two processes creating one each at once both stay valid)."""
        keys = self._keys or self._load_keys(force=True)
        if keys:
            keyid = sorted(keys)[0]
            return keyid, keys[keyid]
        keyid, key = os.urandom(8).hex(), os.urandom(32)
        self.inner.write(f"{KEYS}/{keyid}", key.hex().encode("ascii"))
        with self._lock:
            self._keys[keyid] = key
        return keyid, key

    # ----------------------------------------------------------------- references
    def make_reference(self, ref: Ref) -> bytes:
        """The bytes of a reference object standing for ``ref``."""
        keyid, key = self.ensure_key()
        mac = _mac(key, ref.sha256, ref.size, ref.md5, ref.gen)
        line = (f"storied-ref/1 {ref.sha256} {ref.size:020d} {ref.md5} {keyid} {ref.gen} "
                f"{mac}\n").encode("ascii")
        assert len(line) == REF_SIZE
        return line

    def named_copy(self, path: str, info: Info) -> tuple[str, str] | None:
        """``(sha256, gen)`` of the content copy the object at ``path`` names if it has a
        reference's *form*, whether its HMAC checks or not (gc keeps whatever any
        reference-shaped object names: a forged one can only keep a copy alive). Read errors
        other than the object being gone are raised, so that gc never decides on a partial
        view."""
        if _reserved(path) or info.is_dir or info.size != REF_SIZE:
            return None
        key = self._key(path, info)
        with self._lock:
            cached = self._refs.get(key) if key is not None else None
        if cached is not None:
            return cached.sha256, cached.gen
        try:
            data = self.inner.read_bytes(path)
        except StorageNotFoundError:
            return None
        match = _LINE.fullmatch(data)
        if match is None:
            return None
        return match.group(1).decode("ascii"), match.group(5).decode("ascii")

    def parse(self, data: bytes) -> Ref | None:
        """The reference ``data`` is, or None (wrong form, or an HMAC no key of this mount
        checks: a user's file that merely looks like one).

        Raises:
            StorageIOError: The line has a reference's form and the keys could not be read
                (a transient failure never turns a reference into its line).
        """
        if len(data) != REF_SIZE or not data.startswith(MAGIC):
            return None
        match = _LINE.fullmatch(data)
        if match is None:
            return None
        sha, size, md5, keyid, gen, mac = (g.decode("ascii") for g in match.groups())
        key = self._load_keys().get(keyid)
        if key is None:
            key = self._load_keys(force=True).get(keyid)
        if key is None and self._keys_failure is not None:
            raise StorageIOError(
                "a reference's key could not be read, so whether this file is a reference "
                f"cannot be told: {self._keys_failure}") from self._keys_failure
        if key is None or not hmac.compare_digest(mac, _mac(key, sha, int(size), md5, gen)):
            return None
        return Ref(sha, int(size), md5, gen)

    @staticmethod
    def _key(path: str, info: Info) -> tuple[str, str] | None:
        """The cache key of a stored object: its true MD5 when the storage gives one (the
        same bytes wherever they are: every reference to one content shares it), else the
        path and etag."""
        if info.md5:
            return "md5", info.md5
        return None if info.etag is None else (path, info.etag)

    def _remember(self, key: tuple[str, str] | None, ref: Ref | None) -> None:
        if key is None:
            return
        with self._lock:
            self._refs[key] = ref
            self._refs.move_to_end(key)
            while len(self._refs) > _CACHE:
                self._refs.popitem(last=False)

    def cached(self, path: str, info: Info) -> Ref | None:
        """The reference at ``path`` (``info``: its record as this layer gave it) as this
        layer last resolved it (no request), or None (plain, or not seen)."""
        if info.etag is None:
            return None
        with self._lock:
            return self._seen.get((path, info.etag))

    def reference(self, path: str, info: Info | None = None) -> Ref | None:
        """The reference at ``path`` (``info``: its inner record when known), or None for a
        plain file. A file of any size but :data:`REF_SIZE` is plain without a read."""
        if _reserved(path):
            return None
        if info is None:
            info = self.inner.info(path)
        if info.is_dir or info.size != REF_SIZE:
            return None
        key = self._key(path, info)
        with self._lock:
            if key is not None and key in self._refs:
                ref = self._refs[key]
                self._note(path, info, ref)
                return ref
        try:
            data = self.inner.read_bytes(path)
        except StorageNotFoundError:
            return None
        ref = self.parse(data)
        self._remember(key, ref)
        with self._lock:
            self._note(path, info, ref)
        return ref

    def _note(self, path: str, info: Info, ref: Ref | None) -> None:
        """Remember which reference ``path`` held at its etag (for :meth:`cached`); the lock
        is held."""
        if info.etag is None or ref is None:
            return
        self._seen[(path, info.etag)] = ref
        self._seen.move_to_end((path, info.etag))
        while len(self._seen) > _CACHE:
            self._seen.popitem(last=False)

    def logical(self, info: Info) -> Info:
        """``info`` (a record of the storage below) as users see it: a reference's logical
        size and MD5; anything else unchanged. Reads the object only when it is exactly
        :data:`REF_SIZE` bytes and not cached (for layers that list on their own, e.g. the
        native async path)."""
        return self._logical(info)

    def _logical(self, info: Info) -> Info:
        if info.is_dir or info.size != REF_SIZE or _reserved(info.path):
            return info
        try:
            ref = self.reference(info.path, info)
        except StorageNotFoundError:
            return info
        if ref is None:
            return info
        return replace(info, size=ref.size, md5=ref.md5)

    def _open_blob(self, ref: Ref, path: str, start: int, end: int | None) -> BinaryIO:
        """The content copy's bytes ``[start, end)``, checked as read (:class:`_Checked`)."""
        try:
            stream = self.inner.open_read(ref.blob, start, end)
        except StorageNotFoundError as exc:
            raise StorageIOError(
                f"{path!r} is a reference whose content copy {ref.blob} is missing "
                "(removed outside storied?)") from exc
        return io.BufferedReader(_Checked(stream, ref, path, start, end))

    # ----------------------------------------------------------------- the contract
    def info(self, path: str) -> Info:
        return self._logical(self.inner.info(path))

    def list(self, path: str) -> Iterator[Info]:
        return (self._logical(e) for e in self.inner.list(path))

    def walk(self, path: str) -> Iterator[Info]:
        return (self._logical(e) for e in self.inner.walk(path))

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        shown, hidden = self.inner.walk_split(path)
        return [self._logical(e) for e in shown], hidden

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        if _reserved(path):
            return self.inner.open_read(path, start, end)
        if start or end is not None:
            if not self.has_keys():
                return self.inner.open_read(path, start, end)
            ref = self.reference(path)
            if ref is None:
                return self.inner.open_read(path, start, end)
            return self._open_blob(ref, path, start, end)
        stream = self.inner.open_read(path)
        try:
            if _plain_by_peek(stream):
                return stream  # untouched: no copy, no wrapper, seekable as it was
        except BaseException:
            stream.close()
            raise
        return self._resolved(stream, path)

    def _resolved(self, stream: BinaryIO, path: str) -> BinaryIO:
        """``stream`` (read from its start) as the logical file: the content copy when its
        head is a reference, else the stream with the head it read put back."""
        try:
            data = read_full(stream, REF_SIZE + 1)
            ref = self.parse(data)
        except BaseException:
            stream.close()
            raise
        if ref is None:
            return _wrap(data, stream)
        stream.close()
        return self._open_blob(ref, path, 0, None)

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as stream:
            return stream.read()

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        """A reference's URL is its content copy's (one ``info`` first, once the mount has a
        key): whoever follows it gets the file's bytes, not the reference line."""
        if not _reserved(path) and self.has_keys():
            try:
                ref = self.reference(path)
            except StorageNotFoundError:
                ref = None
            if ref is not None:
                return self.inner.url(ref.blob, expires_in)
        return self.inner.url(path, expires_in)

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        stream = self.inner.open_version(path, version_id, start, end)
        if start or end is not None or _reserved(path):
            return stream
        return self._resolved(stream, path)


def _plain_by_peek(stream: BinaryIO) -> bool:
    """True when the stream's first bytes, looked at without consuming them, show a plain
    file: a buffered stream's ``peek`` (local files, S3 streams) or a ``BytesIO``'s buffer;
    False when they look like a reference or cannot be looked at."""
    if isinstance(stream, io.BytesIO):
        at = stream.tell()
        with stream.getbuffer() as view, view[at:at + len(MAGIC)] as part:
            head = part.tobytes()
    else:
        peek = getattr(stream, "peek", None)
        if peek is None:
            return False
        head = peek(len(MAGIC))[: len(MAGIC)]
    if len(head) < len(MAGIC) and isinstance(stream, io.BufferedReader) and head:
        return not MAGIC.startswith(head)  # a short peek: only a mismatch decides
    return head != MAGIC


def _wrap(head: bytes, stream: BinaryIO) -> BinaryIO:
    """``stream`` from its start again: rewound when it can seek (a local file: the stream
    itself is returned, nothing in between), else the peeked bytes put in front of it."""
    try:
        if stream.seekable() and stream.tell() == len(head):
            stream.seek(0)
            return stream
    except (OSError, ValueError, AttributeError):
        pass
    return io.BufferedReader(_Prefixed(head, stream))


def _reserved(path: str) -> bool:
    """Storied's own names (the reserved area at any depth, temporary names) pass through."""
    return is_hidden(path)


def find_layer(backend: Backend, path: str) -> tuple[Referencing, str] | None:
    """The :class:`Referencing` layer below ``backend`` (a mount's stack) and ``path`` as
    that layer names it (the prefixes of relative mounts joined), or None."""
    from storied import paths
    from storied.backends.wrappers import Prefixed

    current: Backend | None = backend
    while current is not None:
        if isinstance(current, Referencing):
            return current, path
        if isinstance(current, Prefixed):
            path = paths.join(current.prefix, path) if path else current.prefix
        current = getattr(current, "inner", None)
    return None
