"""copy_to(executor=) on executors in other processes: a process pool and a Dask LocalCluster.

Work items cross the process boundary as data (mount configs + paths): the workers rebuild a
manager and copy each file themselves.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from storied import StorageManager
from storied.core.transfer import TransferReport
from storied.errors import InvalidArgumentError
from storied.testing.s3server import MotoHandle, make_bucket


def _s3(name: str, endpoint: str, bucket: str) -> dict[str, object]:
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing"}


@pytest.fixture
def storage(moto: MotoHandle, tmp_path: Path) -> Iterator[StorageManager]:
    bucket = make_bucket(moto.endpoint_url, f"pex-{uuid.uuid4().hex[:12]}")
    (tmp_path / "home").mkdir()
    sm = StorageManager()
    sm.configure([_s3("s3", moto.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path / "home")},
                  {"name": "mem", "type": "memory", "store": f"pex-{tmp_path.name}"}])
    yield sm


def _fill(sm: StorageManager, where: str, count: int) -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i:02d}.txt": b"content %d\n" % i * (i + 1) for i in range(count)}
    for rel, data in files.items():
        sm.node(f"{where}/{rel}").write_bytes(data)
    return files


def _tree(sm: StorageManager, where: str) -> dict[str, bytes]:
    root = sm.node(where)
    return {str(n.path)[len(root.path):].lstrip("/"): n.read_bytes()
            for n in root.rglob("*") if n.is_file()}


def test_process_pool_copies_s3_to_local(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree", 12)
    progress: list[tuple[int, int]] = []
    report = TransferReport()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        storage.node("s3:tree").copy_to("home:copy", executor=pool, report=report,
                                        progress=lambda d, t: progress.append((d, t)))
    assert _tree(storage, "home:copy") == files
    assert progress == [(i, 12) for i in range(1, 13)]
    assert len(report.copied) == 12 and report.bytes == sum(map(len, files.values()))


def test_process_pool_reports_a_worker_error_per_file(storage: StorageManager) -> None:
    files = _fill(storage, "s3:tree", 6)
    storage.node("home:copy/d1/f01.txt/inside").write_bytes(b"a directory in the way")
    report = TransferReport()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool, \
            pytest.raises(OSError) as caught:
        storage.node("s3:tree").copy_to("home:copy", executor=pool, on_error="continue",
                                        report=report)
    assert caught.value.report is report  # type: ignore[attr-defined]
    assert list(report.failed) == ["s3:tree/d1/f01.txt"]
    landed = _tree(storage, "home:copy")
    assert all(landed[k] == v for k, v in files.items() if k != "d1/f01.txt")


def test_memory_mount_is_refused_clearly_for_another_process(storage: StorageManager) -> None:
    """A memory mount's files live in this process: another process would rebuild an empty
    store. Refused before anything is copied."""
    _fill(storage, "mem:tree", 2)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool, \
            pytest.raises(InvalidArgumentError, match="memory"):
        storage.node("mem:tree").copy_to("home:copy", executor=pool)
    assert not list(storage.node("home:copy").rglob("*.txt"))


def test_unpicklable_config_is_a_clear_error(storage: StorageManager) -> None:
    _fill(storage, "s3:tree", 2)
    storage._configs["home"] = {**storage._configs["home"], "hook": lambda: None}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool, \
            pytest.raises(InvalidArgumentError, match="cannot be sent to another process"):
        storage.node("s3:tree").copy_to("home:copy", executor=pool)


def test_dask_local_cluster_copies_s3_to_local(storage: StorageManager) -> None:
    distributed = pytest.importorskip("distributed")
    files = _fill(storage, "s3:tree", 20)
    report = TransferReport()
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=2,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        storage.node("s3:tree").copy_to("home:copy", executor=client.get_executor(),
                                        report=report)
    assert _tree(storage, "home:copy") == files
    assert len(report.copied) == 20 and report.ok
