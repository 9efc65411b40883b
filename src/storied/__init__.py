"""storied: one API and one history for every storage.

>>> from storied import StorageManager
>>> storage = StorageManager()
>>> storage.configure([{'name': 'scratch', 'type': 'memory'}])
>>> node = storage.node('scratch:hello.txt')
>>> node.write_text('hi')
True
"""

import logging as _logging

from storied.capabilities import Capabilities
from storied.core.manager import StorageManager
from storied.core.node import StorageNode
from storied.core.transfer import SkipStrategy, TransferReport
from storied.errors import (
    AmbiguousSnapshotError,
    BinaryContentError,
    DirectoryNotEmptyError,
    InvalidArgumentError,
    InvalidContentError,
    InvalidEncodingError,
    InvalidPathError,
    IsADirectoryStorageError,
    LockLostError,
    LockTimeout,
    MissingDependencyError,
    MountNotFoundError,
    NotADirectoryStorageError,
    PathEscapeError,
    PreconditionFailedError,
    ReadOnlyVersionError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    TextDecodeError,
    TextEncodeError,
    TransientStorageError,
    UnsupportedOperation,
    VersionNotFoundError,
)
from storied.info import Info, WriteMode

__version__ = "0.1.0"

_logging.getLogger("storied").addHandler(_logging.NullHandler())  # the application configures

__all__ = [
    "AmbiguousSnapshotError",
    "BinaryContentError",
    "Capabilities",
    "DirectoryNotEmptyError",
    "Info",
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
    "SkipStrategy",
    "StorageAlreadyExistsError",
    "StorageConfigError",
    "StorageError",
    "StorageIOError",
    "StorageManager",
    "StorageNode",
    "StorageNotFoundError",
    "StoragePermissionError",
    "StorageTimeoutError",
    "TextDecodeError",
    "TextEncodeError",
    "TransferReport",
    "TransientStorageError",
    "UnsupportedOperation",
    "VersionNotFoundError",
    "WriteMode",
    "__version__",
]
