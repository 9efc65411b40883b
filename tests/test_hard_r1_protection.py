"""Review R1 of issue 8's protection work: tags and snapshots under failing storage and races.

* A tag or snapshot whose safety check cannot complete (the lease read fails, a deleter runs
  too long) is taken back, and taking it back never removes a tag that was there before.
* A moved tag is not restored onto a version that was deleted meanwhile.
* ``tag_version`` costs a small fixed number of requests on S3 when no cleanup runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import (
    PreconditionFailedError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.testing.doubles import FaultyBackend
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket
from storied.versioning.maintenance import DEFAULT_WAIT, MaintenanceLease, ProtectionGuard


@pytest.fixture(params=["memory", "local"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    storage = StorageManager()
    if request.param == "memory":
        storage.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex,
                            "versioning": True}])
    else:
        storage.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                            "versioning": True}])
    yield storage
    storage.close()


def written(sm: StorageManager, path: str, *texts: str) -> Any:
    node = sm.node(path)
    for text in texts:
        node.write_text(text)
    return node


def catalog_of(sm: StorageManager) -> Any:
    history = sm.history("v")
    assert history is not None
    return history.engine.catalog


def _failing_catalog(sm: StorageManager) -> FaultyBackend:
    """Route the catalog (refs, manifests, lease) through a FaultyBackend failing nothing yet."""
    catalog = catalog_of(sm)
    faulty = FaultyBackend(catalog.backend, fail_times=0, operations=frozenset({"open_read"}))
    catalog.backend = faulty
    return faulty


def _fail_next_read_after_guard(monkeypatch: pytest.MonkeyPatch, faulty: FaultyBackend,
                                reads_before: int) -> None:
    """After the protector's first look at the lease, let ``reads_before`` catalog reads pass
    and fail the next one (the lease read of ``settle``)."""
    original = ProtectionGuard.__init__

    def init(self: ProtectionGuard, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        faulty.fail_times = faulty.calls["open_read"] + reads_before + 1
        faulty.calls["open_read"] += reads_before  # those reads pass; the next one fails

    monkeypatch.setattr(ProtectionGuard, "__init__", init)


def test_tag_is_taken_back_when_the_lease_cannot_be_read_after_writing_it(
        sm: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    node = written(sm, "v:f.txt", "old", "new")
    victim = node.versions[0]["version_id"]
    faulty = _failing_catalog(sm)
    _fail_next_read_after_guard(monkeypatch, faulty, reads_before=0)
    with pytest.raises(TransientStorageError):
        node.tag_version(victim, "keep")
    monkeypatch.undo()
    assert node.get_version_tags() == {}  # not left naming a version nobody checked
    assert node.tag_version(victim, "keep") == victim  # storage healthy again: it works


def test_snapshot_is_taken_back_when_the_lease_cannot_be_read_after_writing_it(
        sm: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    written(sm, "v:f.txt", "old", "new")
    faulty = _failing_catalog(sm)
    _fail_next_read_after_guard(monkeypatch, faulty, reads_before=0)
    with pytest.raises(TransientStorageError):
        sm.create_snapshot("v:", "snap")
    monkeypatch.undo()
    assert sm.list_snapshots() == []
    sm.create_snapshot("v:", "snap")  # the name is free


def _deleter_after_guard(sm: StorageManager, monkeypatch: pytest.MonkeyPatch,
                         wait: float = DEFAULT_WAIT) -> MaintenanceLease:
    """A deleter takes the lease just after the protector's first look at it; the protector
    waits ``wait`` seconds for it."""
    lease = MaintenanceLease(catalog_of(sm), ttl=30, wait=5)
    original = ProtectionGuard.__init__

    def init(self: ProtectionGuard, catalog: Any, *args: Any, **kwargs: Any) -> None:
        original(self, catalog, wait=wait)
        lease.acquire()

    monkeypatch.setattr(ProtectionGuard, "__init__", init)
    return lease


def test_retagging_during_a_long_cleanup_keeps_the_existing_tag(
        sm: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    node = written(sm, "v:g.txt", "1", "2", "3")
    kept = node.versions[0]["version_id"]
    node.tag_version(kept, "release")
    lease = _deleter_after_guard(sm, monkeypatch, wait=0.3)
    with pytest.raises(PreconditionFailedError):
        node.tag_version(kept, "release")  # idempotent re-tag; the cleanup outlasts the wait
    lease.release()
    monkeypatch.undo()
    assert node.get_version_tags() == {"release": kept}  # the tag it already had stays
    with pytest.raises(Exception, match="protected"):
        node.delete_version(kept)


def test_moved_tag_is_not_restored_onto_a_version_deleted_meanwhile(
        sm: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    node = written(sm, "v:m.txt", "1", "2", "3")
    first, second = (v["version_id"] for v in node.versions[:2])
    node.tag_version(first, "t")
    history = sm.history("v")
    assert history is not None
    lease = _deleter_after_guard(sm, monkeypatch)
    errors: list[BaseException] = []

    def move() -> None:
        try:
            node.tag_version(second, "t", move=True)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=move)
    thread.start()
    deadline = time.monotonic() + 20
    while history.refs("m.txt").tags.get("t") != second:  # moved; the mover now waits
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # one deleter read the refs before the move (second unprotected), another after it
    # (first unprotected): both versions go
    for doomed in [v for v in history.versions("m.txt") if v.version_id in (first, second)]:
        history.delete_version("m.txt", doomed)
    lease.release()
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], StorageNotFoundError), errors
    assert node.get_version_tags() == {}  # not put back onto the deleted first version
    assert sm.verify("v:").ok


def test_tag_version_costs_six_requests_on_s3(proxy: CountingProxy, moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"r1-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket, "key": "k", "secret": "s",
                   "endpoint_url": proxy.endpoint_url}])
    node = written(sm, "v:a/b.txt", "1", "2", "3")
    node.tag_version(0, "first")  # refs now exist
    proxy.reset()
    node.tag_version(-2, "second")
    # lease GET, one version listing, refs HEAD + GET + conditional PUT, lease GET, and the
    # tag_created journal entry (one PUT)
    assert dict(proxy.counts) == {"GET": 3, "LISTVERSIONS": 1, "HEAD": 1, "PUT": 2}
    proxy.reset()
    node.tag_version("first", "third")  # a tag name: resolved from the refs (one GET more)
    assert dict(proxy.counts) == {"GET": 4, "LISTVERSIONS": 1, "HEAD": 1, "PUT": 2}
    assert node.get_version_tags()["third"] == node.versions[0]["version_id"]
    sm.close()


def test_waiting_for_a_held_lease_polls_gently() -> None:
    """A deleter or tagger waiting for another's lease reads it a few times a second at most
    (each read is a request on S3), and still notices the release quickly."""
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}])
    catalog = catalog_of(sm)
    holder = MaintenanceLease(catalog, ttl=30, wait=1)
    holder.acquire()
    faulty = FaultyBackend(catalog.backend, fail_times=0)
    catalog.backend = faulty
    waiter = MaintenanceLease(catalog, ttl=30, wait=1.5)
    started = time.monotonic()
    with pytest.raises(PreconditionFailedError, match="busy"):
        waiter.acquire()
    assert 1.5 <= time.monotonic() - started < 3
    assert faulty.calls["open_read"] <= 12, faulty.calls  # was one read every 20 ms (~75)
    faulty.calls.clear()
    with pytest.raises(PreconditionFailedError):
        ProtectionGuard(catalog, wait=1.5)  # a tagger waiting for the cleanup to end
    assert faulty.calls["open_read"] <= 12, faulty.calls
    threading.Timer(1.0, holder.release).start()
    started = time.monotonic()
    waiter = MaintenanceLease(catalog, ttl=30, wait=10)
    waiter.acquire()  # released after 1 s: taken within a pause of that
    assert time.monotonic() - started < 1.0 + 0.5 + 0.5
    waiter.release()


def test_deleter_killed_while_holding_the_lease_blocks_nobody_after_expiry(
        tmp_path: Path) -> None:
    """SIGKILL a deleter between two deletions: taggers and deleters in other processes wait
    for its lease to expire, then work; nothing it left is inconsistent."""
    config = {"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}
    sm = StorageManager()
    sm.configure([config])
    node = written(sm, "v:k.txt", *[f"v{i}" for i in range(6)])
    code = (
        "import json, sys, time\n"
        "from storied import StorageManager\n"
        "from storied.versioning.maintenance import MaintenanceLease\n"
        "sm = StorageManager(); sm.configure([json.loads(sys.argv[1])])\n"
        "history = sm.history('v')\n"
        "lease = MaintenanceLease(history.engine.catalog, ttl=1.5, wait=5)\n"
        "lease.acquire()\n"
        "for version in history.versions('k.txt')[:2]:\n"
        "    lease.keep()\n"
        "    history.delete_version('k.txt', version)\n"
        "print('deleted', flush=True)\n"
        "time.sleep(60)  # killed here, still holding the lease\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(config)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "deleted\n"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    started = time.monotonic()
    vid = node.tag_version(0, "after-crash")  # waits for the dead deleter's lease to expire
    assert time.monotonic() - started < 1.5 + 1.0
    assert node.versions[0]["version_id"] == vid and len(node.versions) == 4
    assert len(node.cleanup_versions(keep_last=1)) == 2  # a new deleter takes the lease over
    assert node.get_version_tags() == {"after-crash": vid} and sm.verify("v:").ok
    sm.close()


def test_one_file_cleanup_costs_nine_requests_on_s3(proxy: CountingProxy,
                                                    moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"r1-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket, "key": "k", "secret": "s",
                   "endpoint_url": proxy.endpoint_url}])
    node = written(sm, "v:a/b.txt", "1", "2", "3")
    node.cleanup_versions(keep_last=3)  # a released lease exists from now on
    proxy.reset()
    assert len(node.cleanup_versions(keep_last=2)) == 1
    # lease HEAD + GET + PUT, one version listing, refs GET, one listing of the (absent)
    # snapshots, the DELETE, lease PUT (release), the version_deleted journal entry (PUT)
    assert dict(proxy.counts) == {"HEAD": 1, "GET": 2, "PUT": 3, "LISTVERSIONS": 1, "LIST": 1,
                                  "DELETE": 1}
    recorded = sm.create_snapshot("v:", "s1")["files"]["a/b.txt"]
    assert [s["tag"] for s in sm.list_snapshots()] == ["s1"]  # found by the flat listing
    node.write_text("4")
    node.cleanup_versions(keep_last=0)
    assert recorded in [v["version_id"] for v in node.versions]  # and it still protects
    sm.close()


def test_deleter_whose_wall_clock_steps_back_still_stops_at_expiry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The others see the lease expire at the wall-clock time it names; the holder must stop
    by then even if its own wall clock is stepped back (NTP) meanwhile."""
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}])
    lease = MaintenanceLease(catalog_of(sm), ttl=1.2, wait=1)
    lease.acquire()
    time.sleep(1.0)  # less than a quarter of the lease left
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # the clock steps back an hour
    with pytest.raises(PreconditionFailedError, match="about to expire"):
        lease.keep()
    monkeypatch.undo()
    lease.release()


