"""SMB/CIFS shares (genro-storage's ``smb`` mount type), on ``smbprotocol``'s ``smbclient``.

Mount keys (genro-storage's): ``host``, ``share`` (required), ``base_path`` (or ``path``: a folder
inside the share), ``username``, ``password``, ``domain``, ``port`` (445); storied adds
``connect_timeout`` (TCP connect and the SMB negotiation, 10 s), ``read_timeout`` (a server
that stops answering an open connection is detected within it, 60 s) and ``timeout`` (both,
where the specific key is absent). Building the mount does no network I/O: the connection (and
the login) happens at the first operation, and a wrong password or an unreachable host is an error
of that operation, not of ``configure``.

Semantics:

* A write streams to a temporary file beside the target (``*.storied-tmp-*``, hidden from
  listings) and renames it over the target with SMB's replace-if-exists rename, so a reader sees
  the old content or the new, never a part. A failed write removes the temporary file.
* ``copy`` is server-side (``FSCTL_SRV_COPYCHUNK``), into a temporary file renamed into place.
* ``move`` is a server-side rename (files replace the destination; a directory must not exist
  at the destination).
* Conditional writes are not offered: SMB has no compare-and-swap on content, so ``CREATE`` and
  ``IF_MATCH`` raise :class:`~storied.errors.UnsupportedOperation` (``conditional_write=False``).
* Recursive deletes never follow links: entries are removed by name, depth first.

Errors are mapped in :func:`_mapped` only: ``SMBOSError`` by errno, a failed login to
:class:`~storied.errors.StoragePermissionError`, a refused or lost connection to
:class:`~storied.errors.TransientStorageError` (the pooled connection is then dropped so the next
call reconnects), anything else from the library to :class:`~storied.errors.StorageIOError`.
"""

from __future__ import annotations

import errno
import io
import posixpath
import stat as statmod
import threading
import time
import uuid
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import smbclient
from smbprotocol.exceptions import (
    SMBAuthenticationError,
    SMBConnectionClosed,
    SMBException,
    SMBOSError,
    SMBResponseException,
)

from storied.backends._config_kinds import timeouts
from storied.backends._location import host_key
from storied.backends._logging import backend_logger, logged_request
from storied.backends.base import CHUNK, Backend, as_stream
from storied.backends.local import TMP_MARK
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    InvalidPathError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.info import Data, Info, WriteMode

__all__ = ["SmbBackend", "smb_from_config"]

_CAPS = Capabilities(
    atomic_operations=True,
    copy_optimization=True,
    append_mode=False,
    conditional_write=False,
    atomic_rename=True,
)
_ERRNO: dict[int, type[StorageError]] = {
    errno.ENOENT: StorageNotFoundError,
    errno.EEXIST: StorageAlreadyExistsError,
    errno.EISDIR: IsADirectoryStorageError,
    errno.ENOTDIR: NotADirectoryStorageError,
    errno.EACCES: StoragePermissionError,
    errno.EPERM: StoragePermissionError,
    errno.EINVAL: InvalidPathError,
}
_DIRECTORY = 0x10  # FILE_ATTRIBUTE_DIRECTORY
#: NTSTATUS codes that mean "this name cannot exist on the share" (invalid characters...).
_NAME_INVALID = {0xC0000033, 0xC0000039, 0xC000003B}
#: NTSTATUS codes of a refused login (logon failure, wrong password, expired, disabled, locked).
_LOGIN_REFUSED = {0xC000006D, 0xC000006A, 0xC0000071, 0xC0000072, 0xC0000234}
_BAD_NETWORK_NAME = 0xC00000CC  # no such share
_ACCESS_DENIED = 0xC0000022


