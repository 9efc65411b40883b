"""Review R1: a cancelled async write never commits a part of what it was given; a writer
dropped unclosed is discarded; calls on one file stay serial after a cancellation."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from storied.aio import AsyncStorageManager


def storage_of(tmp_path: Path) -> AsyncStorageManager:
    storage = AsyncStorageManager()
    storage.sync.add_mount({"name": "m", "type": "local", "base_path": str(tmp_path)})
    return storage


@pytest.mark.parametrize(("mode", "data"), [("wb", b"half of it"), ("w", "half of it")])
def test_a_writer_dropped_without_close_commits_nothing(tmp_path: Path, mode: str,
                                                        data: object) -> None:
    async def main() -> None:
        storage = storage_of(tmp_path)
        node = storage.node("m:f.bin")
        await node.write_bytes(b"old")

        async def writer() -> None:
            f = await node.open(mode)
            await f.write(data)
            await asyncio.Event().wait()  # cancelled here, f never closed

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        del task
        gc.collect()
        await asyncio.sleep(0.05)
        assert await node.read_bytes() == b"old"

    asyncio.run(main())


def test_a_write_cancelled_in_flight_is_discarded(tmp_path: Path) -> None:
    big = b"z" * (48 << 20)  # long enough to still be in its thread when cancelled

    async def main() -> None:
        storage = storage_of(tmp_path)
        node = storage.node("m:big.bin")
        await node.write_bytes(b"old")
        for delay in (0.0, 0.001, 0.01):
            async def writer() -> None:
                async with node.open("wb") as f:
                    await f.write(b"head")
                    await f.write(big)
                    await f.write(b"tail")

            task = asyncio.create_task(writer())
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.05)
            assert await node.read_bytes() == b"old", delay
        async with node.open("wb") as f:  # a clean block still commits
            await f.write(b"new")
        assert await node.read_bytes() == b"new"

    asyncio.run(main())


def test_cancelling_close_still_commits_whole(tmp_path: Path) -> None:
    async def main() -> None:
        storage = storage_of(tmp_path)
        node = storage.node("m:c.bin")
        f = await node.open("wb")
        await f.write(b"complete")
        task = asyncio.create_task(f.close())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(100):
            if await node.exists():
                break
            await asyncio.sleep(0.01)
        assert await node.read_bytes() == b"complete"

    asyncio.run(main())


def test_every_node_method_is_async_or_known_pure() -> None:
    """A method added to StorageNode later must be classified: else an I/O call would run on
    the event loop (and ``await`` of its result fail after it did its work)."""
    import inspect

    from storied.aio import NODE_IO, NODE_IO_ITERATORS, NODE_PURE
    from storied.core.node import StorageNode

    public = {n for n in dir(StorageNode) if not n.startswith("_")
              and not isinstance(inspect.getattr_static(StorageNode, n), property)}
    assert public - NODE_IO - NODE_IO_ITERATORS - NODE_PURE == set()


def test_pathlib_methods_run_in_threads(tmp_path: Path) -> None:
    async def main() -> None:
        storage = storage_of(tmp_path)
        await storage.node("m:d/a.txt").write_text("a")
        await storage.node("m:d/sub/b.txt").write_text("b")
        folder = storage.node("m:d")
        assert sorted(n.basename for n in await folder.iterdir()) == ["a.txt", "sub"]
        assert [n.path for n in await folder.rglob("*.txt")] == ["d/a.txt", "d/sub/b.txt"]
        top, dirs, files = (await folder.walk())[0]
        assert top.path == "d" and dirs == ["sub"] and files == ["a.txt"]
        assert (await storage.node("m:d/a.txt").stat()).st_size == 1
        await storage.node("m:d/new.txt").touch()
        await storage.node("m:d/a.txt").unlink()
        assert not (tmp_path / "d" / "a.txt").exists() and (tmp_path / "d" / "new.txt").exists()

    asyncio.run(main())


def test_journal_reads_run_in_threads(tmp_path: Path) -> None:
    async def main() -> None:
        storage = AsyncStorageManager()
        storage.sync.add_mount({"name": "v", "type": "local", "base_path": str(tmp_path),
                                "versioning": True})
        await storage.node("v:a.txt").write_text("1")
        events = await storage.events("v:")
        assert [e.path for e in events][-1:] == ["a.txt"]
        assert await storage.expire_events("v", 30) == 0

    asyncio.run(main())


def test_a_manager_used_on_many_loops_keeps_no_semaphore_of_closed_ones(tmp_path: Path) -> None:
    storage = storage_of(tmp_path)

    async def one(i: int) -> None:
        await storage.node(f"m:f{i}").write_bytes(b"x")

    for i in range(5):
        asyncio.run(one(i))
    gc.collect()
    assert len(storage._limit.by_loop) == 0


def test_a_node_made_outside_a_loop_works_in_successive_loops() -> None:
    from storied.testing.mock import MockBackend

    storage = AsyncStorageManager(max_concurrency=1)  # every call after the first waits
    storage.sync.add_mount({"name": "slow", "backend": MockBackend(latency_ms=20)})
    node = storage.node("slow:f")  # at import time, as a module would

    async def many() -> None:
        await asyncio.gather(*(node.write_bytes(b"x") for _ in range(3)))

    asyncio.run(many())
    asyncio.run(many())  # was: the semaphore "is bound to a different event loop"
    assert node.sync.read_bytes() == b"x"
