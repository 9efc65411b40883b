"""Local filesystem backend: plain OS calls, atomic writes, symlink confinement.

Writes go to a temporary file in the destination's directory and are renamed into place, so a
reader (or a crash) never sees a partial file. Create-only writes use ``link()`` (atomic, fails if
the target exists); replace-if-etag-matches holds an exclusive ``flock`` on the parent directory
while it compares and renames. Every resolved path is checked, after following symlinks, to be
inside the base directory.

The base directory can be a callable: with no parameter it is called on every access (a per-user
folder); with one parameter ("switched" mount) it receives the path's first segment and returns
that segment's base directory, and the rest of the path is resolved under it.
"""

from __future__ import annotations

import errno
import fcntl
import inspect
import io
import itertools
import os
import shutil
import stat as statmod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from storied.backends.base import CHUNK, Backend
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PathEscapeError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import Data, Info, WriteMode

__all__ = ["TMP_MARK", "LocalBackend"]

BasePath = str | os.PathLike[str] | Callable[..., str | os.PathLike[str]]

#: Marker in the names of in-flight temporary files; listings hide them.
TMP_MARK = ".storied-tmp-"
_COUNTER = itertools.count()


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


@contextmanager
def _mapped(path: str) -> Iterator[None]:
    """Translate OSError into the storied tree (the one mapping site of this adapter)."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as exc:
        raise StorageNotFoundError(f"No such file or directory: {path!r}") from exc
    except FileExistsError as exc:
        raise StorageAlreadyExistsError(f"Already exists: {path!r}") from exc
    except IsADirectoryError as exc:
        raise IsADirectoryStorageError(f"Is a directory: {path!r}") from exc
    except NotADirectoryError as exc:
        raise NotADirectoryStorageError(f"Not a directory: {path!r}") from exc
    except PermissionError as exc:
        raise StoragePermissionError(f"Permission denied: {path!r}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise DirectoryNotEmptyError(f"Directory not empty: {path!r}") from exc
        raise StorageIOError(exc.errno, f"{exc.strerror}: {path!r}") from exc


class _RangeReader(io.RawIOBase):
    """A file object limited to ``length`` bytes from its current position."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        self._raw, self._left = raw, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        n = self._raw.readinto(view)  # type: ignore[attr-defined]
        self._left -= n or 0
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class LocalBackend(Backend):
    """A directory of the local filesystem.

    Args:
        base_path: An absolute existing directory, or a callable returning one (see module doc).
        base_url: Optional public URL prefix; ``url()`` returns ``base_url + '/' + path``.
        fsync: Flush file contents to disk before the rename (durable across power loss; slower).
    """

    protocol = "local"
    capabilities = Capabilities(
        conditional_write=True,
        copy_optimization=True,
        symbolic_links=True,
        atomic_rename=True,
        hard_links=True,
    )

    def __init__(self, base_path: BasePath, base_url: str | None = None, fsync: bool = False):
        self._base = base_path
        self._switched = callable(base_path) and _arity(base_path) >= 1
        self.base_url = base_url.rstrip("/") if base_url else None
        self._fsync = fsync
        self._static_root: str | None = None
        if not callable(base_path):
            self._static_root = _check_root(os.fspath(base_path))

    # ---------------------------------------------------------------- path resolution
    @property
    def base_path(self) -> str:
        """The base directory (evaluating a 0-argument callable now)."""
        if self._static_root is not None:
            return self._static_root
        if self._switched:
            raise StorageConfigError("A switched local mount has one base per first path segment")
        return os.path.realpath(os.fspath(self._base()))  # type: ignore[operator]

    def _root_and_rest(self, path: str) -> tuple[str, str]:
        if not self._switched:
            return self.base_path, path
        head, _, rest = path.partition("/")
        if not head:
            raise PathEscapeError("A switched mount needs a first path segment")
        return os.path.realpath(os.fspath(self._base(head))), rest  # type: ignore[operator]

    def _abs(self, path: str) -> str:
        """The absolute OS path of ``path``, refused if it resolves outside the base.

        Each existing component below the base is ``lstat``-ed; only when one is a symlink is
        the whole path resolved and checked (cheaper than ``realpath`` on every call).
        """
        root, rest = self._root_and_rest(path)
        if not rest:
            return root
        full = root + os.sep + rest
        current = root
        for segment in rest.split("/"):
            current = current + os.sep + segment
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break  # nothing further exists, so nothing further can be followed
            if statmod.S_ISLNK(mode):
                real = os.path.realpath(full)
                if real != root and not real.startswith(root + os.sep):
                    raise PathEscapeError(f"Path escapes base directory: {path!r}")
                break
        return full

    # ---------------------------------------------------------------- contract
    def info(self, path: str) -> Info:
        full = self._abs(path)
        with _mapped(path):
            st = os.stat(full)
        if statmod.S_ISDIR(st.st_mode):
            return Info(path, True, 0, st.st_mtime)
        return Info(path, False, st.st_size, st.st_mtime, _etag(st))

    def list(self, path: str) -> Iterator[Info]:
        full = self._abs(path)
        with _mapped(path):
            entries = list(os.scandir(full))
        prefix = path + "/" if path else ""
        for entry in entries:
            if TMP_MARK in entry.name:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # removed while listing, or a dangling symlink
            if statmod.S_ISDIR(st.st_mode):
                yield Info(prefix + entry.name, True, 0, st.st_mtime)
            else:
                yield Info(prefix + entry.name, False, st.st_size, st.st_mtime, _etag(st))

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        full = self._abs(path)
        with _mapped(path):
            entries = list(os.scandir(full))
        return (
            (e.name, e.is_dir())
            for e in entries
            if TMP_MARK not in e.name and (start_after is None or e.name > start_after)
        )

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        full = self._abs(path)
        with _mapped(path):
            f = open(full, "rb")  # noqa: SIM115 - returned to the caller
        if start:
            f.seek(start)
        if end is None:
            return f
        return io.BufferedReader(_RangeReader(f, max(0, end - start)))  # type: ignore[return-value]

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        if not path:
            raise IsADirectoryStorageError("Cannot write to the mount root")
        full = self._abs(path)
        if isinstance(data, (bytes, bytearray, memoryview)) and not len(data) and mode is not (
            WriteMode.IF_MATCH
        ):
            return self._write_empty(path, full, mode)
        with _mapped(path):
            tmp, st = self._write_temp(full, data)
            try:
                self._commit(tmp, full, path, mode, etag)
            except BaseException:
                _unlink_quietly(tmp)
                raise
            if mode is WriteMode.CREATE:
                os.unlink(tmp)
        return Info(path, False, st.st_size, st.st_mtime, _etag(st))

    def _write_empty(self, path: str, full: str, mode: WriteMode) -> Info:
        """An empty file appears atomically: no temporary file is needed."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        flags |= os.O_EXCL if mode is WriteMode.CREATE else os.O_TRUNC
        with _mapped(path):
            try:
                fd = os.open(full, flags, 0o666)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                fd = os.open(full, flags, 0o666)
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
        return Info(path, False, 0, st.st_mtime, _etag(st))

    def _write_temp(self, full: str, data: Data) -> tuple[str, os.stat_result]:
        """Write ``data`` to a new temporary file beside ``full``; return its path and stat."""
        directory, name = os.path.split(full)
        tmp = f"{directory}{os.sep}.{name[:100]}{TMP_MARK}{os.getpid()}-{next(_COUNTER)}"
        try:
            fd = _create_exclusive(tmp)
        except FileNotFoundError:
            if os.path.lexists(directory) and not os.path.isdir(directory):
                raise NotADirectoryStorageError(f"Not a directory: {directory!r}") from None
            os.makedirs(directory, exist_ok=True)
            fd = _create_exclusive(tmp)
        except FileExistsError:  # a crashed process with a recycled pid left this name
            tmp += "-" + os.urandom(6).hex()
            fd = _create_exclusive(tmp)
        try:
            with open(fd, "wb", buffering=0, closefd=True) as out:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    view = memoryview(data)
                    while view:
                        view = view[out.write(view) :]
                else:
                    shutil.copyfileobj(data, out, CHUNK)
                if self._fsync:
                    os.fsync(out.fileno())
                st = os.fstat(out.fileno())
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return tmp, st

    def _commit(self, tmp: str, full: str, path: str, mode: WriteMode, etag: str | None) -> None:
        if mode is WriteMode.OVERWRITE:
            os.replace(tmp, full)
        elif mode is WriteMode.CREATE:
            try:
                os.link(tmp, full)
            except FileExistsError:
                raise StorageAlreadyExistsError(f"Already exists: {path!r}") from None
        else:
            with _dir_lock(os.path.dirname(full)):
                try:
                    current = _etag(os.stat(full))
                except FileNotFoundError:
                    raise StorageNotFoundError(f"No such file: {path!r}") from None
                if current != etag:
                    raise PreconditionFailedError(f"Etag mismatch on {path!r}")
                os.replace(tmp, full)

    def read_bytes(self, path: str) -> bytes:
        full = self._abs(path)
        with _mapped(path), open(full, "rb", buffering=0) as f:
            return f.readall()

    def delete(self, path: str, *, recursive: bool = False) -> None:
        full = self._abs(path)
        with _mapped(path):
            if os.path.isdir(full) and not os.path.islink(full):
                if recursive:
                    shutil.rmtree(full)
                else:
                    os.rmdir(full)
            else:
                os.unlink(full)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        full = self._abs(path)
        with _mapped(path):
            if parents:
                if os.path.isfile(full):
                    raise StorageAlreadyExistsError(f"A file exists at {path!r}")
                os.makedirs(full, exist_ok=exist_ok)
            else:
                try:
                    os.mkdir(full)
                except FileExistsError:
                    if not (exist_ok and os.path.isdir(full)):
                        raise

    # ---------------------------------------------------------------- faster derived ops
    def copy(self, src: str, dst: str) -> Info:
        full_src = self._abs(src)
        with _mapped(src), open(full_src, "rb") as stream:
            return self.write(dst, stream)

    def move(self, src: str, dst: str) -> None:
        full_src, full_dst = self._abs(src), self._abs(dst)
        with _mapped(src):
            os.stat(full_src)
            os.makedirs(os.path.dirname(full_dst), exist_ok=True)
            os.replace(full_src, full_dst)

    def link(self, src: str, dst: str) -> None:
        full_src, full_dst = self._abs(src), self._abs(dst)
        with _mapped(dst):
            try:
                os.link(full_src, full_dst)
            except FileNotFoundError:
                if not os.path.exists(full_src):
                    raise
                os.makedirs(os.path.dirname(full_dst), exist_ok=True)
                os.link(full_src, full_dst)

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        return f"{self.base_url}/{path}" if self.base_url else None

    def local_path(self, path: str) -> str | None:
        return self._abs(path)


def _create_exclusive(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _arity(func: Callable[..., object]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _check_root(root: str) -> str:
    if not os.path.isabs(root):
        raise StorageConfigError(f"base_path must be absolute: {root!r}")
    if not os.path.exists(root):
        raise StorageNotFoundError(f"Base path does not exist: {root!r}")
    if not os.path.isdir(root):
        raise StorageConfigError(f"Base path is not a directory: {root!r}")
    return os.path.realpath(root)


@contextmanager
def _dir_lock(directory: str) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def from_config(config: dict[str, Any]) -> Backend:
    """Build a local mount from ``base_path`` (str or callable), ``base_url`` and ``fsync``."""
    return LocalBackend(config["base_path"], config.get("base_url"), bool(config.get("fsync")))
