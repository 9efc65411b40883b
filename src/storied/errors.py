"""The storied exception tree.

Every error storied raises derives from :class:`StorageError`, so ``except StorageError`` catches
anything from the library. Each leaf also derives from the matching Python builtin, so code written
for plain files (``except FileNotFoundError``) keeps working::

    StorageError (Exception)
    ├── StorageNotFoundError (FileNotFoundError)        a path or mount that does not exist
    │   ├── MountNotFoundError (KeyError)                no mount of that name
    │   ├── VersionNotFoundError (IndexError)            no such version index, id or tag
    │   └── ZipSourceNotFoundError (ValueError)          node.zip() of nothing (genro's error)
    ├── StorageAlreadyExistsError (FileExistsError)     create-only write on an existing path
    ├── StoragePermissionError (PermissionError)        refused by mount permissions
    │   ├── PathEscapeError (ValueError)                 a path that would leave its mount
    │   ├── ReadOnlyVersionError (ValueError)            a write on a version-pinned node
    │   ├── ArchivedObjectError                          an archived object not restored yet
    │   └── UnsupportedOperation                         the backend cannot do this at all
    ├── StorageConfigError (ValueError)                 a bad mount configuration
    │   └── ConfigSourceTypeError (TypeError)            configure() of neither list nor path
    ├── BinaryContentError (ValueError)                 a text diff of binary content
    ├── InvalidContentError (ValueError)                a structured diff of unparsable content
    ├── InvalidPathError (ValueError)                   a path that is malformed (no escape)
    ├── InvalidEncodingError (LookupError, ValueError)  an unknown text encoding
    ├── TextDecodeError (UnicodeDecodeError)            content that is not text in the encoding
    ├── TextEncodeError (UnicodeEncodeError)            text the encoding cannot represent
    ├── InvalidArgumentError (ValueError)               an argument out of its documented range
    ├── AmbiguousSnapshotError (LookupError, ValueError) a snapshot name on several mounts
    ├── IsADirectoryStorageError (IsADirectoryError, ValueError)
    ├── NotADirectoryStorageError (NotADirectoryError, ValueError)
    ├── DirectoryNotEmptyError (OSError, errno ENOTEMPTY)
    ├── PreconditionFailedError (OSError)               conditional write lost the race
    ├── LockTimeout (TimeoutError)                      node.lock() not acquired in time
    ├── LockLostError (RuntimeError)                    a lock's lease was lost while held
    ├── TransientStorageError (ConnectionError)         worth retrying (timeouts, throttling, 5xx)
    │   └── StorageTimeoutError (TimeoutError)           the storage did not answer in time
    ├── StorageIOError (OSError)                        any other failure the storage reported
    └── MissingDependencyError (ModuleNotFoundError)    an optional extra is not installed

Lower-layer exceptions (``OSError`` from the OS, botocore ``ClientError``, fsspec errors) are
translated in one place per adapter and chained with ``raise ... from exc``.
"""

from __future__ import annotations

import errno

__all__ = [
    "AmbiguousSnapshotError",
    "ArchivedObjectError",
    "BinaryContentError",
    "ConfigSourceTypeError",
    "DirectoryNotEmptyError",
    "InvalidArgumentError",
    "InvalidContentError",
    "InvalidEncodingError",
    "InvalidPathError",
    "IsADirectoryStorageError",
    "LockLostError",
    "LockTimeout",
    "MissingDependencyError",
    "MountNotFoundError",
    "NotADirectoryStorageError",
    "PathEscapeError",
    "PreconditionFailedError",
    "ReadOnlyVersionError",
    "StorageAlreadyExistsError",
    "StorageConfigError",
    "StorageError",
    "StorageIOError",
    "StorageNotFoundError",
    "StoragePermissionError",
    "StorageTimeoutError",
    "TextDecodeError",
    "TextEncodeError",
    "TransientStorageError",
    "UnsupportedOperation",
    "VersionNotFoundError",
    "ZipSourceNotFoundError",
]


