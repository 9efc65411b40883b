"""MockBackend: a real backend with latency and seeded faults, for users' tests.

::

    backend = MockBackend(latency_ms=100, failure_rate=0.01, seed=7)   # wraps memory
    storage.add_mount({'name': 'flaky', 'backend': backend})
    storage.configure([{'name': 'flaky', 'type': 'mock', 'latency_ms': 100,
                        'failure_rate': 0.01, 'wraps': {'type': 'local', 'base_path': '/srv/x'}}])

Every storage call sleeps ``latency_ms`` (plus or minus up to ``jitter_ms``, toxiproxy's
convention, never below 0) and then fails with probability ``failure_rate``. Both draws come
from one ``random.Random(seed)``: the same seed and the same sequence of calls give the same
:attr:`MockBackend.trace`. A failure is raised *before* the call is passed on, so a failed call
changes nothing in the storage; only a truncated body (the stream breaks mid-read) comes from a
call that happened. Fault kinds (``faults=`` selects them, optionally weighted):

``transient``     :class:`~storied.errors.TransientStorageError` (an S3 503 SlowDown).
``timeout``       :class:`StorageTimeoutError` (a ``TimeoutError`` and a transient error).
``truncated``     reads only: the stream raises ``TransientStorageError`` after some bytes.
``precondition``  conditional writes (``IF_MATCH``) and ``delete_if_match`` only:
                  :class:`~storied.errors.PreconditionFailedError` (another writer won).
``lost_response`` opt-in, writes/deletes/moves...: the call *is applied*, then
                  :class:`StorageTimeoutError` (the answer was lost): what makes retries of
                  non-idempotent calls unsafe.

A kind that does not apply to a call is not drawn for it (an ``info`` never gets
``precondition``); a call to which no selected kind applies never fails.
"""

from __future__ import annotations

import builtins
import io
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from storied import errors
from storied.backends.base import Backend, WrappedBackend
from storied.errors import (
    PreconditionFailedError,
    StorageConfigError,
    TransientStorageError,
)
from storied.info import Data, Info, ObjectVersion, WriteMode

__all__ = [
    "EXTRA_KINDS",
    "FAULT_KINDS",
    "FaultEvent",
    "MockBackend",
    "StorageTimeoutError",
    "from_config",
]

if hasattr(errors, "StorageTimeoutError"):  # pragma: no cover - once errors.py defines it
    StorageTimeoutError = errors.StorageTimeoutError
else:

    class StorageTimeoutError(TransientStorageError, TimeoutError):  # type: ignore[no-redef]
        """The storage did not answer in time (retried like any transient error)."""


T = TypeVar("T")

#: The fault kinds drawn by default (each leaves the storage unchanged, but ``truncated``).
FAULT_KINDS = ("transient", "timeout", "truncated", "precondition")
#: Opt-in kinds (``faults=['lost_response']``): the call is applied, then its answer lost.
EXTRA_KINDS = ("lost_response",)
_READS = frozenset({"open_read", "open_version", "read_bytes"})


@dataclass(frozen=True)
class FaultEvent:
    """One call as the mock saw it.

    Attributes:
        index: The call's position (0-based) among every call the mock received.
        operation: The backend method (``write``, ``info``...).
        path: The first path argument (``""`` when the call has none).
        delay_ms: The latency slept before the call, in milliseconds (rounded to 0.001).
        fault: The fault kind injected, or None when the call went through.
    """

    index: int
    operation: str
    path: str
    delay_ms: float
    fault: str | None


