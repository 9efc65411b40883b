"""StorageNode: a path on a mount, with a pathlib feel.

Pure path operations never touch storage. Every I/O method goes through the mount's backend and
costs the fewest requests the backend allows (``read_bytes`` is one GET, ``exists`` one HEAD).
Conveniences (copy strategies, serving, subprocess helpers) live in sibling modules and are reached
through thin methods here.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from datetime import datetime
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from storied import paths
from storied.backends.base import Backend
from storied.capabilities import Capabilities
from storied.core import pinned
from storied.core.copying import TransferMethods
from storied.core.diffs import DiffMethods
from storied.core.integration import IntegrationMethods
from storied.core.locking import LockMethods
from storied.core.objectlock import ObjectLockMethods
from storied.core.pathlike import PathlibMethods
from storied.core.removal import RemovalMethods
from storied.core.sealed import opened, sealed_for_write
from storied.core.streaming import StreamingMethods
from storied.core.streams import (
    AtomicTextWriter,
    AtomicWriter,
    TextReader,
    decode_error,
    encode_error,
    md5_of_stream,
)
from storied.core.tagging import TagMethods
from storied.core.versioned import VersionMethods
from storied.core.writing import (
    check_conditions,
    check_encoding,
    check_mode,
    check_text_options,
    open_writer,
    unchanged,
)
from storied.errors import (
    InvalidArgumentError,
    IsADirectoryStorageError,
    ReadOnlyVersionError,
    StorageNotFoundError,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.info import Data, Info

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["StorageNode"]

_WRITE_MODES = frozenset("wax+")


class StorageNode(
    RemovalMethods, VersionMethods, TagMethods, DiffMethods, IntegrationMethods, LockMethods,
    TransferMethods, PathlibMethods, StreamingMethods, ObjectLockMethods,
):
    """A file or directory on a mount. Make them with ``StorageManager.node('mount:path')``.

    Nodes are cheap values: equal when they name the same mount, path and version (no I/O), and
    hashable. Use :meth:`same_content` to compare contents.
    """

    def __init__(
        self,
        manager: StorageManager,
        mount_name: str | None,
        path: str,
        version: int | str | None = None,
        *,
        info: Info | None = None,
    ) -> None:
        self._manager = manager
        self._mount_name = mount_name
        self._path = path
        self._version = version
        self._listed = info  # what a listing said about this node, used only by md5hash()
        self._backend: Backend | None = manager.get_backend(mount_name) if mount_name else None

    # ------------------------------------------------------------------ factory hook
    def _create_node(
        self, manager: StorageManager, mount_name: str | None, path: str
    ) -> StorageNode:
        """Make a related node (parent, child); subclasses override this to keep their class."""
        return type(self)(manager, mount_name, path)

    def _related(self, path: str, info: Info | None = None) -> StorageNode:
        node = self._create_node(self._manager, self._mount_name, path)
        node._listed = info
        return node

    # ------------------------------------------------------------------ pure path properties
    @property
    def mount_name(self) -> str | None:
        """The mount this node lives on (None for virtual nodes)."""
        return self._mount_name

    @property
    def path(self) -> str:
        """The path relative to the mount root (``''`` at the root)."""
        return self._path

    @property
    def fullpath(self) -> str:
        """``'mount:path'`` (``'mount:'`` at the root)."""
        return f"{self._mount_name}:{self._path}"

    @property
    def version(self) -> int | str | None:
        """The version this node is pinned to (None: the current content)."""
        return self._version

    @property
    def basename(self) -> str:
        """The last path segment."""
        return PurePosixPath(self._path).name

    @property
    def stem(self) -> str:
        """The basename without its last suffix."""
        return PurePosixPath(self._path).stem

    @property
    def suffix(self) -> str:
        """The last suffix, with its dot (``'.gz'`` for ``a.tar.gz``)."""
        return PurePosixPath(self._path).suffix

    @property
    def ext(self) -> str:
        """The last suffix without its dot."""
        return self.suffix[1:]

    def splitext(self) -> tuple[str, str]:
        """``(path_without_suffix, suffix)``."""
        suffix = self.suffix
        return (self._path[: -len(suffix)] if suffix else self._path), suffix

    @property
    def parent(self) -> StorageNode:
        """The containing directory's node (the root is its own parent)."""
        return self._related(self._path.rpartition("/")[0])

    @property
    def dirname(self) -> str:
        """The parent's full path."""
        return self.parent.fullpath

    @property
    def mimetype(self) -> str:
        """The media type guessed from the name (``application/octet-stream`` if unknown)."""
        return mimetypes.guess_type(self.basename)[0] or "application/octet-stream"

    @property
    def resolved_path(self) -> str | None:
        """The absolute filesystem path on local mounts (also relative ones), else None."""
        return self._be.local_path(self._path) if self._backend else None

    @property
    def capabilities(self) -> Capabilities:
        """What this node's mount can do (version flags off on a pinned-version node)."""
        caps = self._be.capabilities
        if self._version is None and self._history is not None:
            caps = caps.replace(versioning=True, version_listing=True, version_access=True)
        if self._version is not None:
            caps = caps.as_readonly().replace(
                versioning=False, version_listing=False, version_access=False
            )
        return caps

    def child(self, *parts: str) -> StorageNode:
        """A node below this one. Parts may hold ``/``; ``..`` and absolute parts are refused.

        Raises:
            PathEscapeError: A part would leave the mount (also ``PermissionError``/``ValueError``).
        """
        if self.capabilities.opaque_paths:
            raise UnsupportedOperation(f"{self.fullpath}: this mount has no directories")
        return self._related(paths.check_public(paths.join(self._path, *parts)))

    # ------------------------------------------------------------------ status
    @property
    def _be(self) -> Backend:
        if self._backend is None:
            raise InvalidArgumentError("Cannot do I/O on virtual node (no path)")
        return self._backend

    def info(self) -> Info:
        """Everything the backend says about this path, from one request.

        On a version-pinned node: that version's size, time, MD5 and metadata.

        Raises:
            StorageNotFoundError: Nothing is there (no such version, for a pinned node).
        """
        if self._version is not None:
            return pinned.pinned_info(self)
        return self._be.info(self._path)

    def _info_or_none(self) -> Info | None:
        try:
            return self.info()
        except StorageNotFoundError:
            return None

    def exists(self) -> bool:
        """True if a file or directory is at this path (one request); on a version-pinned
        node, True when that version exists."""
        if self._backend is not None and self._version is not None:
            return self._info_or_none() is not None
        return self._backend is not None and self._be.exists(self._path)

    def is_file(self) -> bool:
        """True if a file is at this path."""
        info = self._info_or_none() if self._backend else None
        return info is not None and not info.is_dir

    def is_dir(self) -> bool:
        """True if a directory is at this path."""
        info = self._info_or_none() if self._backend else None
        return info is not None and info.is_dir

    def _file_info(self) -> Info:
        info = self.info()
        if info.is_dir:
            raise IsADirectoryStorageError(f"{self.fullpath} is a directory")
        return info

    def size(self) -> int:
        """Size in bytes. Raises ``StorageNotFoundError``, or ``IsADirectoryStorageError``
        (also a ``ValueError``) for a directory."""
        return self._file_info().size

    def mtime(self) -> float:
        """Last modification time as a Unix timestamp."""
        info = self.info()
        if info.mtime is None:
            raise UnsupportedOperation(f"{self.fullpath}: the backend reports no mtime")
        return info.mtime

    def md5hash(self) -> str:
        """The lowercase hex MD5 of the content.

        Costs no request when this node came from a listing that knew it, one HEAD when the
        backend keeps a true MD5 (single-part S3 ETag), else one streamed read.
        """
        info = self._listed if self._listed is not None and self._listed.md5 else None
        info = info or self._file_info()
        if info.md5:
            return info.md5
        return md5_of_stream(pinned.open_range(self))

    def same_content(self, other: StorageNode) -> bool:
        """True when both are files with the same MD5 (compares sizes first)."""
        try:
            if self.size() != other.size():
                return False
            return self.md5hash() == other.md5hash()
        except (StorageNotFoundError, IsADirectoryStorageError):
            return False

    @property
    def ext_attributes(self) -> tuple[float | None, int | None, bool]:
        """``(mtime, size or None for a directory, is_dir)`` from one request;
        ``(None, None, False)`` if nothing is there."""
        info = self._info_or_none()
        if info is None:
            return (None, None, False)
        return (info.mtime, None if info.is_dir else info.size, info.is_dir)

    def get_metadata(self) -> dict[str, str]:
        """The user metadata stored with the file (``{}`` where the backend keeps none)."""
        try:
            return self._be.get_metadata(self._path)
        except UnsupportedOperation:
            return {}

    def set_metadata(self, metadata: dict[str, str]) -> None:
        """Replace the file's user metadata in one request (str keys and values only)."""
        from storied.core.locking import guard_write

        pinned.refuse_write(self)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata keys and values must be str")
        guard_write(self)
        self._be.set_metadata(self._path, metadata)

    def url(self, expires_in: int = 3600, **kwargs: Any) -> str | None:
        """A URL for the file: presigned on S3, ``base_url``-based on local, else None (always
        None on a version-pinned node: a URL would serve the current content)."""
        if self._version is not None:
            return None
        return self._be.url(self._path, expires_in)

    def internal_url(self, nocache: bool = False) -> str | None:
        """Reserved for application routing (genro-storage compatibility); always None."""
        return None

    # ------------------------------------------------------------------ reading
    def open(
        self,
        mode: str = "r",
        version: int | str | None = None,
        as_of: datetime | None = None,
        encoding: str | None = "utf-8",
        *, buffering: int = -1, errors: str | None = None, newline: str | None = None,
    ) -> IO[Any]:
        """Open the file. Read modes stream; write modes return an atomic writer. ``errors``
        and ``newline`` are those of :func:`open`; ``buffering`` is accepted for pathlib's
        signature (storied's streams are always buffered).

        Writing modes (``w``, ``a``, ``x``, ``r+`` and their binary forms) buffer the content
        and replace the file only when the file object closes without an error; ``x`` fails if
        the file exists (checked at open and again, atomically, at close).
        """
        self._check_version_args(mode, version, as_of)
        text_encoding = check_encoding(encoding or "utf-8")
        check_text_options(buffering, errors, newline)
        if _WRITE_MODES.intersection(mode):
            writer = self._open_writer(mode)
            if "b" in mode:
                return writer  # type: ignore[return-value]
            return AtomicTextWriter(writer, text_encoding, self.fullpath, errors, newline)
        if version is not None or as_of is not None or self._version is not None:
            raw = self._open_version(self._version if version is None else version, as_of)
        else:
            raw = self._be.open_read(self._path)
        if "b" in mode:
            return raw
        return TextReader(raw, text_encoding, self.fullpath, errors, newline)

    def _check_version_args(self, mode: str, version: object, as_of: object) -> None:
        check_mode(mode)
        if self._version is not None and (version is not None or as_of is not None):
            raise InvalidArgumentError(
                "This node is a versioned snapshot; it cannot take version/as_of"
            )
        if _WRITE_MODES.intersection(mode):
            pinned.refuse_write(self)
        if version is not None and as_of is not None:
            raise InvalidArgumentError("Cannot specify both version and as_of")
        if (version is not None or as_of is not None) and _WRITE_MODES.intersection(mode):
            raise ReadOnlyVersionError("Cannot write to historical versions (read-only)")

    def _open_writer(self, mode: str) -> AtomicWriter:
        return open_writer(self, mode)

    def require_writable(self) -> None:
        """Raise ``StoragePermissionError`` now if this node's mount refuses writes, or the node
        is pinned to a version (a read-only snapshot; the error is also a ``ValueError``)."""
        pinned.refuse_write(self)
        if not self._be.capabilities.write:
            raise StoragePermissionError(
                f"{self.fullpath}: mount is read-only. Write operations are not permitted."
            )

    def read_bytes(self) -> bytes:
        """The whole content as bytes (one request; two for a pinned version), decrypted when it
        was written ``encrypted`` (``open()`` gives the stored bytes, as genro-storage does).

        Raises:
            MissingKeyError: Encrypted for a domain with no installed key.
            DecryptionError: No installed key of its domain opens it.
        """
        if self._version is not None:
            with self._open_version(self._version, None) as stream:
                return opened(self, stream.read())
        return opened(self, self._be.read_bytes(self._path))

    def read_text(self, encoding: str = "utf-8", errors: str | None = None) -> str:
        """The whole content decoded as text (``errors`` as for :meth:`bytes.decode`).

        Raises:
            InvalidEncodingError: Unknown ``encoding`` (also ``LookupError``/``ValueError``).
            TextDecodeError: The content is not text in ``encoding`` (a ``UnicodeDecodeError``).
        """
        codec = check_encoding(encoding)
        check_text_options(-1, errors, None)
        data = self.read_bytes()
        try:
            return data.decode(codec, errors or "strict")
        except UnicodeDecodeError as exc:
            raise decode_error(exc, self.fullpath) from None

    def read(self, mode: str = "r", encoding: str = "utf-8") -> str | bytes:
        """``'r'``: the text; ``'rb'``: the bytes."""
        if not isinstance(mode, str):  # a library taking the node for a file object: read(16)
            raise TypeError(
                f"StorageNode.read() takes a mode ('r' or 'rb'), not {mode!r}: a node is not a "
                "file object; pass node.open('rb') (or os.fspath(node) on a local mount)")
        if mode == "r":
            return self.read_text(encoding)
        if mode == "rb":
            return self.read_bytes()
        raise InvalidArgumentError(f"read() mode must be 'r' or 'rb', not {mode!r}")

    def iter_bytes(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream the content in chunks (constant memory)."""
        from storied.core.streams import iter_chunks

        return iter_chunks(pinned.open_range(self), chunk_size)

    # ------------------------------------------------------------------ writing
    def write_bytes(
        self,
        data: Data,
        skip_if_unchanged: bool = False,
        encrypted: bool | str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        create_only: bool = False,
    ) -> bool:
        """Replace the content atomically. Returns False when skipped as unchanged.

        ``encrypted`` (genro-storage's): True encrypts for the default domain, a str for that
        domain, False writes plain; None (the default) takes the mount's ``default_encrypted``.
        The stored bytes are the ``#GNRE1`` envelope (see :mod:`storied.crypto`); history keeps
        them encrypted.

        With ``skip_if_unchanged`` the current file is compared first: sizes from one request,
        then the MD5 (free where the backend knows it, else one streamed read).

        Conditional writes (optimistic concurrency, no lock): ``if_match=etag`` writes only
        while the file's etag (``node.info().etag``) is still ``etag``; ``create_only=True``
        only if nothing is at the path. Both are atomic in the storage; a refused write writes
        and records nothing (no version, no event).

        Raises:
            PreconditionFailedError: ``if_match`` and the file changed (its etag differs).
            StorageNotFoundError: ``if_match`` and the file does not exist.
            StorageAlreadyExistsError: ``create_only`` and a file exists.
            UnsupportedOperation: ``if_match``/``create_only`` on a mount whose storage has no
                conditional writes (the message names the mount).
            InvalidArgumentError: Both ``if_match`` and ``create_only``, or a non-str etag.
        """
        pinned.refuse_write(self)
        if not isinstance(data, (bytes, bytearray, memoryview)) and not hasattr(data, "read"):
            raise TypeError(f"write_bytes() requires bytes, not {type(data).__name__}")
        check_conditions(self, if_match, create_only)
        if (
            skip_if_unchanged
            and isinstance(data, (bytes, bytearray, memoryview))
            and self._unchanged(bytes(data))
        ):
            return False
        data = sealed_for_write(self, data, encrypted)
        self._store(data, metadata, exclusive=create_only, if_match=if_match)
        self._listed = None
        return True

    def _unchanged(self, data: bytes) -> bool:
        return unchanged(self, data)

    def write_text(
        self, text: str, encoding: str = "utf-8", skip_if_unchanged: bool = False,
        encrypted: bool | str | None = None, *,
        if_match: str | None = None, create_only: bool = False,
    ) -> bool:
        """Replace the content with ``text`` encoded. Returns False when skipped as unchanged.
        ``encrypted``, ``if_match`` and ``create_only`` as for :meth:`write_bytes`."""
        if not isinstance(text, str):
            raise TypeError(f"write_text() requires str, not {type(text).__name__}")
        try:
            data = text.encode(check_encoding(encoding))
        except UnicodeEncodeError as exc:
            raise encode_error(exc, self.fullpath) from None
        return self.write_bytes(data, skip_if_unchanged, encrypted, if_match=if_match,
                                create_only=create_only)

    def write(
        self,
        data: str | bytes,
        mode: str = "w",
        encoding: str = "utf-8",
        skip_if_unchanged: bool = False,
        encrypted: bool | str | None = None,
    ) -> bool:
        """``mode='w'`` writes a str, ``'wb'`` bytes (``TypeError`` otherwise)."""
        if mode == "w":
            if not isinstance(data, str):
                raise TypeError("write() in mode 'w' requires str")
            return self.write_text(data, encoding, skip_if_unchanged, encrypted)
        if mode == "wb":
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError("write() in mode 'wb' requires bytes")
            return self.write_bytes(data, skip_if_unchanged, encrypted)
        raise InvalidArgumentError(f"write() mode must be 'w' or 'wb', not {mode!r}")

    def delete(self, recursive: bool = False) -> bool:
        """Delete the file or directory. A missing path is not an error (returns False).

        Raises:
            DirectoryNotEmptyError: A non-empty directory without ``recursive=True``.
        """
        try:
            self._remove(recursive)
        except StorageNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ directories
    def children(self) -> list[StorageNode]:
        """The nodes directly inside this directory, sorted by name (one listing)."""
        entries = sorted(self._be.list(self._path), key=lambda e: e.path)
        return [self._related(e.path, e) for e in entries]

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Create this directory (pathlib semantics); refused on a path whose lock this
        process held and lost (``LockLostError``), like every write."""
        from storied.core.locking import guard_write

        pinned.refuse_write(self)
        guard_write(self)
        self._be.mkdir(self._path, parents=parents, exist_ok=exist_ok)

    def append(self, node: StorageNode) -> None:
        """Only an iternode takes sources (``InvalidArgumentError``, a ``ValueError``)."""
        raise InvalidArgumentError("append() is only available for iternode virtual nodes")

    def extend(self, *nodes: StorageNode) -> None:
        """Only an iternode takes sources (``InvalidArgumentError``, a ``ValueError``)."""
        raise InvalidArgumentError("extend() is only available for iternode virtual nodes")

    # ------------------------------------------------------------------ value semantics
    def _key(self) -> tuple[str | None, str, int | str | None]:
        return (self._mount_name, self._path, self._version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StorageNode):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"StorageNode({self.fullpath!r})"

    def __str__(self) -> str:
        return self.fullpath
