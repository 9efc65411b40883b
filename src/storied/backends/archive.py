"""Read-only zip and tar archives, on the standard library's :mod:`zipfile` and :mod:`tarfile`.

The archive is a local file, indexed once when the backend is built. Directories are the explicit
directory members plus every parent implied by a member name (``a/b/c.txt`` implies ``a`` and
``a/b``). Member names are normalised with storied's path rules; a member whose name would escape
(``..``, an absolute drive path) or is malformed is left out of the index, never served.

Reads stream the member (constant memory, whatever its size): a zip member is decompressed on the
fly; a tar member is read from its own handle on the archive (a compressed tar is decompressed
from the start up to the member, so ``range_reads`` is false for ``.tar.gz``/``.bz2``/``.xz``).
Every stream has its own file handle, so concurrent reads are safe.

Everything that would change the archive (write, delete, mkdir, copy, move, metadata) raises
:class:`~storied.errors.StoragePermissionError` (a ``PermissionError``); a zip mount with
``mode: 'w'`` or ``'a'`` is writable instead (:mod:`storied.backends.zip_writable`).

Damaged archives: a file that is not an archive at all, or whose index cannot be read (a truncated
zip without its central directory, a truncated ``.tar.gz``), is refused when the mount is built with
:class:`~storied.errors.StorageConfigError` (the mount's configuration points at something that is
not an archive). Damage found while a member is read (bad CRC, corrupt deflate data, a member cut
short, the archive changed on disk) raises :class:`~storied.errors.InvalidContentError` naming the
archive and the member; nothing else (``zipfile.BadZipFile``, ``zlib.error``, ``EOFError``) escapes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from storied import paths
from storied.backends.base import CHUNK, Backend
from storied.backends.readonly import ReadOnlyBackend
from storied.capabilities import Capabilities
from storied.errors import (
    InvalidContentError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import Info

__all__ = [
    "TarBackend",
    "ZipBackend",
    "corrupt_member_error",
    "open_zip",
    "tar_from_config",
    "zip_from_config",
]

#: What the standard library raises on a damaged archive member.
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError,
            gzip.BadGzipFile)


def corrupt_member_error(file: str, path: str, exc: BaseException) -> InvalidContentError:
    """The storied error for damage found while reading member ``path`` of archive ``file``."""
    return InvalidContentError(
        f"Corrupt archive {os.path.basename(file)!r}: cannot read member {path!r} ({exc})"
    )


def open_zip(file: str) -> zipfile.ZipFile:
    """Open ``file`` as a zip archive for reading.

    Raises:
        StorageConfigError: ``file`` is not a readable zip archive.
    """
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise StorageConfigError(f"Not a zip archive: {file!r} ({exc})") from exc

_READONLY = Capabilities(
    readonly=True, write=False, delete=False, mkdir=False, append_mode=False
)

#: tar compression name -> (magic bytes, opener of a decompressed stream).
_COMPRESSION: dict[str, tuple[bytes, Callable[..., Any]]] = {
    "gz": (b"\x1f\x8b", gzip.open),
    "bz2": (b"BZh", bz2.open),
    "xz": (b"\xfd7zXZ\x00", lzma.open),
}
_ALIASES = {"gzip": "gz", "tgz": "gz", "bzip2": "bz2", "lzma": "xz", "none": "", "": ""}


@dataclass(frozen=True)
class _Member:
    """One readable file of the archive: its info and what the reader needs to find it."""

    info: Info
    key: Any  # the ZipInfo, or the data offset inside the (decompressed) tar stream


class _ArchiveBackend(ReadOnlyBackend):
    """The index and the read-only contract shared by zip and tar."""

    capabilities: Capabilities = _READONLY
    file: str

    def __init__(self, file: str | os.PathLike[str]) -> None:
        self.file = os.fspath(file)
        if not os.path.isfile(self.file):
            raise StorageNotFoundError(f"Archive file not found: {self.file!r}")
        self._files: dict[str, _Member] = {}
        self._dirs: set[str] = {""}

    def storage_key(self) -> Hashable:
        """The archive file (by real path): two mounts of one archive see the same members."""
        return (self.protocol, os.path.realpath(self.file))

    # ---------------------------------------------------------------- index
    def _add(self, name: str, is_dir: bool, size: int, mtime: float | None, etag: str,
             key: Any) -> None:
        try:
            path = paths.normalize(name.replace("\\", "/"))
        except StorageError:
            return  # unsafe or malformed member name: never served
        if not path:
            return
        parent = path.rpartition("/")[0]
        while parent not in self._dirs:
            self._dirs.add(parent)
            parent = parent.rpartition("/")[0]
        if is_dir:
            self._dirs.add(path)
        elif path not in self._dirs:
            self._files[path] = _Member(Info(path, False, size, mtime, etag), key)

    def _member(self, path: str) -> _Member:
        member = self._files.get(path)
        if member is None:
            if path in self._dirs:
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            raise StorageNotFoundError(f"No such file in {self.protocol} archive: {path!r}")
        return member

    def _refuse(self, action: str) -> StoragePermissionError:
        return StoragePermissionError(
            f"{self.protocol} archive {os.path.basename(self.file)!r} is read-only: cannot {action}"
        )

    # ---------------------------------------------------------------- contract
    def info(self, path: str) -> Info:
        if path in self._dirs:
            return Info(path, is_dir=True)
        return self._member(path).info

    def list(self, path: str) -> Iterator[Info]:
        if path not in self._dirs:
            if path in self._files:
                raise NotADirectoryStorageError(f"Not a directory: {path!r}")
            raise StorageNotFoundError(f"No such directory in archive: {path!r}")
        dirs = [Info(d, is_dir=True) for d in self._dirs if d and posixpath.dirname(d) == path]
        files = [m.info for p, m in self._files.items() if posixpath.dirname(p) == path]
        return iter(dirs + files)

    def walk(self, path: str) -> Iterator[Info]:
        if path not in self._dirs:
            self.list(path)  # raises the right error
        return iter([m.info for p, m in self._files.items() if paths.is_under(p, path)])

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        member = self._member(path)
        size = member.info.size
        stop = size if end is None else min(end, size)
        try:
            stream = self._open_member(member)
        except _CORRUPT as exc:
            raise corrupt_member_error(self.file, path, exc) from exc
        try:
            if start:
                stream.seek(min(start, size), io.SEEK_CUR)
        except _CORRUPT as exc:
            stream.close()
            raise corrupt_member_error(self.file, path, exc) from exc
        except BaseException:
            stream.close()
            raise
        limited = _Limited(stream, max(0, stop - start), self.file, path)
        return io.BufferedReader(limited, CHUNK)

    def _open_member(self, member: _Member) -> BinaryIO:
        """A new stream positioned at the member's first byte (the caller closes it)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- refused


