"""Issue 8 items 1.5, 1.17 and section 2 (retention rules): protection of versions.

* The maintenance lease (``storied.versioning.maintenance``): exclusive, bounded waits, stale
  takeover, renewal, and a deleter that stops instead of deleting on stale knowledge.
* A tag or snapshot whose version is deleted while it is being set is rolled back and refused
  (deterministic: the test holds the lease and deletes like a deleter that read the refs first).
* One rule for the current version: ``delete_version`` refuses it on every engine; a deleted
  file's versions may all go. ``compact_versions(dry_run=True)`` plans what the real run does.
* Retention rules: ``keep_days=inf`` keeps everything by age; NaN, negatives, bools refused.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storied import StorageManager
from storied.errors import (
    PreconditionFailedError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.testing.s3server import MotoHandle, make_bucket
from storied.versioning.maintenance import MaintenanceLease, ProtectionGuard, lease_key


def memory_manager() -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}])
    return sm


def written(sm: StorageManager, path: str, *texts: str) -> Any:
    node = sm.node(path)
    for text in texts:
        node.write_text(text)
    return node


@pytest.fixture(params=["memory", "local", "native-s3"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield memory_manager()
        return
    storage = StorageManager()
    if request.param == "local":
        storage.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                            "versioning": True}])
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"hp-{uuid.uuid4().hex[:12]}", versioned=True)
        storage.configure([{"name": "v", "type": "s3", "bucket": bucket, "key": "k",
                            "secret": "s", "endpoint_url": moto.endpoint_url}])
    yield storage
    storage.close()


def catalog_of(sm: StorageManager) -> Any:
    history = sm.history("v")
    assert history is not None
    return history.engine.catalog


# ============================================================================ the lease
def test_lease_is_exclusive_and_waits_are_bounded() -> None:
    catalog = catalog_of(memory_manager())
    first = MaintenanceLease(catalog, ttl=30, wait=0.2)
    first.acquire()
    second = MaintenanceLease(catalog, ttl=30, wait=0.2)
    started = time.monotonic()
    with pytest.raises(PreconditionFailedError, match="busy"):
        second.acquire()
    assert 0.2 <= time.monotonic() - started < 5
    first.release()
    second.acquire()  # released: free again
    second.release()
    state = json.loads(catalog.backend.read_bytes(lease_key(catalog)))
    assert state["state"] == "released" and state["owner"] == second.owner


def test_stale_lease_is_taken_over_and_its_owner_stops() -> None:
    catalog = catalog_of(memory_manager())
    dead = MaintenanceLease(catalog, ttl=0.3, wait=1)
    dead.acquire()  # a deleter that dies (or pauses) without releasing
    time.sleep(0.35)
    taker = MaintenanceLease(catalog, ttl=30, wait=1)
    taker.acquire()  # expired: taken over with an IF_MATCH write of the stale etag
    with pytest.raises(PreconditionFailedError):
        dead.keep()  # the paused deleter wakes up: it must not delete any more
    dead.release()  # best effort: leaves the new owner's lease alone
    state = json.loads(catalog.backend.read_bytes(lease_key(catalog)))
    assert state["owner"] == taker.owner and state["state"] == "held"
    taker.release()


def test_lease_keep_renews_before_it_runs_out() -> None:
    catalog = catalog_of(memory_manager())
    lease = MaintenanceLease(catalog, ttl=1.2, wait=1)
    lease.acquire()
    before = catalog.backend.read_bytes(lease_key(catalog))
    lease.keep()  # fresh: nothing to do
    assert catalog.backend.read_bytes(lease_key(catalog)) == before
    time.sleep(0.5)  # more than a third used, more than a quarter left: renewed
    lease.keep()
    renewed = json.loads(catalog.backend.read_bytes(lease_key(catalog)))
    assert renewed["expires"] > json.loads(before)["expires"]
    lease.release()


def test_guard_costs_two_small_reads_when_no_maintenance_ran(proxy: Any,
                                                               moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"hg-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket, "key": "k", "secret": "s",
                   "endpoint_url": proxy.endpoint_url}])
    node = written(sm, "v:a.txt", "1", "2")
    node.cleanup_versions(keep_last=5)  # leaves a released lease behind
    catalog = catalog_of(sm)
    proxy.reset()
    guard = ProtectionGuard(catalog)
    assert guard.settle() is True  # unchanged and not held: nothing to check
    assert dict(proxy.counts) == {"GET": 2}
    sm.close()


def wait_until(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ====================================================================== tag/snapshot vs delete
def _holding_lease(sm: StorageManager) -> tuple[Any, MaintenanceLease]:
    history = sm.history("v")
    assert history is not None
    lease = MaintenanceLease(history.engine.catalog, ttl=30, wait=5)
    lease.acquire()
    return history, lease


def _deleter_starts_after_guard(sm: StorageManager, monkeypatch: pytest.MonkeyPatch
                                ) -> tuple[Any, MaintenanceLease]:
    """The worst moment: a deleter takes the lease (and reads the refs) just after the
    protector's first look at the lease, before its tag or manifest is written."""
    history = sm.history("v")
    assert history is not None
    lease = MaintenanceLease(history.engine.catalog, ttl=30, wait=5)
    original = ProtectionGuard.__init__

    def init_then_deleter_starts(self: ProtectionGuard, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        lease.acquire()

    monkeypatch.setattr(ProtectionGuard, "__init__", init_then_deleter_starts)
    return history, lease


def _in_thread(action: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_tag_of_a_version_deleted_meanwhile_is_refused_and_rolled_back(
        sm: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    node = written(sm, "v:r.txt", "old", "new")
    victim = node.versions[0]["version_id"]
    history, lease = _deleter_starts_after_guard(sm, monkeypatch)
    thread, errors = _in_thread(lambda: sm.node("v:r.txt").tag_version(victim, "keep"))
    wait_until(lambda: "keep" in history.refs("r.txt").tags)  # tagged; now waiting
    doomed = next(v for v in history.versions("r.txt") if v.version_id == victim)
    history.delete_version("r.txt", doomed)  # the deleter removes what it planned to
    lease.release()
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], StorageNotFoundError), errors
    assert "deleted while it was being tagged" in str(errors[0]) and victim in str(errors[0])
    assert node.get_version_tags() == {}  # no dangling tag left behind
    assert sm.verify("v:").ok


def test_snapshot_naming_a_version_deleted_meanwhile_is_refused(
        sm: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    node = written(sm, "v:r.txt", "old", "new")
    recorded = node.versions[-1]["version_id"]
    history, lease = _deleter_starts_after_guard(sm, monkeypatch)
    thread, errors = _in_thread(lambda: sm.create_snapshot("v:", "snap"))
    catalog = history.engine.catalog
    wait_until(lambda: "snap" in set(catalog.snapshot_tags()))  # written; now waiting
    node.write_text("newer")  # the recorded version is no longer current...
    doomed = next(v for v in history.versions("r.txt") if v.version_id == recorded)
    history.delete_version("r.txt", doomed)  # ...and a deleter that missed the manifest drops it
    lease.release()
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], StorageNotFoundError), errors
    assert recorded in str(errors[0])
    assert sm.list_snapshots() == []  # the manifest was taken back
    monkeypatch.undo()
    sm.create_snapshot("v:", "snap")  # and the name is free again
    assert sm.get_snapshot("snap")["files"] == {"r.txt": node.versions[-1]["version_id"]}


