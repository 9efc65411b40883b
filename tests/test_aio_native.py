"""Native async S3 (aiobotocore) under storied.aio: the node conformance suite through the async
API on S3 (plain and prefixed buckets, native path on) and on memory/local; native calls use no
worker thread; the thread path is taken where the native one cannot keep storied's rules."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import linecache
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.aio import (
    NODE_IO,
    NODE_IO_ITERATORS,
    NODE_IO_PROPERTIES,
    AsyncStorageManager,
    AsyncStorageNode,
)
from storied.errors import (
    NotADirectoryStorageError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.testing.node_suite import NodeConformance
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket


def s3_mount(name: str, endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", **extra}


def new_bucket(moto: MotoHandle, versioned: bool = False) -> str:
    return make_bucket(moto.endpoint_url, f"aio-{uuid.uuid4().hex[:12]}", versioned)


_SERVER = ("import time\nfrom storied.testing.s3server import start_moto\n"
           "print(start_moto().endpoint_url, flush=True)\ntime.sleep(3600)\n")


@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    """moto in its own process: its threads do not share this process's GIL, so the loop's
    step times are storied's, not the test server's (in-process moto threads held the GIL
    from the loop for seconds on a loaded machine)."""
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(10)


def bucket_on(endpoint: str, versioned: bool = False) -> str:
    return make_bucket(endpoint, f"aio-{uuid.uuid4().hex[:12]}", versioned)


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (what asyncio.to_thread uses), counting submissions."""

    def __init__(self) -> None:
        super().__init__(max_workers=8)
        self.count = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.count += 1
        return super().submit(*args, **kwargs)


_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _sched() -> tuple[float, float]:
    """Seconds this thread has run, and spent runnable but waiting for a CPU (schedstat)."""
    if not _SCHEDSTAT.exists():
        return 0.0, 0.0
    ran, waited, _ = _SCHEDSTAT.read_text().split()
    return int(ran) / 1e9, int(waited) / 1e9


class Loop:
    """An event loop in a thread, in debug mode; slow callbacks are collected."""

    def __init__(self, slow: float = 8.0) -> None:
        # 8 s: a coarse net over whole conformance runs (3.6 s stalls seen under load). A step
        # waiting for the GIL (worker threads busy on a loaded machine) counts as its own time
        # in schedstat; the fine check (50 ms) is
        # test_no_blocking_call_on_the_event_loop, which repeats a phase before failing.
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(True)
        self.loop.slow_callback_duration = slow
        self.executor = CountingExecutor()
        self.loop.set_default_executor(self.executor)
        self.slow: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: self.slow.append(record.getMessage())  # type: ignore
        self._handler = handler
        logging.getLogger("asyncio").addHandler(handler)
        # debug mode's wall-clock verdicts are kept in .slow; the test's verdict is .blocking:
        # steps whose own time (not waiting for a CPU, not collecting) passed ``slow``
        self.blocking: list[tuple[float, float, str]] = []
        self._real_run = run = asyncio.events.Handle._run
        loop_thread: list[int] = []

        def timed(handle: asyncio.Handle) -> None:
            if not loop_thread or threading.get_ident() != loop_thread[0]:
                run(handle)  # type: ignore[arg-type]
                return
            began, (_, waited) = time.perf_counter(), _sched()
            run(handle)  # type: ignore[arg-type]
            took = time.perf_counter() - began
            if took > slow:
                own = took - (_sched()[1] - waited)
                if own > slow:
                    self.blocking.append((round(took, 3), round(own, 3), repr(handle)[:300]))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.loop.call_soon_threadsafe(lambda: loop_thread.append(threading.get_ident()))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self, storage: AsyncStorageManager | None = None) -> None:
        if storage is not None:
            self.run(storage.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.executor.shutdown()
        logging.getLogger("asyncio").removeHandler(self._handler)
        asyncio.events.Handle._run = self._real_run  # type: ignore[method-assign]


class SyncFile:
    """A sync file over an AsyncFile or a native AsyncS3Reader."""

    def __init__(self, loop: Loop, afile: Any) -> None:
        self._loop, self._f = loop, afile

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._f, name, None)
        if method is not None and asyncio.iscoroutinefunction(method):
            return lambda *a, **k: self._loop.run(method(*a, **k))
        if method is not None:
            return method
        return getattr(self._f.raw, name)

    def __iter__(self) -> Iterator[Any]:
        while line := self.readline():
            yield line

    def __enter__(self) -> SyncFile:
        return self

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        self._loop.run(self._f.__aexit__(typ, exc, tb))


