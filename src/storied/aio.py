"""The async API: :class:`AsyncStorageManager` and :class:`AsyncStorageNode`, for asyncio servers.

The names are the sync API's; every method that touches storage is an awaitable, and so are the
sync API's I/O properties (``await node.versions()``, ``await node.version_count()``). Pure path
operations (``path``, ``parent``, ``child``, ``basename``...) stay plain attributes. The
pathlib iterators (``iterdir``, ``glob``, ``rglob``, ``walk``) are awaitables giving lists.
Storage work never runs on the event loop. With ``AsyncStorageManager(native=True)`` the common
calls of S3 nodes are native async requests through aiobotocore (see :mod:`storied._aio_native`
for exactly which calls, and on which mounts; every rule of the sync API holds); every other
call, every other backend, and every call by default, runs the sync API in worker threads
(:func:`asyncio.to_thread`), so a slow storage never stalls other tasks. A
:class:`asyncio.Semaphore` (``max_concurrency``, default 32) bounds how many calls run at once.
A cancelled threaded call cannot stop its thread: a cancelled ``write_bytes`` may still
complete (whole, never a part); see :class:`AsyncFile` for files. ``await storage.aclose()``
(or ``async with storage``) closes the async S3 clients of the running loop (``asyncio.run``
closes them itself at its end).

::

    storage = AsyncStorageManager()
    storage.configure([{'name': 'docs', 'type': 's3', 'bucket': 'b', 'versioning': True}])
    node = storage.node('docs:report.txt')
    await node.write_text('hello')
    async with node.open('rb') as f:
        head = await f.read(10)
    async for chunk in node.iter_bytes():
        ...
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from storied import _aio_native
from storied.core.manager import StorageManager
from storied.core.node import StorageNode

__all__ = ["NODE_IO", "NODE_IO_ITERATORS", "NODE_PURE", "AsyncDownload", "AsyncFile",
           "AsyncStorageManager", "AsyncStorageNode"]

T = TypeVar("T")

#: Node methods that touch storage: awaitables here.
NODE_IO = frozenset({
    "info", "exists", "is_file", "is_dir", "size", "mtime", "md5hash", "same_content",
    "get_metadata", "set_metadata", "url", "read_bytes", "read_text", "read",
    "write_bytes", "write_text", "write", "delete", "children", "mkdir", "copy_to", "move_to",
    "delete_version", "compact_versions", "diff_versions", "rollback", "tag_version",
    "untag_version", "get_version_tags", "annotate_version", "find_versions",
    "cleanup_versions", "diff_versions_text", "diff_json_versions", "diff_xml_versions",
    "diff_csv_versions", "diff_image_versions", "call", "fill_from_url", "to_base64", "zip",
    "lock", "local_path", "serve",
    "rename", "replace", "rmdir", "samefile", "stat", "touch", "unlink",
    "set_legal_hold", "get_legal_hold", "set_retention", "get_retention", "set_storage_class",
    "storage_class", "restore_archived",
    "stream_upload",  # the source (a sync iterable or file) is consumed in the worker thread
})
#: Node methods that return iterators doing I/O as they are consumed: awaitables giving a list
#: (consumed whole in a worker thread, never on the event loop).
NODE_IO_ITERATORS = frozenset({"iterdir", "glob", "rglob", "walk"})
#: Node methods that touch no storage (plain calls here, as are pure properties).
NODE_PURE = frozenset({"child", "joinpath", "match", "splitext", "with_name", "with_suffix",
                       "internal_url", "require_writable", "open", "iter_bytes",
                       "stream_download", "append", "extend"})
#: Sync properties that touch storage: awaitable methods of the same name here.
NODE_IO_PROPERTIES = frozenset({"versions", "version_count", "ext_attributes", "capabilities"})
#: Manager methods that touch storage.
MANAGER_IO = frozenset({
    "verify", "bulk_compact_versions", "bulk_cleanup_versions", "create_snapshot",
    "list_snapshots", "get_snapshot", "restore_snapshot", "delete_snapshot",
    "find_duplicates", "deduplicate", "flush_webhooks", "expire_events", "close_webhooks",
})
#: Manager methods returning iterators that read storage: awaitables giving a list.
MANAGER_IO_ITERATORS = frozenset({"events"})


def _wrap(value: Any, limit: Limits) -> Any:
    """Nodes (also inside lists and tuples, as ``walk`` gives them) come back as async nodes."""
    if isinstance(value, StorageNode):
        return AsyncStorageNode(value, limit)
    if type(value) is list:  # never a subclass (an os.stat_result is a tuple)
        return [_wrap(v, limit) for v in value]
    if type(value) is tuple:
        return tuple(_wrap(v, limit) for v in value)
    return value


def _listed(method: Callable[..., Any]) -> Callable[..., list[Any]]:
    def consume(*args: Any, **kwargs: Any) -> list[Any]:
        return list(method(*args, **kwargs))
    return consume


def _unwrap(value: Any) -> Any:
    return value.sync if isinstance(value, AsyncStorageNode) else value


class Limits:
    """``max_concurrency`` as one semaphore per running event loop, looked up at each call (a
    semaphore belongs to the loop that first waits on it: nodes made outside a loop, or used
    by several ``asyncio.run`` calls one after the other, must not carry one). Held weakly:
    a closed loop's semaphore goes with it."""

    most: int
    router: _aio_native.Router | None

    def __init__(self, most: int, router: _aio_native.Router | None = None) -> None:
        self.most, self.router = most, router
        self.by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self.by_loop = weakref.WeakKeyDictionary()

    def get(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        found = self.by_loop.get(loop)
        if found is None:
            found = self.by_loop[loop] = asyncio.Semaphore(self.most)
        return found


async def _run(limit: Limits, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    async with limit.get():
        return await asyncio.to_thread(func, *args, **kwargs)


def _abort(raw: Any) -> None:
    """Make a writer's coming close write nothing (a flag: safe while a worker thread still
    writes); a text writer's is on its binary buffer."""
    for layer in (raw, getattr(raw, "buffer", None)):
        abort = getattr(layer, "abort", None)
        if callable(abort):
            abort()
            return


class AsyncFile:
    """A file object whose I/O methods are awaitables (``read``, ``write``, ``seek``...).

    Cancellation: a worker thread cannot be stopped, so a cancelled ``write`` may still run
    to its end in its thread; the file is then *discarded*: nothing of it is committed, ever
    (the writer is aborted at once, and its ``close`` writes nothing). A cancelled ``close``
    keeps going in its thread and commits the whole content or nothing (never a part). A
    writer dropped without ``close`` (or a clean ``async with``) is discarded, not committed.
    Calls on one file run one at a time, in order, even after a cancellation.
    """

    raw: Any

    def __init__(self, raw: Any, limit: Limits) -> None:
        self.raw, self._limit = raw, limit
        self._turn = threading.Lock()  # held by the worker thread running a call
        self._closed = False

    def _serial(self, func: Callable[..., T]) -> Callable[..., T]:
        def run(*args: Any) -> T:
            with self._turn:
                return func(*args)
        return run

    def _abort(self) -> None:
        _abort(self.raw)

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        return await _run(self._limit, self._serial(func), *args)

    async def read(self, size: int = -1) -> Any:
        return await self._call(self.raw.read, size)

    async def readline(self) -> Any:
        return await self._call(self.raw.readline)

    async def write(self, data: Any) -> int:
        try:
            return cast(int, await self._call(self.raw.write, data))
        except asyncio.CancelledError:
            self._abort()  # the bytes written are unknown: never commit them
            raise

    async def seek(self, offset: int, whence: int = 0) -> int:
        return cast(int, await self._call(self.raw.seek, offset, whence))

    async def tell(self) -> int:
        return cast(int, await self._call(self.raw.tell))

    async def close(self) -> None:
        """Close; for a writer this is the commit (the atomic replace) and may raise."""
        self._closed = True
        await asyncio.shield(self._call(self.raw.close))

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:  # a failed or cancelled block: no commit
            self._closed = True
            self._abort()
            done = (self._call(self.raw.__exit__, typ, exc, tb) if hasattr(self.raw, "__exit__")
                    else self._call(self.raw.close))
            await asyncio.shield(done)
            return
        await self.close()

    def __del__(self) -> None:
        if not self._closed:
            self._abort()  # dropped unclosed: the raw file's own finaliser must not commit


def _discard_opened(opening: asyncio.Future[Any]) -> None:
    """Abort and close a file whose opener was cancelled (a writer left to the garbage
    collector would commit what it holds: nothing, replacing the content)."""
    if opening.cancelled() or opening.exception() is not None:
        return
    raw = opening.result()
    _abort(raw)
    asyncio.get_running_loop().run_in_executor(None, raw.close)


class _Opening:
    """``node.open(...)``: awaitable (gives an :class:`AsyncFile`) and an async context."""

    def __init__(self, node: AsyncStorageNode, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self._node, self._args, self._kwargs = node, args, kwargs
        self._file: Any = None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> Any:
        router = self._node._limit.router
        route = await router.route(self._node.sync) if router is not None else None
        if route is not None:
            try:
                found = await _aio_native.open_read(route, self._node.sync, *self._args,
                                                    **self._kwargs)
            except TypeError:
                found = _aio_native.THREAD
            if found is not _aio_native.THREAD:
                return found  # an AsyncS3Reader: the same awaitable file methods
        opening = asyncio.ensure_future(
            _run(self._node._limit, self._node.sync.open, *self._args, **self._kwargs))
        try:
            raw = await asyncio.shield(opening)
        except asyncio.CancelledError:  # the open goes on in its thread: discard what it gives
            opening.add_done_callback(_discard_opened)
            raise
        return AsyncFile(raw, self._node._limit)

    async def __aenter__(self) -> Any:
        self._file = await self._open()
        return self._file

    async def __aexit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        assert self._file is not None
        await self._file.__aexit__(typ, exc, tb)


class AsyncDownload:
    """What ``await node.stream_download(...)`` gives: ``size`` (the bytes it will yield),
    ``async for chunk in stream`` (each chunk taken in a worker thread, prefetching as the
    sync stream does), and ``async with`` / ``await stream.close()`` to stop early."""

    def __init__(self, stream: Any, limit: Limits) -> None:
        self._stream, self._limit = stream, limit
        self._chunks = iter(stream)
        self.size: int = stream.size

    def __aiter__(self) -> AsyncDownload:
        return self

    async def __anext__(self) -> bytes:
        chunk = await _run(self._limit, next, self._chunks, None)
        if chunk is None:
            raise StopAsyncIteration
        return cast(bytes, chunk)

    async def close(self) -> None:
        await _run(self._limit, self._stream.close)

    async def __aenter__(self) -> AsyncDownload:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncStorageNode:
    """The async face of a :class:`~storied.core.node.StorageNode` (``.sync`` is that node)."""

    sync: StorageNode

    def __init__(self, node: StorageNode, limit: Limits) -> None:
        self.sync, self._limit = node, limit

    def __getattr__(self, name: str) -> Any:
        if name in NODE_IO_PROPERTIES:
            return functools.partial(_run, self._limit, getattr, self.sync, name)
        if isinstance(inspect.getattr_static(type(self.sync), name, None), property):
            return _wrap(getattr(self.sync, name), self._limit)  # a pure property
        value = getattr(self.sync, name)
        if name in NODE_IO:
            return self._native(name, self._io(value))
        if name in NODE_IO_ITERATORS:
            return self._native(name, self._io(_listed(value), name))
        return _wrap(value, self._limit)

    def _native(self, name: str, threaded: Callable[..., Awaitable[Any]]
                ) -> Callable[..., Awaitable[Any]]:
        """``threaded`` itself, or a call that first tries the native route (S3 mounts)."""
        handler = _aio_native.NATIVE.get(name)
        router = self._limit.router
        if handler is None or router is None:
            return threaded
        signature = _aio_native.SIGNATURES[name]

        async def call(*args: Any, **kwargs: Any) -> Any:
            route = await router.route(self.sync)
            if route is not None:
                try:
                    signature.bind(route, self.sync, *args, **kwargs)
                except TypeError:
                    return await threaded(*args, **kwargs)  # the sync API's own TypeError
                async with self._limit.get():
                    result = await handler(route, self.sync, *args, **kwargs)
                if result is not _aio_native.THREAD:
                    return _wrap(result, self._limit)
            return await threaded(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = threaded.__doc__
        return call

    def _io(self, method: Callable[..., Any], name: str | None = None
            ) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(_unwrap(a) for a in args)
            kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
            return _wrap(await _run(self._limit, method, *args, **kwargs), self._limit)

        call.__name__ = call.__qualname__ = name or method.__name__
        call.__doc__ = method.__doc__
        return call

    def open(self, *args: Any, **kwargs: Any) -> _Opening:
        """``await node.open(mode)`` or ``async with node.open(mode) as f``."""
        return _Opening(self, args, kwargs)

    async def iter_bytes(self, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """The content in chunks: natively streamed on S3 mounts, else each chunk read in a
        worker thread."""
        router = self._limit.router
        route = await router.route(self.sync) if router is not None else None
        if route is not None:
            reader = await _aio_native.open_read(route, self.sync, "rb")
            try:
                while chunk := await reader.read(chunk_size):
                    yield chunk
            finally:
                await reader.close()
            return
        stream = await _run(self._limit, self.sync.open, "rb")
        try:
            while chunk := await _run(self._limit, stream.read, chunk_size):
                yield chunk
        finally:
            await _run(self._limit, stream.close)

    async def stream_download(self, *args: Any, **kwargs: Any) -> AsyncDownload:
        """Like :meth:`StorageNode.stream_download` (same arguments), as an async iterator."""
        stream = await _run(self._limit, self.sync.stream_download, *args, **kwargs)
        return AsyncDownload(stream, self._limit)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncStorageNode) and other.sync == self.sync

    def __hash__(self) -> int:
        return hash(self.sync)

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    def __str__(self) -> str:
        return str(self.sync)


class AsyncStorageManager:
    """The async face of a :class:`~storied.core.manager.StorageManager` (``.sync``).

    Args:
        storage: An existing manager to share (default: a new one).
        max_concurrency: How many storage calls may run at once (in worker threads, or as
            native requests).
        native: Run the common calls of S3 nodes as native async requests (aiobotocore, the
            ``aio`` extra; see :mod:`storied._aio_native`) instead of worker threads. Off by
            default: on moto the thread path was as fast or faster (bench/aio.py, ADR 0028);
            native serves many concurrent requests without a thread each.
    """

    sync: StorageManager

    def __init__(self, storage: StorageManager | None = None, max_concurrency: int = 32, *,
                 native: bool = False) -> None:
        self.sync = storage if storage is not None else StorageManager()
        self._max = max_concurrency
        router = _aio_native.Router(max(10, max_concurrency)) if native else None
        self._limit = Limits(max_concurrency, router)

    async def aclose(self) -> None:
        """Close the running loop's async S3 clients (the sync manager stays open)."""
        if self._limit.router is not None:
            await self._limit.router.aclose()

    async def __aenter__(self) -> AsyncStorageManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def node(self, *args: Any, **kwargs: Any) -> AsyncStorageNode:
        """Like :meth:`StorageManager.node` (no I/O)."""
        return AsyncStorageNode(self.sync.node(*args, **kwargs), self._limit)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.sync, name)
        if name in MANAGER_IO_ITERATORS:
            value = functools.wraps(value)(_listed(value))
        if name in MANAGER_IO or name in MANAGER_IO_ITERATORS:
            limit = self._limit

            async def call(*args: Any, **kwargs: Any) -> Any:
                args = tuple(_unwrap(a) for a in args)
                return _wrap(await _run(limit, value, *args, **kwargs), limit)

            call.__name__ = call.__qualname__ = name
            call.__doc__ = value.__doc__
            return call
        return value

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"
