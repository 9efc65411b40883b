"""The backend contract: the few methods an adapter implements, and the wrapper base.

A backend sees only normalised, mount-relative paths (see :mod:`storied.paths`): ``""`` is its root,
segments are ``/``-separated, there are no ``..``. Everything users call (copy strategies, text
helpers, hashing, serving) lives in :class:`~storied.core.node.StorageNode`, not here.

An adapter implements six methods: :meth:`Backend.info`, :meth:`Backend.list`,
:meth:`Backend.open_read`, :meth:`Backend.write` (with the conditional modes),
:meth:`Backend.delete` and :meth:`Backend.mkdir`. :meth:`Backend.copy`, :meth:`Backend.move`
and :meth:`Backend.walk` have portable defaults that an adapter overrides when the storage does
better (server-side copy, rename, flat listings). Errors must be the :mod:`storied.errors` types,
mapped in one place per adapter.
"""

from __future__ import annotations

import abc
import builtins
import io
import os
from collections.abc import Hashable, Iterator
from typing import BinaryIO

from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    NotADirectoryStorageError,
    StorageIOError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.info import Data, Info, ObjectVersion, WriteMode

__all__ = [
    "CHUNK", "Backend", "WrappedBackend", "as_stream", "delete_tree", "prune_empty_dirs",
    "read_full",
]

#: Chunk size for streamed copies and hashing.
CHUNK = 1024 * 1024


