"""The async API: the node conformance suite runs through it (every call an awaitable on an
event loop in debug mode, which reports any callback that blocks the loop), plus async-only
forms (open as an async context, iter_bytes as an async iterator, concurrency)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.aio import NODE_IO, NODE_IO_PROPERTIES, AsyncStorageManager, AsyncStorageNode
from storied.testing.node_suite import NodeConformance


class _Loop:
    """An event loop in a thread, in debug mode: slow callbacks (> 500 ms on the loop: above
    a thread start or a preemption on a loaded machine, where 68 and 150 ms were seen) are
    logged by asyncio and collected here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(True)
        self.loop.slow_callback_duration = 0.5
        self.slow: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: self.slow.append(record.getMessage())  # type: ignore
        self._handler = handler
        logging.getLogger("asyncio").addHandler(handler)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        logging.getLogger("asyncio").removeHandler(self._handler)


class _SyncFile:
    def __init__(self, loop: _Loop, afile: Any) -> None:
        self._loop, self._f = loop, afile

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._f, name, None)
        if method is None or not asyncio.iscoroutinefunction(method):
            return getattr(self._f.raw, name)
        return lambda *a, **k: self._loop.run(method(*a, **k))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._f.raw)

    def __enter__(self) -> _SyncFile:
        return self

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        self._loop.run(self._f.__aexit__(typ, exc, tb))


class _SyncNode:
    """A sync face over AsyncStorageNode, so the sync conformance suite drives the async API."""

    def __init__(self, loop: _Loop, anode: AsyncStorageNode) -> None:
        self._loop, self._a = loop, anode

    def _back(self, value: Any) -> Any:
        if isinstance(value, AsyncStorageNode):
            return _SyncNode(self._loop, value)
        if isinstance(value, list) and value and isinstance(value[0], AsyncStorageNode):
            return [_SyncNode(self._loop, v) for v in value]
        return value

    def __getattr__(self, name: str) -> Any:
        if name in NODE_IO_PROPERTIES:
            return self._loop.run(getattr(self._a, name)())
        if name in NODE_IO:
            method = getattr(self._a, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                args = tuple(a._a if isinstance(a, _SyncNode) else a for a in args)
                kwargs = {k: v._a if isinstance(v, _SyncNode) else v for k, v in kwargs.items()}
                return self._back(self._loop.run(method(*args, **kwargs)))

            return call
        return self._back(getattr(self._a, name))

    def open(self, *args: Any, **kwargs: Any) -> _SyncFile:
        return _SyncFile(self._loop, self._loop.run(self._open(*args, **kwargs)))

    async def _open(self, *args: Any, **kwargs: Any) -> Any:
        return await self._a.open(*args, **kwargs)

    def iter_bytes(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        async def collect() -> list[bytes]:
            return [c async for c in self._a.iter_bytes(chunk_size)]

        return iter(self._loop.run(collect()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SyncNode) and other._a == self._a

    def __hash__(self) -> int:
        return hash(self._a)

    def __str__(self) -> str:
        return str(self._a)


class _SyncManager:
    def __init__(self, loop: _Loop, storage: AsyncStorageManager) -> None:
        self._loop, self._s = loop, storage

    def node(self, *args: Any, **kwargs: Any) -> _SyncNode:
        return _SyncNode(self._loop, self._s.node(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s.sync, name)


@pytest.fixture
def aloop() -> Iterator[_Loop]:
    loop = _Loop()
    yield loop
    loop.close()
    assert loop.slow == [], loop.slow  # nothing blocked the event loop


class TestAsyncLocal(NodeConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path, aloop: _Loop) -> Iterator[Any]:
        (tmp_path / "base").mkdir()
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "local", "base_path": str(tmp_path / "base")}])
        yield _SyncManager(aloop, AsyncStorageManager(sm))


class TestAsyncMemoryVersioned(NodeConformance):
    @pytest.fixture
    def storage(self, aloop: _Loop) -> Iterator[Any]:
        sm = StorageManager()
        sm.configure([{"name": "base", "type": "memory", "versioning": True}])
        yield _SyncManager(aloop, AsyncStorageManager(sm))


def test_async_forms_and_history() -> None:
    async def main() -> None:
        storage = AsyncStorageManager()
        storage.configure([{"name": "m", "type": "memory", "versioning": True}])
        node = storage.node("m:docs/a.txt")
        assert await node.write_text("one") is True
        await node.write_text("two")
        async with node.open("rb") as f:
            assert await f.read(2) == b"tw"
        assert b"".join([c async for c in node.iter_bytes(1)]) == b"two"
        versions = await node.versions()
        assert len(versions) == 2 and await node.version_count() == 2
        assert (await node.open("rb", version=-2)).raw.read() == b"one"
        async with node.open("wb") as f:
            await f.write(b"three")
        assert await node.read_bytes() == b"three"
        children = await storage.node("m:docs").children()
        assert [type(c) for c in children] == [AsyncStorageNode]
        report = await storage.verify()
        assert report.ok
        assert node.parent.path == "docs" and node.basename == "a.txt"  # pure: no await

    asyncio.run(main())


def test_a_failed_async_write_block_commits_nothing() -> None:
    async def main() -> None:
        storage = AsyncStorageManager()
        storage.configure([{"name": "m", "type": "memory"}])
        node = storage.node("m:x.bin")
        await node.write_bytes(b"kept")
        with pytest.raises(RuntimeError):
            async with node.open("wb") as f:
                await f.write(b"half")
                raise RuntimeError("boom")
        assert await node.read_bytes() == b"kept"

    asyncio.run(main())


def test_slow_storage_does_not_stall_the_loop(tmp_path: Path) -> None:
    from storied.testing.mock import MockBackend

    async def main() -> float:
        storage = AsyncStorageManager(max_concurrency=8)
        storage.sync.add_mount({"name": "slow", "backend": MockBackend(latency_ms=200)})
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.gather(*(storage.node(f"slow:f{i}").write_bytes(b"x") for i in range(8)))
        took = time.monotonic() - started
        task.cancel()
        assert ticks >= 10  # the loop kept running while 8 slow writes were in flight
        return took

    took = asyncio.run(main())
    assert took < 8 * 0.2  # concurrent, not one after the other


def test_the_blocking_detector_itself_catches_a_blocking_call() -> None:
    loop = _Loop()
    try:
        async def blocks() -> None:
            time.sleep(0.8)  # what storied must never do on the loop

        loop.run(blocks())
        deadline = time.monotonic() + 2
        while not loop.slow and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.slow and "took" in loop.slow[0]
    finally:
        loop.close()