def test_tag_during_a_harmless_cleanup_succeeds(sm: StorageManager,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    node = written(sm, "v:h.txt", "1", "2", "3")
    history, lease = _deleter_starts_after_guard(sm, monkeypatch)
    result: list[str] = []
    thread, errors = _in_thread(lambda: result.append(node.tag_version(0, "ok")))
    wait_until(lambda: "ok" in history.refs("h.txt").tags)
    assert result == []  # waiting for the deleter to finish
    lease.release()
    thread.join(30)
    assert errors == []
    assert result == [node.versions[0]["version_id"]] == [node.get_version_tags()["ok"]]


def test_tagger_waits_for_a_running_cleanup_before_resolving(sm: StorageManager) -> None:
    node = written(sm, "v:q.txt", "1", "2", "3")
    victim = node.versions[0]["version_id"]
    history, lease = _holding_lease(sm)  # a cleanup is running
    thread, errors = _in_thread(lambda: node.tag_version(victim, "late"))
    time.sleep(0.2)
    assert history.refs("q.txt").tags == {}  # nothing written while the cleanup runs
    doomed = next(v for v in history.versions("q.txt") if v.version_id == victim)
    history.delete_version("q.txt", doomed)
    lease.release()
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], StorageNotFoundError), errors
    assert node.get_version_tags() == {}  # never tagged: it resolved after the cleanup


def test_deleters_read_protection_under_the_lease(sm: StorageManager) -> None:
    """A cleanup waits for another deleter's lease, then honours a tag set meanwhile."""
    node = written(sm, "v:w.txt", "1", "2", "3")
    ids = [v["version_id"] for v in node.versions]
    history, lease = _holding_lease(sm)
    removed: list[Any] = []
    thread, errors = _in_thread(lambda: removed.append(node.cleanup_versions(keep_last=1)))
    time.sleep(0.2)
    assert removed == []  # the cleanup waits for the lease
    history.update_refs("w.txt", lambda refs: refs.tags.__setitem__("late", ids[0]))
    lease.release()
    thread.join(30)
    assert errors == []
    assert [v["version_id"] for v in removed[0]] == [ids[1]]
    assert [v["version_id"] for v in node.versions] == [ids[0], ids[2]]