def as_stream(data: Data) -> BinaryIO:
    """Return ``data`` as a binary stream (bytes are wrapped, streams returned as they are)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data))
    return data


def read_full(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of stream (raw streams may return short reads)."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Backend(abc.ABC):
    """A storage adapter. Subclasses set :attr:`capabilities` and implement the abstract methods.

    Attributes:
        capabilities: What this backend can do, as data.
        protocol: A short name for messages and registries (``"local"``, ``"s3"``...).
    """

    capabilities: Capabilities = Capabilities()
    protocol: str = "abstract"

    # ----------------------------------------------------------------- the contract
    @abc.abstractmethod
    def info(self, path: str) -> Info:
        """Describe ``path`` in one request.

        Raises:
            StorageNotFoundError: Nothing is at ``path`` (neither file nor directory).
        """

    @abc.abstractmethod
    def list(self, path: str) -> Iterator[Info]:
        """Yield the direct children of directory ``path``, in no particular order.

        Raises:
            StorageNotFoundError: ``path`` does not exist.
            NotADirectoryStorageError: ``path`` is a file.
        """

    @abc.abstractmethod
    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Open ``path`` for streamed reading of bytes ``[start, end)`` (``end=None``: to EOF).

        One request at most: no existence check before the read.

        Raises:
            StorageNotFoundError: ``path`` does not exist.
            IsADirectoryStorageError: ``path`` is a directory.
        """

    @abc.abstractmethod
    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        """Write ``data`` to ``path`` atomically; parents are created as needed.

        Readers see the old content or the new, never a mix. With ``mode=CREATE`` the write
        happens only if nothing is at ``path``; with ``mode=IF_MATCH`` only if the current etag
        equals ``etag``. Backends whose capabilities lack ``conditional_write`` raise
        :class:`~storied.errors.UnsupportedOperation` for those modes.

        Returns:
            The new object's info (at least path, size and etag where the backend has one).

        Raises:
            StorageAlreadyExistsError: ``mode=CREATE`` and the path exists.
            PreconditionFailedError: ``mode=IF_MATCH`` and the etag differs.
            IsADirectoryStorageError: ``path`` is a directory.
        """

    @abc.abstractmethod
    def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete the file or directory at ``path``.

        Raises:
            StorageNotFoundError: Nothing is at ``path``.
            DirectoryNotEmptyError: ``path`` is a non-empty directory and ``recursive`` is false.
        """

    def delete_if_match(self, path: str, etag: str) -> None:
        """Delete the file at ``path`` only while its etag equals ``etag`` (atomically: a
        file written at ``path`` after the check is never deleted).

        Raises:
            StorageNotFoundError: Nothing is at ``path``.
            PreconditionFailedError: The file's etag differs.
            UnsupportedOperation: The storage cannot delete conditionally (the default).
        """
        raise UnsupportedOperation(
            f"{type(self).__name__} cannot delete conditionally (needed by locks)"
        )

    @abc.abstractmethod
    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create directory ``path`` (pathlib semantics; a no-op where directories are implied).

        Raises:
            StorageAlreadyExistsError: It exists and ``exist_ok`` is false.
            StorageNotFoundError: The parent is missing and ``parents`` is false.
        """

    @property
    def static_capabilities(self) -> Capabilities:
        """The flags known without asking the storage: reading them sends no probe request.

        Backends that probe (S3 conditional writes) return their unprobed record here; a
        read-only view uses it so that looking at it never writes a probe object.
        """
        return self.capabilities

    # ----------------------------------------------------------------- derived, overridable
    def walk(self, path: str) -> Iterator[Info]:
        """Yield every file (not directory) below directory ``path``, recursively.

        Object stores override this with one flat listing instead of one request per directory;
        having no directories, they may yield nothing for a missing path or a file instead of
        raising ``StorageNotFoundError`` / ``NotADirectoryStorageError``.
        """
        for entry in self.list(path):
            if entry.is_dir:
                yield from self.walk(entry.path)
            else:
                yield entry

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        """``(shown, hidden)``: the files :meth:`walk` yields below ``path``, and those a
        hiding layer leaves out (storied's reserved names), from one listing. Copies use it
        to report what they skip; plain adapters hide nothing here."""
        return list(self.walk(path)), []

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        """``(name, is_dir)`` of each child of directory ``path``: a listing without sizes or
        times, which local disks answer without a ``stat`` per entry. With ``start_after``
        only names sorting after it (object stores ask the server for just those)."""
        entries = ((entry.name, entry.is_dir) for entry in self.list(path))
        return (e for e in entries if start_after is None or e[0] > start_after)

    def copy(self, src: str, dst: str) -> Info:
        """Copy file ``src`` to ``dst`` inside this backend (server-side where possible)."""
        with self.open_read(src) as stream:
            return self.write(dst, stream)

    def move(self, src: str, dst: str) -> None:
        """Move file or directory ``src`` to ``dst`` inside this backend.

        The portable form copies what :meth:`walk` yields, then deletes exactly those files and
        the directories that leaves empty: a file the walk does not show is never deleted.
        """
        if self.info(src).is_dir:
            entries = list(self.walk(src))
            for entry in entries:
                self.copy(entry.path, dst + entry.path[len(src) :])
            self.delete_many([(e.path, None) for e in entries])
            prune_empty_dirs(self, src)
        else:
            self.copy(src, dst)
            self.delete(src)

    def exists(self, path: str) -> bool:
        """True when something is at ``path``."""
        try:
            self.info(path)
        except StorageNotFoundError:
            return False
        return True

    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path`` (one request)."""
        with self.open_read(path) as stream:
            return stream.read()

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        """Replace the user metadata of ``path`` in one request."""
        raise UnsupportedOperation(f"{self.protocol} backend does not support metadata operations")

    def get_metadata(self, path: str) -> dict[str, str]:
        """The user metadata of ``path`` (``{}`` where the backend keeps none)."""
        return dict(self.info(path).metadata or {})

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        """A URL for ``path`` (presigned where the backend signs), or None."""
        return None

    # ----------------------------------------------------------------- native versions
    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        """The storage's own versions of exactly ``path``, oldest first, delete markers
        included. Only for backends whose capabilities say ``native_versions``."""
        raise UnsupportedOperation(f"{self.protocol} backend has no native versions")

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        """Stream one native version of ``path`` (one request)."""
        raise UnsupportedOperation(f"{self.protocol} backend has no native versions")

    def delete_version(self, path: str, version_id: str) -> None:
        """Remove one native version (or delete marker) of ``path`` for good."""
        raise UnsupportedOperation(f"{self.protocol} backend has no native versions")

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        """Every native version and delete marker below ``path`` (one request per 1,000)."""
        raise UnsupportedOperation(f"{self.protocol} backend has no native versions")

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        """Delete many files (``(path, None)``) or native versions (``(path, version_id)``)
        in as few requests as the storage allows (S3: one per 1,000). Missing ones are fine."""
        for path, version_id in items:
            try:
                if version_id is None:
                    self.delete(path)
                else:
                    self.delete_version(path, version_id)
            except StorageNotFoundError:
                pass

    def link(self, src: str, dst: str) -> None:
        """Give the immutable file ``src`` the second name ``dst`` (create-only, no copy).

        Only where ``capabilities.hard_links``; both names then share one content, so use it
        only for objects that never change (storied's history blobs and records).

        Raises:
            StorageAlreadyExistsError: ``dst`` exists.
        """
        raise UnsupportedOperation(f"{self.protocol} backend has no hard links")

    def has_native_versions(self) -> bool:
        """Whether the storage keeps versions itself, asking it at most once and writing
        nothing (unlike reading every probed capability)."""
        return self.static_capabilities.native_versions

    def local_path(self, path: str) -> str | None:
        """The real filesystem path of ``path``, for backends that are a local filesystem."""
        return None

    def unwrap(self) -> Backend:
        """The innermost adapter (wrappers return what they wrap)."""
        return self

    def unlink_links(self, path: str) -> int:
        """Remove the symbolic links directly inside directory ``path`` (the links
        themselves, never what they point to); return how many. Recursive deletes call it on
        a directory that is still not empty once everything listed in it is gone, since
        listings do not show links to directories.

        The default works on storages with a local path: every component of ``path`` is
        opened with ``O_NOFOLLOW`` from the mount root, so a link swapped in meanwhile is
        never followed. Elsewhere (no links) it does nothing.
        """
        real = self.local_path(path) if self.capabilities.symbolic_links else None
        if real is None:
            return 0
        parts = [p for p in path.split("/") if p]
        tail = os.sep.join(parts)
        if parts and not real.endswith(os.sep + tail):
            return 0  # a root chosen per path: no safe place to start from
        root = real[: len(real) - len(tail) - 1] if parts else real
        return _unlink_links_below(root, parts)

    def storage_key(self) -> Hashable:
        """What identifies the storage this adapter reaches: two adapters with equal keys see
        the same files at the same paths. Default: the adapter object itself; adapters that
        can be built twice over one storage (a memory store, a bucket) override it."""
        return self

    def location(self, path: str) -> tuple[Hashable, str]:
        """``(storage key, path in that storage)``: where ``path`` really is, seen through
        every wrapper (mount prefixes joined). Two nodes name the same data exactly when their
        locations are equal, whatever their mounts are called. Local paths are resolved to
        their real absolute path (symbolic links followed)."""
        real = self.local_path(path)
        if real is not None:
            return "file", os.path.realpath(real).strip(os.sep).replace(os.sep, "/")
        return self.storage_key(), path

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections. The backend is unusable afterwards."""


class WrappedBackend(Backend):
    """A backend that wraps a backend: every call is passed to ``inner`` unless overridden.

    Wrappers (mount prefix, permissions, retries) keep the contract: they take and return the
    same things, so they stack in any order.
    """

    inner: Backend
    protocol: str

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.protocol = inner.protocol

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    @property
    def static_capabilities(self) -> Capabilities:
        return self.inner.static_capabilities

    def info(self, path: str) -> Info:
        return self.inner.info(path)

    def list(self, path: str) -> Iterator[Info]:
        return self.inner.list(path)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        return self.inner.open_read(path, start, end)

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self.inner.delete(path, recursive=recursive)

    def delete_if_match(self, path: str, etag: str) -> None:
        self.inner.delete_if_match(path, etag)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self.inner.mkdir(path, parents=parents, exist_ok=exist_ok)

    def walk(self, path: str) -> Iterator[Info]:
        return self.inner.walk(path)

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        return self.inner.walk_split(path)

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        return self.inner.list_names(path, start_after)

    def copy(self, src: str, dst: str) -> Info:
        return self.inner.copy(src, dst)

    def move(self, src: str, dst: str) -> None:
        self.inner.move(src, dst)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def read_bytes(self, path: str) -> bytes:
        return self.inner.read_bytes(path)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self.inner.set_metadata(path, metadata)

    def get_metadata(self, path: str) -> dict[str, str]:
        return self.inner.get_metadata(path)

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        return self.inner.url(path, expires_in)

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        return self.inner.list_versions(path)

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        return self.inner.open_version(path, version_id, start, end)

    def delete_version(self, path: str, version_id: str) -> None:
        self.inner.delete_version(path, version_id)

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        return self.inner.walk_versions(path)

    def has_native_versions(self) -> bool:
        return self.inner.has_native_versions()

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        self.inner.delete_many(items)

    def link(self, src: str, dst: str) -> None:
        self.inner.link(src, dst)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    def unwrap(self) -> Backend:
        return self.inner.unwrap()

    def unlink_links(self, path: str) -> int:
        return self.inner.unlink_links(path)

    def storage_key(self) -> Hashable:
        return self.inner.storage_key()

    def location(self, path: str) -> tuple[Hashable, str]:
        return self.inner.location(path)

    def close(self) -> None:
        self.inner.close()


# --------------------------------------------------------------------- safe recursive deletion
def delete_tree(backend: Backend, path: str) -> None:
    """Delete directory ``path`` the safe way: exactly the files the listings show (in
    batches, via :meth:`Backend.delete_many`), then the directories that this left empty.

    Whatever the listings hide (storied's reserved area, temporary files, keys no path can
    name) is never deleted, and a directory still holding such a name stays. The root (``""``)
    is never removed itself. Storages with real directories are listed once (files and
    directories together); object stores use their flat :meth:`Backend.walk`. See
    docs/adr/0006-node-safety.md.
    """
    if not backend.capabilities.empty_dirs:
        files = [f.path for f in backend.walk(path)]
        backend.delete_many([(f, None) for f in files])
        prune_empty_dirs(backend, path)
        return
    files, dirs = _tree(backend, path)
    backend.delete_many([(f, None) for f in files])
    prune_empty_dirs(backend, path, dirs)


def _tree(backend: Backend, path: str) -> tuple[list[str], list[str]]:
    """The files and the directories below ``path``, from one listing per directory."""
    files: list[str] = []
    dirs: list[str] = []
    pending = [path]
    while pending:
        current = pending.pop()
        try:
            entries = list(backend.list(current))
        except (StorageNotFoundError, NotADirectoryStorageError):
            continue
        for entry in entries:
            if entry.is_dir:
                dirs.append(entry.path)
                pending.append(entry.path)
            else:
                files.append(entry.path)
    return files, dirs


def prune_empty_dirs(backend: Backend, path: str, dirs: list[str] | None = None) -> None:
    """Remove the directories below ``path`` (and ``path`` unless it is the root) that are
    empty, deepest first, each with a non-recursive delete: a directory that is not empty
    (anything in it, hidden or not) is left alone. ``dirs``: the directories below ``path``
    when the caller listed them already.

    On storages without real directories (``capabilities.empty_dirs`` false) directories
    vanish with their last file; only ``path`` itself is deleted non-recursively, which removes
    a directory marker object left by another tool.
    """
    real_dirs = backend.capabilities.empty_dirs
    if dirs is None:
        dirs = _tree(backend, path)[1] if real_dirs else []
    if path and (real_dirs or _is_dir(backend, path)):
        dirs = [path, *dirs]
    links = backend.capabilities.symbolic_links
    for directory in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        for attempt in range(2 if links else 1):
            try:
                backend.delete(directory)
                break
            except DirectoryNotEmptyError:
                # listings do not show links to directories: drop the links themselves
                if attempt or not backend.unlink_links(directory):
                    break
            except (StorageNotFoundError, NotADirectoryStorageError, StorageIOError):
                break  # already gone, or not empty (some servers say so as an I/O error)


def _is_dir(backend: Backend, path: str) -> bool:
    try:
        return backend.info(path).is_dir
    except StorageNotFoundError:
        return False


def _unlink_links_below(root: str, parts: list[str]) -> int:
    """Unlink the symbolic links in ``root/parts...``, walking with ``O_NOFOLLOW``."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return 0
    try:
        for part in parts:
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        removed = 0
        with os.scandir(fd) as entries:
            links = [e.name for e in entries if e.is_symlink()]
        for name in links:
            os.unlink(name, dir_fd=fd)
            removed += 1
        return removed
    except OSError:
        return 0  # a component is a link or vanished: leave everything as it is
    finally:
        os.close(fd)