class SyncNode:
    """A sync face over AsyncStorageNode, so the sync conformance suite drives the async API."""

    def __init__(self, loop: Loop, anode: AsyncStorageNode) -> None:
        self._loop, self._a = loop, anode

    def _back(self, value: Any) -> Any:
        if isinstance(value, AsyncStorageNode):
            return SyncNode(self._loop, value)
        if isinstance(value, list):
            return [self._back(v) for v in value]
        if isinstance(value, tuple) and value and isinstance(value[0], AsyncStorageNode):
            return tuple(self._back(v) for v in value)
        return value

    def __getattr__(self, name: str) -> Any:
        if name in NODE_IO_PROPERTIES:
            return self._loop.run(getattr(self._a, name)())
        if name in NODE_IO or name in NODE_IO_ITERATORS:
            method = getattr(self._a, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                args = tuple(a._a if isinstance(a, SyncNode) else a for a in args)
                kwargs = {k: v._a if isinstance(v, SyncNode) else v for k, v in kwargs.items()}
                result = self._back(self._loop.run(method(*args, **kwargs)))
                return iter(result) if name in NODE_IO_ITERATORS else result

            return call
        return self._back(getattr(self._a, name))

    def open(self, *args: Any, **kwargs: Any) -> SyncFile:
        async def opening() -> Any:
            return await self._a.open(*args, **kwargs)

        return SyncFile(self._loop, self._loop.run(opening()))

    def iter_bytes(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        async def collect() -> list[bytes]:
            return [c async for c in self._a.iter_bytes(chunk_size)]

        return iter(self._loop.run(collect()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SyncNode) and other._a == self._a

    def __hash__(self) -> int:
        return hash(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __repr__(self) -> str:
        return f"Sync{self._a!r}"


class SyncManager:
    def __init__(self, loop: Loop, storage: AsyncStorageManager) -> None:
        self._loop, self._s = loop, storage

    def node(self, *args: Any, **kwargs: Any) -> SyncNode:
        return SyncNode(self._loop, self._s.node(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s.sync, name)


def _driven(sm: StorageManager) -> Iterator[Any]:
    loop = Loop()
    storage = AsyncStorageManager(sm, native=True)
    try:
        yield SyncManager(loop, storage)
    finally:
        loop.close(storage)
        sm.close()
    # nothing blocked the event loop (debug mode's own list also counts steps the OS delayed)
    assert loop.blocking == [], (loop.blocking, loop.slow)


class TestAsyncNativeS3(NodeConformance):
    @pytest.fixture
    def storage(self, moto_process: str) -> Iterator[Any]:
        sm = StorageManager()
        sm.configure([s3_mount("base", moto_process, bucket_on(moto_process))])
        yield from _driven(sm)


class TestAsyncNativeS3Prefixed(NodeConformance):
    @pytest.fixture
    def storage(self, moto_process: str) -> Iterator[Any]:
        sm = StorageManager()
        sm.configure([s3_mount("base", moto_process, bucket_on(moto_process), prefix="tenant/a")])
        yield from _driven(sm)


class TestAsyncNativeS3Portable(NodeConformance):
    """An unversioned bucket with ``versioning: true``: writes take the thread path (the
    portable engine), reads are native."""

    @pytest.fixture
    def storage(self, moto_process: str) -> Iterator[Any]:
        sm = StorageManager()
        sm.configure([s3_mount("base", moto_process, bucket_on(moto_process), versioning=True)])
        yield from _driven(sm)


# ------------------------------------------------------------------------------ native use
def _threads_used(loop: Loop, coro_factory: Callable[[], Any]) -> tuple[Any, int]:
    before = loop.executor.count
    result = loop.run(coro_factory())
    return result, loop.executor.count - before


def test_native_calls_use_no_worker_thread(moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, new_bucket(moto)),
                  {"name": "rel", "path": "s:inner"}])
    storage = AsyncStorageManager(sm, native=True)
    loop = Loop()
    try:
        node = storage.node("rel:docs/a.txt")
        loop.run(node.exists())  # builds the route (in a thread, once per mount)

        async def session() -> list[Any]:
            seen: list[Any] = []
            seen.append(await node.write_text("héllo"))
            seen.append(await node.write_bytes(b"bytes", metadata={"k": "v"}))
            seen.append(await node.read_bytes())
            seen.append(await node.read_text())
            seen.append((await node.info()).metadata)
            seen.append((await node.exists(), await node.is_file(), await node.is_dir()))
            seen.append(await node.size())
            seen.append([c.path for c in await storage.node("rel:docs").children()])
            seen.append([c.path for c in await storage.node("rel:").iterdir()])
            async with node.open("rb") as f:
                seen.append((await f.read(2), await f.seek(1), await f.read(), await f.tell()))
            seen.append(b"".join([c async for c in node.iter_bytes(2)]))
            seen.append(await node.delete())
            seen.append(await node.delete())
            return seen

        seen, threads = _threads_used(loop, session)
        assert threads == 0
        assert seen == [True, True, b"bytes", "bytes", {"k": "v"}, (True, True, False), 5,
                        ["docs/a.txt"], ["docs"], (b"by", 1, b"ytes", 5), b"bytes", True, False]
        assert sm.node("s:inner/docs").exists() is False  # the sync API sees the same storage
    finally:
        loop.close(storage)
        sm.close()


def test_native_and_threaded_paths_answer_alike(moto: MotoHandle) -> None:
    bucket = new_bucket(moto)
    answers = []
    for native in (True, False):
        sm = StorageManager()
        sm.configure([s3_mount("s", moto.endpoint_url, bucket),
                      {"name": "ro", "path": "s:", "permissions": "readonly"}])
        storage = AsyncStorageManager(sm, native=native)

        async def session(storage: AsyncStorageManager = storage,
                          native: bool = native) -> list[Any]:
            out: list[Any] = []
            node = storage.node(f"s:{native}/f.txt")
            await node.write_text("x" * 10)
            info = await node.info()
            out.append((info.size, info.md5, info.is_dir, info.metadata))
            out.append([n.basename for n in await storage.node(f"s:{native}").children()])
            for call in (lambda: storage.node(f"s:{native}/missing").read_bytes(),
                         lambda: storage.node(f"s:{native}/f.txt").iterdir(),
                         lambda: storage.node(f"ro:{native}/f.txt").write_bytes(b"x"),
                         lambda: storage.node(f"ro:{native}/f.txt").delete(),
                         lambda: storage.node(f"s:{native}/missing").size(),
                         lambda: storage.node(f"s:{native}").delete()):
                try:
                    await call()
                except Exception as exc:  # the error itself is the answer
                    out.append(type(exc).__name__)
            return out

        try:
            answers.append(asyncio.run(_catching(session)))
        finally:
            sm.close()
    assert answers[0] == answers[1]
    assert answers[0][2:] == ["StorageNotFoundError", "NotADirectoryStorageError",
                               "StoragePermissionError", "StoragePermissionError",
                               "StorageNotFoundError", "DirectoryNotEmptyError"]


async def _catching(session: Callable[[], Any]) -> Any:
    try:
        return await session()
    except Exception as exc:
        return type(exc).__name__


def test_reserved_area_hidden_natively(moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, new_bucket(moto), versioning=True)])
    sm.node("s:a.txt").write_text("1")  # the portable history writes under .storied/

    async def main() -> list[Any]:
        storage = AsyncStorageManager(sm, native=True)
        listed = [n.path for n in await storage.node("s:").children()]
        return [listed, await storage.node("s:a.txt").read_text()]

    try:
        assert asyncio.run(main()) == [["a.txt"], "1"]
        with pytest.raises(StoragePermissionError):
            AsyncStorageManager(sm, native=True).node("s:.storied/x")  # no node names it
    finally:
        sm.close()


def test_writes_on_a_portable_history_mount_go_through_history(moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, new_bucket(moto), versioning=True)])

    async def main() -> list[Any]:
        storage = AsyncStorageManager(sm, native=True)
        node = storage.node("s:doc.txt")
        for text in ("one", "two", "three"):
            await node.write_text(text)
        count = await node.version_count()
        first = (await storage.node("s:doc.txt").open("rb", version=0)).raw.read()
        await node.delete()
        return [count, first, await node.exists(), await node.version_count()]

    try:
        assert asyncio.run(main()) == [3, b"one", False, 3]
        assert sm.verify().ok
    finally:
        sm.close()