class ZipBackend(_ArchiveBackend):
    """The members of a zip file.

    Args:
        file: Path of a local ``.zip`` file.

    Raises:
        StorageNotFoundError: ``file`` does not exist.
        StorageConfigError: ``file`` is not a zip archive.
    """

    protocol = "zip"

    def __init__(self, file: str | os.PathLike[str]) -> None:
        super().__init__(file)
        self._zip = open_zip(self.file)
        for item in self._zip.infolist():
            mtime = time.mktime((*item.date_time, 0, 0, -1))
            etag = f"{item.CRC:08x}-{item.file_size:x}"
            self._add(item.filename, item.is_dir(), item.file_size, mtime, etag, item)

    def _open_member(self, member: _Member) -> BinaryIO:
        return self._zip.open(member.key)  # type: ignore[return-value]

    def close(self) -> None:
        self._zip.close()


class TarBackend(_ArchiveBackend):
    """The members of a tar file, optionally compressed.

    Args:
        file: Path of a local tar file.
        compression: ``"gz"``, ``"bz2"``, ``"xz"`` or ``"none"``; None detects it from the
            file's first bytes.

    Raises:
        StorageNotFoundError: ``file`` does not exist.
        StorageConfigError: Unknown compression, or ``file`` is not a (readable) tar archive.
    """

    capabilities: Capabilities  # by compression: set in __init__

    compression: str

    protocol = "tar"

    def __init__(self, file: str | os.PathLike[str], compression: str | None = None) -> None:
        super().__init__(file)
        self.compression = self._compression(compression)
        if self.compression:
            self.capabilities = _READONLY.replace(range_reads=False)
        try:
            with self._stream() as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                links = [m for m in tar if self._index(m)]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise StorageConfigError(f"Not a readable tar archive: {self.file!r}") from exc
        for link in links:
            self._index_link(link)

    def _compression(self, name: str | None) -> str:
        if name is None:
            with open(self.file, "rb") as f:
                head = f.read(8)
            return next((n for n, (magic, _) in _COMPRESSION.items() if head.startswith(magic)), "")
        key = _ALIASES.get(name.lower(), name.lower())
        if key and key not in _COMPRESSION:
            raise StorageConfigError(f"Unknown tar compression {name!r} for {self.file!r}")
        return key

    def _stream(self) -> BinaryIO:
        """A new stream of the uncompressed tar bytes, at offset 0."""
        if self.compression:
            return _COMPRESSION[self.compression][1](self.file)  # type: ignore[no-any-return]
        return open(self.file, "rb")

    def _index(self, m: tarfile.TarInfo) -> bool:
        """Index one member; True for a link, indexed once its target is known."""
        if m.issym() or m.islnk():
            return True
        if m.isdir() or (m.isreg() and not m.issparse()):
            self._add(m.name, m.isdir(), m.size, float(m.mtime), f"{m.offset_data:x}-{m.size:x}",
                      m.offset_data)
        return False

    def _index_link(self, m: tarfile.TarInfo) -> None:
        base = posixpath.dirname(m.name) if m.issym() else ""
        try:
            target = paths.normalize(posixpath.normpath(posixpath.join(base, m.linkname)))
        except StorageError:
            return
        found = self._files.get(target)
        if found is not None:
            info = found.info
            self._add(m.name, False, info.size, info.mtime, info.etag or "", found.key)

    def _open_member(self, member: _Member) -> BinaryIO:
        stream = self._stream()
        try:
            stream.seek(member.key)
        except BaseException:
            stream.close()
            raise
        return stream