# ============================================================================ the current version
def test_delete_version_refuses_the_current_version(sm: StorageManager) -> None:
    node = written(sm, "v:c.txt", "1", "2")
    for pick in (-1, 1, node.versions[-1]["version_id"]):
        with pytest.raises(StoragePermissionError, match=r"current version.*delete the file"):
            node.delete_version(pick)
    assert node.version_count == 2 and node.read_text() == "2"
    node.delete_version(0)  # an older one may go
    node.delete()  # a deleted file has no current version: all may go
    node.delete_version(-1)
    assert node.versions == [] and not node.exists()
    assert sm.verify("v:").ok


def test_retention_and_compaction_keep_the_current_version(sm: StorageManager) -> None:
    node = written(sm, "v:k.txt", "a", "a", "a")
    assert node.compact_versions(dry_run=True) == 2 == node.compact_versions()
    assert node.version_count == 1 and node.versions[-1]["is_latest"]
    assert node.cleanup_versions(keep_last=0) == [] and node.read_text() == "a"
    assert sm.bulk_cleanup_versions("v:", keep_last=0) == {}
    assert node.version_count == 1


@settings(max_examples=60, deadline=None)
@given(contents=st.lists(st.sampled_from("aab"), min_size=1, max_size=9),
       tags=st.lists(st.integers(0, 8), max_size=3), snap_after=st.integers(0, 9),
       deleted=st.booleans())
def test_compact_dry_run_equals_the_real_run(contents: list[str], tags: list[int],
                                             snap_after: int, deleted: bool) -> None:
    sm = memory_manager()
    node = sm.node("v:p.txt")
    for n, text in enumerate(contents):
        node.write_text(text)
        if n == snap_after:
            sm.create_snapshot("v:", "s")
    for n, pick in enumerate(tags):
        node.tag_version(pick % len(contents), f"t{n}")
    if deleted:
        node.delete()
    before = node.versions
    planned = node.compact_versions(dry_run=True)
    assert node.versions == before
    bulk_planned = sm.bulk_compact_versions("v:", dry_run=True)
    assert bulk_planned == ({"v:p.txt": planned} if planned else {})
    assert node.compact_versions() == planned
    after = {v["version_id"] for v in node.versions}
    assert len(before) - len(after) == planned
    protected = set(node.get_version_tags().values())
    if snap_after < len(contents):
        protected |= set(sm.get_snapshot("s")["files"].values())
    assert protected <= after
    if not deleted:
        assert before[-1]["version_id"] in after


# ============================================================================ retention rules
def test_keep_days_inf_keeps_everything_by_age(sm: StorageManager) -> None:
    node = written(sm, "v:i.txt", "1", "2", "3")
    plan = node.cleanup_versions(keep_days=math.inf, dry_run=True)
    assert all(r["keep"] for r in plan) and "within-inf-days" in plan[0]["reasons"]
    assert node.cleanup_versions(keep_days=float("inf")) == []
    assert node.cleanup_versions(keep_days=1e300, keep_last=0) == []
    assert sm.bulk_cleanup_versions("v:", keep_days=math.inf) == {}
    assert node.version_count == 3


@pytest.mark.parametrize("rules", [
    {"keep_days": math.nan}, {"keep_days": -1}, {"keep_days": -math.inf},
    {"keep_days": True}, {"keep_days": "7"}, {"keep_last": True}, {"keep_last": -1},
    {"keep_last": 1.5}, {"keep_last": "2"}, {"keep_last": False, "keep_days": 3},
])
def test_bad_retention_rules_are_refused_before_anything(rules: dict[str, Any]) -> None:
    sm = memory_manager()
    node = written(sm, "v:b.txt", "1", "2", "3")
    for call in (lambda: node.cleanup_versions(**rules),
                 lambda: node.cleanup_versions(dry_run=True, **rules),
                 lambda: sm.bulk_cleanup_versions("v:", **rules)):
        with pytest.raises(ValueError) as caught:
            call()
        assert isinstance(caught.value, StorageError)
        assert ("keep_days" in str(caught.value)) or ("keep_last" in str(caught.value))
    assert node.version_count == 3


# ============================================================================ no conditional writes
def test_sftp_history_refuses_protection_and_cleans_up_without_a_lease(tmp_path: Path) -> None:
    """SFTP has no conditional writes: tags and snapshots are refused (nothing could protect a
    version safely), so cleanup needs no lease there and writes none."""
    from storied.errors import UnsupportedOperation
    from storied.testing import servers

    root = tmp_path / "sftp"
    root.mkdir()
    handle = servers.start_sftp(root)
    try:
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "sftp", **handle.config, "versioning": True}])
        node = written(sm, "v:s.txt", "1", "2", "3")
        with pytest.raises(UnsupportedOperation):
            node.tag_version(0, "t")
        with pytest.raises(UnsupportedOperation):
            sm.create_snapshot("v:", "snap")
        assert sm.list_snapshots() == []
        assert len(node.cleanup_versions(keep_last=1)) == 2 and node.read_text() == "3"
        assert node.compact_versions() == 0
        assert not (root / ".storied" / "locks").exists()
        sm.close()
    finally:
        handle.stop()
