"""Read-only archives of any format libarchive reads (genro-storage's ``libarchive`` type).

7z, rar, iso9660, cpio, xar, lha, cab, ar, zip, tar in any compression...: whatever the installed
libarchive (Debian ``libarchive13``) understands, through ``libarchive-c`` (extra
``libarchive``). Mount keys: ``file`` (a local archive) and ``base_path`` (a folder inside it).

The archive is indexed once when the mount is built (one pass over the headers; a file libarchive
cannot read is a :class:`~storied.errors.StorageConfigError` then). Such archives are read
sequentially, so a read opens the archive, skips to its member and streams the member's blocks
(constant memory; ``range_reads`` is false: a range read skips the bytes before it). A symbolic
link to a member is served as that member; other links are left out. Damage found while reading
a member is :class:`~storied.errors.InvalidContentError`. Everything that would change the
archive raises :class:`~storied.errors.StoragePermissionError` (the rules of
:mod:`storied.backends.archive`, whose index this shares).
"""

from __future__ import annotations

import io
import os
import posixpath
from typing import Any, BinaryIO

from storied.errors import MissingDependencyError

try:
    import libarchive
    from libarchive.exception import ArchiveError
except (OSError, AttributeError) as _exc:  # libarchive-c is there, the C library is not
    raise MissingDependencyError(
        f"libarchive mounts need the libarchive C library (Debian: libarchive13): {_exc}",
        name="libarchive",
    ) from _exc

from storied import paths
from storied.backends.archive import _READONLY, _ArchiveBackend, _Member, _prefixed
from storied.backends.base import Backend
from storied.capabilities import Capabilities
from storied.errors import InvalidContentError, StorageConfigError, StorageError

__all__ = ["LibarchiveBackend", "libarchive_from_config"]


class LibarchiveBackend(_ArchiveBackend):
    """The members of an archive read by libarchive.

    Args:
        file: Path of a local archive.

    Raises:
        StorageNotFoundError: ``file`` does not exist.
        StorageConfigError: libarchive cannot read ``file``.
    """

    protocol = "libarchive"
    capabilities: Capabilities = _READONLY.replace(range_reads=False)

    def __init__(self, file: str | os.PathLike[str]) -> None:
        super().__init__(file)
        links: list[tuple[str, str]] = []
        try:
            with libarchive.file_reader(self.file) as archive:
                for position, entry in enumerate(archive):
                    name = entry.pathname or ""
                    if entry.issym:
                        links.append((name, entry.linkpath or ""))
                    elif entry.isdir or entry.isreg:
                        size = entry.size or 0
                        mtime = float(entry.mtime) if entry.mtime else None
                        self._add(name.rstrip("/"), entry.isdir, size, mtime,
                                  f"{position:x}-{size:x}", position)
        except ArchiveError as exc:
            raise StorageConfigError(f"Not a readable archive: {self.file!r} ({exc})") from exc
        for name, target in links:
            self._link(name, target)

    def _link(self, name: str, target: str) -> None:
        base = posixpath.dirname(name.rstrip("/"))
        try:
            resolved = paths.normalize(posixpath.normpath(posixpath.join(base, target)))
        except StorageError:
            return
        found = self._files.get(resolved)
        if found is not None:
            info = found.info
            self._add(name, False, info.size, info.mtime, info.etag or "", found.key)

    def _open_member(self, member: _Member) -> BinaryIO:
        return _MemberStream(self.file, member.key)  # type: ignore[return-value]


class _MemberStream(io.RawIOBase):
    """The blocks of entry number ``position`` of an archive, from a reader of its own."""

    def __init__(self, file: str, position: int) -> None:
        self._file, self._pending = file, b""
        self._context: Any = libarchive.file_reader(file)
        try:
            archive = self._context.__enter__()
        except ArchiveError as exc:
            raise InvalidContentError(f"Corrupt archive {file!r}: {exc}") from exc
        try:
            for index, entry in enumerate(archive):
                if index == position:
                    self._blocks = iter(entry.get_blocks())
                    return
        except ArchiveError as exc:
            self._context.__exit__(None, None, None)
            raise InvalidContentError(f"Corrupt archive {file!r}: {exc}") from exc
        except BaseException:
            self._context.__exit__(None, None, None)
            raise
        self._context.__exit__(None, None, None)
        raise InvalidContentError(f"Archive {file!r} changed: member #{position} is gone")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            try:
                self._pending = bytes(next(self._blocks, b""))
            except ArchiveError as exc:
                raise InvalidContentError(f"Corrupt archive {self._file!r}: {exc}") from exc
        chunk, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Skip ``offset`` bytes forward (only ``SEEK_CUR`` from the start, as the index uses)."""
        if whence != io.SEEK_CUR or offset < 0:
            raise io.UnsupportedOperation("libarchive members only skip forward")
        buffer = bytearray(min(offset, 1 << 20) or 1)
        while offset > 0:
            got = self.readinto(memoryview(buffer)[: min(offset, len(buffer))])
            if not got:
                break
            offset -= got
        return 0

    def close(self) -> None:
        if not self.closed:
            self._context.__exit__(None, None, None)
        super().close()


def libarchive_from_config(config: dict[str, Any]) -> Backend:
    """Build a libarchive mount: ``file`` (the archive), ``base_path`` (a folder inside it)."""
    return _prefixed(LibarchiveBackend(config["file"]), config)
