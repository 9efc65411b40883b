"""workers= and executor= for find_duplicates and deduplicate: the same groups and reports
whatever the pool, progress counted up by one in the caller's thread, errors per file, and
executors in other processes (a process pool, a Dask LocalCluster on 127.0.0.1)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends import registry
from storied.backends.referencing import Referencing
from storied.errors import InvalidArgumentError
from storied.optimize.dedup import REMOTE_WORKERS, default_workers
from storied.testing.doubles import FaultyBackend
from storied.testing.s3server import MotoHandle, make_bucket


def _fill(storage: StorageManager, mount: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for g in range(8):
        data = bytes([g]) * (150_000 if g % 2 else 5000)
        for i in range(g % 3 + 2):
            files[f"g{g}/{i}.bin"] = data
    files["g1/near.bin"] = files["g1/0.bin"][:-1] + b"\xff"  # same size and head, other tail
    files["solo.bin"] = b"solo" * 100
    for path, data in files.items():
        storage.node(f"{mount}:{path}").write_bytes(data)
    return files


@pytest.fixture(params=["local", "memory", "s3"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[
        tuple[StorageManager, dict[str, bytes]]]:
    storage = StorageManager()
    if request.param == "local":
        (tmp_path / "d").mkdir()
        storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path / "d")}])
    elif request.param == "memory":
        storage.configure([{"name": "m", "type": "memory"}])
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"wrk-{uuid.uuid4().hex[:10]}")
        storage.configure([{"name": "m", "type": "s3", "bucket": bucket,
                            "endpoint_url": moto.endpoint_url, "key": "testing",
                            "secret": "testing"}])
    yield storage, _fill(storage, "m")


def _shape(groups: list[Any]) -> list[tuple[int, str, list[str]]]:
    return [(g.size, g.digest, [n.fullpath for n in g.nodes]) for g in groups]


def test_groups_and_progress_are_the_same_whatever_the_pool(
        filled: tuple[StorageManager, dict[str, bytes]]) -> None:
    storage, _ = filled
    seen: dict[Any, list[tuple[int, int]]] = {}
    threads: set[int] = set()
    results = {}
    for workers in (1, 4, None):
        calls: list[tuple[int, int]] = []

        def progress(done: int, total: int, calls: list[tuple[int, int]] = calls) -> None:
            threads.add(threading.get_ident())
            calls.append((done, total))

        results[workers] = _shape(storage.find_duplicates("m:", workers=workers,
                                                          progress=progress))
        seen[workers] = calls
    with ThreadPoolExecutor(3) as pool:
        results["executor"] = _shape(storage.find_duplicates("m:", executor=pool))
    assert results[1] == results[4] == results[None] == results["executor"]
    assert len(results[1]) == 8 and all(len(r[2]) >= 2 for r in results[1])
    for calls in seen.values():  # memory and S3 know every MD5: nothing is read
        total = calls[-1][1] if calls else 0
        assert calls == [(i, total) for i in range(1, total + 1)]
    assert len(seen[1]) == len(seen[4])
    assert threads <= {threading.get_ident()}


def test_deduplicate_reports_match_across_pools(tmp_path: Path) -> None:
    reports = []
    for workers in (1, 4):
        (tmp_path / str(workers)).mkdir()
        storage = StorageManager()
        storage.configure([{"name": "l", "type": "local",
                            "base_path": str(tmp_path / str(workers))}])
        files = _fill(storage, "l")
        reports.append(storage.deduplicate("l:", strategy="delete", workers=workers))
        survivors = {g["kept"] for g in reports[-1]["groups"]}
        for path, data in files.items():
            node = storage.node(f"l:{path}")
            assert not node.exists() or node.read_bytes() == data
        assert all(storage.node(p).exists() for p in survivors)
    assert reports[0] == reports[1]
    assert reports[0]["bytes_reclaimed"] > 0


def test_bad_workers_and_defaults(tmp_path: Path, moto: MotoHandle) -> None:
    storage = StorageManager()
    (tmp_path / "d").mkdir()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")},
                       {"name": "mem", "type": "memory"},
                       {"name": "s3", "type": "s3", "bucket": make_bucket(
                           moto.endpoint_url, f"wd-{uuid.uuid4().hex[:10]}"),
                        "endpoint_url": moto.endpoint_url, "key": "testing",
                        "secret": "testing"}])
    with pytest.raises(InvalidArgumentError):
        storage.find_duplicates("l:", workers=0)
    with pytest.raises(InvalidArgumentError):
        storage.deduplicate("l:", strategy="delete", workers=0)
    assert default_workers(storage.node("l:")) == 1
    assert default_workers(storage.node("mem:")) == 1
    assert default_workers(storage.node("s3:")) == REMOTE_WORKERS


def test_a_failing_write_is_reported_for_its_file_only(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    inner = registry.build("local", "l", {"base_path": str(tmp_path / "d")})
    storage = StorageManager()
    storage.add_mount({"name": "plain", "backend": inner, "retries": 1})
    data = os.urandom(50_000)
    for name in ("a", "b", "c", "d"):
        storage.node(f"plain:{name}").write_bytes(data)
    faulty = FaultyBackend(inner, fail_times=1, operations=frozenset({"write"}))
    storage.add_mount({"name": "l", "backend": Referencing(faulty), "retries": 1})
    report = storage.deduplicate("l:", strategy="reference", workers=4)
    (group,) = report["groups"]
    # the first write (the key) failed: the survivor's copy could not be made either way,
    # or one member's swap failed; every skipped file has its own reason
    assert group["skipped"] and all(s["reason"] for s in group["skipped"])
    assert "injected failure" in group["skipped"][0]["reason"]
    for name in ("a", "b", "c", "d"):
        assert storage.node(f"l:{name}").read_bytes() == data
    again = storage.deduplicate("l:", strategy="reference")
    assert sorted(again["groups"][0]["done"]) == ["l:a", "l:b", "l:c", "l:d"]
    for name in ("a", "b", "c", "d"):
        assert storage.node(f"l:{name}").read_bytes() == data


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[StorageManager, dict[str, bytes]]]:
    """A local mount (other processes reach its files; its MD5s are unknown, so every
    candidate is read) and a memory mount (they cannot)."""
    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path / "d")},
                       {"name": "mem", "type": "memory"}])
    yield storage, _fill(storage, "m")


def test_process_pool_hashes_and_deduplicates(
        shared: tuple[StorageManager, dict[str, bytes]]) -> None:
    storage, files = shared
    expected = _shape(storage.find_duplicates("m:", workers=1))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        assert _shape(storage.find_duplicates("m:", executor=pool)) == expected
        report = storage.deduplicate("m:", strategy="delete", executor=pool)
        storage.node("mem:a").write_bytes(b"x" * 300)
        storage.node("mem:b").write_bytes(b"x" * 300)
        with pytest.raises(InvalidArgumentError, match="memory"):
            storage.deduplicate("mem:", strategy="delete", executor=pool)
    assert sum(len(g["done"]) for g in report["groups"]) == sum(
        len(g[2]) - 1 for g in expected)
    for path, data in files.items():
        node = storage.node(f"m:{path}")
        assert not node.exists() or node.read_bytes() == data
    assert storage.find_duplicates("m:") == []


def test_dask_local_cluster_finds_duplicates(
        shared: tuple[StorageManager, dict[str, bytes]]) -> None:
    distributed = pytest.importorskip("distributed")
    storage, _ = shared
    expected = _shape(storage.find_duplicates("m:", workers=1))
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=2,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        calls: list[tuple[int, int]] = []
        groups = storage.find_duplicates("m:", executor=client.get_executor(),
                                         progress=lambda d, t: calls.append((d, t)))
        assert _shape(groups) == expected
        plan = storage.deduplicate("m:", strategy="delete", dry_run=True,
                                   executor=client.get_executor())
    assert calls == [(i, calls[-1][1]) for i in range(1, calls[-1][1] + 1)]
    assert sum(len(g["done"]) for g in plan["groups"]) == sum(len(g[2]) - 1 for g in expected)