def test_restore_of_a_snapshot_missing_a_version_changes_nothing(sm: StorageManager) -> None:
    written(sm, "v:a.txt", "a at snapshot")
    b = written(sm, "v:b.txt", "b at snapshot")
    sm.create_snapshot("v:", "snap")
    written(sm, "v:a.txt", "a later")
    written(sm, "v:b.txt", "b later")
    history = sm.history("v")
    assert history is not None
    recorded = sm.get_snapshot("snap")["files"]["b.txt"]
    gone = next(v for v in history.versions("b.txt") if v.version_id == recorded)
    history.delete_version("b.txt", gone)  # removed by a tool that ignored the protection
    with pytest.raises(StorageNotFoundError, match=recorded):
        sm.restore_snapshot("snap")
    assert sm.node("v:a.txt").read_text() == "a later"  # not half restored
    assert b.read_text() == "b later"


def test_cleanup_with_a_naive_now_counts_it_as_utc() -> None:
    from datetime import UTC, datetime, timedelta

    from storied.errors import InvalidArgumentError

    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}])
    node = written(sm, "v:n.txt", "1", "2", "3")
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=2)  # naive, as UTC
    plan = node.cleanup_versions(keep_days=1, now=later, dry_run=True)
    assert [row["keep"] for row in plan] == [False, False, True]  # was a TypeError
    with pytest.raises(InvalidArgumentError):
        node.cleanup_versions(keep_days=1, now="yesterday", dry_run=True)  # type: ignore[arg-type]
    assert len(node.versions) == 3
