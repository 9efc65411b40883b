"""Retries of transient failures, with exponential backoff, jitter and logging.

:class:`Retrying` wraps a mount's adapter (the manager adds it when the mount's ``retries`` is
above 1). Only :class:`~storied.errors.TransientStorageError` (timeouts, refused or dropped
connections, throttling, 5xx answers) is retried; a :class:`~storied.errors.StorageTimeoutError`
at most once (each already waited the mount's whole timeout). Each retry is logged at INFO on
``storied.backends.<type>`` (``attempt n/N failed: <error>; retrying in <s> s``) and a give-up
(the last attempt failed too) at WARNING; error texts are redacted
(:func:`storied.backends._logging.redact`).
"""

from __future__ import annotations

import builtins
import hashlib
import random
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

from storied.backends._logging import backend_logger, redact
from storied.backends.base import Backend, WrappedBackend
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
    StorageTimeoutError,
    TransientStorageError,
)
from storied.info import Data, Info, ObjectVersion, WriteMode

__all__ = ["Retrying"]

T = TypeVar("T")


class Retrying(WrappedBackend):
    """Retry transient failures with exponential backoff and jitter.

    Only :class:`~storied.errors.TransientStorageError` is retried. A write is retried only when
    its data can be sent again (bytes, or a seekable stream rewound to where it started).

    Args:
        inner: The backend to wrap.
        attempts: Total tries per operation (at least 1).
        base_delay: Seconds before the first retry; doubled each time, capped at ``max_delay``.
        max_delay: Upper bound of one wait.
        sleep: The waiting function (tests pass a recorder).
    """

    attempts: int
    base_delay: float
    max_delay: float

    def __init__(
        self,
        inner: Backend,
        attempts: int = 4,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.base_delay, self.max_delay, self._sleep = base_delay, max_delay, sleep
        self._log = backend_logger(inner.protocol)

    def _run(self, call: Callable[[], T], rewind: Callable[[], None] | None = None,
             settle: Callable[[StorageError], T] | None = None, *, op: str = "call",
             path: str = "") -> T:
        """``call()``, retried on transient errors. A retry that fails with another storage
        error goes to ``settle`` (when given): the first attempt may have been applied with
        its answer lost, and ``settle`` returns the result when the error says so ("already
        exists" after a create, "not found" after a delete) or raises the error. ``op`` and
        ``path`` name the operation in log records. A second timeout ends the retries: each
        one already waited the mount's whole timeout (a hung endpoint fails in about two
        timeouts, not ``attempts`` of them)."""
        timed_out = 0
        for attempt in range(self.attempts):
            try:
                return call()
            except TransientStorageError as exc:
                timed_out += isinstance(exc, StorageTimeoutError)
                if attempt == self.attempts - 1 or timed_out > 1:
                    self._give_up(op, path, exc, attempt + 1)
                    raise
                self._wait(attempt, op, path, exc)
                if rewind is not None:
                    rewind()
            except StorageError as exc:
                if attempt == 0 or settle is None:
                    raise
                return settle(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, op: str = "call", path: str = "",
              exc: BaseException | None = None) -> None:
        delay = min(self.max_delay, self.base_delay * 2**attempt)
        delay *= 0.5 + random.random() / 2
        self._log.info("%s %r: attempt %d/%d failed: %s; retrying in %.2f s", op, path,
                       attempt + 1, self.attempts, _describe(exc), delay)
        self._sleep(delay)

    def _give_up(self, op: str, path: str, exc: BaseException, tries: int) -> None:
        if self.attempts > 1:
            self._log.warning("%s %r: giving up after %d attempts: %s", op, path, tries,
                              _describe(exc))

    def _written(self, path: str, data: Data) -> Callable[[StorageError], Info]:
        """The ``settle`` of a retried create-only or conditional write: done when ``path``
        holds exactly ``data`` now (bytes only: a stream is not read twice)."""
        def settle(exc: StorageError) -> Info:
            conflict = isinstance(exc, (StorageAlreadyExistsError, PreconditionFailedError))
            if not conflict or not isinstance(data, (bytes, bytearray, memoryview)):
                raise exc
            info = self._run(lambda: self.inner.info(path), op="info", path=path)
            body = bytes(data)
            same = not info.is_dir and (
                info.md5 == hashlib.md5(body).hexdigest() if info.md5 is not None
                else info.size == len(body)
                and self._run(lambda: self.inner.read_bytes(path), op="read", path=path) == body)
            if not same:
                raise exc
            return info

        return settle

    def info(self, path: str) -> Info:
        return self._run(lambda: self.inner.info(path), op="info", path=path)

    def list(self, path: str) -> Iterator[Info]:
        return iter(self._run(lambda: list(self.inner.list(path)), op="list", path=path))

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        names = self._run(lambda: list(self.inner.list_names(path, start_after)),
                          op="list_names", path=path)
        return iter(names)

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        return self._run(lambda: self.inner.list_versions(path), op="list_versions", path=path)

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        found = self._run(lambda: list(self.inner.walk_versions(path)),
                          op="walk_versions", path=path)
        return iter(found)

    def walk(self, path: str) -> Iterator[Info]:
        return iter(self._run(lambda: list(self.inner.walk(path)), op="walk", path=path))

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        return self._run(lambda: self.inner.open_read(path, start, end), op="open_read", path=path)

    def read_bytes(self, path: str) -> bytes:
        return self._run(lambda: self.inner.read_bytes(path), op="read_bytes", path=path)

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        def call() -> Info:
            return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)

        settle = self._written(path, data) if mode is not WriteMode.OVERWRITE else None
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._run(call, rewind=lambda: None, settle=settle, op="write", path=path)
        if getattr(data, "seekable", lambda: False)():
            start = data.tell()

            def rewind() -> None:
                data.seek(start)

            return self._run(call, rewind=rewind, settle=settle, op="write", path=path)
        return call()

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._run(lambda: self.inner.delete(path, recursive=recursive), settle=_gone,
                  op="delete", path=path)

    def delete_if_match(self, path: str, etag: str) -> None:
        self._run(lambda: self.inner.delete_if_match(path, etag), settle=_gone,
                  op="delete_if_match", path=path)

    def delete_version(self, path: str, version_id: str) -> None:
        self._run(lambda: self.inner.delete_version(path, version_id), settle=_gone,
                  op="delete_version", path=path)

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        first = items[0][0] if items else ""
        self._run(lambda: self.inner.delete_many(items), op=f"delete_many({len(items)})",
                  path=first)  # missing items are fine

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        def settle(exc: StorageError) -> None:  # made by the attempt whose answer was lost
            if not (isinstance(exc, StorageAlreadyExistsError) and self._is_dir(path)):
                raise exc

        self._run(lambda: self.inner.mkdir(path, parents=parents, exist_ok=exist_ok),
                  settle=settle, op="mkdir", path=path)

    def _is_dir(self, path: str) -> bool:
        try:
            return self.inner.info(path).is_dir
        except StorageError:
            return False

    def copy(self, src: str, dst: str) -> Info:
        # copying again: the same result
        return self._run(lambda: self.inner.copy(src, dst), op=f"copy to {dst!r}", path=src)

    def move(self, src: str, dst: str) -> None:
        """Retried only while ``src`` is still there (nothing, or not all, was moved); a
        failed attempt after which ``src`` is gone and ``dst`` exists was applied."""
        for attempt in range(self.attempts):
            try:
                self.inner.move(src, dst)
                return
            except TransientStorageError as exc:
                if attempt == self.attempts - 1:
                    self._give_up("move", src, exc, attempt + 1)
                    raise
                self._wait(attempt, "move", src, exc)
                if not self._run(lambda: self.inner.exists(src), op="exists", path=src):
                    if self._run(lambda: self.inner.exists(dst), op="exists", path=dst):
                        return
                    raise exc from None

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self._run(lambda: self.inner.set_metadata(path, metadata), op="set_metadata", path=path)

    def get_metadata(self, path: str) -> dict[str, str]:
        return self._run(lambda: self.inner.get_metadata(path), op="get_metadata", path=path)

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        return self._run(lambda: self.inner.walk_split(path), op="walk_split", path=path)

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        return self._run(lambda: self.inner.open_version(path, version_id, start, end),
                         op="open_version", path=path)

    def exists(self, path: str) -> bool:
        return self._run(lambda: self.inner.exists(path), op="exists", path=path)


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {redact(str(exc))}" if exc is not None else "?"


def _gone(exc: StorageError) -> None:
    """The ``settle`` of a retried delete: "not found" means an earlier attempt deleted it."""
    if not isinstance(exc, StorageNotFoundError):
        raise exc
