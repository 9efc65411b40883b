"""Helpers of :mod:`storied.backends.fsspec_adapters`: the error mapping, info records, streams.

:func:`translated` is the one place where errors of fsspec, paramiko, webdav4, httpx, aiohttp,
gcsfs and azure-core become :mod:`storied.errors` types. Library exceptions are recognised by
class name or HTTP status, so no optional library is imported here.
"""

from __future__ import annotations

import base64
import email.utils
import io
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from storied.backends.base import CHUNK
from storied.backends.local import TMP_MARK
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    TransientStorageError,
)
from storied.info import Info

if TYPE_CHECKING:
    from storied.backends.fsspec_adapters import FsspecBackend

__all__ = [
    "Reader",
    "basename",
    "copy_stream",
    "http_entry",
    "known_hosts_policy",
    "makedirs",
    "quoting_webdav_client",
    "skip",
    "to_info",
    "translated",
    "write_sftp",
]

# ------------------------------------------------------------------------------- error mapping
_BY_NAME: dict[str, type[StorageError]] = {
    # webdav4
    "ResourceNotFound": StorageNotFoundError,
    "ResourceAlreadyExists": StorageAlreadyExistsError,
    "ForbiddenOperation": StoragePermissionError,
    "IsACollectionError": IsADirectoryStorageError,
    "IsAResourceError": NotADirectoryStorageError,
    "ResourceLocked": TransientStorageError,
    "BadGatewayError": TransientStorageError,
    # azure-core
    "ResourceNotFoundError": StorageNotFoundError,
    "ResourceExistsError": StorageAlreadyExistsError,
    "ClientAuthenticationError": StoragePermissionError,
    "ServiceRequestError": TransientStorageError,
    "ServiceResponseError": TransientStorageError,
    # paramiko (before SSHException, which is transient)
    "AuthenticationException": StoragePermissionError,
    "BadHostKeyException": StoragePermissionError,
    "NoValidConnectionsError": TransientStorageError,
}
_BY_STATUS: dict[int, type[StorageError]] = {
    401: StoragePermissionError,
    403: StoragePermissionError,
    404: StorageNotFoundError,
    412: PreconditionFailedError,
}
_RETRY_STATUS = frozenset({408, 423, 425, 429})
_TRANSIENT_NAMES = {
    "paramiko": ("SSHException",),
    "aiohttp": ("ClientConnectionError", "ClientPayloadError"),
    "httpx": ("TransportError",),
    "google.auth.exceptions": ("TransportError",),
}
_DEAD_SOCKET = frozenset({"socket is closed", "server connection dropped", "connection lost"})
_BUILTIN: tuple[tuple[type[BaseException], type[StorageError]], ...] = (
    (FileNotFoundError, StorageNotFoundError),
    (FileExistsError, StorageAlreadyExistsError),
    (IsADirectoryError, IsADirectoryStorageError),
    (NotADirectoryError, NotADirectoryStorageError),
    (PermissionError, StoragePermissionError),
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    for value in (
        getattr(exc, "status", None),
        getattr(exc, "code", None),
        getattr(exc, "status_code", None),
        getattr(response, "status_code", None),
    ):
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def _transient_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, EOFError]
    for module_name, names in _TRANSIENT_NAMES.items():
        module = sys.modules.get(module_name)  # not loaded: it cannot have raised anything
        found += [getattr(module, n) for n in names if hasattr(module, n)]
    return tuple(found)


def _timed_out(exc: BaseException) -> bool:
    """A timeout anywhere in the chain (``TimeoutError``, httpx's ``ReadTimeout``, aiohttp's
    ``ServerTimeoutError``, azure-core's ``ServiceResponseTimeoutError``...)."""
    return any(
        isinstance(link, TimeoutError) or any("Timeout" in c.__name__ for c in type(link).__mro__)
        for link in _chain(exc)
    )


def _kind(exc: BaseException) -> type[StorageError] | None:
    kind = _base_kind(exc)
    if kind is TransientStorageError and _timed_out(exc):
        return StorageTimeoutError
    return kind


def _base_kind(exc: BaseException) -> type[StorageError] | None:
    for cls in type(exc).__mro__:
        if cls.__name__ in _BY_NAME:
            return _BY_NAME[cls.__name__]
    if type(exc).__name__ == "SSHException" and "private key" in str(exc).lower():
        return StoragePermissionError  # an unusable key file: retrying cannot help
    transient = _transient_types()
    for link in _chain(exc):
        status = _status(link)
        if status is not None:
            if status in _RETRY_STATUS or (status >= 500 and status not in (501, 505)):
                return TransientStorageError
            return _BY_STATUS.get(status, StorageError)
        if isinstance(link, transient):
            return TransientStorageError
    for builtin, mapped in _BUILTIN:
        if isinstance(exc, builtin):
            return mapped
    message = str(exc).lower()
    if isinstance(exc, OSError) and "not empty" in message:
        return DirectoryNotEmptyError
    if isinstance(exc, OSError) and exc.errno is None and message in _DEAD_SOCKET:
        return TransientStorageError  # paramiko, once the connection is gone
    if isinstance(exc, OSError) or _status(exc) is not None:
        return StorageError
    return None


