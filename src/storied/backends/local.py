"""Local filesystem backend: plain OS calls, atomic writes, race-free symlink confinement.

Writes go to a temporary file in the destination's directory and are renamed into place, so a
reader (or a crash) never sees a partial file. Create-only writes use ``link()`` (atomic, fails if
the target exists); replace-if-etag-matches holds an exclusive ``flock`` on the parent directory
while it compares and renames, and every plain replace (overwrite, rename onto a name, a file's
delete) holds it shared, so no replace by a storied process lands between that compare and that
rename (a process that writes the directory without storied is not held back; ADR 0031).

Confinement (ADR 0003): every path is resolved from a descriptor of the base directory one name
at a time with ``O_NOFOLLOW`` (``openat``-style ``dir_fd=`` calls, see
:mod:`storied.backends._local_fs`), so there is no window between a check and a use for a
swapped symlink to exploit. Links that stay inside the mount are followed; one leading outside is
a :class:`~storied.errors.PathEscapeError`; more than 40 links in one resolution (a loop) is a
:class:`~storied.errors.StorageIOError` with errno ELOOP; a name over 255 bytes is an
:class:`~storied.errors.InvalidPathError`. Listings never enter a linked directory, and a link is
listed only when it names a file inside the mount (listing a link to a directory by its own name
gives nothing); deletes, renames and overwrites act on a link itself, never on its target. Names
that are not UTF-8 on disk are listed surrogate-escaped (PEP 383) and reach the same file again
on this mount.

The base directory can be a callable: with no parameter it is called on every access (a per-user
folder); with one parameter ("switched" mount) it receives the path's first segment and returns
that segment's base directory, and the rest of the path is resolved under it. A static base's
descriptor is opened once and re-checked against its path at most once a second (and at once
when an operation finds it removed); a callable base is opened on each call.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import stat as statmod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

from storied.backends._local_fs import (
    TMP_MARK,
    Walk,
    clear_dir,
    entry_stat,
    file_names,
    scan,
    scans_held,
    temp_name,
    walk_files,
)
from storied.backends._local_io import (
    RangeReader,
    Root,
    dir_lock,
    file_object,
    fresh_root,
    rename_noreplace,
    rmtree_at,
    unlink_quietly,
)
from storied.backends._local_ops import (
    At,
    Held,
    Holding,
    arity,
    check_name,
    check_root,
    expect_etag,
)
from storied.backends._local_ops import etag as _etag
from storied.backends._local_write import (
    PROC_REFUSED,
    TMPFILE,
    anonymous,
    commit,
    create_unnamed,
    link_both,
    temp_suffix,
    write_empty,
    write_temp,
)
from storied.backends.base import CHUNK, Backend
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PathEscapeError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import Data, Info, WriteMode, check_range

__all__ = ["TMP_MARK", "LocalBackend"]

BasePath = str | os.PathLike[str] | Callable[..., str | os.PathLike[str]]



class LocalBackend(Backend):
    """A directory of the local filesystem.

    Args:
        base_path: An absolute existing directory, or a callable returning one (see module doc).
        base_url: Optional public URL prefix; ``url()`` returns ``base_url + '/' + path``.
        fsync: Flush file contents to disk before the rename (durable across power loss; slower).
    """

    base_url: str | None

    protocol = "local"
    capabilities: Capabilities = Capabilities(
        conditional_write=True,
        copy_optimization=True,
        symbolic_links=True,
        atomic_rename=True,
        hard_links=True,
    )

    def __init__(self, base_path: BasePath, base_url: str | None = None, fsync: bool = False):
        self._base = base_path
        self._switched = callable(base_path) and arity(base_path) >= 1
        self.base_url = base_url.rstrip("/") if base_url else None
        self._fsync = fsync
        self._tmpfile = TMPFILE
        self._static_root: str | None = None
        self._root: Root | None = None
        if not callable(base_path):
            self._static_root = check_root(os.fspath(base_path))
            self._root = Root(self._static_root)
        self._held = Held()

    def holding(self) -> AbstractContextManager[None]:
        """Within the block, this thread's operations walk to each parent directory once.

        The first operation on a name in a directory walks to it as always (race-free, ADR
        0003) and keeps that directory's descriptor when the walk followed no link; later
        operations in the same directory (listings of it too) use it instead of walking
        again, and every kept descriptor is closed when the block ends. Meant for the few
        operations of one versioned write: names are never resolved twice, so a directory
        renamed meanwhile is still the one the block works in (exactly as inside one
        operation). Re-entrant; does nothing on switched mounts.
        """
        return Holding(self._held if self._root is not None else None)

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

    def _walk(self, path: str, *, create: bool = False, stay: bool = False) -> At:
        """Stand in the directory holding ``path``'s last name: ``with`` it gives the walk and
        that name (``'.'`` for the root); every OS error inside the block is mapped for
        ``path``.

        Args:
            create: Create missing parent directories.
            stay: Stay at the root and give the whole path below it (for
                :meth:`Walk.open_beneath`).
        """
        return At(self, path, create, stay)

    # ---------------------------------------------------------------- contract
    @fresh_root
    def info(self, path: str) -> Info:
        with self._walk(path) as (walk, name):
            st = walk.stat(name)
        if statmod.S_ISDIR(st.st_mode):
            return Info(path, True, 0, st.st_mtime)
        return Info(path, False, st.st_size, st.st_mtime, _etag(st))

    def exists(self, path: str) -> bool:
        """True when something is at ``path``; False too below a file (``a.txt/b``: nothing
        can be there), where :meth:`info` says which parent is a file."""
        try:
            self.info(path)
        except (StorageNotFoundError, NotADirectoryStorageError):
            return False
        return True

    @fresh_root
    def list(self, path: str) -> Iterator[Info]:
        prefix = path + "/" if path else ""
        out: list[Info] = []
        with self._walk(path, stay=True) as (walk, rest):
            for entry in scan(walk.fd) if walk.open_listing_beneath(rest) else ():
                st = entry_stat(walk, entry)
                if st is None:
                    continue
                if statmod.S_ISDIR(st.st_mode):
                    out.append(Info(prefix + entry.name, True, 0, st.st_mtime))
                else:
                    out.append(
                        Info(prefix + entry.name, False, st.st_size, st.st_mtime, _etag(st))
                    )
        return iter(out)

    @fresh_root
    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        with self._walk(path, stay=True) as (walk, rest):
            for entry in scan(walk.fd) if self._open_listing(walk, rest) else ():
                if start_after is not None and entry.name <= start_after:
                    continue
                if entry.is_symlink():
                    if entry_stat(walk, entry) is not None:  # a link listed is a file
                        out.append((entry.name, False))
                    continue
                out.append((entry.name, entry.is_dir(follow_symlinks=False)))
        return iter(out)

    @fresh_root
    def list_file_names(self, path: str) -> builtins.list[str]:
        """The names of the files directly in directory ``path``, unsorted: what
        :meth:`list_names` lists as files (links only when they name a file inside the
        mount), without building a pair per entry (a history directory holds thousands).

        Raises:
            StorageNotFoundError: ``path`` does not exist.
            NotADirectoryStorageError: ``path`` is a file.
        """
        with self._walk(path, stay=True) as (walk, rest):
            if not self._open_listing(walk, rest):
                return []
            return file_names(walk)

    def _open_listing(self, walk: Walk, rest: str) -> bool:
        """:meth:`Walk.open_listing_beneath`, or stand in directory ``rest`` when this
        thread's :meth:`holding` block holds it (reached without a link; listed through
        ``/proc/self/fd``, which reopens exactly the directory held)."""
        held = self._held.fds if self._root is not None else None
        fd = held.get((walk.root_fd, rest)) if held is not None and scans_held() else None
        if fd is None:
            return walk.open_listing_beneath(rest)
        walk.stand(fd, rest)
        return True

    @fresh_root
    def through_link(self, path: str) -> bool:
        """True when ``path``'s parent directory is reached through a symbolic link (inside
        the mount: others are refused anyway); a link as the last name does not count (writes
        and deletes act on the link itself). False when the parent does not exist."""
        if "/" not in path:
            return False
        try:
            with self._walk(path) as (walk, _):
                return walk.followed
        except (StorageNotFoundError, NotADirectoryStorageError):
            return False

    @fresh_root
    def dir_stamp(self, path: str) -> tuple[int, int, int, int] | None:
        """``(st_mtime_ns, st_ctime_ns, st_ino, st_dev)`` of directory ``path``, or None when
        ``path`` is not a directory. Adding, removing or renaming an entry changes the
        directory's ctime, which ``utime`` cannot set back (``rsync -a`` restores an mtime,
        never a ctime); the inode tells a directory replaced by another.

        Raises:
            StorageNotFoundError: ``path`` does not exist.
        """
        with self._walk(path) as (walk, name):
            st = walk.stat(name)
        if not statmod.S_ISDIR(st.st_mode):
            return None
        return st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev

    def walk(self, path: str) -> Iterator[Info]:
        """Every file below ``path``; linked directories are never entered (module doc)."""
        prefix = path + "/" if path else ""
        with self._walk(path, stay=True) as (walk, rest):
            if not walk.open_listing_beneath(rest):
                return
            for rel, st in walk_files(walk, prefix):
                yield Info(rel, False, st.st_size, st.st_mtime, _etag(st))

    @fresh_root
    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Raises InvalidArgumentError for a ``start`` that is not an integer >= 0 or an
        ``end`` that is not an integer or None (checked before anything is opened)."""
        check_range(start, end)
        with self._walk(path, stay=True) as (walk, rest):
            f = file_object(walk.open_beneath(rest, os.O_RDONLY), buffered=True)
        if start:
            f.seek(start)
        if end is None:
            return f
        return io.BufferedReader(RangeReader(f, max(0, end - start)))

    @fresh_root
    def read_bytes(self, path: str) -> bytes:
        with self._walk(path, stay=True) as (walk, rest):
            fd = walk.open_beneath(rest, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                if statmod.S_ISDIR(st.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "Is a directory")
                chunks = [os.read(fd, st.st_size + 1)]
                if len(chunks[0]) > st.st_size:  # it grew since the fstat: read to the end
                    while chunk := os.read(fd, CHUNK):
                        chunks.append(chunk)
            finally:
                os.close(fd)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @fresh_root
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
        with self._walk(path, create=True) as (walk, name):
            check_name(name, path)
            empty = isinstance(data, (bytes, bytearray, memoryview)) and not len(data)
            if empty and mode is WriteMode.CREATE:
                st = write_empty(walk.fd, name, mode)
                if st is not None:
                    return Info(path, False, 0, st.st_mtime, _etag(st))
            if mode is WriteMode.CREATE and self._tmpfile and isinstance(data, bytes):
                made = create_unnamed(walk.fd, name, path, data, self._fsync)
                self._tmpfile = made is not False  # False: not here (named files from now)
                if isinstance(made, os.stat_result):
                    return Info(path, False, made.st_size, made.st_mtime, _etag(made))
            tmp, st = write_temp(walk.fd, name, data, self._fsync)
            try:
                commit(walk, tmp, name, path, mode, etag)
            except BaseException:
                unlink_quietly(tmp, walk.fd)
                raise
            if mode is WriteMode.CREATE:
                os.unlink(tmp, dir_fd=walk.fd)
        return Info(path, False, st.st_size, st.st_mtime, _etag(st))

    @fresh_root
    def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete ``path``; a link is removed itself, never its target. Deleting the root
        empties the base directory, which stays (it is the mount's configuration); emptying
        the filesystem's own root (a mount of ``/``) is refused (``rm --preserve-root``).

        Raises:
            StoragePermissionError: a recursive delete would empty ``/``.
        """
        with self._walk(path) as (walk, name):
            if name == ".":
                fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=walk.fd)
                try:
                    if recursive:
                        st, top = os.fstat(fd), os.stat("/")
                        if (st.st_dev, st.st_ino) == (top.st_dev, top.st_ino):
                            raise StoragePermissionError(
                                f"Refusing to empty the filesystem root: {path!r}")
                        clear_dir(fd)
                    elif scan(fd):
                        raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
                finally:
                    os.close(fd)
                return
            st = os.stat(name, dir_fd=walk.fd, follow_symlinks=False)
            if not statmod.S_ISDIR(st.st_mode):
                with dir_lock(walk.fd, shared=True):  # never inside a conditional write
                    os.unlink(name, dir_fd=walk.fd)
            elif recursive:
                rmtree_at(name, walk.fd)
            else:
                os.rmdir(name, dir_fd=walk.fd)

    @fresh_root
    def delete_if_match(self, path: str, etag: str) -> None:
        """Delete the file at ``path`` (a link: the link itself, its target's etag compared)
        only while its etag is ``etag``. Under the directory's ``flock`` (serialised with
        replace-if-etag-matches writes), a matching file is renamed to a hidden temporary name
        (the atomic capture: a file written at ``path`` after it stays), checked again there
        and removed; one replaced between the check and the capture is put back with a
        no-replace rename (a file written at ``path`` meanwhile wins) and the call fails.

        Raises:
            StorageNotFoundError: Nothing is at ``path``.
            IsADirectoryStorageError: ``path`` is a directory.
            PreconditionFailedError: The file's etag differs.
        """
        with self._walk(path) as (walk, name):
            if name == ".":
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            with dir_lock(walk.fd):
                expect_etag(walk, name, path, etag)
                tmp = temp_name(name, temp_suffix() + "-d")
                os.rename(name, tmp, src_dir_fd=walk.fd, dst_dir_fd=walk.fd)
                try:
                    expect_etag(walk, tmp, path, etag)
                except BaseException:  # replaced meanwhile (or failing): put it back
                    try:
                        rename_noreplace(tmp, name, walk.fd)
                    except FileExistsError:  # written meanwhile: the newer file stays
                        unlink_quietly(tmp, walk.fd)
                    except FileNotFoundError:
                        pass
                    raise
                os.unlink(tmp, dir_fd=walk.fd)

    @fresh_root
    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        with self._walk(path, create=parents) as (walk, name):
            check_name(name, path)
            try:
                os.mkdir(name, 0o777, dir_fd=walk.fd)
            except FileExistsError:
                is_dir = statmod.S_ISDIR(walk.stat(name).st_mode)
                if not is_dir and parents:
                    raise StorageAlreadyExistsError(f"A file exists at {path!r}") from None
                if not (exist_ok and is_dir):
                    raise

    # ---------------------------------------------------------------- faster derived ops
    def copy(self, src: str, dst: str) -> Info:
        with self.open_read(src) as stream:
            return self.write(dst, stream)

    @fresh_root
    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` (a link: the link itself) to ``dst``, creating ``dst``'s parents."""
        with self._walk(src) as (sw, sname):
            head, _, dname = dst.rpartition("/")
            if head == src.rpartition("/")[0] and sname != "." and dname not in ("", ".", ".."):
                check_name(dname, dst)  # the same directory: walked once
                with dir_lock(sw.fd, shared=True):
                    os.replace(sname, dname, src_dir_fd=sw.fd, dst_dir_fd=sw.fd)
                return
            try:  # dst's parents exist (the common case): one rename, nothing created
                with self._walk(dst) as (dw, dname):
                    check_name(dname, dst)
                    with dir_lock(dw.fd, shared=True):
                        os.replace(sname, dname, src_dir_fd=sw.fd, dst_dir_fd=dw.fd)
                    return
            except StorageNotFoundError:  # src is gone (raised here), or dst's parents are
                os.stat(sname, dir_fd=sw.fd, follow_symlinks=False)
            with self._walk(dst, create=True) as (dw, dname):
                check_name(dname, dst)
                with dir_lock(dw.fd, shared=True):
                    os.replace(sname, dname, src_dir_fd=sw.fd, dst_dir_fd=dw.fd)

    @fresh_root
    def link(self, src: str, dst: str) -> None:
        with self._walk(src) as (sw, sname), self._walk(dst, create=True) as (dw, dname):
            check_name(dname, dst)
            os.link(sname, dname, src_dir_fd=sw.fd, dst_dir_fd=dw.fd, follow_symlinks=False)

    @fresh_root
    def create_linked(self, path: str, data: bytes, link: str) -> bool:
        """Create ``path`` holding ``data`` create-only, then give it the second name ``link``
        (creating ``link``'s parents); when ``path`` exists already, only the link is made.
        True when ``path`` was created. Like ``write(path, data, mode=CREATE)`` followed by
        ``link(path, link)``, in the same order (``path`` exists before ``link``), in one call
        that walks to ``path``'s directory once: the file is written without a name
        (``O_TMPFILE``, see :func:`storied.backends._local_write.anonymous`; elsewhere a
        temporary file) and both names are links to it. Nobody sees either name partly
        written; a failure leaves no temporary file (a ``path`` already created stays: it is
        complete).

        Raises:
            StorageAlreadyExistsError: something is at ``link`` already.
        """
        with self._walk(path, create=True) as (walk, name):
            check_name(name, path)
            fd = anonymous(walk.fd, data, self._fsync) if self._tmpfile else -1
            if fd < 0:
                self._tmpfile = False  # not on this filesystem: named files from now
            else:  # linked by its descriptor (the magic link followed): nothing to remove
                src = f"/proc/self/fd/{fd}"
                try:
                    return link_both(self, walk, name, link, (src, None, True))
                except OSError as exc:
                    if exc.errno not in PROC_REFUSED or not self._tmpfile:
                        raise
                    self._tmpfile = False  # /proc refuses the link here: named files from now
                finally:
                    os.close(fd)
            tmp, _ = write_temp(walk.fd, name, data, self._fsync)
            try:
                return link_both(self, walk, name, link, (tmp, walk.fd, False))
            finally:
                unlink_quietly(tmp, walk.fd)

    @fresh_root
    def create_new(self, path: str, data: bytes) -> None:
        """``write(path, data, mode=CREATE)`` returning nothing (one ``fstat`` fewer): for
        storied's own create-only objects, e.g. journal entries (unnamed file linked once).

        Raises:
            StorageAlreadyExistsError: something is at ``path``.
        """
        if self._tmpfile and path:
            with self._walk(path, create=True) as (walk, name):
                check_name(name, path)
                done = create_unnamed(walk.fd, name, path, data, self._fsync, stat=False)
            if done:
                return
            self._tmpfile = False  # not on this filesystem: named files from now
        self.write(path, data, mode=WriteMode.CREATE)

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        return f"{self.base_url}/{path}" if self.base_url else None

    def local_path(self, path: str) -> str | None:
        """The OS path of ``path``, checked now to stay inside the base (links on the way
        that lead outside are refused). The caller uses it with plain OS calls, so unlike
        every other method it is only as safe as the directories it names: nobody else
        should be able to swap links in them."""
        root, rest = self._root_and_rest(path)
        try:
            with self._walk(path) as (walk, name):
                walk.stat(name)
        except (StorageNotFoundError, NotADirectoryStorageError):
            pass  # what does not exist yet cannot lead anywhere
        return root + os.sep + rest if rest else root


def from_config(config: dict[str, Any]) -> Backend:
    """Build a local mount from ``base_path`` (str or callable), ``base_url`` and ``fsync``."""
    return LocalBackend(config["base_path"], config.get("base_url"), bool(config.get("fsync")))