def test_native_versioned_bucket_keeps_every_version(moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, new_bucket(moto, versioned=True))])

    async def main() -> list[Any]:
        storage = AsyncStorageManager(sm, native=True)
        node = storage.node("s:v.txt")
        await asyncio.gather(*(storage.node(f"s:p{i}").write_bytes(b"x") for i in range(5)))
        for text in ("a", "b"):
            await node.write_text(text)
        return [await node.version_count(), await node.read_text()]

    try:
        assert asyncio.run(main()) == [2, "b"]
    finally:
        sm.close()


def test_unknown_config_keys_send_writes_to_threads(moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, new_bucket(moto), webhooks=[])])
    storage = AsyncStorageManager(sm, native=True)
    loop = Loop()
    try:
        node = storage.node("s:x.bin")
        loop.run(node.exists())
        _, threads = _threads_used(loop, lambda: node.write_bytes(b"data"))
        assert threads == 1  # the sync write, which knows the key
        data, threads = _threads_used(loop, node.read_bytes)
        assert (data, threads) == (b"data", 0)  # reads stay native
    finally:
        loop.close(storage)
        sm.close()


def test_a_transient_error_is_retried_natively(moto: MotoHandle, proxy: CountingProxy) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", proxy.endpoint_url, new_bucket(moto), retries=3)])
    sm.node("s:r.txt").write_text("kept")

    async def main() -> tuple[str, int]:
        storage = AsyncStorageManager(sm, native=True)
        await storage.node("s:r.txt").exists()
        proxy.reset()
        proxy.fail(3, label="GET")  # botocore's own second try, then storied's retry
        text = await storage.node("s:r.txt").read_text()
        return text, proxy.counts.get("GET", 0)

    try:
        text, gets = asyncio.run(main())
        assert text == "kept" and gets == 4
    finally:
        proxy.reset()
        sm.close()


