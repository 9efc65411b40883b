"""MockBackend: latency, seeded faults of every kind, the config form, and storied's history
surviving a 10% failure rate with the default retries."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import registry
from storied.backends.base import WrappedBackend
from storied.backends.memory import MemoryBackend
from storied.backends.retrying import Retrying
from storied.errors import (
    PreconditionFailedError,
    StorageConfigError,
    StorageError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.info import WriteMode
from storied.testing.mock import FAULT_KINDS, MockBackend, StorageTimeoutError
from storied.testing.s3server import MotoHandle, make_bucket


def test_the_issue_example() -> None:
    from storied.testing import MockBackend as Exported

    backend = Exported(latency_ms=1, failure_rate=0.01, seed=7)
    storage = StorageManager()
    storage.add_mount({"name": "flaky", "backend": backend})
    storage.node("flaky:a.txt").write_text("hello")
    assert storage.node("flaky:a.txt").read_text() == "hello"
    assert backend.calls["write"] >= 1 and backend.trace[0].delay_ms == 1


def _filled(**kw: object) -> MockBackend:
    backend = MockBackend(**kw)  # type: ignore[arg-type]
    backend.inner.write("a.txt", b"0123456789" * 100)
    return backend


def test_latency_is_a_lower_bound() -> None:
    backend = _filled(latency_ms=20)
    began = time.perf_counter()
    for _ in range(5):
        backend.info("a.txt")
    assert time.perf_counter() - began >= 5 * 0.020
    assert backend.calls["info"] == 5
    assert all(event.delay_ms == 20 for event in backend.trace)


def test_jitter_stays_within_its_bounds_and_never_below_zero() -> None:
    slept: list[float] = []
    backend = _filled(latency_ms=10, jitter_ms=5, seed=1, sleep=slept.append)
    for _ in range(200):
        backend.info("a.txt")
    assert all(0.005 <= s <= 0.015 for s in slept)
    assert len(set(slept)) > 100  # really jittered
    wide = _filled(latency_ms=1, jitter_ms=50, seed=2, sleep=slept.append)
    for _ in range(50):
        wide.info("a.txt")
    assert min(e.delay_ms for e in wide.trace) == 0.0


def test_failure_rate_within_binomial_bounds() -> None:
    n, p = 4000, 0.1
    backend = _filled(failure_rate=p, seed=1234)
    failed = 0
    for _ in range(n):
        try:
            backend.info("a.txt")
        except TransientStorageError:
            failed += 1
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(failed - n * p) < 4 * sigma, failed
    assert failed == sum(1 for e in backend.trace if e.fault)
    assert backend.calls["info"] == n


def _run(seed: int) -> list[tuple[str, str, float, str | None]]:
    backend = _filled(failure_rate=0.3, jitter_ms=3, latency_ms=1, seed=seed, sleep=lambda s: None)
    for i in range(300):
        try:
            if i % 3 == 0:
                backend.open_read("a.txt").read()
            elif i % 3 == 1:
                info = backend.info("a.txt")
                backend.write("a.txt", b"x" * 1000, mode=WriteMode.IF_MATCH, etag=info.etag)
            else:
                backend.write(f"f{i}", b"data")
        except StorageError:
            pass
    return [(e.operation, e.path, e.delay_ms, e.fault) for e in backend.trace]


def test_identical_seeds_give_identical_traces() -> None:
    first, second, other = _run(7), _run(7), _run(8)
    assert first == second
    assert first != other
    kinds = {fault for *_, fault in first if fault}
    assert kinds == set(FAULT_KINDS)  # every kind drawn where it applies


def test_a_failed_call_changes_nothing() -> None:
    backend = MockBackend(failure_rate=1.0, faults=["transient", "timeout"], seed=3)
    for _ in range(20):
        with pytest.raises(TransientStorageError):
            backend.write("new.txt", b"data")
        with pytest.raises(TransientStorageError):
            backend.mkdir("d", parents=True)
    backend.inner.write("kept.txt", b"kept")
    for _ in range(20):
        with pytest.raises(TransientStorageError):
            backend.delete("kept.txt")
        with pytest.raises(TransientStorageError):
            backend.delete_many([("kept.txt", None)])
        with pytest.raises(TransientStorageError):
            backend.move("kept.txt", "moved.txt")
    assert [e.path for e in backend.inner.walk("")] == ["kept.txt"]
    assert not backend.inner.exists("d")
    assert backend.calls["write"] == 20 and backend.calls["move"] == 20


def test_timeout_is_a_timeout_error_and_transient() -> None:
    backend = _filled(failure_rate=1.0, faults="timeout")
    with pytest.raises(TimeoutError) as caught:
        backend.info("a.txt")
    assert isinstance(caught.value, StorageTimeoutError)
    assert isinstance(caught.value, TransientStorageError)


def test_truncated_body_breaks_mid_read() -> None:
    backend = _filled(failure_rate=1.0, faults={"truncated": 1}, seed=5)
    stream = backend.open_read("a.txt")
    got = b""
    with pytest.raises(TransientStorageError, match="truncated"):
        while chunk := stream.read(64):
            got += chunk
    assert len(got) < 1000
    assert got == (b"0123456789" * 100)[: len(got)]  # what came was right
    with pytest.raises(TransientStorageError):
        backend.read_bytes("a.txt")
    backend.info("a.txt")  # 'truncated' does not apply to info: it never fails
    assert [e.fault for e in backend.trace] == ["truncated", "truncated", None]


def test_precondition_fault_only_on_conditional_writes() -> None:
    backend = _filled(failure_rate=1.0, faults=["precondition"])
    etag = backend.inner.info("a.txt").etag
    assert etag is not None
    with pytest.raises(PreconditionFailedError):
        backend.write("a.txt", b"new", mode=WriteMode.IF_MATCH, etag=etag)
    with pytest.raises(PreconditionFailedError):
        backend.delete_if_match("a.txt", etag)
    assert backend.inner.read_bytes("a.txt") == b"0123456789" * 100
    backend.write("b.txt", b"plain")  # an unconditional write has no precondition to fail
    assert backend.read_bytes("b.txt") == b"plain"


def test_wraps_a_backend_or_a_config(tmp_path: Path) -> None:
    store = MemoryBackend("shared-for-mock")
    MockBackend(wraps=store).write("x", b"1")
    assert store.read_bytes("x") == b"1"
    local = MockBackend(wraps={"type": "local", "base_path": str(tmp_path)})
    local.write("y.txt", b"2")
    assert (tmp_path / "y.txt").read_bytes() == b"2"


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"faults": ["explode"]}, "explode"),
        ({"faults": {"transient": -1}}, "transient"),
        ({"wraps": 42}, "wraps"),
        ({"wraps": {"base_path": "/tmp"}}, "type"),
        ({"wraps": {"type": "memory", "versioning": True}}, "versioning"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(StorageConfigError, match=word):
        MockBackend(**kwargs)  # type: ignore[arg-type]


def test_config_form_through_the_registry(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{
        "name": "flaky", "type": "mock", "latency_ms": 1, "failure_rate": 0.0, "seed": 4,
        "faults": {"transient": 2, "timeout": 1},
        "wraps": {"type": "local", "base_path": str(tmp_path)},
    }])  # fmt: skip
    storage.node("flaky:dir/a.txt").write_text("hello")
    assert (tmp_path / "dir" / "a.txt").read_text() == "hello"
    assert storage.node("flaky:dir/a.txt").read_text() == "hello"
    for bad, key in (({"failure_rate": 2}, "failure_rate"), ({"seed": "x"}, "seed"),
                     ({"wraps": "local"}, "wraps"), ({"faults": ["nope"]}, "nope")):  # fmt: skip
        with pytest.raises(StorageConfigError, match=key):
            StorageManager().add_mount({"name": "m", "type": "mock", **bad})
    assert "mock" in registry.TYPES


def test_config_form_is_retried_like_a_remote_storage() -> None:
    storage = StorageManager()
    storage.add_mount({"name": "flaky", "type": "mock", "failure_rate": 0.3, "seed": 9,
                       "faults": ["transient"]})  # fmt: skip
    for i in range(30):
        storage.node(f"flaky:f{i}.txt").write_bytes(b"x")  # 4 attempts: none gives up here
    layer = storage._raw["flaky"]  # Retrying (below the reference layer) wraps the mock
    while isinstance(layer, WrappedBackend) and not isinstance(layer, Retrying):
        layer = layer.inner
    assert isinstance(layer, Retrying)
    mock = layer.inner
    assert isinstance(mock, MockBackend)
    assert any(e.fault for e in mock.trace)


@pytest.mark.parametrize(("seed", "where"), [(11, "memory"), (12, "memory"), (13, "local")])
def test_versioned_writes_survive_a_ten_percent_failure_rate(
    seed: int, where: str, tmp_path: Path
) -> None:
    """The acceptance run: portable history over MockBackend(failure_rate=0.1), default
    retries. A write that raised may or may not be a version; an acknowledged one is never
    lost, and verify() is clean afterwards."""
    wraps = {"type": "local", "base_path": str(tmp_path)} if where == "local" else None
    _faulty_history_run(MockBackend(failure_rate=0.1, seed=seed, wraps=wraps), 40)


def test_versioned_writes_on_s3_survive_a_ten_percent_failure_rate(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"flaky-{uuid.uuid4().hex[:10]}")
    wraps = {"type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
             "key": "testing", "secret": "testing"}  # fmt: skip
    _faulty_history_run(MockBackend(failure_rate=0.1, seed=21, wraps=wraps), 16)


def _faulty_history_run(backend: MockBackend, writes: int) -> None:
    storage = StorageManager()
    storage.add_mount({"name": "flaky", "backend": backend, "versioning": True})
    acknowledged: list[tuple[str, str]] = []
    raised = 0
    for i in range(writes):
        node = storage.node(f"flaky:doc{i % 4}.txt")
        try:
            node.write_text(f"version {i}")
        except StorageError:
            raised += 1
            continue
        acknowledged.append((node.fullpath, f"version {i}"))
    assert sum(1 for e in backend.trace if e.fault) > writes // 4  # the run really was faulty
    assert len(acknowledged) >= writes // 2 and len(acknowledged) + raised == writes
    backend.failure_rate = 0.0
    for fullpath, text in acknowledged:
        versions = storage.node(fullpath).versions
        contents = [storage.node(fullpath, version=v["version_id"]).read_text() for v in versions]
        assert text in contents, (fullpath, text)
    report = storage.verify()
    assert report.ok, report.problems
    assert not report.stale


def test_a_missing_path_is_still_the_storage_answer() -> None:
    backend = MockBackend(failure_rate=0.0)
    with pytest.raises(StorageNotFoundError):
        backend.info("nothing")
