"""One adapter over fsspec filesystems: SFTP, WebDAV, GCS, Azure Blob and (read-only) HTTP.

:class:`FsspecBackend` drives any fsspec ``AbstractFileSystem``; what differs per storage (how a
write is made atomic, how paths are encoded, which operations the server does natively) is data in
a :class:`Profile`. Filesystems are built with ``skip_instance_cache=True`` (no instance shared
with other code) and, where fsspec keeps listings, ``use_listings_cache=False``: a listing always
asks the server. ``_fsspec_support.translated`` is the single place where fsspec, paramiko,
webdav4, httpx, aiohttp, gcsfs and azure errors become :mod:`storied.errors` types (connection
failures and timeouts are :class:`~storied.errors.TransientStorageError`), chained with
``raise ... from``. An SFTP connection broken by a transient failure is re-opened on the next call.
Building a backend does no network I/O: the filesystem is made (and the SFTP connection opened)
by the first call that needs it, so an unreachable host or a refused credential is reported
there, as a storied error, and the next call tries again.

Per type (build them with the ``*_from_config`` functions of
:mod:`storied.backends.fsspec_builders`):

* **sftp** (paramiko, ``fsspec.implementations.sftp.SFTPFileSystem`` imported explicitly, so an
  installed ``sshfs`` re-registering the protocol does not matter): writes stream to a temporary
  name in the destination directory, then ``posix_rename`` replaces the target atomically; moves
  are renames. Empty directories exist. No etag (SFTP has none).
* **webdav** (webdav4): a streamed PUT (atomic only if the server writes to a temporary file, so
  ``atomic_operations`` is false: wsgidav writes in place); server-side COPY and MOVE.
* **gcs** (gcsfs) and **azure** (adlfs): the object is committed when the upload completes;
  directories are implied by names (``empty_dirs`` false, ``mkdir`` is a no-op); ``walk`` is one
  flat listing; copies are server-side. GCS reports the MD5 of every object. Both have storage
  classes (GCS classes, Azure access tiers): the backends are the subclasses in
  :mod:`storied.backends._cloud_tiers`; GCS listings fill ``Info.storage_class``.
* **http** (``HTTPFileSystem``, aiohttp): read-only. ``list`` reads the links of an HTML index
  (best effort, hence ``list_dir`` false; sizes of listed files are 0, as index pages do not give
  them); a byte range is served by streaming and skipping (``range_reads`` false).

Conditional writes (``CREATE``/``IF_MATCH``) are not offered by any of these yet
(``conditional_write`` false): they raise :class:`~storied.errors.UnsupportedOperation`.
"""

from __future__ import annotations

import builtins
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO
from urllib.parse import unquote

from storied.backends._fsspec_support import (
    Reader,
    basename,
    copy_fs,
    copy_webdav,
    http_entry,
    makedirs,
    move_sftp,
    move_webdav,
    quote_path,
    reconnect_sftp,
    skip,
    to_info,
    translated,
    write_sftp,
    write_via_open,
    write_webdav,
)
from storied.backends._logging import backend_logger, logged_request
from storied.backends.base import CHUNK, Backend, as_stream
from storied.backends.local import TMP_MARK
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.info import Data, Info, WriteMode

__all__ = ["AZURE", "GCS", "HTTP", "SFTP", "WEBDAV", "FsspecBackend", "Profile"]

# ------------------------------------------------------------------------------- the adapter
Writer = Callable[["FsspecBackend", str, BinaryIO], None]
Mover = Callable[["FsspecBackend", str, str], None]