def _translate(exc: BaseException, path: str, protocol: str) -> StorageError | None:
    """The storied error for a lower-layer ``exc`` (None: not a storage error, re-raise it)."""
    if isinstance(exc, StorageError):
        return exc
    kind = _kind(exc)
    if kind is None:
        return None
    detail = str(exc) or type(exc).__name__
    return kind(f"{protocol}: {detail} ({path!r})")


# ------------------------------------------------------------------------------- info records
def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            return parsed.timestamp() if parsed else None
    return None


def _md5(entry: dict[str, Any]) -> str | None:
    raw = entry.get("md5Hash")
    if isinstance(raw, str):
        return base64.b64decode(raw).hex()
    settings = entry.get("content_settings")
    digest = getattr(settings, "content_md5", None) or (settings or {}).get("content_md5")
    return bytes(digest).hex() if digest else None


def to_info(path: str, entry: dict[str, Any], with_md5: bool) -> Info:
    """The :class:`Info` of one fsspec ``info``/``ls`` record (keys differ per filesystem)."""
    if entry.get("type") == "directory":
        return Info(path, is_dir=True)
    mtime = next(
        (
            _timestamp(entry[key])
            for key in ("mtime", "modified", "last_modified", "updated", "Last-Modified")
            if entry.get(key) is not None
        ),
        None,
    )
    etag = entry.get("etag") or entry.get("ETag")
    md5 = _md5(entry) if with_md5 else None
    return Info(path, False, int(entry.get("size") or 0), mtime, etag, md5)


def basename(name: str) -> str:
    """The last segment of an fs path (trailing slashes ignored)."""
    return name.rstrip("/").rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------- the mapping site
@contextmanager
def translated(path: str, protocol: str) -> Iterator[None]:
    """Translate what the block raises into the storied tree, chained with ``from``.

    Exceptions that are no storage failure (``TypeError``, ``ValueError``...) pass unchanged.
    """
    try:
        yield
    except Exception as exc:
        mapped = _translate(exc, path, protocol)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


# ------------------------------------------------------------------------------- streams
class Reader(io.RawIOBase):
    """An fsspec/paramiko file as a raw stream: errors mapped, optionally limited in length.

    Args:
        raw: The open file (closed with this stream).
        guard: Called with no argument around every read: the owner's error-mapping context.
        length: Bytes to give at most (None: to EOF).
    """

    def __init__(
        self, raw: Any, guard: Callable[[], AbstractContextManager[None]], length: int | None
    ) -> None:
        self._raw, self._guard, self._left = raw, guard, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        if want <= 0:
            return 0
        with self._guard():
            chunk = self._raw.read(want)
        n = len(chunk)
        buffer[:n] = chunk
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def skip(raw: Any, count: int) -> None:
    """Read and drop ``count`` bytes (a forward seek on a stream that cannot seek)."""
    while count > 0:
        chunk = raw.read(min(CHUNK, count))
        if not chunk:
            return
        count -= len(chunk)


def copy_stream(source: BinaryIO, target: Any) -> None:
    """Copy ``source`` to ``target`` one chunk at a time."""
    while chunk := source.read(CHUNK):
        target.write(chunk)


