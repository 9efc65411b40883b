"""The local backend's descriptors and file helpers: the base directory's descriptor (cached,
re-checked), range readers, whole-buffer writes, link-safe removal and directory locks."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import io
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

from storied.errors import StorageNotFoundError

__all__ = [
    "RECHECK_SECONDS",
    "ROOT_FLAGS",
    "RangeReader",
    "Root",
    "create_exclusive",
    "dir_lock",
    "file_object",
    "fresh_root",
    "rename_noreplace",
    "replace_shared",
    "rmtree_at",
    "unlink_quietly",
    "write_all",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds between checks that a static base path still names the directory held open.
RECHECK_SECONDS = 1.0
#: Flags of a base directory's descriptor (``O_PATH``: search permission is enough).
ROOT_FLAGS = os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)


class Root:
    """The descriptor of a static base directory, shared by threads.

    A descriptor replaced by a newer one is never closed while the backend lives (another
    thread may be using it; closing could hand its number to an unrelated file): retired ones
    are closed when the backend is collected.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._ident: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._fds: list[int] = []
        weakref.finalize(self, _close_all, self._fds)

    def fd(self) -> int:
        """The descriptor, reopened when the path now names another directory."""
        if time.monotonic() - self._checked < RECHECK_SECONDS:
            return self._fd
        with self._lock:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) != self._ident:
                fd = os.open(self.path, ROOT_FLAGS)
                self._fds.append(fd)
                fst = os.fstat(fd)
                self._fd, self._ident = fd, (fst.st_dev, fst.st_ino)
            self._checked = time.monotonic()
        return self._fd

    def removed(self) -> bool:
        """True (and the next :meth:`fd` looks again) when the held directory was removed."""
        if self._fd < 0 or os.fstat(self._fd).st_nlink:
            return False
        self._checked = float("-inf")
        return True


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def fresh_root(method: F) -> F:
    """Run ``method`` again once when it failed because the static base was removed (and
    perhaps made again) since its descriptor was opened."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StorageNotFoundError:
            if self._root is None or not self._root.removed():
                raise
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class RangeReader(io.RawIOBase):
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


def file_object(fd: int, buffered: bool) -> BinaryIO:
    """A file object owning ``fd`` (closed if it cannot be made: a directory)."""
    try:
        return open(fd, "rb", buffering=-1 if buffered else 0)
    except BaseException:
        os.close(fd)
        raise


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    done = os.write(fd, data)
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if done >= size:  # the usual case: one call wrote it all
        return
    view = memoryview(data).cast("B")[done:]
    while view:
        view = view[os.write(fd, view) :]


def rmtree_at(name: str, dir_fd: int) -> None:
    """Remove directory ``name`` of ``dir_fd`` and its content, never following a link."""
    shutil.rmtree(name, dir_fd=dir_fd)


def create_exclusive(name: str, dir_fd: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    return os.open(name, flags, 0o666, dir_fd=dir_fd)


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    func.restype = ctypes.c_int
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return func


_RENAMEAT2 = _load_renameat2()
_RENAME_NOREPLACE = 1
#: renameat2 errors meaning "no RENAME_NOREPLACE here" (old kernel, filesystem, seccomp).
_NO_RENAMEAT2 = (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP)


def rename_noreplace(src: str, dst: str, dir_fd: int) -> None:
    """Rename ``src`` to ``dst`` (both in directory ``dir_fd``; a link: the link itself) only
    when nothing is at ``dst``: one ``renameat2(RENAME_NOREPLACE)`` where the system has it,
    else ``link`` + ``unlink`` (``dst`` then briefly has both names: never a half state).

    Raises:
        FileExistsError: something is at ``dst`` (``src`` is left as it was).
    """
    global _RENAMEAT2
    func = _RENAMEAT2
    if func is not None:
        if func(dir_fd, os.fsencode(src), dir_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in _NO_RENAMEAT2:
            raise OSError(err, os.strerror(err), dst)
        if err == errno.ENOSYS:
            _RENAMEAT2 = None
    os.link(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    os.unlink(src, dir_fd=dir_fd)


def unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


@contextmanager
def dir_lock(dir_fd: int, shared: bool = False) -> Iterator[None]:
    """The directory's ``flock``: exclusive for a compare-then-replace (conditional writes and
    deletes), shared for a plain replace, so that no plain replace by a storied process lands
    between a conditional one's compare and its rename (plain replaces still run together).
    A shared lock on a directory that cannot be opened for reading is skipped: no conditional
    writer can lock it either (it fails instead)."""
    try:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except PermissionError:
        if not shared:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_READ_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def replace_shared(src: str, dst: str, dir_fd: int) -> None:
    """``os.replace(src, dst)`` in directory ``dir_fd`` under its shared ``flock`` (what
    :func:`dir_lock` does with ``shared=True``, inlined: it is on every plain write)."""
    try:
        lock = os.open(".", _READ_DIR, dir_fd=dir_fd)
    except PermissionError:  # unreadable: no conditional writer can lock it either
        os.replace(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)
        os.replace(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(lock)