class SmbBackend(Backend):
    """One folder of an SMB share.

    Args:
        host: Server name or address.
        share: Share name.
        base_path: Folder inside the share that is the mount's root (created on first write).
        username, password, domain: Credentials (``domain`` is prefixed as ``DOMAIN\\user``).
        port: TCP port (445).
        timeout: Seconds allowed to connect (``connect_timeout`` wins when given).
        connect_timeout: Seconds for the TCP connect and the SMB negotiation.
        read_timeout: Seconds of silence on an open connection after which it is closed and
            the waiting operation fails (smbprotocol's keep-alive echo, sent after half of it).
    """

    host: str
    share: str
    port: int
    base: str

    protocol = "smb"
    capabilities = _CAPS

    def __init__(self, host: str, share: str, base_path: str = "", *, username: str | None = None,
                 password: str | None = None, domain: str | None = None, port: int = 445,
                 timeout: float = 60, connect_timeout: float | None = None,
                 read_timeout: float = 60) -> None:
        self.host, self.share, self.port = host, share.strip("/\\"), port
        self.base = base_path.replace("\\", "/").strip("/")
        user = f"{domain}\\{username}" if domain and username else username
        self._cache: dict[str, Any] = {}
        self._kwargs: dict[str, Any] = {
            "username": user, "password": password, "port": port,
            "connection_timeout": connect_timeout or timeout, "connection_cache": self._cache,
        }
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._log = backend_logger("smb")

    def storage_key(self) -> Hashable:
        """One key per share: mounts of one share (any ``base_path``) see the same files."""
        return ("smb", host_key(self.host), self.port, self.share.lower())

    def location(self, path: str) -> tuple[Hashable, str]:
        return self.storage_key(), posixpath.join(self.base, path) if self.base else path

    # ------------------------------------------------------------------ plumbing
    def _unc(self, path: str) -> str:
        rel = posixpath.join(self.base, path) if path else self.base
        tail = "\\" + rel.replace("/", "\\") if rel else ""
        return f"\\\\{self.host}\\{self.share}{tail}"

    @contextmanager
    def _mapped(self, path: str, op: str = "request") -> Iterator[None]:
        """The one place where smbprotocol's errors become storied errors (and where each
        request is logged at DEBUG, ``op`` naming it)."""
        where = f"smb://{self.host}/{self.share}/{posixpath.join(self.base, path)}"
        try:
            with logged_request(self._log, op, path):
                self._connection()
                yield
        except StorageError:
            raise
        except SMBOSError as exc:
            status = getattr(exc, "ntstatus", None)
            if status in _NAME_INVALID:
                raise InvalidPathError(f"Invalid name for SMB: {where!r}") from exc
            if status in _LOGIN_REFUSED:
                self._forget()
                raise StoragePermissionError(f"SMB login refused for {where!r}") from exc
            if status == _ACCESS_DENIED:
                raise StoragePermissionError(f"SMB access denied: {where!r}") from exc
            if status == _BAD_NETWORK_NAME:
                raise StorageNotFoundError(f"No such SMB share: {where!r}") from exc
            if exc.errno == errno.ENOTEMPTY:
                raise DirectoryNotEmptyError(f"Directory not empty: {where!r}") from exc
            kind = _ERRNO.get(exc.errno or 0, StorageIOError)
            raise kind(f"{exc.strerror}: {where!r}") from exc
        except SMBAuthenticationError as exc:
            self._forget()
            raise StoragePermissionError(f"SMB login refused for {where!r}: {exc}") from exc
        except SMBResponseException as exc:
            if type(exc).__name__ in ("LogonFailure", "WrongPassword", "AccessDenied",
                                      "PasswordExpired", "BadNetworkName"):
                self._forget()
                raise StoragePermissionError(f"SMB refused {where!r}: {exc}") from exc
            raise StorageIOError(f"SMB error on {where!r}: {exc}") from exc
        except (SMBConnectionClosed, ConnectionError, TimeoutError) as exc:
            self._forget()
            raise TransientStorageError(f"SMB connection lost for {where!r}: {exc}") from exc
        except SMBException as exc:
            if "credits" in str(exc).lower():  # too many requests in flight on the connection
                raise TransientStorageError(f"SMB server busy for {where!r}: {exc}") from exc
            if "timeout" in str(exc).lower():
                self._forget()
                raise StorageTimeoutError(f"SMB server did not answer for {where!r}: {exc}") \
                    from exc
            raise StorageIOError(f"SMB error on {where!r}: {exc}") from exc
        except ValueError as exc:  # smbclient reports a refused connection as ValueError
            if "Failed to connect" not in str(exc):
                raise
            self._forget()
            raise TransientStorageError(f"Cannot reach SMB server for {where!r}: {exc}") from exc

    def _connection(self) -> None:
        """Open the pooled connection with the mount's timeouts (smbclient's own pooling
        would use its 10-minute keep-alive, under which a silent server hangs a call)."""
        key = f"{self.host.lower()}:{self.port}"
        conn = self._cache.get(key)
        if conn is not None and conn.transport.connected:
            return
        with self._lock:
            conn = self._cache.get(key)
            if conn is not None and conn.transport.connected:
                return
            from smbclient._pool import ClientConfig
            from smbprotocol.connection import Connection

            conn = Connection(ClientConfig().client_guid, self.host, self.port,
                              require_signing=True)
            conn._receive_timeout = max(1.0, self._read_timeout / 2)
            conn.connect(timeout=self._kwargs["connection_timeout"])
            self._cache[key] = conn

    def _forget(self) -> None:
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._cache)

    def _stat(self, path: str) -> Any:
        with self._mapped(path, "stat"):
            return smbclient.stat(self._unc(path), **self._kwargs)

    @staticmethod
    def _info(path: str, st: Any) -> Info:
        if statmod.S_ISDIR(st.st_mode):
            return Info(path, is_dir=True, mtime=st.st_mtime)
        etag = f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"
        return Info(path, False, st.st_size, st.st_mtime, etag)

    # ------------------------------------------------------------------ reads
    def info(self, path: str) -> Info:
        with self._mapped(path, "info"):
            return self._info(path, self._stat(path))

    def list(self, path: str) -> Iterator[Info]:
        out: list[Info] = []
        with self._mapped(path, "list"):
            if not statmod.S_ISDIR(self._stat(path).st_mode):
                raise NotADirectoryStorageError(f"Not a directory: {path!r}")
            with smbclient.scandir(self._unc(path), **self._kwargs) as entries:
                for entry in entries:
                    if TMP_MARK in entry.name:
                        continue
                    child = posixpath.join(path, entry.name) if path else entry.name
                    meta = entry.smb_info
                    mtime = meta.last_write_time.timestamp()
                    if meta.file_attributes & _DIRECTORY:
                        out.append(Info(child, is_dir=True, mtime=mtime))
                    else:
                        ns = int(mtime * 1e9)
                        etag = f"{meta.file_id:x}-{ns:x}-{meta.end_of_file:x}"
                        out.append(Info(child, False, meta.end_of_file, mtime, etag))
        return iter(out)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        with self._mapped(path, "open"):
            raw = smbclient.open_file(self._unc(path), mode="rb", share_access="rwd",
                                      buffering=0, **self._kwargs)
            try:
                if start:
                    raw.seek(start)
            except BaseException:
                raw.close()
                raise
        length = None if end is None else max(0, end - start)
        return io.BufferedReader(_Reader(self, path, raw, length), CHUNK)

    # ------------------------------------------------------------------ writes
    def _refuse_conditional(self, mode: WriteMode) -> None:
        if mode is not WriteMode.OVERWRITE:
            raise UnsupportedOperation(
                "smb backend has no conditional writes (SMB offers no compare-and-swap)"
            )

    def _tmp(self, path: str) -> str:
        parent, _, name = path.rpartition("/")
        # random, not pid-counter: writers on other hosts (containers: pid 1) share the folder,
        # and two writers opening one temporary name would truncate each other's upload
        tmp = f".{name[:40]}{TMP_MARK}{uuid.uuid4().hex[:20]}"
        return f"{parent}/{tmp}" if parent else tmp

    def _ensure_parent(self, path: str) -> None:
        parent = posixpath.dirname(path)
        target = posixpath.join(self.base, parent)
        if target:
            try:
                st = self._stat(parent)
            except StorageNotFoundError:
                smbclient.makedirs(self._unc(parent), exist_ok=True, **self._kwargs)
                return
            except StoragePermissionError:  # Samba, while another writer creates that folder
                time.sleep(0.05)
                st = self._stat(parent)
            if not statmod.S_ISDIR(st.st_mode):
                raise NotADirectoryStorageError(f"A parent of {path!r} is a file")

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        self._refuse_conditional(mode)
        if not path:
            raise IsADirectoryStorageError("Cannot write to the mount root")
        tmp = self._tmp(path)
        with self._mapped(path, "write"):
            self._ensure_parent(path)
            try:
                st = self._stat(path)
            except StorageNotFoundError:
                st = None
            if st is not None and statmod.S_ISDIR(st.st_mode):
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            try:
                source = as_stream(data)
                with smbclient.open_file(self._unc(tmp), mode="wb", **self._kwargs) as out:
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
                smbclient.replace(self._unc(tmp), self._unc(path), **self._kwargs)
            except BaseException:
                self._discard(tmp)
                raise
            return self._info(path, self._stat(path))

    def _discard(self, path: str) -> None:
        try:
            smbclient.remove(self._unc(path), **self._kwargs)
        except Exception:
            pass  # best effort: the temporary name is hidden from listings anyway

    def delete(self, path: str, *, recursive: bool = False) -> None:
        with self._mapped(path, "delete"):
            st = self._stat(path)
            if not statmod.S_ISDIR(st.st_mode):
                smbclient.remove(self._unc(path), **self._kwargs)
                return
            names = smbclient.listdir(self._unc(path), **self._kwargs)
            if names and not recursive:
                raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
            self._remove_tree(path)

    def _remove_tree(self, path: str) -> None:
        with smbclient.scandir(self._unc(path), **self._kwargs) as entries:
            children = [(e.name, bool(e.smb_info.file_attributes & _DIRECTORY)) for e in entries]
        for name, is_dir in children:
            child = posixpath.join(path, name) if path else name
            if is_dir:
                self._remove_tree(child)
            else:
                smbclient.remove(self._unc(child), **self._kwargs)
        if path:  # the mount's root itself stays
            smbclient.rmdir(self._unc(path), **self._kwargs)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        with self._mapped(path, "mkdir"):
            try:
                st = self._stat(path)
            except StorageNotFoundError:
                st = None
            if st is not None:
                if statmod.S_ISDIR(st.st_mode) and exist_ok:
                    return
                raise StorageAlreadyExistsError(f"Already exists: {path!r}")
            if parents:
                smbclient.makedirs(self._unc(path), exist_ok=True, **self._kwargs)
            else:
                smbclient.mkdir(self._unc(path), **self._kwargs)

    def copy(self, src: str, dst: str) -> Info:
        tmp = self._tmp(dst)
        with self._mapped(src, "copy"):
            if self.info(src).is_dir:
                raise IsADirectoryStorageError(f"Is a directory: {src!r}")
            self._ensure_parent(dst)
            try:
                smbclient.copyfile(self._unc(src), self._unc(tmp), **self._kwargs)
                smbclient.replace(self._unc(tmp), self._unc(dst), **self._kwargs)
            except BaseException:
                self._discard(tmp)
                raise
            return self._info(dst, self._stat(dst))

    def move(self, src: str, dst: str) -> None:
        with self._mapped(src, "move"):
            is_dir = self.info(src).is_dir
            self._ensure_parent(dst)
            if is_dir:
                smbclient.rename(self._unc(src), self._unc(dst), **self._kwargs)
            else:
                smbclient.replace(self._unc(src), self._unc(dst), **self._kwargs)

    def close(self) -> None:
        with self._lock:
            self._forget()


