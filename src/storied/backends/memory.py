"""In-memory backend: one named store per process, thread-safe, with conditional writes.

Stores are kept by name in this module, so re-configuring a mount with the same name (or another
manager in the same process naming the same store) sees the same files. Unlike fsspec's memory
filesystem there is no single global store shared by every mount: each name is its own.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from storied.backends.base import Backend
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
)
from storied.info import Data, Info, WriteMode, check_range

__all__ = ["MemoryBackend", "clear_memory_stores"]

_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()
_GENERATION = itertools.count(1)


@dataclass
class _Object:
    data: bytes
    mtime: float
    etag: str
    md5: str
    metadata: dict[str, str]


class _Deferred(_Object):
    """An object whose bytes are made by ``make`` when first used (read, listed with its
    size, copied): :meth:`MemoryBackend.create_deferred`. ``make`` must give the same bytes
    every time (two threads may both call it the first time); its etag is fixed at creation
    (its generation), its MD5 follows from the bytes."""

    def __init__(self, make: Callable[[], bytes], mtime: float) -> None:
        self._make: Callable[[], bytes] | None = make
        self._made, self._md5 = b"", ""
        self._generation = next(_GENERATION)
        self.mtime, self.metadata = mtime, {}

    def _made_now(self) -> None:
        make = self._make
        if make is not None:  # bytes and MD5 set before ``_make`` is cleared (threads)
            made = make()
            self._md5, self._made = hashlib.md5(made).hexdigest(), made
            self._make = None

    @property
    def data(self) -> bytes:  # type: ignore[override]
        self._made_now()
        return self._made

    @property
    def md5(self) -> str:  # type: ignore[override]
        self._made_now()
        return self._md5

    @property
    def etag(self) -> str:  # type: ignore[override]
        return f"{self.md5}-{self._generation}"


@dataclass
class _Store:
    """Files and directories of one store. ``children`` indexes each directory's entries (in
    creation order) so a listing costs its own size, not the store's; every change goes
    through the methods below, under ``lock``."""

    files: dict[str, _Object] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {""})
    lock: threading.RLock = field(default_factory=threading.RLock)
    children: dict[str, dict[str, None]] = field(default_factory=dict)

    def put_file(self, path: str, obj: _Object) -> None:
        if path not in self.files:
            self.children.setdefault(_parent(path), {})[path] = None
        self.files[path] = obj

    def pop_file(self, path: str) -> _Object | None:
        obj = self.files.pop(path, None)
        if obj is not None:
            self._unlink(path)
        return obj

    def add_dir(self, path: str) -> None:
        if path not in self.dirs:
            self.dirs.add(path)
            if path:
                self.children.setdefault(_parent(path), {})[path] = None

    def discard_dir(self, path: str) -> None:
        if path in self.dirs and path:
            self.dirs.discard(path)
            self._unlink(path)

    def _unlink(self, path: str) -> None:
        siblings = self.children.get(_parent(path))
        if siblings is not None:
            siblings.pop(path, None)
            if not siblings:
                del self.children[_parent(path)]


def clear_memory_stores() -> None:
    """Forget every memory store of this process (for test isolation)."""
    with _STORES_LOCK:
        _STORES.clear()


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


class MemoryBackend(Backend):
    """Files held in process memory under a store name.

    Args:
        store: The store's name; backends built with the same name share files.
    """

    protocol = "memory"
    capabilities: Capabilities = Capabilities(
        temporary=True,
        conditional_write=True,
        copy_optimization=True,
        hash_on_metadata=True,
        metadata=True,
        atomic_rename=True,
    )

    def __init__(self, store: str = "default") -> None:
        with _STORES_LOCK:
            self._store = _STORES.setdefault(store, _Store())

    def storage_key(self) -> Hashable:
        """Backends built over one store name share their files: the store is the key."""
        return ("memory", id(self._store))

    # ---------------------------------------------------------------- helpers
    def _obj(self, path: str) -> _Object:
        try:
            return self._store.files[path]
        except KeyError:
            if path in self._store.dirs:
                raise IsADirectoryStorageError(f"Is a directory: {path!r}") from None
            raise StorageNotFoundError(f"No such file: {path!r}") from None

    def _info(self, path: str, obj: _Object) -> Info:
        return Info(path, False, len(obj.data), obj.mtime, obj.etag, obj.md5, dict(obj.metadata))

    def _add_parents(self, path: str) -> None:
        """Create the missing parent directories of ``path``, or none when one is a file."""
        missing, parent = [], _parent(path)
        while parent not in self._store.dirs:
            if parent in self._store.files:
                raise NotADirectoryStorageError(f"Not a directory: {parent!r}")
            missing.append(parent)
            parent = _parent(parent)
        for directory in reversed(missing):
            self._store.add_dir(directory)

    # ---------------------------------------------------------------- contract
    def info(self, path: str) -> Info:
        with self._store.lock:
            if path in self._store.dirs:
                return Info(path, is_dir=True)
            obj = self._obj(path)
            return self._info(path, obj)

    def list(self, path: str) -> Iterator[Info]:
        with self._store.lock:
            if path not in self._store.dirs:
                if path in self._store.files:
                    raise NotADirectoryStorageError(f"Not a directory: {path!r}")
                raise StorageNotFoundError(f"No such directory: {path!r}")
            names = self._store.children.get(path, {})
            files = self._store.files
            entries = [Info(d, is_dir=True) for d in names if d not in files]
            entries += [self._info(p, files[p]) for p in names if p in files]
        return iter(entries)

    def walk(self, path: str) -> Iterator[Info]:
        prefix = path + "/" if path else ""
        with self._store.lock:
            if path not in self._store.dirs:
                self.list(path)  # raises the right error
            found = [self._info(p, o) for p, o in self._store.files.items() if p.startswith(prefix)]
        return iter(found)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        check_range(start, end)
        with self._store.lock:
            data = self._obj(path).data
        return io.BytesIO(data[start:end] if (start or end is not None) else data)

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        payload = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.read()
        md5 = hashlib.md5(payload).hexdigest()
        obj = _Object(payload, time.time(), f"{md5}-{next(_GENERATION)}", md5, dict(metadata or {}))
        with self._store.lock:
            if path in self._store.dirs:
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            current = self._store.files.get(path)
            if mode is WriteMode.CREATE and current is not None:
                raise StorageAlreadyExistsError(f"Already exists: {path!r}")
            if mode is WriteMode.IF_MATCH:
                if current is None:
                    raise StorageNotFoundError(f"No such file: {path!r}")
                if current.etag != etag:
                    raise PreconditionFailedError(f"Etag mismatch on {path!r}")
            self._add_parents(path)
            self._store.put_file(path, obj)
        return self._info(path, obj)

    def create_new(self, path: str, data: bytes) -> None:
        """``write(path, data, mode=CREATE)`` returning nothing (no ``Info`` built): for
        storied's own create-only objects (history blobs, journal entries).

        Raises:
            StorageAlreadyExistsError: something is at ``path``.
            IsADirectoryStorageError: ``path`` is a directory.
        """
        payload = bytes(data)
        md5 = hashlib.md5(payload).hexdigest()
        obj = _Object(payload, time.time(), f"{md5}-{next(_GENERATION)}", md5, {})
        self._put_new(path, obj)

    def _put_new(self, path: str, obj: _Object) -> None:
        """Store ``obj`` at ``path`` unless something is there (creating missing parents)."""
        store = self._store
        with store.lock:
            if path in store.dirs:
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            if path in store.files:
                raise StorageAlreadyExistsError(f"Already exists: {path!r}")
            self._add_parents(path)
            store.put_file(path, obj)

    def create_deferred(self, path: str, make: Callable[[], bytes]) -> None:
        """:meth:`create_new` of the bytes ``make()`` gives, made when the object is first
        used rather than now. For storied's own create-only objects on this process-local
        store (journal entries): nobody outside this process can read them, so the writer
        need not pay for their encoding. ``make`` must give the same bytes on every call and
        must not depend on anything the caller may change afterwards.

        Raises:
            StorageAlreadyExistsError: something is at ``path``.
            IsADirectoryStorageError: ``path`` is a directory.
        """
        obj = _Deferred(make, time.time())
        self._put_new(path, obj)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        with self._store.lock:
            if self._store.pop_file(path) is not None:
                return
            if path not in self._store.dirs:
                raise StorageNotFoundError(f"No such file or directory: {path!r}")
            prefix = path + "/" if path else ""
            inside = [p for p in self._store.files if p.startswith(prefix)]
            subdirs = [d for d in self._store.dirs if d.startswith(prefix) and d != path]
            if (inside or subdirs) and not recursive:
                raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
            for p in inside:
                self._store.pop_file(p)
            for d in subdirs:
                self._store.discard_dir(d)
            self._store.discard_dir(path)

    def delete_if_match(self, path: str, etag: str) -> None:
        """Delete file ``path`` only while its etag is ``etag`` (under the store's lock)."""
        with self._store.lock:
            current = self._obj(path)
            if current.etag != etag:
                raise PreconditionFailedError(f"Etag mismatch on {path!r}")
            self._store.pop_file(path)

    def read_tagged(self, path: str) -> tuple[bytes, str]:
        """The content of file ``path`` and its etag, read together (locks use it)."""
        with self._store.lock:
            obj = self._obj(path)
            return obj.data, obj.etag

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        with self._store.lock:
            if path in self._store.files:
                raise StorageAlreadyExistsError(f"A file exists at {path!r}")
            if path in self._store.dirs:
                if exist_ok:
                    return
                raise StorageAlreadyExistsError(f"Directory exists: {path!r}")
            if not parents and _parent(path) not in self._store.dirs:
                raise StorageNotFoundError(f"Parent directory missing: {_parent(path)!r}")
            self._add_parents(path)
            self._store.add_dir(path)

    # ---------------------------------------------------------------- faster derived ops
    def copy(self, src: str, dst: str) -> Info:
        with self._store.lock:
            obj = self._obj(src)
            return self.write(dst, obj.data, metadata=obj.metadata)

    def move(self, src: str, dst: str) -> None:
        """A rename with POSIX rules: a file replaces a file; a directory replaces only an
        empty directory; a file never replaces a directory nor a directory a file (nothing is
        moved then)."""
        with self._store.lock:
            store = self._store
            files, dirs = store.files, store.dirs
            if src not in files and src not in dirs:
                raise StorageNotFoundError(f"No such file or directory: {src!r}")
            if src == dst:
                return
            if src in files:
                if dst in dirs:
                    raise IsADirectoryStorageError(f"Is a directory: {dst!r}")
                self._add_parents(dst)
                moved = store.pop_file(src)
                assert moved is not None
                store.put_file(dst, moved)
                return
            if dst in files:
                raise NotADirectoryStorageError(f"Not a directory: {dst!r}")
            if dst in dirs and any(d.startswith(dst + "/") for d in (*dirs, *files)):
                raise DirectoryNotEmptyError(f"Directory not empty: {dst!r}")
            self._add_parents(dst)
            prefix = src + "/"
            old_dirs = sorted(d for d in dirs if d == src or d.startswith(prefix))
            for d in old_dirs:
                store.add_dir(dst + d[len(src) :])
            for p in [p for p in files if p.startswith(prefix)]:
                obj = store.pop_file(p)
                assert obj is not None
                store.put_file(dst + p[len(src) :], obj)
            for d in reversed(old_dirs):
                store.discard_dir(d)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        with self._store.lock:
            self._obj(path).metadata = dict(metadata)


def from_config(config: dict[str, Any]) -> Backend:
    """Build a memory mount: ``store`` names the store (default: the mount name)."""
    from storied.backends.wrappers import Prefixed

    backend: Backend = MemoryBackend(config.get("store") or config["name"])
    prefix = config.get("base_path") or ""
    return Prefixed(backend, prefix) if prefix.strip("/") else backend