def test_errors_are_storied_errors(moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, new_bucket(moto))])

    async def main() -> None:
        storage = AsyncStorageManager(sm, native=True)
        await storage.node("s:f.txt").write_text("x")
        with pytest.raises(StorageNotFoundError):
            await storage.node("s:nope.txt").read_bytes()
        with pytest.raises(FileNotFoundError):
            async with storage.node("s:nope.txt").open("rb"):
                pass
        with pytest.raises(NotADirectoryStorageError):
            await storage.node("s:f.txt").children()
        assert await storage.node("s:nope/deeper").delete() is False

    try:
        asyncio.run(main())
    finally:
        sm.close()


def test_a_reconfigured_mount_gets_a_new_route(moto: MotoHandle) -> None:
    first, second = new_bucket(moto), new_bucket(moto)
    sm = StorageManager()
    sm.configure([s3_mount("s", moto.endpoint_url, first)])

    async def main() -> list[bytes]:
        storage = AsyncStorageManager(sm, native=True)
        await storage.node("s:a").write_bytes(b"first")
        sm.delete_mount("s")
        sm.configure([s3_mount("s", moto.endpoint_url, second)])
        await storage.node("s:a").write_bytes(b"second")
        return [sm.node("s:a").read_bytes(), await storage.node("s:a").read_bytes()]

    try:
        assert asyncio.run(main()) == [b"second", b"second"]
    finally:
        sm.close()


def test_local_and_memory_take_the_thread_path(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "l", "type": "local", "base_path": str(tmp_path)},
                  {"name": "m", "type": "memory"}])
    storage = AsyncStorageManager(sm, native=True)
    loop = Loop()
    try:
        for name in ("l", "m"):
            node = storage.node(f"{name}:x.txt")
            _, threads = _threads_used(loop, lambda node=node: node.write_text("x"))
            assert threads == 1
            assert loop.run(node.read_text()) == "x"
    finally:
        loop.close(storage)