@dataclass(frozen=True)
class Profile:
    """What differs between the fsspec filesystems this adapter drives.

    Attributes:
        protocol: The storied type name.
        capabilities: The backend's capabilities.
        writer: Streams one file to ``path`` (atomically where the storage allows); None for
            read-only storages.
        mover: Native move of a file or directory, given fs paths (None: copy + delete).
        copier: Server-side copy of a file, given fs paths (None: read + write).
        encode: Turns a relative path into what the filesystem expects (URL quoting).
        flat_walk: ``fs.find`` is one flat listing (object stores) rather than a tree walk.
        web: Plain HTTP: paths are URLs, listings are the links of an index page (``ls`` of a
            file answers ``[]``), directories are known by the redirect to ``.../``, reads are
            one streamed GET.
        closer: Releases the filesystem's connection.
        reconnect: Re-opens the connection after a transient failure (None: the library does).
        listed_class: The storage class an ``info``/``ls`` record carries (GCS's
            ``storageClass``), put in :attr:`Info.storage_class`; None: records carry none.
    """

    protocol: str
    capabilities: Capabilities
    writer: Writer | None
    mover: Mover | None = None
    copier: Mover | None = None
    encode: Callable[[str], str] = field(default=lambda p: p)
    flat_walk: bool = False
    web: bool = False
    closer: Callable[[Any], None] = field(default=lambda fs: None)
    reconnect: Callable[[Any], None] | None = None
    listed_class: Callable[[dict[str, Any]], str | None] | None = None