def _weights(faults: Mapping[str, float] | Sequence[str] | str | None) -> dict[str, float]:
    if faults is None:
        return dict.fromkeys(FAULT_KINDS, 1.0)
    if isinstance(faults, str):
        faults = [faults]
    pairs = faults.items() if isinstance(faults, Mapping) else ((k, 1.0) for k in faults)
    out: dict[str, float] = {}
    for kind, weight in pairs:
        if kind not in FAULT_KINDS + EXTRA_KINDS:
            known = ", ".join(FAULT_KINDS + EXTRA_KINDS)
            raise StorageConfigError(f"Unknown fault kind {kind!r}; known: {known}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise StorageConfigError(f"Fault weight of {kind!r} must be a number >= 0")
        if weight:
            out[kind] = float(weight)
    return out


def _number(name: str, value: object, upper: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    if not ok or (upper is not None and value > upper):  # type: ignore[operator]
        bound = f" and <= {upper}" if upper is not None else ""
        raise StorageConfigError(f"MockBackend: {name!r} must be a number >= 0{bound}")
    return float(value)  # type: ignore[arg-type]


class _TruncatedStream(io.RawIOBase):
    """A body that breaks after ``cut`` bytes, as a connection reset mid-download does."""

    def __init__(self, data: bytes, cut: int, path: str) -> None:
        self._data, self._cut, self._pos, self._path = data, cut, 0, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._cut:
            raise TransientStorageError(
                f"injected fault: body of {self._path!r} truncated after {self._cut} of "
                f"{len(self._data)} bytes"
            )
        chunk = self._data[self._pos : min(self._cut, self._pos + len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class MockBackend(WrappedBackend):
    """A backend with per-call latency and seeded fault injection around a real backend.

    Args:
        latency_ms: Milliseconds slept before every storage call.
        failure_rate: Probability in ``[0, 1]`` that a call fails (for calls some selected
            fault kind applies to).
        seed: Seed of the generator behind delays and faults (None: unpredictable).
        wraps: The backend to wrap: a :class:`Backend`, a mount config mapping built through
            the registry (``{'type': 'local', 'base_path': ...}``), or None for a fresh
            :class:`~storied.backends.memory.MemoryBackend`.
        jitter_ms: Each delay is ``latency_ms`` plus a uniform draw in ``[-jitter_ms,
            jitter_ms]``, never below 0.
        faults: The kinds to inject: names (equal weights) or ``{kind: weight}``; default
            every kind of :data:`FAULT_KINDS` (:data:`EXTRA_KINDS` only when named).
        sleep: The waiting function (seconds); tests may pass a recorder.
        name: The mount name used when ``wraps`` is a config mapping.

    Attributes:
        calls: Calls per operation name (a Counter), failed ones included.
        trace: Every call as a :class:`FaultEvent`, in order.
        failure_rate, latency_ms, jitter_ms: May be changed between calls.

    Raises:
        StorageConfigError: A value out of range, an unknown fault kind, a bad ``wraps``.
    """

    latency_ms: float
    jitter_ms: float
    failure_rate: float
    faults: dict[str, float]

    def __init__(
        self,
        latency_ms: float = 0,
        failure_rate: float = 0.0,
        *,
        seed: int | None = None,
        wraps: Backend | Mapping[str, Any] | None = None,
        jitter_ms: float = 0,
        faults: Mapping[str, float] | Sequence[str] | str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "mock",
    ) -> None:
        super().__init__(_inner(wraps, name))
        self.latency_ms = _number("latency_ms", latency_ms)
        self.jitter_ms = _number("jitter_ms", jitter_ms)
        self.failure_rate = _number("failure_rate", failure_rate, 1.0)
        self.faults = _weights(faults)
        self.seed = seed
        self._random = random.Random(seed)
        self._sleep = sleep
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.trace: list[FaultEvent] = []

    # ------------------------------------------------------------------ the draw
    def _draw(self, operation: str, path: str, kinds: Sequence[str]) -> tuple[str | None, float]:
        """Count the call, draw its delay and fault (under a lock: one trace order)."""
        with self._lock:
            self.calls[operation] += 1
            rng = self._random
            delay = self.latency_ms
            if self.jitter_ms:
                delay = max(0.0, delay + rng.uniform(-self.jitter_ms, self.jitter_ms))
            fault = None
            weights = [(k, self.faults[k]) for k in kinds if k in self.faults]
            if self.failure_rate and weights and rng.random() < self.failure_rate:
                fault = rng.choices([k for k, _ in weights], [w for _, w in weights])[0]
            self.trace.append(FaultEvent(len(self.trace), operation, path, round(delay, 3), fault))
            cut = rng.random() if fault == "truncated" else 0.0
        if delay:
            self._sleep(delay / 1000)
        return fault, cut

    def _call(
        self, operation: str, path: str, *, conditional: bool = False, mutating: bool = False
    ) -> tuple[str, float] | None:
        """Sleep, then raise the drawn fault (before the inner backend is touched). A fault
        that strikes after the call (``truncated``, ``lost_response``) is returned instead,
        with the truncation point (a fraction of the body)."""
        kinds = ["transient", "timeout"]
        if operation in _READS:
            kinds.append("truncated")
        if conditional:
            kinds.append("precondition")
        if mutating:
            kinds.append("lost_response")
        fault, cut = self._draw(operation, path, kinds)
        where = f"{operation}({path!r})"
        if fault == "transient":
            raise TransientStorageError(f"injected fault: 503 SlowDown on {where}")
        if fault == "timeout":
            raise StorageTimeoutError(f"injected fault: timed out waiting for {where}")
        if fault == "precondition":
            raise PreconditionFailedError(f"injected fault: etag mismatch on {where}")
        return (fault, cut) if fault else None

    def _mutate(
        self, operation: str, path: str, thunk: Callable[[], T], *, conditional: bool = False
    ) -> T:
        late = self._call(operation, path, conditional=conditional, mutating=True)
        result = thunk()
        if late:
            raise StorageTimeoutError(
                f"injected fault: {operation}({path!r}) was applied, its response lost"
            )
        return result

    @staticmethod
    def _truncate(stream: BinaryIO, cut: float, path: str) -> BinaryIO:
        with stream:
            data = stream.read()
        return io.BufferedReader(_TruncatedStream(data, int(len(data) * cut), path))

    # ------------------------------------------------------------------ the contract
    def info(self, path: str) -> Info:
        self._call("info", path)
        return self.inner.info(path)

    def exists(self, path: str) -> bool:
        self._call("exists", path)
        return self.inner.exists(path)

    def list(self, path: str) -> Iterator[Info]:
        self._call("list", path)
        return self.inner.list(path)

    def walk(self, path: str) -> Iterator[Info]:
        self._call("walk", path)
        return self.inner.walk(path)

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        self._call("walk_split", path)
        return self.inner.walk_split(path)

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        self._call("list_names", path)
        return self.inner.list_names(path, start_after)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        late = self._call("open_read", path)
        stream = self.inner.open_read(path, start, end)
        return self._truncate(stream, late[1], path) if late else stream

    def read_bytes(self, path: str) -> bytes:
        if self._call("read_bytes", path):
            raise TransientStorageError(f"injected fault: body of {path!r} truncated")
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
        return self._mutate(
            "write",
            path,
            lambda: self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata),
            conditional=mode is WriteMode.IF_MATCH,
        )

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._mutate("delete", path, lambda: self.inner.delete(path, recursive=recursive))

    def delete_if_match(self, path: str, etag: str) -> None:
        thunk = lambda: self.inner.delete_if_match(path, etag)  # noqa: E731
        self._mutate("delete_if_match", path, thunk, conditional=True)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        thunk = lambda: self.inner.mkdir(path, parents=parents, exist_ok=exist_ok)  # noqa: E731
        self._mutate("mkdir", path, thunk)

    def copy(self, src: str, dst: str) -> Info:
        return self._mutate("copy", src, lambda: self.inner.copy(src, dst))

    def move(self, src: str, dst: str) -> None:
        self._mutate("move", src, lambda: self.inner.move(src, dst))

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self._mutate("set_metadata", path, lambda: self.inner.set_metadata(path, metadata))

    def get_metadata(self, path: str) -> dict[str, str]:
        self._call("get_metadata", path)
        return self.inner.get_metadata(path)

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        self._call("list_versions", path)
        return self.inner.list_versions(path)

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        late = self._call("open_version", path)
        stream = self.inner.open_version(path, version_id, start, end)
        return self._truncate(stream, late[1], path) if late else stream

    def delete_version(self, path: str, version_id: str) -> None:
        self._mutate("delete_version", path, lambda: self.inner.delete_version(path, version_id))

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        self._call("walk_versions", path)
        return self.inner.walk_versions(path)

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        first = items[0][0] if items else ""
        self._mutate("delete_many", first, lambda: self.inner.delete_many(items))

    def link(self, src: str, dst: str) -> None:
        self._mutate("link", src, lambda: self.inner.link(src, dst))

    def unlink_links(self, path: str) -> int:
        return self._mutate("unlink_links", path, lambda: self.inner.unlink_links(path))

    def storage_key(self) -> Hashable:
        return self.inner.storage_key()

    def __repr__(self) -> str:
        return (
            f"MockBackend(latency_ms={self.latency_ms:g}, failure_rate={self.failure_rate:g}, "
            f"seed={self.seed!r}, wraps={type(self.inner).__name__})"
        )


#: Keys of a mount config that make no sense for the backend a mock wraps.
_NOT_IN_WRAPS = ("name", "backend", "versioning", "history", "webhooks", "permissions",
                 "readonly", "retries")  # fmt: skip


def _inner(wraps: Backend | Mapping[str, Any] | None, name: str) -> Backend:
    from storied.backends import registry
    from storied.backends.memory import MemoryBackend

    if wraps is None:
        return MemoryBackend(f"mock:{name}")
    if isinstance(wraps, Backend):
        return wraps
    if not isinstance(wraps, Mapping):
        raise StorageConfigError(
            f"Mount {name!r} (mock): 'wraps' must be a Backend or a mount config mapping, "
            f"not {registry.short_repr(wraps)}"
        )
    kind = wraps.get("type") or wraps.get("protocol")
    if not isinstance(kind, str) or not kind:
        raise StorageConfigError(f"Mount {name!r} (mock): 'wraps' needs a 'type'")
    bad = [k for k in _NOT_IN_WRAPS if wraps.get(k) is not None]
    if bad:
        raise StorageConfigError(
            f"Mount {name!r} (mock): {bad[0]!r} belongs to the mount, not to 'wraps'"
        )
    return registry.build(kind, name, {k: v for k, v in wraps.items() if k != "protocol"})


def from_config(config: dict[str, Any]) -> Backend:
    """Build a ``type: mock`` mount (keys already checked by the registry)."""
    return MockBackend(
        config.get("latency_ms", 0),
        config.get("failure_rate", 0.0),
        seed=config.get("seed"),
        wraps=config.get("wraps"),
        jitter_ms=config.get("jitter_ms", 0),
        faults=config.get("faults"),
        name=config["name"],
    )
