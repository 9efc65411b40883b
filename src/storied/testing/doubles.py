"""Test doubles that are real backends: wrap any backend to inject failures or count calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from storied.backends.base import Backend, WrappedBackend
from storied.errors import TransientStorageError
from storied.info import Data, Info, WriteMode

__all__ = ["FaultyBackend"]


class FaultyBackend(WrappedBackend):
    """Fail the first ``fail_times`` calls of each listed operation with a transient error.

    Every call is counted in :attr:`calls` (operation name -> count), failed or not. Use it to
    test retry logic and error handling against a real backend underneath.

    Args:
        inner: The backend that answers once the failures are spent.
        fail_times: How many calls of each operation fail first.
        operations: Operation names to fail (``info``, ``list``, ``open_read``, ``write``,
            ``delete``, ``mkdir``); default all of them.
        consume: For ``write``, read the data stream before failing (as a network upload would).
    """

    operations: frozenset[str]

    def __init__(
        self,
        inner: Backend,
        fail_times: int = 1,
        operations: frozenset[str] | None = None,
        consume: bool = True,
    ) -> None:
        super().__init__(inner)
        self.fail_times = fail_times
        self.operations = operations or frozenset(
            {"info", "list", "open_read", "write", "delete", "mkdir"}
        )
        self.consume = consume
        self.calls: Counter[str] = Counter()

    def _maybe_fail(self, operation: str) -> None:
        self.calls[operation] += 1
        if operation in self.operations and self.calls[operation] <= self.fail_times:
            raise TransientStorageError(f"injected failure #{self.calls[operation]} of {operation}")

    def info(self, path: str) -> Info:
        self._maybe_fail("info")
        return self.inner.info(path)

    def exists(self, path: str) -> bool:
        self._maybe_fail("info")
        return self.inner.exists(path)

    def list(self, path: str) -> Iterator[Info]:
        self._maybe_fail("list")
        return self.inner.list(path)

    def walk(self, path: str) -> Iterator[Info]:
        self._maybe_fail("list")
        return self.inner.walk(path)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        self._maybe_fail("open_read")
        return self.inner.open_read(path, start, end)

    def read_bytes(self, path: str) -> bytes:
        self._maybe_fail("open_read")
        return self.inner.read_bytes(path)

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        failing = "write" in self.operations and self.calls["write"] < self.fail_times
        if failing and self.consume and hasattr(data, "read"):
            data.read()
        self._maybe_fail("write")
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._maybe_fail("delete")
        self.inner.delete(path, recursive=recursive)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self._maybe_fail("mkdir")
        self.inner.mkdir(path, parents=parents, exist_ok=exist_ok)
