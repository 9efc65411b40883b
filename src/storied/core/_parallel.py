"""A bounded pool for per-file work (copies, moves, bulk version operations).

One thread, the caller's, sees every result and calls every callback: workers only put
messages on a queue (bytes read so far, a file done), and the calling thread drains it. So
``progress(done, total)`` is called with ``done`` going 1, 2, 3 ... and byte totals only grow,
whatever the pool. At most ``workers`` items run at once (storied's own pool has that many
threads, with a few items queued ahead of them so that no thread idles while the calling
thread waits for the interpreter lock; on a caller's executor at most ``workers`` items are
submitted). A stop (the first error under the ``'raise'`` policy) cancels the queued items,
starts nothing new and waits for the items already running, so no file is left half-handled.

With ``workers=1`` and no executor, items run one after the other in the calling thread (no
thread at all): exactly the sequential behaviour.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, Literal, TypeVar

from storied.errors import InvalidArgumentError

if TYPE_CHECKING:
    from storied.backends.base import Backend

__all__ = [
    "DEFAULT_REMOTE_WORKERS",
    "BulkReport",
    "Counted",
    "OnError",
    "TransferReport",
    "default_workers",
    "is_remote",
    "pool_map",
    "run_pool",
]

#: The pool size when either side of a transfer is remote (a network round trip per file).
DEFAULT_REMOTE_WORKERS = 8
#: Items kept in flight on a caller's executor when ``workers`` is not given.
EXTERNAL_IN_FLIGHT = 16
#: Items queued per thread of storied's own pool (started as soon as a thread is free).
QUEUED_AHEAD = 4

#: The error policy of a transfer: stop at the first failure, or copy the others first.
OnError = Literal["raise", "continue"]
T = TypeVar("T")
R = TypeVar("R")
ByteSink = Callable[[int], None]


@dataclass
class TransferReport:
    """What a ``copy_to``/``move_to`` (or a bulk operation) did, file by file.

    Pass one as ``report=`` and it is filled in as the files finish (from the calling thread);
    the same object is attached as ``.report`` to the error a failed transfer raises.

    Attributes:
        copied: Full paths (``mount:path``) of the source files copied (moved, for a move).
        skipped: ``{source full path: reason}`` of files left alone (skip strategy, filters,
            ``'reserved'`` for storied's own area).
        failed: ``{source full path: the exception}`` of files that could not be copied.
        not_started: Source full paths never attempted because an error stopped the transfer
            (``on_error='raise'``).
        bytes: Bytes of the files copied.
        workers: The pool size used (1: sequential in the calling thread).
    """

    copied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    bytes: int = 0
    workers: int = 1

    @property
    def ok(self) -> bool:
        """True when no file failed and none was left unstarted."""
        return not self.failed and not self.not_started

    def summary(self) -> str:
        """``'<n> copied, <n> skipped, <n> failed'`` (plus files not started, if any)."""
        line = f"{len(self.copied)} copied, {len(self.skipped)} skipped, {len(self.failed)} failed"
        return line + (f", {len(self.not_started)} not started" if self.not_started else "")


def is_remote(backend: Backend, path: str = "") -> bool:
    """Whether a request to ``backend`` crosses a network: decided from data, not a class.

    A backend is local when it maps paths to real files (``local_path`` answers) or keeps them
    in this process's memory (``capabilities.temporary``); anything else (S3, SFTP, WebDAV,
    GCS, HTTP...) is remote.
    """
    if backend.capabilities.temporary:
        return False
    try:
        return backend.local_path(path) is None
    except Exception:  # a path the backend refuses to map says nothing about latency
        return True


def default_workers(src: Backend, dest: Backend, src_path: str = "", dest_path: str = "") -> int:
    """:data:`DEFAULT_REMOTE_WORKERS` when either side is remote, else 1 (local disks and
    memory gain nothing from threads for small files and lose ordering)."""
    if is_remote(src, src_path) or is_remote(dest, dest_path):
        return DEFAULT_REMOTE_WORKERS
    return 1


def check_workers(workers: int | None) -> None:
    """Raises InvalidArgumentError (a ``ValueError``) unless ``workers`` is None or >= 1."""
    if workers is None:
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a whole number >= 1, not {workers!r}")


def check_policy(on_error: str) -> None:
    """Raises InvalidArgumentError unless ``on_error`` is ``'raise'`` or ``'continue'``."""
    if on_error not in ("raise", "continue"):
        raise InvalidArgumentError(
            f"on_error must be 'raise' or 'continue', not {on_error!r}")


class Counted:
    """A read-only binary stream over ``inner`` that tells ``sink`` how many bytes each read
    returned (for byte progress inside large files), and counts them in :attr:`count`."""

    def __init__(self, inner: BinaryIO, sink: ByteSink | None) -> None:
        self._inner, self._sink, self.count = inner, sink, 0

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data:
            self.count += len(data)
            if self._sink is not None:
                self._sink(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self._inner.close()

    @property
    def closed(self) -> bool:
        return bool(getattr(self._inner, "closed", False))

    def __enter__(self) -> Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Pool(Generic[T, R]):
    """How :func:`run_pool` runs items.

    Attributes:
        work: ``work(item, sink)`` does one item in a thread of this process (``sink(n)``
            reports bytes as they flow); its result goes to ``on_done``.
        workers: At most this many items in flight.
        executor: A caller's executor; None makes a thread pool of ``workers`` threads.
        remote: For an executor that is not a ``ThreadPoolExecutor`` (processes, a Dask
            client): ``remote(item)`` gives ``(function, argument)``, both picklable, and the
            executor runs ``function(argument)``; no bytes flow while it runs.
    """

    work: Callable[[T, ByteSink], R]
    workers: int
    executor: Executor | None = None
    remote: Callable[[T], tuple[Callable[[Any], R], Any]] | None = None


_BYTES, _DONE = 0, 1


def run_pool(pool: Pool[T, R], items: Iterable[T],
             on_done: Callable[[T, R | None, BaseException | None], bool],
             on_bytes: Callable[[T, int], None] | None = None) -> list[T]:
    """Run every item; ``on_done(item, result, error)`` in the calling thread as each
    finishes (completion order); it returns False to stop: nothing new is started, the items
    in flight are waited for (and reported). ``on_bytes(item, n)`` as bytes flow.

    Returns:
        The items never started (after a stop), in order.

    A ``KeyboardInterrupt`` (or any error raised by a callback) also waits for the items in
    flight, then propagates.
    """
    todo = iter(items)
    if pool.executor is None and pool.workers <= 1:
        for item in todo:
            sink = (lambda n, it=item: on_bytes(it, n)) if on_bytes else None
            try:
                result = pool.work(item, sink or _ignore)
            except Exception as exc:  # the policy is the caller's: on_done decides
                if not on_done(item, None, exc):
                    return list(todo)
                continue
            if not on_done(item, result, None):
                return list(todo)
        return []
    own = pool.executor is None
    executor = pool.executor or ThreadPoolExecutor(max_workers=pool.workers,
                                                   thread_name_prefix="storied-transfer")
    threaded = isinstance(executor, ThreadPoolExecutor)
    if not threaded and pool.remote is None:
        raise InvalidArgumentError("this operation needs a ThreadPoolExecutor (its items "
                                   "cannot be sent to other processes)")
    # our own pool runs ``workers`` threads; a few items queued ahead of them keep every
    # thread busy while this thread waits for the interpreter lock to hand out results
    window = pool.workers * QUEUED_AHEAD if own else pool.workers
    messages: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    submitted: dict[int, tuple[T, Future[Any]]] = {}
    cancelled: list[tuple[int, T]] = []
    stopped, order = False, 0
    try:
        while True:
            while not stopped and len(submitted) < window:
                item = next(todo, _END)
                if item is _END:
                    break
                submitted[order] = (item, _submit(executor, pool, order, item, threaded,
                                                  messages))
                order += 1
            if not submitted:
                break
            message = messages.get()
            if message[0] == _BYTES:
                if on_bytes is not None:
                    on_bytes(message[1], message[2])
                continue
            item, future = submitted.pop(message[1])
            if future.cancelled():
                cancelled.append((message[1], item))
                continue
            error = future.exception()
            if not on_done(item, None if error else future.result(), error) and not stopped:
                stopped = True
                for _, waiting in submitted.values():
                    waiting.cancel()  # queued, not started: they stay not started
    except BaseException:
        for _, waiting in submitted.values():
            waiting.cancel()
        while submitted:  # never leave work running behind the caller's back
            message = messages.get()
            if message[0] == _DONE:
                submitted.pop(message[1], None)
        raise
    finally:
        if own:
            executor.shutdown(wait=True)
    if not stopped:
        return []
    return [item for _, item in sorted(cancelled, key=lambda pair: pair[0])] + list(todo)


_END: Any = object()


def _ignore(count: int) -> None:
    return None


def _submit(executor: Executor, pool: Pool[T, R], order: int, item: T, threaded: bool,
            messages: queue.SimpleQueue[tuple[Any, ...]]) -> Future[Any]:
    future: Future[Any]
    if threaded:
        future = executor.submit(pool.work, item, lambda n: messages.put((_BYTES, item, n)))
    else:
        assert pool.remote is not None
        function, argument = pool.remote(item)
        future = executor.submit(function, argument)
    future.add_done_callback(lambda f: messages.put((_DONE, order)))
    return future


@dataclass
class BulkReport:
    """What a bulk operation's per-file (or per-batch) work did, attached as ``.report`` to
    the error it raises.

    Attributes:
        done: Keys (paths, or batch numbers) finished.
        failed: ``{key: the exception}``.
        not_started: Keys never attempted because an error stopped the work.
        workers: The pool size used.
    """

    done: list[Any] = field(default_factory=list)
    failed: dict[Any, BaseException] = field(default_factory=dict)
    not_started: list[Any] = field(default_factory=list)
    workers: int = 1


def pool_map(keys: list[T], work: Callable[[T], R], workers: int,
             progress: Callable[[int, int], object] | None = None,
             after: Callable[[T, R], None] | None = None) -> dict[T, R]:
    """``{key: work(key)}`` on a pool of ``workers`` threads (in this thread when 1).

    ``after(key, result)`` and ``progress(done, len(keys))`` are called from the calling
    thread as keys finish. The first error stops the work (queued keys are not started, the
    running ones finish) and is raised with a :class:`BulkReport` as ``.report``.
    """
    results: dict[T, R] = {}
    report = BulkReport(workers=workers)
    errors: list[BaseException] = []

    def on_done(key: T, result: R | None, error: BaseException | None) -> bool:
        if error is not None:
            report.failed[key] = error
            errors.append(error)
        else:
            results[key] = result  # type: ignore[assignment]
            report.done.append(key)
            if after is not None:
                after(key, result)  # type: ignore[arg-type]
        if progress is not None:
            progress(len(report.done) + len(report.failed), len(keys))
        return not errors

    left = run_pool(Pool(lambda key, sink: work(key), workers), keys, on_done)
    report.not_started = list(left)
    if errors:
        try:
            errors[0].report = report  # type: ignore[attr-defined]
        except AttributeError:
            pass
        raise errors[0]
    return results
