"""Race-free resolution below a directory file descriptor: the local backend's confinement.

A path is resolved one name at a time, each name opened with ``O_NOFOLLOW`` relative to the
directory descriptor already held (``openat``), so the kernel never follows a symbolic link
and nothing is checked first and used later. A symbolic link met on the way is read
(``readlinkat``) and its target walked the same way: a target that stays inside the mount is
followed, one that leaves it (``..`` above the root, or an absolute target outside the mount's
real base path) is refused with :class:`~storied.errors.PathEscapeError`. Swapping a link while
a walk is under way changes nothing: the walk holds descriptors, not names.

Policy (ADR 0003): paths may pass through links that stay inside the mount; listings never
descend into a linked directory (a link is listed only when it names a file inside the mount);
deletes and renames act on a link itself, never on its target.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import shutil
import stat as statmod
import sys
from collections.abc import Callable, Iterator
from typing import Any

from storied.errors import PathEscapeError
from storied.paths import _is_reserved

__all__ = [
    "DIR_FLAGS",
    "MAX_LINKS",
    "NAME_MAX",
    "TMP_MARK",
    "Walk",
    "clear_dir",
    "entry_stat",
    "file_names",
    "is_link_error",
    "scan",
    "scans_held",
    "temp_name",
    "walk_files",
]

#: Marker in the names of in-flight temporary files; listings hide them.
TMP_MARK = ".storied-tmp-"

#: Flags of a directory opened to walk through: never follows a link; ``O_PATH`` (Linux) needs
#: only search permission and costs no read access.
DIR_FLAGS = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
#: Flags of a directory opened to be listed (readable, never through a link).
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Links followed in one resolution before it fails with ELOOP (Linux's own limit).
MAX_LINKS = 40
#: The longest file name, in bytes, most filesystems accept.
NAME_MAX = 255
#: Bytes of the original name kept in a temporary name (cosmetic: the name stays findable).
_TMP_PREFIX_BYTES = 64
#: openat2(2) errors that mean "not available here" (old kernel, seccomp, unknown flags).
_NO_OPENAT2 = (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_openat2() -> Callable[[int, str, int], int] | None:
    """Linux's ``openat2(RESOLVE_BENEATH)`` (syscall 437 on the architectures listed): opens
    a path below ``dir_fd`` in one call, the kernel following only links that stay below it;
    None where it cannot be used."""
    if sys.platform != "linux" or platform.machine() not in (
        "x86_64", "aarch64", "i686", "armv7l", "riscv64", "ppc64le", "s390x",
    ):
        return None
    try:  # a prototype of its own (cheaper to call than the library's attribute); syscall(2)
        # is variadic: every argument is passed as a long
        long = ctypes.c_long
        syscall = ctypes.CFUNCTYPE(long, long, long, ctypes.c_char_p, ctypes.c_void_p,
                                   ctypes.c_size_t, use_errno=True)(
            ("syscall", ctypes.CDLL(None, use_errno=True)))
    except (OSError, AttributeError):
        return None
    utf8 = sys.getfilesystemencoding() == "utf-8" and sys.getfilesystemencodeerrors() == (
        "surrogateescape"
    )
    # RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS: a path through a link
    # fails (ELOOP) and is walked name by name, where links into the history are refused
    resolve = 0x08 | 0x02 | 0x04
    size = ctypes.sizeof(_OpenHow)
    hows: dict[int, Any] = {}  # flags -> a constant open_how (never written once made)

    def openat2(dir_fd: int, path: str, flags: int) -> int:
        how = hows.get(flags)
        if how is None:
            how = hows.setdefault(flags, ctypes.byref(_OpenHow(flags | os.O_CLOEXEC, 0, resolve)))
        name = path.encode("utf-8", "surrogateescape") if utf8 else os.fsencode(path)
        fd = syscall(437, dir_fd, name, how, size)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(fd)

    return openat2


#: The fast path of :meth:`Walk.descend`; None: every name is opened one at a time. Set to
#: None (tests do) to use only the portable walk.
OPENAT2: Callable[[int, str, int], int] | None = _load_openat2()
_OPATH_DIR = os.O_DIRECTORY | getattr(os, "O_PATH", os.O_RDONLY)
#: Linux: list a directory through ``/proc/self/fd/N``, which names exactly the directory held
#: (``scandir(fd)`` costs four more system calls to duplicate and rewind the descriptor).
_PROC_FD = sys.platform == "linux" and os.path.isdir("/proc/self/fd")


def is_link_error(exc: OSError) -> bool:
    """True when an ``O_NOFOLLOW`` open failed because the name is a symbolic link
    (ELOOP on Linux, EMLINK on FreeBSD, ENOTDIR with ``O_DIRECTORY``): confirm by reading it."""
    return exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR)


def temp_name(name: str, suffix: str) -> str:
    """A temporary name for ``name`` ending with ``suffix``, never longer than NAME_MAX bytes.

    At most 64 bytes of ``name`` are kept, cut at a character boundary (a name is truncated by
    bytes, not characters: 80 CJK characters are 240 bytes).
    """
    if len(name) <= _TMP_PREFIX_BYTES and name.isascii():  # one byte a character
        return f".{name}{suffix}"
    head = os.fsencode(name)[:_TMP_PREFIX_BYTES].decode("utf-8", "ignore")
    return f".{head}{suffix}"


class Walk:
    """A chain of open directories from a mount root; :attr:`fd` is the current one.

    ``root_fd`` is borrowed (never closed here); every descriptor the walk opens is closed by
    :meth:`close`. Errors are raw ``OSError``\\ s (the caller maps them) except escapes, which
    are :class:`PathEscapeError`.
    """

    __slots__ = ("_chain", "_links", "_owned", "_path", "_root_path", "_shortcuts", "root_fd")

    def __init__(self, root_fd: int, root_path: str, path: str) -> None:
        self.root_fd = root_fd
        self._root_path = root_path
        self._path = path
        self._chain: list[int] = [root_fd]  # the directories from the root to the current one
        self._owned: list[int] = []  # every descriptor opened, closed by close()/restore()
        self._links = 0
        self._shortcuts: dict[int, str] = {}  # fd reached in one step -> the path it took

    @property
    def fd(self) -> int:
        """The directory the walk stands in."""
        return self._chain[-1]

    @property
    def followed(self) -> bool:
        """True once the walk has followed a symbolic link."""
        return self._links > 0

    def close(self) -> None:
        """Close every descriptor the walk opened (it stands at the root again)."""
        owned = self._owned
        while owned:
            os.close(owned.pop())
        self._chain = [self.root_fd]

    def mark(self) -> tuple[tuple[int, ...], int]:
        """A point to :meth:`restore` to (after a probe that walked further)."""
        return tuple(self._chain), len(self._owned)

    def restore(self, mark: tuple[tuple[int, ...], int]) -> None:
        """Go back to the directory of ``mark``, closing what was opened since."""
        chain, owned = mark
        self._chain = list(chain)
        while len(self._owned) > owned:
            os.close(self._owned.pop())

    def push(self, fd: int) -> None:
        """Stand in directory ``fd`` (opened by the caller inside the current one; the walk
        closes it)."""
        self._owned.append(fd)
        self._chain.append(fd)

    def stand(self, fd: int, path: str) -> None:
        """Stand in directory ``fd``, borrowed (never closed here), reached earlier from the
        root through ``path`` by a walk of its own (``..`` below it walks ``path`` again,
        as after a shortcut). The walk must stand at the root."""
        self._chain.append(fd)
        self._shortcuts[fd] = path

    def enter(self, head: str, create: bool = False) -> None:
        """:meth:`descend` through the directories of relative path ``head`` (``a/b``): one
        ``openat2`` first when it holds several names and the walk stands at the root."""
        if "/" in head and len(self._chain) == 1 and not self._links:
            if self._shortcut(head):
                return
            self.descend(head.split("/"), create, tried=True)
            return
        self.descend(head.split("/"), create)

    def detach(self) -> int | None:
        """Hand the directory the walk stands in over to the caller, who closes it (the walk
        stays in it until closed); None when the walk did not open it (the root)."""
        fd = self.fd
        if fd not in self._owned:
            return None
        self._owned.remove(fd)
        return fd

    def descend(self, names: list[str], create: bool = False, tried: bool = False) -> None:
        """Walk through directories ``names`` (``.``/``..``/links resolved, never by the kernel).

        Args:
            names: Path segments, relative to the current directory.
            create: Create missing directories (``mkdir -p``); what appears meanwhile at a name
                is opened without following, like anything else.
            tried: The one-call shortcut of all of ``names`` failed already (:meth:`enter`).

        Raises:
            PathEscapeError: A link or ``..`` leads outside the mount.
            OSError: ENOENT, ENOTDIR (a file on the way), ELOOP (too many links), EACCES...
        """
        if len(names) > 1 and len(self._chain) == 1 and not self._links:  # after a link:
            if not tried and self._shortcut("/".join(names)):  # name by name (a target's
                return  # ".." could reach .storied)
            if create and len(names) > 2 and self._shortcut("/".join(names[:-1])):
                names = names[-1:]  # a new directory in an existing one (blob fan-out)
        pending = list(reversed(names))
        retries = 8  # a directory removed as fast as it is made: give up, do not spin
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                self._up()
                continue
            self._guard(name)
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
            except FileNotFoundError:
                if not create or not retries:
                    raise
                retries -= 1
                try:
                    os.mkdir(name, 0o777, dir_fd=self.fd)
                except FileExistsError:
                    pass
                pending.append(name)
                continue
            except NotADirectoryError as exc:
                parts = self._link_parts(name, exc)
                if parts is not None:
                    pending.extend(reversed(parts))
                continue
            self.push(fd)

    def follow(self, name: str, exc: OSError | None) -> str | None:
        """``name`` (in :attr:`fd`) failed a no-follow open with ``exc``: when it is a link,
        walk to its target's directory and return the target's name there (``'.'`` when the
        target is a directory reached by ``..``/``.``); otherwise re-raise ``exc`` (with
        ``exc=None``: return None, the caller looks again)."""
        parts = self._link_parts(name, exc)
        if parts is None:
            return None
        while len(parts) > 1 and parts[-1] in ("", "."):
            parts.pop()
        if not parts or parts[-1] in ("", ".", ".."):
            self.descend(parts)
            return "."
        self.descend(parts[:-1])
        return parts[-1]

    def open_beneath(self, path: str, flags: int) -> int:
        """``open`` ``path`` (several names) below the root, following links inside the mount:
        one ``openat2`` where the kernel has it, else a walk to its directory and :meth:`open`.
        The walk must stand at the root."""
        fd = self._openat2(path, flags)
        if fd is not None:
            return fd
        head, _, name = path.rpartition("/")
        if head:
            self.descend(head.split("/"))
        return self.open(self.last(name), flags)

    def open_listing_beneath(self, path: str) -> bool:
        """:meth:`open_listing` of ``path`` (several names) below the root: one ``openat2``
        where the kernel has it (a link as the last name fails it, and the walk decides)."""
        fd = self._openat2(path, _LIST_FLAGS) if path != "." else None
        if fd is not None:
            self.push(fd)
            return True
        head, _, name = path.rpartition("/")
        if head:
            self.descend(head.split("/"))
        return self.open_listing(self.last(name))

    def last(self, name: str) -> str:
        """The name to act on for a path's last name ``name``: ``'.'`` for an empty one, and a
        final ``..`` is walked up like any other (a :class:`PathEscapeError` above the root:
        never the base's parent) and becomes ``'.'``."""
        if name == "..":
            self.descend([".."])
            return "."
        return name or "."

    def open_listing(self, name: str) -> bool:
        """Stand in directory ``name`` to list it; False (and nothing to list) when ``name``
        is a link to a directory: a listing never enters one, even when asked by its name.

        Raises:
            NotADirectoryError: ``name`` is a file, or a link to one.
        """
        try:
            fd = os.open(name, _LIST_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if not is_link_error(exc):
                raise
            if statmod.S_ISDIR(self.stat(name).st_mode):
                return False
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory") from None
        self.push(fd)
        return True

    def stat(self, name: str) -> os.stat_result:
        """``stat`` of ``name`` in :attr:`fd`, following links that stay inside the mount
        (the walk ends in the directory of the final target)."""
        while True:
            self._guard(name)
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if not statmod.S_ISLNK(st.st_mode):
                return st
            name = self.follow(name, None) or name

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        """``open`` ``name`` in :attr:`fd` with ``flags``, following links inside the mount."""
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            self._guard(name)
            try:
                return os.open(name, flags, mode, dir_fd=self.fd)
            except OSError as exc:
                if not is_link_error(exc) or (
                    exc.errno == errno.ENOTDIR and not flags & os.O_DIRECTORY
                ):
                    raise
                name = self.follow(name, exc) or name

    # ------------------------------------------------------------------ internals
    def _guard(self, name: str) -> None:
        """Refuse to enter the mount's reserved history folder (``.storied`` at the root)
        after following a link: only a path naming it reaches it (ADR 0003), never an alias
        that would let a write replace blobs or records behind the history's back."""
        if self._links and len(self._chain) == 1 and _is_reserved(name):
            raise PathEscapeError(f"Path leads into the reserved history area: {self._path!r}")

    def _shortcut(self, path: str) -> bool:
        """Open directory ``path`` (several names) below the root in one
        ``openat2(RESOLVE_BENEATH)``: the kernel then follows only links that stay below the
        root, atomically. Any failure (a link leaving, an absolute link, a missing directory,
        a rename race) says nothing: the caller walks name by name and decides."""
        fd = self._openat2(path, _OPATH_DIR)
        if fd is None:
            return False
        self.push(fd)
        self._shortcuts[fd] = path
        return True

    def _openat2(self, path: str, flags: int) -> int | None:
        global OPENAT2
        openat2 = OPENAT2  # ".." and links in path are the kernel's to check (BENEATH)
        if openat2 is None:
            return None
        try:
            return openat2(self.fd, path, flags)
        except OSError as exc:
            if exc.errno in _NO_OPENAT2:
                OPENAT2 = None
            return None

    def _up(self) -> None:
        path = self._shortcuts.get(self.fd)
        if path is not None:  # the chain of a shortcut is not known: walk it to go up
            self._chain.pop()
            for name in path.split("/"):  # one at a time: never a shortcut again
                self.descend([name])
        if len(self._chain) == 1:
            raise PathEscapeError(f"Path escapes base directory: {self._path!r}")
        self._chain.pop()  # still open: a mark taken below may come back to it

    def _link_parts(self, name: str, exc: OSError | None) -> list[str] | None:
        """The segments of link ``name``'s target, the walk moved to where they start.
        When ``name`` is not a link: ``exc`` is raised (None: None is returned)."""
        try:
            target = os.readlink(name, dir_fd=self.fd)
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
            if exc is None:  # replaced by a plain entry meanwhile: look again
                return None
            raise exc from None  # not a link: the original failure stands
        self._links += 1
        if self._links > MAX_LINKS:
            raise OSError(errno.ELOOP, "Too many levels of symbolic links")
        parts = target.split("/")
        if not target.startswith("/"):
            return parts
        parts = [p for p in parts if p not in ("", ".")]
        root_parts = [p for p in self._root_path.split("/") if p]
        depth = len(root_parts)
        if parts[:depth] != root_parts:
            raise PathEscapeError(f"Path escapes base directory: {self._path!r}")
        self._chain = [self.root_fd]  # absolute: start again from the root
        return parts[depth:]


def scan(fd: int) -> list[os.DirEntry[str]]:
    """The entries of open directory ``fd`` but temporary files (read at once; ``fd`` stays
    open). Names are the OS's bytes decoded as Python does (UTF-8, undecodable bytes as
    surrogate escapes, PEP 383), so a name that is not UTF-8 is listed and reaches the same
    file again on this mount. ``stat()`` the entries while ``fd`` is still open (on Linux they
    are reached through ``/proc/self/fd/<fd>``)."""
    if _PROC_FD:
        try:  # the directory itself, by its descriptor's magic link: no dup/fcntl/lseek
            with os.scandir(f"/proc/self/fd/{fd}") as entries:
                return [e for e in entries if TMP_MARK not in e.name]
        except OSError:
            pass
    with os.scandir(fd) as entries:
        return [e for e in entries if TMP_MARK not in e.name]


def scans_held() -> bool:
    """True when :func:`scan` can list a directory held by a walk's descriptor (``O_PATH``
    ones: only through /proc)."""
    return _PROC_FD or not getattr(os, "O_PATH", 0)


def file_names(walk: Walk) -> list[str]:
    """The names of the files in the directory ``walk`` stands in (opened to list), but
    temporary files: entries that are not directories (by the listing's own type, no
    ``stat``), and links only when :func:`entry_stat` lists them as files. One pass."""
    names: list[str] = []
    links: list[os.DirEntry[str]] = []
    path: str | int = f"/proc/self/fd/{walk.fd}" if _PROC_FD else walk.fd
    try:
        entries = os.scandir(path)
    except OSError:
        if path == walk.fd:
            raise
        entries = os.scandir(walk.fd)
    with entries:
        for entry in entries:
            if TMP_MARK in entry.name:
                continue
            if entry.is_symlink():
                links.append(entry)
            elif not entry.is_dir(follow_symlinks=False):
                names.append(entry.name)
        for entry in links:  # stat while the directory is still open
            if entry_stat(walk, entry) is not None:  # a link listed is a file
                names.append(entry.name)
    return names


def entry_stat(walk: Walk, entry: os.DirEntry[str]) -> os.stat_result | None:
    """The ``stat`` a listing shows for ``entry`` of the directory ``walk`` stands in, or None
    when the entry is not listed: it vanished, or it is a link that does not name a file inside
    the mount (a linked directory, a dangling link, a link leading outside or looping)."""
    if not entry.is_symlink():
        try:
            return entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
    mark = walk.mark()
    try:
        st = walk.stat(entry.name)
    except OSError:  # PathEscapeError is one too
        return None
    finally:
        walk.restore(mark)
    return None if statmod.S_ISDIR(st.st_mode) else st


def walk_files(walk: Walk, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, stat)`` of every file below the directory ``walk`` stands in (``prefix`` is
    that directory's path plus ``/``). Real subdirectories are entered by descriptor, never
    through a link: a linked directory is not entered, a directory swapped for a link
    meanwhile is skipped."""
    for entry in scan(walk.fd):
        path = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            try:
                fd = os.open(entry.name, _LIST_FLAGS, dir_fd=walk.fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # removed or replaced while walking
                raise
            mark = walk.mark()
            walk.push(fd)
            try:
                yield from walk_files(walk, path + "/")
            finally:
                walk.restore(mark)
            continue
        st = entry_stat(walk, entry)
        if st is not None:
            yield path, st


def clear_dir(fd: int) -> None:
    """Remove everything inside the open directory ``fd`` (kept itself), never following a
    link: a link is removed, not its target (``shutil.rmtree`` with ``dir_fd`` opens each
    directory without following and checks it is the one it listed)."""
    with os.scandir(fd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        if is_dir:
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