class _Limited(io.RawIOBase):
    """At most ``length`` bytes of member ``path``'s stream, which it closes.

    Damage met while reading (and a member shorter than its index says) is
    :class:`~storied.errors.InvalidContentError`.
    """

    def __init__(self, raw: BinaryIO, length: int, file: str = "", path: str = "") -> None:
        self._raw, self._left, self._file, self._path = raw, length, file, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        try:
            chunk = self._raw.read(min(len(buffer), self._left))
        except _CORRUPT as exc:
            raise corrupt_member_error(self._file, self._path, exc) from exc
        if not chunk:
            raise corrupt_member_error(self._file, self._path, EOFError("member is truncated"))
        buffer[: len(chunk)] = chunk
        self._left -= len(chunk)
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _prefixed(backend: Backend, config: dict[str, Any]) -> Backend:
    from storied.backends.wrappers import Prefixed

    prefix = str(config.get("base_path") or "").strip("/")
    return Prefixed(backend, prefix) if prefix else backend


def zip_from_config(config: dict[str, Any]) -> Backend:
    """Build a zip mount: ``file`` (the archive), ``base_path`` (a folder inside it), ``mode``
    (``'r'``, the default: read-only; ``'w'``: a new archive; ``'a'``: add to the archive) and
    ``autoflush`` (writable modes: rewrite the archive after every change).

    Raises:
        StorageConfigError: Bad ``mode`` or ``autoflush``; the file is not a zip archive.
        StorageNotFoundError: ``mode`` is ``'r'`` and the file does not exist.
    """
    mode = config.get("mode") or "r"
    autoflush = config.get("autoflush", False)
    if mode not in ("r", "w", "a"):
        raise StorageConfigError(
            f"Zip storage {config.get('name')!r}: 'mode' must be 'r', 'w' or 'a', not {mode!r}"
        )
    if not isinstance(autoflush, bool):
        raise StorageConfigError(
            f"Zip storage {config.get('name')!r}: 'autoflush' must be a bool, not {autoflush!r}"
        )
    if mode == "r":
        return _prefixed(ZipBackend(config["file"]), config)
    from storied.backends.zip_writable import WritableZipBackend

    return _prefixed(WritableZipBackend(config["file"], mode, autoflush), config)


def tar_from_config(config: dict[str, Any]) -> Backend:
    """Build a tar mount: ``file``, ``compression`` (auto-detected when absent), ``base_path``."""
    return _prefixed(TarBackend(config["file"], config.get("compression")), config)
