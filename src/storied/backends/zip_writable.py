"""A writable zip mount (genro-storage's ``zip`` with ``mode: 'w'`` or ``'a'``).

A zip file cannot be changed in place safely (appending rewrites its central directory at the end,
and a crash meanwhile leaves no readable archive), so changes are staged and the archive is
rewritten whole, atomically:

* ``write`` streams the new content to a private staging file (constant memory) and records it in
  the in-memory index; ``delete``, ``mkdir``, ``move`` and ``copy`` change only the index. Reads see
  every change at once (staged content is served from the staging file).
* :meth:`WritableZipBackend.flush` writes a complete new archive to a temporary file beside the
  original (unchanged members are copied over, staged ones added, deleted ones left out), fsyncs
  it and renames it over the original: a reader, or a crash, sees the old archive or the new one,
  never a mix. If the archive file was changed by someone else since it was read, the flush is
  refused (:class:`~storied.errors.PreconditionFailedError`) and the staged changes are kept.
* The archive is flushed by ``flush()``, ``close()`` (``StorageManager.close()``), at interpreter
  exit, and after every change when ``autoflush`` is true (durable, but each change costs a rewrite
  of the whole archive).

``mode='w'`` starts from an empty archive (an existing file is replaced at the first flush, as
:class:`zipfile.ZipFile` mode ``'w'`` does); ``mode='a'`` starts from the archive's members (a
missing file is created). Concurrency: one lock per backend makes conditional writes exact inside
the process; two processes must not write one archive at the same time (the second flush is then
refused as above, never merged).
"""

from __future__ import annotations

import atexit
import builtins
import io
import itertools
import os
import posixpath
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from storied import paths
from storied.backends.archive import _Limited, corrupt_member_error, open_zip
from storied.backends.base import CHUNK, Backend, as_stream
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
)
from storied.info import Data, Info, WriteMode

__all__ = ["WritableZipBackend", "flush_all"]

_CAPS = Capabilities(conditional_write=True, append_mode=False, empty_dirs=True,
                     process_local_writes=True)
_COUNTER = itertools.count()
#: Writable archives not closed yet. Strong references: a backend dropped without ``close()``
#: (a mount replaced, a forgotten variable) is still flushed at exit, never collected unflushed.
_OPEN: set[WritableZipBackend] = set()


