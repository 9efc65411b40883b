"""The local backend's file creation: named temporary files, empty files and unnamed files
(``O_TMPFILE``), each written whole before any name shows it."""

from __future__ import annotations

import errno
import itertools
import os
import sys
from typing import TYPE_CHECKING

from storied.backends._local_fs import TMP_MARK, Walk, temp_name
from storied.backends._local_io import (
    create_exclusive,
    dir_lock,
    replace_shared,
    unlink_quietly,
    write_all,
)
from storied.backends._local_ops import check_name
from storied.backends._local_ops import etag as stat_etag
from storied.backends.base import CHUNK
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
)
from storied.info import Data, WriteMode

if TYPE_CHECKING:
    from storied.backends.local import LocalBackend

__all__ = [
    "PROC_REFUSED",
    "TMPFILE",
    "anonymous",
    "commit",
    "create_unnamed",
    "link_both",
    "temp_suffix",
    "write_empty",
    "write_temp",
]

_COUNTER = itertools.count()
_PID = [os.getpid()]  # getpid() is a system call: asked again only in a forked child
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))
#: True where unnamed files can be made and linked (Linux ``O_TMPFILE`` and ``/proc``).
TMPFILE = (
    bool(getattr(os, "O_TMPFILE", 0)) and sys.platform == "linux"
    and os.path.isdir("/proc/self/fd")
)
_TMPFILE_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
#: Errors of a link from ``/proc/self/fd`` meaning "not allowed here" (sandboxes, LSMs).
PROC_REFUSED = (errno.EPERM, errno.EACCES, errno.EXDEV)
#: O_TMPFILE errors meaning "not on this filesystem/kernel" (old kernels: EISDIR).
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def temp_suffix() -> str:
    """A suffix making a temporary name unique to this process and call (listings hide it)."""
    return f"{TMP_MARK}{_PID[0]}-{next(_COUNTER)}"


def write_empty(dir_fd: int, name: str, mode: WriteMode) -> os.stat_result | None:
    """An empty file appears atomically: no temporary file is needed. None when ``name``
    is a link (an overwrite replaces the link itself, through a temporary file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_EXCL if mode is WriteMode.CREATE else os.O_TRUNC
    try:
        fd = os.open(name, flags, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            return None
        raise
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def write_temp(dir_fd: int, name: str, data: Data, fsync: bool) -> tuple[str, os.stat_result]:
    """Write ``data`` to a new temporary file beside ``name``; return its name and stat."""
    suffix = f"{TMP_MARK}{_PID[0]}-{next(_COUNTER)}"
    tmp = temp_name(name, suffix)
    try:
        fd = create_exclusive(tmp, dir_fd)
    except FileExistsError:  # a crashed process with a recycled pid left this name
        tmp = temp_name(name, suffix + "-" + os.urandom(6).hex())
        fd = create_exclusive(tmp, dir_fd)
    try:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                write_all(fd, data)
            else:
                while chunk := data.read(CHUNK):
                    write_all(fd, chunk)
            if fsync:
                os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_quietly(tmp, dir_fd)
        raise
    return tmp, st


def anonymous(dir_fd: int, data: bytes, fsync: bool) -> int:
    """An open file holding ``data`` with no name yet in directory ``dir_fd``
    (``O_TMPFILE``), to be linked through ``/proc/self/fd/<fd>``; -1 when this filesystem
    cannot make one. A crash leaves nothing behind, and it costs two system calls fewer than
    a named temporary file (no ``unlink``, no ``fstat``).

    Raises:
        OSError: The directory refuses a new file (ENOENT, EACCES, ENOSPC...).
    """
    try:
        fd = os.open(".", _TMPFILE_FLAGS, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in _NO_TMPFILE:
            raise
        return -1
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_unnamed(
    dir_fd: int, name: str, path: str, data: bytes, fsync: bool, stat: bool = True
) -> os.stat_result | bool:
    """Create-only ``name`` (in ``dir_fd``) as one link to an unnamed file holding ``data``:
    nothing to remove afterwards, nothing left by a crash. Returns the file's stat (with
    ``stat=False``: True, and no ``fstat`` is made); False where that cannot be done (no
    ``O_TMPFILE`` on this filesystem, or links from /proc refused).

    Raises:
        StorageAlreadyExistsError: something is at ``name`` (``path`` on the mount).
    """
    fd = anonymous(dir_fd, data, fsync)
    if fd < 0:
        return False
    try:
        st = os.fstat(fd) if stat else True
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd)  # follows the magic link
    except FileExistsError:
        raise StorageAlreadyExistsError(f"Already exists: {path!r}") from None
    except OSError as exc:
        if exc.errno not in PROC_REFUSED:
            raise
        return False
    finally:
        os.close(fd)
    return st


def link_both(
    backend: LocalBackend, walk: Walk, name: str, link: str,
    source: tuple[str, int | None, bool],
) -> bool:
    """For :meth:`LocalBackend.create_linked`: link ``source`` (``(name, its dir_fd,
    follow)``) as ``name`` (in ``walk.fd``) create-only, then ``link`` to what is at
    ``name``; True when ``name`` was created.

    Raises:
        StorageAlreadyExistsError: something is at ``link``.
    """
    src, src_fd, follow = source
    try:
        os.link(src, name, src_dir_fd=src_fd, dst_dir_fd=walk.fd, follow_symlinks=follow)
        created = True
    except FileExistsError:
        created = False
    try:
        with backend._walk(link, create=True) as (lw, lname):
            check_name(lname, link)
            try:  # the name just made (a plain name: no /proc lookup), or the existing one
                os.link(name, lname, src_dir_fd=walk.fd, dst_dir_fd=lw.fd,
                        follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile (gc of an unreferenced blob)
                if not created:
                    raise
                os.link(src, lname, src_dir_fd=src_fd, dst_dir_fd=lw.fd, follow_symlinks=follow)
    except FileExistsError:
        raise StorageAlreadyExistsError(f"Already exists: {link!r}") from None
    return created


def commit(walk: Walk, tmp: str, name: str, path: str, mode: WriteMode,
           etag: str | None) -> None:
    """Put temporary file ``tmp`` at ``name`` in ``walk``'s directory: replaced (under the
    directory's shared ``flock``), created (a link: fails if something is there), or replaced
    only while the current file's etag is ``etag`` (under the exclusive ``flock``; ADR 0031).

    Raises:
        StorageAlreadyExistsError: ``mode`` is CREATE and ``name`` exists.
        StorageNotFoundError: ``mode`` is IF_MATCH and nothing is at ``name``.
        PreconditionFailedError: ``mode`` is IF_MATCH and the etag differs.
    """
    fd = walk.fd
    if mode is WriteMode.OVERWRITE:
        replace_shared(tmp, name, fd)  # never inside a conditional write's compare
    elif mode is WriteMode.CREATE:
        try:
            os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            raise StorageAlreadyExistsError(f"Already exists: {path!r}") from None
    else:
        with dir_lock(fd):
            mark = walk.mark()
            try:
                current = stat_etag(walk.stat(name))
            except FileNotFoundError:
                raise StorageNotFoundError(f"No such file: {path!r}") from None
            finally:
                walk.restore(mark)
            if current != etag:
                raise PreconditionFailedError(f"Etag mismatch on {path!r}")
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
