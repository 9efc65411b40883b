"""Parallel copy_to/move_to: byte-exact trees, ordered callbacks, per-file errors, safe moves."""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.base import Backend, WrappedBackend
from storied.core.transfer import TransferReport
from storied.errors import InvalidArgumentError, PreconditionFailedError, StorageIOError
from storied.info import Data, Info, WriteMode
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket

N = 200


def _s3(name: str, endpoint: str, bucket: str) -> dict[str, object]:
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing"}


def _content(i: int) -> bytes:
    return (b"file %03d " % i) * (i % 7 + 1) + os.urandom(i % 50)


@pytest.fixture
def storage(moto: MotoHandle, tmp_path: Path) -> Iterator[StorageManager]:
    bucket = make_bucket(moto.endpoint_url, f"par-{uuid.uuid4().hex[:12]}")
    (tmp_path / "home").mkdir()
    (tmp_path / "other").mkdir()
    sm = StorageManager()
    sm.configure([_s3("s3", moto.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path / "home")},
                  {"name": "other", "type": "local", "base_path": str(tmp_path / "other")},
                  {"name": "mem", "type": "memory", "store": f"par-{tmp_path.name}"}])
    yield sm


def _fill(sm: StorageManager, where: str, count: int = N) -> dict[str, bytes]:
    files = {f"d{i % 5}/f{i:03d}.bin": _content(i) for i in range(count)}
    for rel, data in files.items():
        sm.node(f"{where}/{rel}").write_bytes(data)
    return files


def _read_tree(sm: StorageManager, where: str) -> dict[str, bytes]:
    root = sm.node(where)
    return {str(n.path)[len(root.path):].lstrip("/"): n.read_bytes()
            for n in root.rglob("*") if n.is_file()}