class StepJudge:
    """Instruments the loop's steps (``Handle._run``, what debug mode times): of a step
    longer than ``threshold``, the time the OS explains (the thread runnable, waiting for a
    CPU: 8 test runs share 2 cores here) is taken off, and so is the garbage collector's (a
    full collection of a pytest process takes 0.1 s wherever it lands). What is left, the
    step's own time (running, or sleeping in a blocking call), must stay below it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, threshold: float) -> None:
        self.threshold = threshold
        self.blocking: list[tuple[float, float, float, str]] = []
        self.slow = 0
        run = asyncio.events.Handle._run
        collecting = [0.0, 0.0]  # seconds spent collecting, start of the current collection

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                collecting[1] = time.perf_counter()
            else:
                collecting[0] += time.perf_counter() - collecting[1]

        def timed(handle: asyncio.Handle) -> None:
            began, (ran, waited), collected = time.perf_counter(), _sched(), collecting[0]
            run(handle)  # type: ignore[arg-type]
            took = time.perf_counter() - began
            if took > threshold:
                self.slow += 1
                now_ran, now_waited = _sched()
                own = took - (now_waited - waited) - (collecting[0] - collected)
                if own > threshold:
                    self.blocking.append((round(took, 3), round(own, 3),
                                          round(now_ran - ran, 3), repr(handle)[:300]))

        monkeypatch.setattr(asyncio.events.Handle, "_run", timed)
        monkeypatch.setattr(gc, "callbacks", [*gc.callbacks, on_gc])
        # debug mode records where every handle and future was made: an os.stat per source
        # file of the stack (linecache.checkcache), 100+ ms in a step on a loaded machine:
        # the instrument's cost, not storied's (no source file changes during a test)
        monkeypatch.setattr(linecache, "checkcache", lambda filename=None: None)


def _debug_run(coro: Any) -> Any:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
        return await coro

    return asyncio.run(main(), debug=True)


def _slow_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and "Executing" in r.getMessage() and "took" in r.getMessage()]


@pytest.mark.skipif(not _SCHEDSTAT.exists(), reason="needs Linux schedstat")
def test_no_blocking_call_on_the_event_loop(moto_process: str, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio debug mode (slow_callback_duration 50 ms) while many operations run on S3
    (native requests) and local (threads): every step it reports as slow was slow because
    the OS kept the thread waiting for a CPU (or the collector ran), never because of a
    blocking call of storied's. A blocking call is in every run, at the same step; a step
    that waits for the GIL held by another thread of this process (or for a disk) is not:
    each phase may run 3 times and must be clean once."""
    bucket = make_bucket(moto_process, f"aio-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([s3_mount("s", moto_process, bucket),
                  {"name": "l", "type": "local", "base_path": str(tmp_path)}])

    async def one(storage: AsyncStorageManager, mount: str, i: int) -> None:
        node = storage.node(f"{mount}:d/f{i}.txt")
        await node.write_text(f"content {i}")
        assert await node.read_text() == f"content {i}"
        assert (await node.info()).size == len(f"content {i}")
        assert await node.exists()
        async with node.open("rb") as f:
            assert await f.read() == f"content {i}".encode()
        assert b"".join([c async for c in node.iter_bytes(4)]) == f"content {i}".encode()

    async def phase(mount: str) -> list[Any]:
        storage = AsyncStorageManager(sm, native=True)
        await storage.node(f"{mount}:warm").write_bytes(b"w")  # route, client: off the loop
        judge = StepJudge(monkeypatch, 0.05)
        caplog.clear()
        await asyncio.gather(*(one(storage, mount, i) for i in range(40)))
        assert len(await storage.node(f"{mount}:d").children()) == 40
        await asyncio.gather(*(storage.node(f"{mount}:d/f{i}.txt").delete() for i in range(40)))
        await storage.aclose()
        monkeypatch.undo()
        return judge.blocking

    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for mount in ("s", "l"):  # one at a time: the other's threads would hold the GIL
                runs: list[list[Any]] = []
                while len(runs) < 3 and (not runs or runs[-1]):
                    runs.append(_debug_run(phase(mount)))
                assert runs[-1] == [], (mount, runs)  # a blocking call would be in every run
    finally:
        sm.close()