@dataclass(frozen=True)
class _Entry:
    """One file of the archive: in the archive on disk (``member``) or staged (``staged``)."""

    info: Info
    member: zipfile.ZipInfo | None = None
    staged: str | None = None


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class WritableZipBackend(Backend):
    """The members of a zip file, writable; changes reach the file on :meth:`flush`.

    Args:
        file: Path of the ``.zip`` file (its directory must exist).
        mode: ``"w"`` (start empty) or ``"a"`` (start from the archive's members).
        autoflush: Rewrite the archive after every change instead of at flush/close.

    Raises:
        StorageConfigError: Bad ``mode``, missing directory, or ``file`` is not a zip archive.
    """

    autoflush: bool
    file: str

    protocol = "zip"
    capabilities = _CAPS

    def __init__(self, file: str | os.PathLike[str], mode: str = "a",
                 autoflush: bool = False) -> None:
        if mode not in ("w", "a"):
            raise StorageConfigError(f"zip mode must be 'r', 'w' or 'a', not {mode!r}")
        self.file = os.path.abspath(os.fspath(file))
        if not os.path.isdir(os.path.dirname(self.file)):
            raise StorageConfigError(f"Directory of zip file not found: {self.file!r}")
        if os.path.isdir(self.file):
            raise StorageConfigError(f"zip file is a directory: {self.file!r}")
        self.mode, self.autoflush = mode, autoflush
        self._lock = threading.RLock()
        self._files: dict[str, _Entry] = {}
        self._explicit_dirs: set[str] = set()
        # members never served but kept on rewrite: (alias, member), alias "" for an unsafe
        # name, else the path it shadows (an earlier duplicate, 'a\\b' beside 'a/b', './a')
        self._hidden: list[tuple[str, zipfile.ZipInfo]] = []
        self._zip: zipfile.ZipFile | None = None
        self._staging: str | None = None
        self._dirty = mode == "w"
        self._seen = _signature(self.file)
        if mode == "a" and self._seen is not None:
            self._load()
        _OPEN.add(self)

    def storage_key(self) -> Hashable:
        """The archive file (by real path), as the read-only zip mount says it."""
        return ("zip", os.path.realpath(self.file))

    # ------------------------------------------------------------------ index
    def _load(self) -> None:
        self._zip = open_zip(self.file)
        self._files.clear()
        self._explicit_dirs.clear()
        self._hidden.clear()
        for item in self._zip.infolist():
            path = _served_as(item.filename)
            if not path:
                self._hidden.append(("", item))
                continue
            if item.is_dir():
                self._explicit_dirs.add(path)
            else:
                shadowed = self._files.get(path)
                if shadowed is not None and shadowed.member is not None:
                    self._hidden.append((path, shadowed.member))  # the last one is served
                mtime = time.mktime((*item.date_time, 0, 0, -1))
                etag = f"{item.CRC:08x}-{item.file_size:x}"
                info = Info(path, False, item.file_size, mtime, etag)
                self._files[path] = _Entry(info, member=item)

    def _dirs(self) -> set[str]:
        dirs = {""}
        for path in itertools.chain(self._files, self._explicit_dirs):
            parent = path if path in self._explicit_dirs else posixpath.dirname(path)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        return dirs

    def _entry(self, path: str) -> _Entry:
        entry = self._files.get(path)
        if entry is None:
            if path in self._dirs():
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            raise StorageNotFoundError(f"No such file in zip archive: {path!r}")
        return entry

    def _changed(self) -> None:
        self._dirty = True
        if self.autoflush:
            self.flush()

    # ------------------------------------------------------------------ reads
    def info(self, path: str) -> Info:
        with self._lock:
            if path in self._files:
                return self._files[path].info
            if path in self._dirs():
                return Info(path, is_dir=True)
        raise StorageNotFoundError(f"No such file in zip archive: {path!r}")

    def list(self, path: str) -> Iterator[Info]:
        with self._lock:
            dirs = self._dirs()
            if path not in dirs:
                if path in self._files:
                    raise NotADirectoryStorageError(f"Not a directory: {path!r}")
                raise StorageNotFoundError(f"No such directory in zip archive: {path!r}")
            out = [Info(d, is_dir=True) for d in dirs if d and posixpath.dirname(d) == path]
            out += [e.info for p, e in self._files.items() if posixpath.dirname(p) == path]
        return iter(out)

    def walk(self, path: str) -> Iterator[Info]:
        with self._lock:
            if path not in self._dirs():
                self.list(path)  # raises the right error
            return iter([e.info for p, e in self._files.items() if paths.is_under(p, path)])

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        with self._lock:
            entry = self._entry(path)
            size = entry.info.size
            stop = size if end is None else min(end, size)
            if entry.staged is not None:
                stream: BinaryIO = open(entry.staged, "rb")  # noqa: SIM115 - the caller closes
            else:
                assert self._zip is not None and entry.member is not None
                try:
                    stream = self._zip.open(entry.member)  # type: ignore[assignment]
                except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
                    raise corrupt_member_error(self.file, path, exc) from exc
        try:
            if start:
                stream.seek(min(start, size), os.SEEK_SET)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            stream.close()
            raise corrupt_member_error(self.file, path, exc) from exc
        except BaseException:
            stream.close()
            raise
        limited = _Limited(stream, max(0, stop - start), self.file, path)
        return io.BufferedReader(limited, CHUNK)

    # ------------------------------------------------------------------ writes
    def _stage(self, data: Data) -> tuple[str, int, int]:
        with self._lock:
            if self._staging is None:
                self._staging = tempfile.mkdtemp(prefix="storied-zip-stage-")
        target = os.path.join(self._staging, f"{next(_COUNTER):x}")
        src, crc, size = as_stream(data), 0, 0
        with open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                crc, size = zlib.crc32(chunk, crc), size + len(chunk)
                out.write(chunk)
        return target, crc, size

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
            raise IsADirectoryStorageError("Cannot write to the archive root")
        staged, crc, size = self._stage(data)  # outside the lock: a slow source blocks no one
        try:
            with self._lock:
                self._check_write(path, mode, etag)
                info = Info(path, False, size, time.time(), f"{crc:08x}-{size:x}")
                old = self._files.get(path)
                self._files[path] = _Entry(info, staged=staged)
                self._unalias(path)
                staged = ""
                self._drop_staged(old)
                self._changed()
                return info
        finally:
            if staged:
                os.unlink(staged)

    def _check_write(self, path: str, mode: WriteMode, etag: str | None) -> None:
        dirs = self._dirs()
        if path in dirs:
            raise IsADirectoryStorageError(f"Is a directory: {path!r}")
        parent = posixpath.dirname(path)
        while parent:
            if parent in self._files:
                raise NotADirectoryStorageError(f"A parent of {path!r} is a file: {parent!r}")
            parent = posixpath.dirname(parent)
        current = self._files.get(path)
        if mode == WriteMode.CREATE and current is not None:
            raise StorageAlreadyExistsError(f"File already exists: {path!r}")
        if mode == WriteMode.IF_MATCH:
            if current is None:
                raise StorageNotFoundError(f"No such file in zip archive: {path!r}")
            if current.info.etag != etag:
                raise PreconditionFailedError(f"{path!r} changed (etag {current.info.etag!r})")

    def _unalias(self, path: str, below: bool = False) -> None:
        """Forget the hidden members that shadow ``path`` (or anything below it): the file
        they are copies of was replaced, moved or deleted, so they must not come back."""
        self._hidden = [(alias, item) for alias, item in self._hidden
                        if not alias or not (alias == path
                                             or (below and paths.is_under(alias, path)))]

    def _drop_staged(self, entry: _Entry | None) -> None:
        if entry is not None and entry.staged is not None:
            still_used = any(e.staged == entry.staged for e in self._files.values())
            if not still_used:
                os.unlink(entry.staged)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        with self._lock:
            if path in self._files:
                self._drop_staged(self._files.pop(path))
                self._unalias(path)
            elif path in self._dirs():
                below = [p for p in self._files if paths.is_under(p, path) and p != path]
                subdirs = [d for d in self._explicit_dirs if paths.is_under(d, path) and d != path]
                if (below or subdirs) and not recursive:
                    raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
                for p in below:
                    self._drop_staged(self._files.pop(p))
                self._unalias(path, below=True)
                self._explicit_dirs -= {*subdirs, path}
                if not path:
                    self._explicit_dirs.clear()
            else:
                raise StorageNotFoundError(f"No such file in zip archive: {path!r}")
            self._changed()

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        with self._lock:
            if path in self._files:
                raise StorageAlreadyExistsError(f"A file exists at {path!r}")
            dirs = self._dirs()
            if path in dirs:
                if exist_ok:
                    return
                raise StorageAlreadyExistsError(f"Directory already exists: {path!r}")
            parent = posixpath.dirname(path)
            if parent in self._files:
                raise NotADirectoryStorageError(f"Parent is a file: {parent!r}")
            if not parents and parent not in dirs:
                raise StorageNotFoundError(f"Parent directory not found: {parent!r}")
            self._check_write(path, WriteMode.OVERWRITE, None)
            self._explicit_dirs.add(path)
            self._changed()

    def copy(self, src: str, dst: str) -> Info:
        with self._lock:
            entry = self._entry(src)
            self._check_write(dst, WriteMode.OVERWRITE, None)
            info = entry.info.moved(dst)
            old = self._files.get(dst)
            self._files[dst] = _Entry(info, member=entry.member, staged=entry.staged)
            self._unalias(dst)
            if old is not None and old.staged != entry.staged:
                self._drop_staged(old)
            self._changed()
            return info

    def move(self, src: str, dst: str) -> None:
        with self._lock:
            if src in self._files:
                pairs = [(src, dst)]
                dirs: list[str] = []
            elif src in self._dirs() and src:
                pairs = [(p, dst + p[len(src):]) for p in self._files if paths.is_under(p, src)]
                dirs = [d for d in self._explicit_dirs if paths.is_under(d, src)]
            else:
                raise StorageNotFoundError(f"No such file in zip archive: {src!r}")
            for _, new_path in pairs:
                self._check_write(new_path, WriteMode.OVERWRITE, None)
            for old_path, new_path in pairs:
                entry = self._files.pop(old_path)
                self._drop_staged(self._files.get(new_path))
                self._files[new_path] = _Entry(entry.info.moved(new_path), entry.member,
                                               entry.staged)
                self._unalias(old_path)
                self._unalias(new_path)
            for d in dirs:
                self._explicit_dirs.discard(d)
                self._explicit_dirs.add(dst + d[len(src):])
            self._changed()

    # ------------------------------------------------------------------ flush
    def flush(self) -> None:
        """Rewrite the archive file with every staged change, atomically (see the module doc).

        Raises:
            PreconditionFailedError: The archive file changed on disk since it was read; nothing
                was written and the staged changes are kept.
            StorageIOError: The new archive could not be written (the old one is untouched).
        """
        with self._lock:
            if not self._dirty:
                return
            if _signature(self.file) != self._seen:
                raise PreconditionFailedError(
                    f"zip file {self.file!r} was changed by someone else since it was opened; "
                    "not overwriting it"
                )
            tmp = self._temporary()
            try:
                self._write_archive(tmp)
                os.replace(tmp, self.file)
            except OSError as exc:
                raise StorageIOError(f"Cannot rewrite zip file {self.file!r}: {exc}") from exc
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            _fsync_dir(os.path.dirname(self.file))
            if self._zip is not None:
                self._zip.close()
            self._seen = _signature(self.file)
            self._dirty = False
            flushed = {e.staged for e in self._files.values() if e.staged is not None}
            self._load()
            for staged in flushed:  # (a write staging right now keeps its own file)
                os.unlink(staged)

    def _temporary(self) -> str:
        """A new archive's name beside the old one: random, so that writers in other
        containers (the same pid) on a shared folder never write into one file."""
        return f"{self.file}.storied-tmp-{uuid.uuid4().hex[:20]}"

    def _write_archive(self, tmp: str, lost: builtins.list[str] | None = None) -> None:
        """Write the whole archive to ``tmp``. With ``lost`` (a rescue copy), a member of the
        old archive that no longer reads back whole is left out and named there instead of
        failing the copy."""
        entries = [(item.filename, _Entry(Info(""), member=item)) for _, item in self._hidden]
        entries += [(path, self._files[path]) for path in sorted(self._files)]
        with open(tmp, "wb") as raw, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # kept on purpose
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as out:
                for d in sorted(self._explicit_dirs):
                    out.writestr(zipfile.ZipInfo(d + "/", time.localtime()[:6]), b"")
                for path, entry in entries:
                    if lost is not None and not self._readable(path, entry):
                        lost.append(path)
                        continue
                    self._copy_entry(out, path, entry)
            raw.flush()
            os.fsync(raw.fileno())

    def _readable(self, path: str, entry: _Entry) -> bool:
        """True when ``entry`` reads back whole (CRC checked), as a rescue copy needs."""
        if entry.member is None or self._zip is None:
            return entry.member is None
        try:
            with self._zip.open(entry.member) as source:
                while source.read(CHUNK):
                    pass
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError):
            return False
        return True

    def _copy_entry(self, out: zipfile.ZipFile, path: str, entry: _Entry) -> None:
        if entry.member is not None:
            item = entry.member
            if _served_as(item.filename) == path:
                path = item.filename  # unchanged: its own name, byte for byte ('a\\b', './a')
            zinfo = zipfile.ZipInfo(path, item.date_time)
            zinfo.compress_type, zinfo.external_attr = item.compress_type, item.external_attr
            zinfo.comment, zinfo.extra = item.comment, b""
            assert self._zip is not None
            try:
                source: Any = self._zip.open(item)
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
                raise corrupt_member_error(self.file, path, exc) from exc
        else:
            assert entry.staged is not None
            stamp = time.localtime(entry.info.mtime or time.time())[:6]
            zinfo = zipfile.ZipInfo(path, max(stamp, (1980, 1, 1, 0, 0, 0)))
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zinfo.external_attr = 0o644 << 16
            source = open(entry.staged, "rb")  # noqa: SIM115 - closed by the with below
        size = entry.member.file_size if entry.member is not None else entry.info.size
        zinfo.file_size = size
        with source, out.open(zinfo, "w", force_zip64=size > 2**31) as dest:
            try:
                shutil.copyfileobj(source, dest, CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise corrupt_member_error(self.file, path, exc) from exc

    def close(self) -> None:
        """Flush, then release the archive and the staging files."""
        with self._lock:
            self.flush()
            if self._zip is not None:
                self._zip.close()
                self._zip = None
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None
            _OPEN.discard(self)


def _served_as(name: str) -> str:
    """The path a member name is served at ("" when storied cannot serve it)."""
    try:
        return paths.normalize(name.replace("\\", "/"))
    except StorageError:
        return ""


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@atexit.register
def flush_all() -> None:
    """Flush every writable zip mount still open (run at interpreter exit).

    A flush that fails (the archive was changed by someone else, the disk is full) leaves the
    archive on disk as it was; the staged changes are not dropped silently: the complete new
    archive is written beside it as ``<file>.unsaved-<random>.zip`` and a line on stderr names
    it (or says the changes are lost when even that fails).
    """
    for backend in list(_OPEN):
        try:
            backend.flush()
        except (StorageError, OSError) as exc:
            _save_aside(backend, exc)


def _save_aside(backend: WritableZipBackend, exc: BaseException) -> None:
    aside = f"{backend.file}.unsaved-{uuid.uuid4().hex[:12]}.zip"
    lost: list[str] = []
    try:
        with backend._lock:
            backend._write_archive(aside, lost)
    except (StorageError, OSError) as second:
        try:
            os.unlink(aside)
        except OSError:
            pass
        sys.stderr.write(f"storied: zip archive {backend.file!r} not flushed ({exc}); its "
                         f"unsaved changes are LOST (saving a copy failed: {second})\n")
        return
    unreadable = f" (members no longer readable, left out: {', '.join(lost)})" if lost else ""
    sys.stderr.write(f"storied: zip archive {backend.file!r} not flushed ({exc}); its "
                     f"unsaved changes were saved to {aside!r}{unreadable}\n")