def test_parallel_copy_of_200_files_s3_to_local_is_byte_exact(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree")
    report = TransferReport()
    storage.node("s3:tree").copy_to(storage.node("home:copy"), report=report)
    assert report.workers == 8  # a remote side: the default pool
    assert _read_tree(storage, "home:copy") == files
    assert len(report.copied) == N and report.ok
    assert report.bytes == sum(len(v) for v in files.values())


def test_parallel_copy_of_200_files_local_to_s3_is_byte_exact(storage: StorageManager) -> None:
    files = _fill(storage, "home:tree")
    report = TransferReport()
    storage.node("home:tree").copy_to("s3:up", workers=16, report=report)
    assert report.workers == 16
    assert _read_tree(storage, "s3:up") == files


def test_local_to_local_and_memory_default_to_one_worker(storage: StorageManager) -> None:
    _fill(storage, "home:t", 10)
    for dest in ("other:t", "mem:t"):
        report = TransferReport()
        storage.node("home:t").copy_to(dest, report=report)
        assert report.workers == 1 and len(report.copied) == 10


def test_callbacks_come_from_the_calling_thread_in_order(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree", 60)
    files["big/large.bin"] = os.urandom(3 * 1024 * 1024 + 17)
    storage.node("s3:tree/big/large.bin").write_bytes(files["big/large.bin"])
    storage.node("home:copy/d0/f000.bin").write_bytes(files["d0/f000.bin"])  # skipped by size
    main = threading.get_ident()
    calls: list[tuple[str, Any, Any]] = []
    threads: set[int] = set()

    def record(kind: str) -> Any:
        def callback(a: Any, b: Any = None) -> None:
            threads.add(threading.get_ident())
            calls.append((kind, a, b))
        return callback

    storage.node("s3:tree").copy_to(
        "home:copy", skip="size", workers=8, progress=record("files"),
        progress_bytes=record("bytes"), on_file=record("file"), on_skip=record("skip"))
    assert threads == {main}
    done = [(a, b) for kind, a, b in calls if kind == "files"]
    assert done == [(i, len(files)) for i in range(1, len(files) + 1)]
    sent = [(a, b) for kind, a, b in calls if kind == "bytes"]
    assert all(x[0] <= y[0] and x[1] <= y[1] for x, y in itertools.pairwise(sent))
    assert sent[-1][0] == sent[-1][1] == sum(len(v) for v in files.values())
    assert len(sent) > len(files)  # the large file reported bytes while it was read
    assert [a.basename for kind, a, b in calls if kind == "skip"] == ["f000.bin"]
    assert sum(1 for kind, *_ in calls if kind == "file") == len(files) - 1
    assert _read_tree(storage, "home:copy") == files


class _FailingWrites(WrappedBackend):
    """Writes of paths containing ``marker`` fail (after reading the data, as an upload)."""

    def __init__(self, inner: Backend, marker: str) -> None:
        super().__init__(inner)
        self.marker = marker
        self.lock = threading.Lock()
        self.writes = 0

    def write(self, path: str, data: Data, *, mode: WriteMode = WriteMode.OVERWRITE,
              etag: str | None = None, metadata: dict[str, str] | None = None) -> Info:
        with self.lock:
            self.writes += 1
        if self.marker in path:
            if hasattr(data, "read"):
                data.read()
            raise StorageIOError(f"injected failure writing {path}")
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)


def test_one_failing_file_is_reported_while_the_others_land(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree", 40)
    storage._mounts["home"] = _FailingWrites(storage._mounts["home"], "f017")
    report = TransferReport()
    with pytest.raises(StorageIOError, match="f017") as caught:
        storage.node("s3:tree").copy_to("home:copy", workers=8, on_error="continue",
                                        report=report)
    assert caught.value.report is report  # type: ignore[attr-defined]
    assert list(report.failed) == ["s3:tree/d2/f017.bin"]
    assert len(report.copied) == 39 and not report.not_started
    assert any("1 failed" in note for note in caught.value.__notes__)
    landed = _read_tree(storage, "home:copy")
    assert landed == {k: v for k, v in files.items() if "f017" not in k}


def test_first_error_stops_new_work_and_leaves_every_file_whole(
    storage: StorageManager,
) -> None:
    files = _fill(storage, "s3:tree", 60)
    storage._mounts["home"] = _FailingWrites(storage._mounts["home"], "f005")
    report = TransferReport()
    with pytest.raises(StorageIOError):
        storage.node("s3:tree").copy_to("home:copy", workers=4, report=report)
    assert list(report.failed) == ["s3:tree/d0/f005.bin"]
    assert report.not_started  # stopped early: not every file was tried
    assert len(report.copied) + len(report.failed) + len(report.not_started) == 60
    landed = _read_tree(storage, "home:copy")
    assert sorted(landed) == sorted(p.split(":", 1)[1][5:] for p in report.copied)
    assert all(files[k] == v for k, v in landed.items())


def test_move_with_workers_never_loses_a_file_when_a_write_fails(
    storage: StorageManager,
) -> None:
    files = _fill(storage, "s3:tree", 50)
    storage._mounts["home"] = _FailingWrites(storage._mounts["home"], "f031")
    with pytest.raises(StorageIOError):
        storage.node("s3:tree").move_to("home:moved", workers=8)
    assert _read_tree(storage, "s3:tree") == files  # 'raise': no source deleted at all
    landed = _read_tree(storage, "home:moved")
    assert all(files[k] == v for k, v in landed.items()) and "d1/f031.bin" not in landed


def test_move_continue_deletes_only_verified_copies(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree", 50)
    storage._mounts["home"] = _FailingWrites(storage._mounts["home"], "f031")
    report = TransferReport()
    with pytest.raises(StorageIOError):
        storage.node("s3:tree").move_to("home:moved", workers=8, on_error="continue",
                                        report=report)
    left, landed = _read_tree(storage, "s3:tree"), _read_tree(storage, "home:moved")
    assert left == {"d1/f031.bin": files["d1/f031.bin"]}
    assert {**left, **landed} == files and len(report.copied) == 49


class _ChangesOnRead(WrappedBackend):
    """Opening ``victim`` for reading first rewrites it (another process's write landing
    between the move's listing and its copy)."""

    def __init__(self, inner: Backend, victim: str) -> None:
        super().__init__(inner)
        self.victim = victim

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> Any:
        if path.endswith(self.victim):
            self.inner.write(path, b"a newer and longer content than the listing said")
        return self.inner.open_read(path, start, end)


def test_move_keeps_a_source_that_changed_during_the_move(storage: StorageManager) -> None:
    files = _fill(storage, "mem:tree", 20)
    storage._mounts["mem"] = _ChangesOnRead(storage._mounts["mem"], "f007.bin")
    report = TransferReport()
    with pytest.raises(PreconditionFailedError, match="changed while being moved"):
        storage.node("mem:tree").move_to("home:moved", workers=4, on_error="continue",
                                         report=report)
    assert _read_tree(storage, "mem:tree") == {
        "d2/f007.bin": b"a newer and longer content than the listing said"}
    assert len(_read_tree(storage, "home:moved")) == 20 and len(files) == 20


def test_executor_thread_pool_is_used(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree", 30)
    names: set[str] = set()

    class Spy(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            def run() -> Any:
                names.add(threading.current_thread().name)
                return fn(*args, **kwargs)
            return super().submit(run)

    with Spy(max_workers=3, thread_name_prefix="spy") as pool:
        storage.node("s3:tree").copy_to("home:copy", executor=pool)
    assert names and all(n.startswith("spy") for n in names)
    assert _read_tree(storage, "home:copy") == files


def test_bad_workers_and_policy_are_refused_before_anything_is_written(
    storage: StorageManager,
) -> None:
    _fill(storage, "home:t", 3)
    for bad in ({"workers": 0}, {"workers": -2}, {"workers": True}, {"on_error": "ignore"}):
        with pytest.raises(InvalidArgumentError):
            storage.node("home:t").copy_to("other:t", **bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            storage.node("home:t").move_to("other:t", **bad)  # type: ignore[arg-type]
    assert not storage.node("other:t").exists()
    assert len(_read_tree(storage, "home:t")) == 3


def test_parallel_copy_costs_the_same_requests_as_sequential(
    moto: MotoHandle, proxy: CountingProxy, tmp_path: Path,
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"parq-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([_s3("s3", proxy.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path)}])
    _fill(sm, "s3:tree", 40)
    counts = []
    for workers in (1, 8):
        proxy.reset()
        sm.node("s3:tree").copy_to(f"home:w{workers}", workers=workers)
        counts.append(dict(proxy.counts))
    assert counts[0] == counts[1] == {"LIST": 1, "GET": 40}


def test_large_file_copied_alone_is_fetched_in_parts_with_byte_progress(
    moto: MotoHandle, proxy: CountingProxy, tmp_path: Path,
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"parl-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([_s3("s3", proxy.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path)}])
    data = os.urandom(20 * 1024 * 1024 + 5)
    sm.node("s3:big.bin").write_bytes(data)
    sent: list[tuple[int, int]] = []
    proxy.reset()
    sm.node("s3:big.bin").copy_to("home:big.bin", progress_bytes=lambda d, t: sent.append((d, t)))
    assert (tmp_path / "big.bin").read_bytes() == data
    ranges = [r for r in proxy.ranges if r]
    assert len(ranges) >= 3  # bounded ranged GETs (parts fetched ahead), not one long GET
    assert sent[-1] == (len(data), len(data)) and len(sent) > 3
    assert all(a[0] < b[0] for a, b in itertools.pairwise(sent))


def test_parallel_copy_into_a_versioned_mount_records_every_version_and_event(
    storage: StorageManager, tmp_path: Path,
) -> None:
    (tmp_path / "ver").mkdir()
    storage.add_mount({"name": "ver", "type": "local", "base_path": str(tmp_path / "ver"),
                       "versioning": True})
    files = _fill(storage, "s3:tree", 40)
    seen: list[str] = []
    lock = threading.Lock()

    def written(node: Any, info: Any) -> None:
        with lock:
            seen.append(str(node.path))

    storage.on("file_written", written, mount="ver")
    storage.node("s3:tree").copy_to("ver:t", workers=8)
    for rel in files:
        storage.node(f"s3:tree/{rel}").write_bytes(files[rel] + b"!")
    storage.node("s3:tree").copy_to("ver:t", workers=8)
    assert all(len(storage.node(f"ver:t/{rel}").versions) == 2 for rel in files)
    assert _read_tree(storage, "ver:t") == {k: v + b"!" for k, v in files.items()}
    assert sorted(seen) == sorted(f"t/{rel}" for rel in files for _ in range(2))
    journal = [e for e in storage.events("ver:t") if e.type == "version_created"]
    assert len(journal) == 80 and len({e.id for e in journal}) == 80


def test_a_callback_that_raises_stops_the_pool_and_leaves_no_thread_running(
    storage: StorageManager,
) -> None:
    files = _fill(storage, "s3:tree", 60)
    before = {t.ident for t in threading.enumerate()}

    class Stop(Exception):
        pass

    def progress(done: int, total: int) -> None:
        if done == 5:
            raise Stop("user pressed stop")

    with pytest.raises(Stop):
        storage.node("s3:tree").copy_to("home:copy", workers=8, progress=progress)
    assert not [t for t in threading.enumerate()
                if t.ident not in before and t.name.startswith("storied-transfer")]
    landed = _read_tree(storage, "home:copy")
    assert 5 <= len(landed) < 60 and all(files[k] == v for k, v in landed.items())


def test_large_files_in_a_pool_are_byte_exact_one_prefetching_at_a_time(
    moto: MotoHandle, proxy: CountingProxy, tmp_path: Path,
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"parl2-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([_s3("s3", proxy.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path)}])
    files = {f"big{i}.bin": os.urandom(9 * 1024 * 1024 + i) for i in range(3)}
    files.update({f"small{i}.txt": b"s%d" % i for i in range(6)})
    for name, data in files.items():
        sm.node(f"s3:tree/{name}").write_bytes(data)
    proxy.reset()
    sm.node("s3:tree").copy_to("home:copy", workers=4)
    assert {p.name: p.read_bytes() for p in (tmp_path / "copy").iterdir()} == files
    assert any(proxy.ranges)  # at least one large file was fetched in bounded parts
