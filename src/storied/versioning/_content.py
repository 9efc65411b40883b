"""Data to store as a version: spooled once, hashed (SHA-256 and MD5) on the way in."""

from __future__ import annotations

import hashlib
import tempfile
from typing import BinaryIO, cast

from storied.backends.base import CHUNK
from storied.info import Data

__all__ = ["Content"]


class Content:
    """Data to store, spooled once, with its hashes."""

    def __init__(self, data: Data) -> None:
        sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
            sha.update(raw)
            md5.update(raw)
            self._bytes: bytes | None = raw
            self._spool: BinaryIO | None = None
            size = len(raw)
        else:
            self._bytes = None
            spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=8 * CHUNK))  # noqa: SIM115
            self._spool = spool
            while chunk := data.read(CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                spool.write(chunk)
                size += len(chunk)
        self.sha256, self.md5, self.size = sha.hexdigest(), md5.hexdigest(), size

    def stream(self) -> Data:
        if self._bytes is not None:
            return self._bytes
        assert self._spool is not None
        self._spool.seek(0)
        return self._spool

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