class _Reader(io.RawIOBase):
    """An SMB file handle, limited to ``length`` bytes, with errors mapped."""

    def __init__(self, backend: SmbBackend, path: str, raw: Any, length: int | None) -> None:
        self._backend, self._path, self._raw, self._left = backend, path, raw, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        if want <= 0:
            return 0
        with self._backend._mapped(self._path, "read"):
            chunk = self._raw.read(want)
        buffer[: len(chunk)] = chunk
        if self._left is not None:
            self._left -= len(chunk)
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            try:
                with self._backend._mapped(self._path, "close"):
                    self._raw.close()
            finally:
                super().close()


def smb_from_config(config: dict[str, Any]) -> Backend:
    """Build an SMB mount from genro-storage's keys (see the module doc). No network I/O.

    Raises:
        StorageConfigError: A key has the wrong type.
    """
    name = config.get("name")
    for key in ("host", "share", "base_path", "username", "password", "domain"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise StorageConfigError(f"SMB storage {name!r}: {key!r} must be a string")
    for key in ("port", "timeout", "connect_timeout", "read_timeout"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value <= 0):
            raise StorageConfigError(f"SMB storage {name!r}: {key!r} must be a positive number")
    port = config.get("port") or 445
    connect_s, read_s = timeouts(config)
    if not isinstance(port, int):
        raise StorageConfigError(f"SMB storage {name!r}: 'port' must be an integer")
    backend: Backend = SmbBackend(
        config["host"], config["share"], username=config.get("username"),
        password=config.get("password"), domain=config.get("domain"), port=port,
        timeout=connect_s, connect_timeout=connect_s, read_timeout=read_s,
    )
    prefix = (config.get("base_path") or "").replace("\\", "/").strip("/")
    if prefix:  # a mount prefix, so that locations (same storage, nesting) see it
        from storied.backends.wrappers import Prefixed

        backend = Prefixed(backend, prefix)
    return backend
