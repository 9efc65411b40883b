"""The local backend's per-operation context and small pure helpers: the OS-error mapping (the
one mapping site of the adapter), etags, name and root checks, and :class:`At`, which walks one
operation's path from the base's descriptor and maps its OS errors on leaving."""

from __future__ import annotations

import errno
import inspect
import os
import stat as statmod
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from storied.backends._local_fs import NAME_MAX, Walk
from storied.backends._local_io import ROOT_FLAGS
from storied.errors import (
    DirectoryNotEmptyError,
    InvalidPathError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
)

if TYPE_CHECKING:
    from storied.backends.local import LocalBackend

__all__ = [
    "At",
    "Held",
    "Holding",
    "arity", "check_name", "check_root", "etag", "expect_etag", "translate"]


def etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def translate(exc: OSError, path: str) -> StorageError:
    """The storied error for an OSError met on ``path`` (the one mapping site of this
    adapter)."""
    if isinstance(exc, FileNotFoundError):
        return StorageNotFoundError(f"No such file or directory: {path!r}")
    if isinstance(exc, FileExistsError):
        return StorageAlreadyExistsError(f"Already exists: {path!r}")
    if isinstance(exc, IsADirectoryError):
        return IsADirectoryStorageError(f"Is a directory: {path!r}")
    if isinstance(exc, NotADirectoryError):
        return NotADirectoryStorageError(f"Not a directory: {path!r}")
    if isinstance(exc, PermissionError):
        return StoragePermissionError(f"Permission denied: {path!r}")
    if exc.errno == errno.ENOTEMPTY:
        return DirectoryNotEmptyError(f"Directory not empty: {path!r}")
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidPathError(f"A name is too long for the filesystem: {path!r}")
    return StorageIOError(exc.errno, f"{exc.strerror}: {path!r}")


def check_name(name: str, path: str) -> None:
    # at most 4 bytes a character (one for a surrogate escape): a short name is short enough
    if len(name) > NAME_MAX // 4 and len(os.fsencode(name)) > NAME_MAX:
        raise InvalidPathError(f"A name is longer than {NAME_MAX} bytes: {path!r}")


def expect_etag(walk: Walk, name: str, path: str, expected: str) -> None:
    """Raise unless ``name`` (in ``walk.fd``, links inside the mount followed; the walk stays
    where it was) is a file whose etag is ``expected``.

    Raises:
        IsADirectoryStorageError: ``name`` is a directory.
        PreconditionFailedError: Its etag differs.
        OSError: FileNotFoundError and the like (the caller maps them).
    """
    mark = walk.mark()
    try:
        st = walk.stat(name)
    finally:
        walk.restore(mark)
    if statmod.S_ISDIR(st.st_mode):
        raise IsADirectoryStorageError(f"Is a directory: {path!r}")
    if etag(st) != expected:
        raise PreconditionFailedError(f"Etag mismatch on {path!r}")


class Held(threading.local):
    """Per thread: the directories kept inside :meth:`LocalBackend.holding` (None outside),
    ``{(root fd, parent path): fd}``, each reached by a walk that followed no link."""

    fds: dict[tuple[int, str], int] | None = None


class Holding:
    """The block of :meth:`LocalBackend.holding` (a class: entered on every versioned write)."""

    __slots__ = ("_fds", "_held")

    def __init__(self, held: Held | None) -> None:
        self._held = held
        self._fds: dict[tuple[int, str], int] | None = None

    def __enter__(self) -> None:
        held = self._held
        if held is not None and held.fds is None:  # the outermost block keeps and closes
            self._fds = held.fds = {}

    def __exit__(self, typ: object, exc: object, tb: object) -> None:
        fds = self._fds
        if fds is None:
            return
        self._fds = None
        self._held.fds = None  # type: ignore[union-attr]
        for fd in fds.values():
            os.close(fd)


class At:
    """The context of one operation: a walk from the base's descriptor (see
    :meth:`LocalBackend._walk`), closed and its OS errors mapped on leaving."""

    __slots__ = ("_backend", "_create", "_owned", "_stay", "_walk", "path")

    def __init__(self, backend: LocalBackend, path: str, create: bool, stay: bool) -> None:
        self.path = path
        self._backend, self._create, self._stay = backend, create, stay
        self._walk: Walk | None = None
        self._owned = -1

    def __enter__(self) -> tuple[Walk, str]:
        backend, path = self._backend, self.path
        try:
            root = backend._root
            if root is not None:
                rest, root_fd = path, root.fd()
                walk = self._walk = Walk(root_fd, root.path, path)
                held = backend._held.fds
            else:
                base, rest = backend._root_and_rest(path)
                root_fd = self._owned = os.open(base, ROOT_FLAGS)
                walk = self._walk = Walk(root_fd, base, path)
                held = None
            if self._stay:
                return walk, rest or "."
            head, _, name = rest.rpartition("/")
            if head:
                fd = held.get((root_fd, head)) if held is not None else None
                if fd is not None:
                    walk.stand(fd, head)
                else:
                    walk.enter(head, self._create)
                    if held is not None and not walk.followed:
                        kept = walk.detach()
                        if kept is not None:
                            held[(root_fd, head)] = kept
            return walk, walk.last(name)
        except BaseException as exc:
            self._close()
            if isinstance(exc, OSError) and not isinstance(exc, StorageError):
                raise translate(exc, path) from exc
            raise

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        self._close()
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise translate(exc, self.path) from exc

    def _close(self) -> None:
        if self._walk is not None:
            self._walk.close()
            self._walk = None
        if self._owned >= 0:
            os.close(self._owned)
            self._owned = -1


def arity(func: Callable[..., object]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def check_root(root: str) -> str:
    if not os.path.isabs(root):
        raise StorageConfigError(f"base_path must be absolute: {root!r}")
    if not os.path.exists(root):
        raise StorageNotFoundError(f"Base path does not exist: {root!r}")
    if not os.path.isdir(root):
        raise StorageConfigError(f"Base path is not a directory: {root!r}")
    return os.path.realpath(root)