def http_entry(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """HTTP has no directories; an index page reached through a redirect to ``.../`` is one."""
    if not path or (str(entry.get("url", "")).endswith("/") and not entry["name"].endswith("/")):
        return {**entry, "type": "directory"}
    return entry


# ------------------------------------------------------------------------------- library quirks
def write_sftp(backend: FsspecBackend, path: str, data: BinaryIO) -> None:
    """Stream to a temporary sibling, then ``posix_rename`` it over the target."""
    fs, full = backend.fs, backend._fs(path)
    parent, _, name = full.rpartition("/")
    if parent and parent != ".":
        makedirs(fs, parent)
    tmp = f"{parent}/.{name[:100]}{TMP_MARK}{uuid.uuid4().hex[:12]}"
    try:
        with fs.ftp.open(tmp, "wb") as out:
            out.set_pipelined(True)
            copy_stream(data, out)
        _sftp_replace(fs.ftp, tmp, full)
    except BaseException:
        try:
            fs.ftp.remove(tmp)
        except OSError:
            pass
        raise


def makedirs(fs: Any, path: str) -> None:
    """``fs.makedirs(path, exist_ok=True)``, safe against another writer creating the same
    directories at the same time (fsspec checks, then creates: the loser of that race gets
    "File exists")."""
    try:
        fs.makedirs(path, exist_ok=True)
    except OSError:
        if not fs.isdir(path):
            raise


def _sftp_replace(ftp: Any, tmp: str, full: str) -> None:
    try:
        ftp.posix_rename(tmp, full)
    except OSError as exc:
        if "unsupported" not in str(exc).lower():
            raise
        try:  # no posix-rename@openssh.com: not atomic, but never a partial file
            ftp.remove(full)
        except FileNotFoundError:
            pass
        ftp.rename(tmp, full)


def known_hosts_policy(path: str) -> Any:
    """A paramiko host-key policy accepting only the keys listed in the known_hosts ``path``
    (needs fsspec >= 2026.9, whose SFTPFileSystem takes ``host_key_policy``)."""
    import paramiko

    class KnownHosts(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            known = paramiko.HostKeys(path).lookup(hostname) or {}
            expected = known.get(key.get_name())
            if expected != key:
                raise paramiko.BadHostKeyException(hostname, key, expected or key)

    return KnownHosts()


def quoting_webdav_client(url: str, options: dict[str, Any]) -> Any:
    """A webdav4 client that percent-encodes paths itself: webdav4 hands paths to httpx as
    already-encoded, so a name holding ``%``, ``#`` or ``?`` would reach another resource."""
    from webdav4.client import Client
    from webdav4.urls import join_url

    class QuotingClient(Client):  # type: ignore[misc]
        def join_url(self, path: str, add_trailing_slash: bool = False) -> Any:
            encoded = quote(path, safe="/")
            return join_url(self.base_url, encoded, add_trailing_slash=add_trailing_slash)

    return QuotingClient(url, **options)


# ------------------------------------------------------------------------------- write strategies
def write_via_open(backend: FsspecBackend, path: str, data: BinaryIO) -> None:
    """Object stores: the object appears when the (chunked) upload completes."""
    with backend.fs.open(backend._fs(path), "wb", block_size=8 * CHUNK) as out:
        copy_stream(data, out)


def write_webdav(backend: FsspecBackend, path: str, data: BinaryIO) -> None:
    """One streamed PUT (chunked when the length is unknown); parents are created first.

    A stream that cannot seek is wrapped so the client cannot mistake a socket's ``fileno()``
    (an HTTP response being relayed) for a file of length 0.
    """
    seekable = getattr(data, "seekable", lambda: False)()
    upload = data if seekable else io.BufferedReader(_Forward(data))
    backend.fs.upload_fileobj(upload, backend._fs(path), overwrite=True)


class _Forward(io.RawIOBase):
    """A forward-only view of a stream that hides its ``fileno`` and length."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def move_sftp(backend: FsspecBackend, src: str, dst: str) -> None:
    backend.fs.ftp.posix_rename(src, dst)


def move_webdav(backend: FsspecBackend, src: str, dst: str) -> None:
    backend.fs.client.move(src, dst, overwrite=True)


def copy_webdav(backend: FsspecBackend, src: str, dst: str) -> None:
    backend.fs.client.copy(src, dst, overwrite=True)


def copy_fs(backend: FsspecBackend, src: str, dst: str) -> None:
    backend.fs.cp_file(src, dst)


def quote_path(path: str) -> str:
    return quote(path, safe="/")


def reconnect_sftp(fs: Any) -> None:
    fs.client.close()
    fs._connect()  # fsspec's own (re)connection routine
    sftp_timeout(fs)


def threaded_sftp(base: type) -> type:
    """A subclass of fsspec's ``SFTPFileSystem`` whose ``ftp`` is one SFTP channel per thread
    over the one SSH connection: a paramiko ``SFTPClient`` serves one thread at a time
    (concurrent requests and pipelined writes of several threads on one channel can hang).
    A thread whose channel the server refuses (``MaxSessions``) shares the first one."""

    class ThreadedSFTP(base):  # type: ignore[misc]
        @property
        def ftp(self) -> Any:
            state = self.__dict__["_storied_sftp"]
            local = state["local"]
            if getattr(local, "generation", None) != state["generation"]:
                try:
                    channel = self.client.open_sftp()
                    seconds = getattr(self, "storied_read_timeout", None) or self.ssh_kwargs.get(
                        "timeout")
                    if seconds:
                        channel.get_channel().settimeout(seconds)
                except Exception as exc:
                    if type(exc).__name__ != "ChannelException":
                        raise
                    channel = state["first"]
                local.channel, local.generation = channel, state["generation"]
            return local.channel

        @ftp.setter
        def ftp(self, channel: Any) -> None:  # fsspec's _connect: a new SSH connection
            state = self.__dict__.setdefault("_storied_sftp", {"generation": 0})
            state.update(generation=state["generation"] + 1, first=channel,
                         local=threading.local())
            state["local"].channel, state["local"].generation = channel, state["generation"]

    return ThreadedSFTP


def sftp_timeout(fs: Any) -> None:
    """paramiko's ``timeout`` covers the connection only; bound every SFTP request too, by the
    mount's read timeout (``fs.storied_read_timeout``, else paramiko's ``timeout``)."""
    seconds = getattr(fs, "storied_read_timeout", None) or fs.ssh_kwargs.get("timeout")
    if seconds:
        fs.ftp.get_channel().settimeout(seconds)
