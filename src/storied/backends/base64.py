"""The base64 backend: the path is the content, base64-encoded.

``'b64:aGVsbG8='`` is a five-byte file holding ``hello``. Whitespace (newlines of wrapped base64)
is removed before decoding with ``b64decode(validate=True)``; anything else that is not base64 is
"no such file". Paths are data, not names (``opaque_paths``): ``/``, ``+`` and ``=`` are base64
characters, so the backend takes the path exactly as given and never splits or normalises it.

The backend is read-only. Unlike genro-storage, whose ``write_bytes`` returns a new encoded
string (and makes the node re-point to it), every write-ish call here raises
:class:`~storied.errors.StoragePermissionError`: a write that does not write where it was asked
is a trap. To make base64 of some bytes, use :func:`base64.b64encode`.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import time
from base64 import b64decode
from collections.abc import Iterator
from typing import Any, BinaryIO

from storied.backends.base import Backend
from storied.capabilities import Capabilities
from storied.errors import NotADirectoryStorageError, StorageNotFoundError, StoragePermissionError
from storied.info import Data, Info, WriteMode

__all__ = ["Base64Backend", "from_config"]

_READONLY_MESSAGE = "Base64 backend is read-only"


class Base64Backend(Backend):
    """Files whose path is their own base64 content.

    ``info`` gives the decoded size, ``is_dir`` False, the MD5 (computed: the data is at hand)
    and, as ``mtime``, the time the backend was created. ``list`` and ``walk`` raise
    :class:`~storied.errors.NotADirectoryStorageError`: there is no directory structure.
    """

    protocol = "base64"
    capabilities: Capabilities = Capabilities(
        opaque_paths=True,
        readonly=True,
        write=False,
        delete=False,
        mkdir=False,
        list_dir=False,
        append_mode=False,
        hash_on_metadata=True,
        public_urls=True,
    )

    def __init__(self) -> None:
        self._created = time.time()

    @staticmethod
    def decode(path: str) -> bytes:
        """The bytes encoded by ``path``.

        Raises:
            StorageNotFoundError: ``path`` is empty or not valid base64.
        """
        compact = "".join(path.split())
        if not compact:
            raise StorageNotFoundError("Base64 path cannot be empty")
        try:
            return b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StorageNotFoundError(f"Invalid base64 data: {exc}") from exc

    # ---------------------------------------------------------------- contract
    def info(self, path: str) -> Info:
        data = self.decode(path)
        md5 = hashlib.md5(data).hexdigest()
        return Info(path, False, len(data), self._created, md5, md5)

    def list(self, path: str) -> Iterator[Info]:
        raise NotADirectoryStorageError("Base64 backend has no directory structure")

    def walk(self, path: str) -> Iterator[Info]:
        raise NotADirectoryStorageError("Base64 backend has no directory structure")

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        data = self.decode(path)
        return io.BytesIO(data[start:end] if (start or end is not None) else data)

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        """A ``data:`` URL of the content, or None when ``path`` is not base64."""
        try:
            self.decode(path)
        except StorageNotFoundError:
            return None
        return "data:application/octet-stream;base64," + "".join(path.split())

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
        raise StoragePermissionError(_READONLY_MESSAGE)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        raise StoragePermissionError(_READONLY_MESSAGE)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        raise StoragePermissionError(_READONLY_MESSAGE)

    def copy(self, src: str, dst: str) -> Info:
        raise StoragePermissionError(_READONLY_MESSAGE)

    def move(self, src: str, dst: str) -> None:
        raise StoragePermissionError(_READONLY_MESSAGE)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        raise StoragePermissionError(_READONLY_MESSAGE)


def from_config(config: dict[str, Any]) -> Backend:
    """Build a base64 mount (it takes no keys besides ``name``)."""
    return Base64Backend()