class StorageError(Exception):
    """Base of every error raised by storied."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """The path, mount or version does not exist."""


class MountNotFoundError(StorageNotFoundError, KeyError):
    """No mount has that name (also a ``KeyError``, as genro-storage's ``delete_mount`` raised)."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class VersionNotFoundError(StorageNotFoundError, IndexError):
    """No version matches the index, id or tag (also an ``IndexError``, as an out-of-range index
    raised before)."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class ZipSourceNotFoundError(StorageNotFoundError, ValueError):
    """``node.zip()`` of a path where nothing is (also a ``ValueError``, as genro-storage
    raises)."""


class StorageAlreadyExistsError(StorageError, FileExistsError):
    """A create-only operation found the path already there."""


class StoragePermissionError(StorageError, PermissionError):
    """The mount's permissions refuse the operation (for example a write on a read-only mount)."""


class PathEscapeError(StoragePermissionError, ValueError):
    """A path tries to leave its mount: ``..``, an absolute part, a symlink pointing outside."""


class ReadOnlyVersionError(StoragePermissionError, ValueError):
    """A write was asked of a version-pinned node (``storage.node(path, version=...)``), which is
    a read-only snapshot (also a ``ValueError``, as genro-storage raised)."""


class UnsupportedOperation(StoragePermissionError):
    """The backend cannot perform the operation at all (a capability it does not have).

    It is a ``PermissionError`` for compatibility with genro-storage, which refuses unsupported
    operations (versions on a plain backend, metadata on local disk) that way.
    """


class StorageConfigError(StorageError, ValueError):
    """A mount configuration is invalid; the message names the mount and the key."""


class ConfigSourceTypeError(StorageConfigError, TypeError):
    """``configure(source)`` got neither a list of mounts nor a file path (also a
    ``TypeError``, as genro-storage raises)."""


class BinaryContentError(StorageError, ValueError):
    """A text diff was asked of content that is not text (a NUL byte, or undecodable).

    The message names the version that is binary.
    """


class InvalidContentError(StorageError, ValueError):
    """A structured diff met content that does not parse (JSON, XML, CSV, image).

    The message names the version and what the parser reported.
    """


class InvalidPathError(StorageError, ValueError):
    """A path is malformed: control characters, backslashes, empty where a name is needed."""


class InvalidEncodingError(StorageError, LookupError, ValueError):
    """A text operation named an unknown encoding (also a ``LookupError``, as :mod:`codecs`
    raises, and a ``ValueError``)."""


class TextDecodeError(StorageError, UnicodeDecodeError):
    """Content is not valid text in the given encoding; the message names the node.

    Constructed like ``UnicodeDecodeError(encoding, object, start, end, reason)``.
    """


class TextEncodeError(StorageError, UnicodeEncodeError):
    """Text cannot be encoded in the given encoding; the message names the node.

    Constructed like ``UnicodeEncodeError(encoding, object, start, end, reason)``.
    """


class InvalidArgumentError(StorageError, ValueError):
    """An argument has a value the operation does not accept (an unknown format name, a
    negative count, NaN); the message names the argument and what is allowed."""


class AmbiguousSnapshotError(StorageError, LookupError, ValueError):
    """A snapshot name exists on several mounts; the message names the candidates
    (``'mount:name'`` picks one)."""


class IsADirectoryStorageError(StorageError, IsADirectoryError, ValueError):
    """A file operation was asked of a directory (a ``ValueError`` too, as in genro-storage)."""


class NotADirectoryStorageError(StorageError, NotADirectoryError, ValueError):
    """A directory operation was asked of a file (a ``ValueError`` too, as in genro-storage)."""


class DirectoryNotEmptyError(StorageError, OSError):
    """A non-recursive delete met a directory that still has entries."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOTEMPTY, message)

    def __str__(self) -> str:
        return str(self.strerror)


class PreconditionFailedError(StorageError, OSError):
    """A conditional write did not apply: the object changed since its etag was read."""


class LockTimeout(StorageError, TimeoutError):
    """``node.lock()`` was not acquired within its ``timeout``; the message names the path and
    the current holder."""


class LockLostError(StorageError, RuntimeError):
    """A lock's lease was lost while held (taken over after a pause longer than its time to
    live, or expired on the holder's own clock): a guarded write is refused, and leaving the
    ``with`` block raises it."""


class TransientStorageError(StorageError, ConnectionError):
    """A failure worth retrying: timeout, throttling, connection reset, server error."""


class StorageTimeoutError(TransientStorageError, TimeoutError):
    """The storage did not answer in time; retried like any transient error."""


class StorageIOError(StorageError, OSError):
    """Any other failure the storage reported (disk full, I/O error, unexpected server answer)."""


class MissingDependencyError(StorageError, ModuleNotFoundError):
    """An optional dependency is missing; the message says which extra to install."""


class ArchivedObjectError(StoragePermissionError):
    """The object is in an archive storage class (S3 Glacier / Deep Archive, an Azure archive
    tier) and cannot be read until it is restored; the message says how
    (``node.restore_archived(days=1)``, then wait for the restore to finish)."""