@pytest.mark.skipif(not _SCHEDSTAT.exists(), reason="needs Linux schedstat")
@pytest.mark.parametrize("block", ["sleep", "cpu"])
def test_the_detector_catches_a_blocking_call(block: str, caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    async def blocks() -> None:
        judge = StepJudge(monkeypatch, 0.05)
        await asyncio.sleep(0)
        if block == "sleep":
            time.sleep(0.2)  # what storied must never do on the loop: a blocking wait
        else:
            deadline = time.thread_time() + 0.2  # or a long computation
            while time.thread_time() < deadline:
                pass
        await asyncio.sleep(0)
        monkeypatch.undo()
        assert len(judge.blocking) == 1

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        _debug_run(blocks())
    assert _slow_records(caplog)


def test_dedup_references_read_natively_as_their_content(moto_process: str) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto_process, bucket_on(moto_process))])
    big = bytes(range(256)) * 40
    for name in ("a.bin", "b.bin", "c.bin"):
        sm.node(f"s:d/{name}").write_bytes(big)
    report = sm.deduplicate("s:", strategy="reference")
    assert report  # at least one file became a reference to a shared content copy

    async def main() -> list[Any]:
        storage = AsyncStorageManager(sm, native=True)
        node = storage.node("s:d/b.bin")
        out: list[Any] = [await node.read_bytes() == big, await node.size()]
        async with node.open("rb") as f:
            out.append(await f.read() == big)
            await f.seek(100)
            out.append(await f.read(4) == big[100:104])
        out.append(sorted((c.path, c.sync.size()) for c in await storage.node("s:d").children()))
        await node.write_bytes(b"own content now")  # copy on write: a plain file again
        out.append(await node.read_bytes())
        out.append(await storage.node("s:d/c.bin").read_bytes() == big)
        await storage.aclose()
        return out

    try:
        assert asyncio.run(main()) == [
            True, len(big), True, True,
            [("d/a.bin", len(big)), ("d/b.bin", len(big)), ("d/c.bin", len(big))],
            b"own content now", True]
    finally:
        sm.close()


def test_streams_and_lock_methods_are_awaitables(tmp_path: Path) -> None:
    async def main() -> list[Any]:
        storage = AsyncStorageManager()
        storage.sync.add_mount({"name": "v", "type": "local", "base_path": str(tmp_path),
                                "versioning": True})
        node = storage.node("v:big.bin")
        seen: list[int] = []
        written = await node.stream_upload(iter([b"a" * 1000, b"b" * 1000]), seen.append)
        async with await node.stream_download(chunk_size=300) as stream:
            chunks = [c async for c in stream]
        await node.set_legal_hold(True)
        return [written, seen[-1], stream.size, len(chunks), b"".join(chunks)[-3:],
                await node.get_legal_hold()]

    assert asyncio.run(main()) == [2000, 2000, 2000, 7, b"bbb", True]


def test_the_conformance_loop_catches_a_blocking_call() -> None:
    loop = Loop()
    try:
        async def blocks() -> None:
            time.sleep(8.5)  # what storied must never do on the loop

        loop.run(blocks())
    finally:
        loop.close()
    assert len(loop.blocking) == 1 and loop.blocking[0][1] >= 8.0


def test_the_default_is_the_thread_path(moto_process: str) -> None:
    sm = StorageManager()
    sm.configure([s3_mount("s", moto_process, bucket_on(moto_process))])
    storage = AsyncStorageManager(sm)  # native=False: the figures chose it (ADR 0028)
    loop = Loop()
    try:
        node = storage.node("s:x.txt")
        loop.run(node.write_text("x"))
        text, threads = _threads_used(loop, node.read_text)
        assert (text, threads) == ("x", 1)
    finally:
        loop.close(storage)
        sm.close()


def test_a_layer_the_route_does_not_know_sends_every_call_to_threads(moto_process: str) -> None:
    """A compressed mount (a layer between the node and S3 that the native route does not
    replay) is never bypassed: its calls run the sync API, and read back what was written."""
    sm = StorageManager()
    sm.configure([s3_mount("s", moto_process, bucket_on(moto_process), compress=["*.txt"])])
    storage = AsyncStorageManager(sm, native=True)
    loop = Loop()
    try:
        node = storage.node("s:a.txt")
        _, threads = _threads_used(loop, lambda: node.write_text("z" * 5000))
        assert threads >= 1
        text, threads = _threads_used(loop, node.read_text)
        assert text == "z" * 5000 and threads == 1
        assert sm.node("s:a.txt").read_text() == "z" * 5000
    finally:
        loop.close(storage)
        sm.close()