class FsspecBackend(Backend):
    """A storage reached through an fsspec filesystem.

    Args:
        fs: The filesystem (built with ``skip_instance_cache=True``), or None with ``connect``.
        root: The fs path of this backend's ``""``: a bucket or container, ``/`` or ``.`` for
            SFTP (absolute, or the login directory), ``""`` for WebDAV, the base URL for HTTP.
        profile: The per-storage behaviour (see :class:`Profile`).
        connect: Builds the filesystem on first use (the ``*_from_config`` builders pass one,
            so configuring a mount does no network I/O: an unreachable host or refused
            credentials are reported by the first call, as storied errors).
        location_key: What identifies the storage (same key: same files at the same paths).
    """

    protocol: str
    capabilities: Capabilities  # per profile, set in __init__
    location_key: tuple[Any, ...]

    def __init__(
        self,
        fs: Any,
        root: str,
        profile: Profile,
        *,
        connect: Callable[[], Any] | None = None,
        location_key: tuple[Any, ...] | None = None,
    ) -> None:
        if fs is None and connect is None:
            raise TypeError("FsspecBackend needs a filesystem or a connect function")
        self._filesystem = fs
        self._connect = connect
        self._connect_lock = threading.Lock()
        self.root = root
        self.profile = profile
        self.protocol = profile.protocol
        self.capabilities = profile.capabilities
        self.location_key = location_key or (profile.protocol, id(self))
        self._broken = False
        self._log = backend_logger(profile.protocol)

    def storage_key(self) -> Any:
        """The ``location_key`` given by the builder (protocol, host or URL or bucket...)."""
        return self.location_key

    @property
    def fs(self) -> Any:
        """The filesystem, built on first use.

        Raises:
            StorageError: It cannot be built (``TransientStorageError`` for an unreachable
                host, ``StoragePermissionError`` for refused credentials or host key); the
                next access tries again.
        """
        if self._filesystem is None:
            with self._connect_lock:
                if self._filesystem is None:
                    assert self._connect is not None
                    with logged_request(self._log, "connect", ""), \
                            translated(self.root, self.protocol):
                        self._filesystem = self._connect()
        return self._filesystem

    # ---------------------------------------------------------------- helpers
    def _full(self, path: str) -> str:
        """The fs path of ``path``, unencoded (as listings answer)."""
        if not path:
            return self.root
        return f"{self.root.rstrip('/')}/{path}" if self.root else path

    def _fs(self, path: str) -> str:
        """The fs path of ``path`` as the filesystem expects it (encoded)."""
        return self._full(self.profile.encode(path) if path else "")

    @contextmanager
    def _mapped(self, path: str, op: str = "request") -> Iterator[None]:
        """Run one storage call: reconnect first if the last one broke the connection; log it
        at DEBUG on ``storied.backends.<type>`` (``op``, ``path``, duration, outcome)."""
        if self._broken:
            if self._filesystem is not None and self.profile.reconnect is not None:
                with translated(path, self.protocol):
                    self.profile.reconnect(self._filesystem)
            self._broken = False
        try:
            with logged_request(self._log, op, path), translated(path, self.protocol):
                yield
        except TransientStorageError:
            self._broken = True
            raise

    def _entry(self, path: str) -> dict[str, Any] | None:
        try:
            with self._mapped(path, "info"):
                return dict(self.fs.info(self._fs(path)))
        except StorageNotFoundError:
            return None

    def _explain(self, path: str, exc: StorageError) -> StorageError:
        """A sharper error for a failed open/write/list, from one extra request."""
        if isinstance(exc, TransientStorageError):
            return exc
        entry = self._entry(path)
        if entry is not None and entry.get("type") == "directory":
            return IsADirectoryStorageError(f"Is a directory: {path!r}")
        return exc

    def _refuse_readonly(self, action: str) -> None:
        if self.capabilities.readonly:
            raise StoragePermissionError(f"{self.protocol} backend is read-only: cannot {action}")

    # ---------------------------------------------------------------- contract
    def info(self, path: str) -> Info:
        with self._mapped(path, "info"):
            entry = self.fs.info(self._fs(path))
        if self.profile.web:
            entry = http_entry(path, entry)
        return self._to_info(path, entry)

    def _to_info(self, path: str, entry: dict[str, Any]) -> Info:
        info = to_info(path, entry, self.capabilities.hash_on_metadata)
        klass = self.profile.listed_class(entry) if self.profile.listed_class else None
        return replace(info, storage_class=klass) if klass and not info.is_dir else info

    def list(self, path: str) -> Iterator[Info]:
        full = self._full(path).rstrip("/")
        try:
            with self._mapped(path, "list"):
                listing = self.fs.ls(self._fs(path), detail=True)
        except StorageNotFoundError as exc:
            entry = self._entry(path)
            if entry is not None and entry.get("type") != "directory":
                raise NotADirectoryStorageError(f"Not a directory: {path!r}") from exc
            raise
        entries = [e for e in listing if e["name"].rstrip("/") != full or e["type"] == "file"]
        if any(e["name"].rstrip("/") == full for e in entries) or (
            not entries and self.profile.web and self._is_file(path)
        ):
            raise NotADirectoryStorageError(f"Not a directory: {path!r}")
        return iter(self._children(path, entries))

    def _is_file(self, path: str) -> bool:
        return path != "" and not self.info(path).is_dir

    def _children(self, path: str, entries: builtins.list[dict[str, Any]]) -> builtins.list[Info]:
        out = []
        base = self._fs(path).rstrip("/") + "/"
        for entry in entries:
            name = basename(entry["name"])
            if self.profile.web:  # only links to direct children, as written in a URL
                rest = entry["name"][len(base) :].rstrip("/")
                if not entry["name"].startswith(base) or not rest or "/" in rest or "?" in rest:
                    continue
                name = unquote(rest)
            if name in ("", ".", "..") or TMP_MARK in name:
                continue
            child = f"{path}/{name}" if path else name
            out.append(self._to_info(child, entry))
        return out

    def walk(self, path: str) -> Iterator[Info]:
        if not self.profile.flat_walk:
            return super().walk(path)
        full = self._full(path).rstrip("/")
        with self._mapped(path, "find"):
            found = self.fs.find(self._fs(path), detail=True, withdirs=False)
        if not found:
            list(self.list(path))  # raises the right error for a missing path or a file
        if full in found:
            raise NotADirectoryStorageError(f"Not a directory: {path!r}")
        base = len(self._full("").rstrip("/")) + 1 if self.root else 0
        return iter([self._to_info(name[base:], entry) for name, entry in found.items()])

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        try:
            with self._mapped(path, "open"):
                raw = self._open(path, start)
        except StorageNotFoundError:
            raise
        except StorageError as exc:
            raise self._explain(path, exc) from exc
        if getattr(raw, "details", {}).get("type") == "directory":
            raw.close()
            raise IsADirectoryStorageError(f"Is a directory: {path!r}")
        length = None if end is None else max(0, end - start)
        reader = Reader(raw, lambda: self._mapped(path, "read"), length)
        return io.BufferedReader(reader, CHUNK)

    def _open(self, path: str, start: int) -> Any:
        if self.profile.web:
            raw = self.fs.open(self._fs(path), "rb", block_size=0)
            skip(raw, start)
            return raw
        raw = self.fs.open(self._fs(path), "rb")
        if start:
            raw.seek(start)
        return raw

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        self._refuse_readonly(f"write {path!r}")
        writer = self.profile.writer
        if writer is None:
            raise StoragePermissionError(f"{self.protocol} backend cannot write")
        if mode is not WriteMode.OVERWRITE and not self.capabilities.conditional_write:
            raise UnsupportedOperation(f"{self.protocol} backend has no conditional writes")
        if not path:
            raise IsADirectoryStorageError("Cannot write to the backend root")
        try:
            with self._mapped(path, "write"):
                writer(self, path, as_stream(data))
        except StorageError as exc:
            raise self._explain(path, exc) from exc
        return self.info(path)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._refuse_readonly(f"delete {path!r}")
        if not self.info(path).is_dir:
            with self._mapped(path, "delete"):
                self.fs.rm_file(self._fs(path))
            return
        children = list(self.list(path))
        if children and not recursive:
            raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
        if not path:  # never remove the root itself (a bucket, a container, the share)
            for child in children:
                self.delete(child.path, recursive=True)
            return
        with self._mapped(path, "delete"):
            if self.capabilities.empty_dirs and not children:
                self.fs.rmdir(self._fs(path))
            else:
                self.fs.rm(self._fs(path), recursive=True)
        self._forget()

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self._refuse_readonly(f"create directory {path!r}")
        entry = self._entry(path)
        if entry is not None:
            if entry.get("type") != "directory":
                raise StorageAlreadyExistsError(f"A file exists at {path!r}")
            if exist_ok:
                return
            raise StorageAlreadyExistsError(f"Directory exists: {path!r}")
        if not self.capabilities.empty_dirs:
            return  # directories are implied by the names of the files in them
        with self._mapped(path, "mkdir"):
            if parents:
                makedirs(self.fs, self._fs(path))
            else:
                self.fs.mkdir(self._fs(path), create_parents=False)

    # ---------------------------------------------------------------- faster derived ops
    def copy(self, src: str, dst: str) -> Info:
        self._refuse_readonly(f"copy to {dst!r}")
        if self.profile.copier is None:
            return super().copy(src, dst)
        with self._mapped(src, "copy"):
            self._make_parent(dst)
            self.profile.copier(self, self._fs(src), self._fs(dst))
        self._forget()
        return self.info(dst)

    def move(self, src: str, dst: str) -> None:
        self._refuse_readonly(f"move {src!r}")
        if self.profile.mover is None:
            super().move(src, dst)
            return
        self.info(src)  # a missing source is StorageNotFoundError, whatever the server says
        with self._mapped(src, "move"):
            self._make_parent(dst)
            self.profile.mover(self, self._fs(src), self._fs(dst))
        self._forget()

    def _make_parent(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if self.capabilities.empty_dirs and parent:
            makedirs(self.fs, self._fs(parent))

    def _forget(self) -> None:
        self.fs.invalidate_cache()

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        return self._fs(path) if self.profile.web else None

    def close(self) -> None:
        if self._filesystem is not None:
            self.profile.closer(self._filesystem)


# ------------------------------------------------------------------------------- profiles
_OBJECT_STORE = Capabilities(
    empty_dirs=False, copy_optimization=True, append_mode=False, symbolic_links=False
)
SFTP = Profile(
    "sftp",
    Capabilities(atomic_rename=True),
    write_sftp,
    mover=move_sftp,
    closer=lambda fs: fs.client.close(),
    reconnect=reconnect_sftp,
)
WEBDAV = Profile(
    "webdav",
    Capabilities(copy_optimization=True, atomic_operations=False, append_mode=False),
    write_webdav,
    mover=move_webdav,
    copier=copy_webdav,
    closer=lambda fs: fs.client.http.close(),
)


def _gcs_class(entry: dict[str, Any]) -> str | None:
    found = entry.get("storageClass")
    return str(found) if found else None


# GCS and Azure are built as the subclasses in storied.backends._cloud_tiers (storage classes)
GCS = Profile(
    "gcs",
    _OBJECT_STORE.replace(hash_on_metadata=True, storage_classes=True),
    write_via_open,
    copier=copy_fs,
    flat_walk=True,
    listed_class=_gcs_class,
)
AZURE = Profile("azure", _OBJECT_STORE.replace(storage_classes=True), write_via_open,
                copier=copy_fs, flat_walk=True)
HTTP = Profile(
    "http",
    Capabilities(
        readonly=True, write=False, delete=False, mkdir=False, list_dir=False,
        append_mode=False, range_reads=False, public_urls=True,
    ),
    None,
    encode=quote_path,
    web=True,
)
