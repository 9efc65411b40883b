"""This session's byte-rewriting operations against a failing storage: whichever write fails,
every path still reads its original bytes and nothing half-written is ever shown.

- reference deduplication (each swap and content copy is a write that may fail);
- a compressed overwrite (the new object fails to land: the old content stays);
- a storage-class change on S3 whose copy fails (the object and its bytes stay).
"""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest

from storied import StorageError, StorageManager
from storied.backends.memory import MemoryBackend
from storied.testing.doubles import FaultyBackend
from storied.testing.s3server import CountingProxy, make_bucket

BIG = os.urandom(120_000)
PATHS = ("a/one.bin", "b/two.bin", "c/d/three.bin")


def _mount(store: str, fail_times: int, **extra: object) -> tuple[StorageManager, FaultyBackend]:
    faulty = FaultyBackend(MemoryBackend(store), fail_times=fail_times,
                           operations=frozenset({"write"}))
    sm = StorageManager()
    sm.configure([{"name": "f", "backend": faulty, "retries": 1, **extra}])
    return sm, faulty


@pytest.mark.parametrize("fail_times", [1, 2, 3, 4, 5, 6])
def test_reference_dedup_with_failing_writes_keeps_every_path(fail_times: int) -> None:
    store = f"dedup-fail-{fail_times}-{uuid.uuid4().hex[:6]}"
    seed = MemoryBackend(store)
    for path in PATHS:
        seed.write(path, BIG)
    sm, faulty = _mount(store, fail_times)
    try:
        report = sm.deduplicate("f:", strategy="reference")
    except StorageError:
        report = None  # a failure may stop the run: then too, nothing may be lost
    assert faulty.calls["write"] >= 1  # the failures were really met
    for path in PATHS:
        assert sm.node(f"f:{path}").read_bytes() == BIG
        assert sm.node(f"f:{path}").size() == len(BIG)
    assert report is None or report["bytes_reclaimed"] >= 0
    for _ in range(fail_times + 1):  # runs again until the failures are spent: then it finishes
        with contextlib.suppress(StorageError):
            sm.deduplicate("f:", strategy="reference")
        for path in PATHS:
            assert sm.node(f"f:{path}").read_bytes() == BIG
    assert faulty.calls["write"] > fail_times
    stored = {p: len(seed._store.files[p].data) for p in PATHS}
    assert all(size < 1000 for size in stored.values()), stored  # every path is a reference now


@pytest.mark.parametrize("fail_times", [1, 2])
def test_a_failing_compressed_overwrite_keeps_the_old_content(fail_times: int) -> None:
    store = f"cmp-fail-{uuid.uuid4().hex[:6]}"
    old = b'{"k": "old"}\n' * 5000
    sm0 = StorageManager()
    sm0.configure([{"name": "ok", "type": "memory", "store": store, "compress": ["*.json"]}])
    sm0.node("ok:d/data.json").write_bytes(old)
    sm, faulty = _mount(store, fail_times, compress=["*.json"])
    with pytest.raises(StorageError):
        sm.node("f:d/data.json").write_bytes(b'{"k": "new"}\n' * 6000)
    assert faulty.calls["write"] == 1
    assert sm.node("f:d/data.json").read_bytes() == old
    assert sm0.node("ok:d/data.json").read_bytes() == old
    assert [n.path for n in sm.node("f:d").children()] == ["d/data.json"]  # no leftover


def test_a_failing_storage_class_copy_keeps_the_object(moto: object,
                                                       proxy: CountingProxy) -> None:
    bucket = make_bucket(proxy.endpoint_url, f"clf-{uuid.uuid4().hex[:10]}")
    sm = StorageManager()
    sm.configure([{"name": "s", "type": "s3", "bucket": bucket, "retries": 1,
                   "endpoint_url": proxy.endpoint_url, "key": "testing", "secret": "testing"}])
    node = sm.node("s:k/report.bin")
    node.write_bytes(BIG)
    node.set_metadata({"owner": "ana"})
    proxy.fail(20, status=500, label="PUT", code="InternalError")  # the CopyObject onto itself
    with pytest.raises(StorageError):
        node.set_storage_class("STANDARD_IA")
    proxy.reset()
    assert node.read_bytes() == BIG
    assert node.get_metadata().get("owner") == "ana"
    assert node.storage_class() == "STANDARD"
