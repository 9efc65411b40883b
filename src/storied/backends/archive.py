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
:class:`~storied.errors.StoragePermissionError` (a ``PermissionError``).
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from storied import paths
from storied.backends.base import CHUNK, Backend
from storied.capabilities import Capabilities
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import Data, Info, WriteMode

__all__ = ["TarBackend", "ZipBackend", "tar_from_config", "zip_from_config"]

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


class _ArchiveBackend(Backend):
    """The index and the read-only contract shared by zip and tar."""

    capabilities = _READONLY

    def __init__(self, file: str | os.PathLike[str]) -> None:
        self.file = os.fspath(file)
        if not os.path.isfile(self.file):
            raise StorageNotFoundError(f"Archive file not found: {self.file!r}")
        self._files: dict[str, _Member] = {}
        self._dirs: set[str] = {""}

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
        stream = self._open_member(member)
        try:
            if start:
                stream.seek(min(start, size), io.SEEK_CUR)
        except BaseException:
            stream.close()
            raise
        return io.BufferedReader(_Limited(stream, max(0, stop - start)), CHUNK)  # type: ignore[return-value]

    def _open_member(self, member: _Member) -> BinaryIO:
        """A new stream positioned at the member's first byte (the caller closes it)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- refused
    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        raise self._refuse(f"write {path!r}")

    def delete(self, path: str, *, recursive: bool = False) -> None:
        raise self._refuse(f"delete {path!r}")

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        raise self._refuse(f"create directory {path!r}")

    def copy(self, src: str, dst: str) -> Info:
        raise self._refuse(f"copy to {dst!r}")

    def move(self, src: str, dst: str) -> None:
        raise self._refuse(f"move {src!r}")

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        raise self._refuse(f"set metadata on {path!r}")


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
        try:
            self._zip = zipfile.ZipFile(self.file)
        except zipfile.BadZipFile as exc:
            raise StorageConfigError(f"Not a zip archive: {self.file!r}") from exc
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
    """At most ``length`` bytes of a stream, which it closes."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        self._raw, self._left = raw, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        chunk = self._raw.read(min(len(buffer), self._left))
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
    """Build a zip mount: ``file`` (the archive), ``base_path`` (a folder inside it)."""
    return _prefixed(ZipBackend(config["file"]), config)


def tar_from_config(config: dict[str, Any]) -> Backend:
    """Build a tar mount: ``file``, ``compression`` (auto-detected when absent), ``base_path``."""
    return _prefixed(TarBackend(config["file"], config.get("compression")), config)
