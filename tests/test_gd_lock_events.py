"""Legal hold and retention changes emit events through ``core.eventing.notify`` (ADR 0013):
``legal_hold_changed`` and ``retention_changed``, once per real change, after it is settled,
on the portable engine and on an S3 Object Lock bucket; a refused or no-op change emits
nothing. Holds and retention on a folder say it is one (it was "No versions available").
Both events are also journaled (the last tests below)."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager
from storied.core.objectlock import HOLD_EVENT, RETENTION_EVENT
from storied.errors import IsADirectoryStorageError, StorageNotFoundError, StoragePermissionError
from storied.testing.s3server import MotoHandle, s3_client


def _memory() -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex,
                   "versioning": True}])
    return sm


def _lock_bucket(moto: MotoHandle) -> StorageManager:
    client = s3_client(moto.endpoint_url)
    bucket = f"ge-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.close()
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    return sm


def _seen(sm: StorageManager) -> list[tuple[str, str, dict[str, Any]]]:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def record(node: Any, info: dict[str, Any]) -> None:
        if info["event"] in (HOLD_EVENT, RETENTION_EVENT):
            seen.append((info["event"], node.fullpath, info))

    sm.on("*", record)
    return seen


@pytest.mark.parametrize("where", ["memory", "s3-object-lock"])
def test_hold_and_retention_changes_emit_events(where: str, moto: MotoHandle) -> None:
    sm = _memory() if where == "memory" else _lock_bucket(moto)
    node = sm.node("v:doc.txt")
    node.write_text("one")
    node.write_text("two")
    vid = node.versions[0]["version_id"]
    seen = _seen(sm)
    node.set_legal_hold(True, version=0)
    node.set_legal_hold(True, version=0)  # already on: nothing changes, nothing is emitted
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    node.set_retention("GOVERNANCE", until, version=0)
    later = until + timedelta(hours=1)
    node.set_retention("GOVERNANCE", later, version=0)
    with pytest.raises(StoragePermissionError):
        node.set_retention(None, None, version=0)  # GOVERNANCE removal needs the bypass
    node.set_retention(None, None, version=0, bypass_governance=True)
    node.set_legal_hold(False, version=0)
    events = [(e, info) for e, _, info in seen]
    assert all(path == "v:doc.txt" for _, path, _ in seen)
    assert [e for e, _ in events] == [HOLD_EVENT, RETENTION_EVENT, RETENTION_EVENT,
                                      RETENTION_EVENT, HOLD_EVENT]
    assert all(info["version_id"] == vid for _, info in events)
    assert (events[0][1]["legal_hold"], events[0][1]["previous"]) == (True, False)
    assert events[1][1]["retention"] == {"mode": "GOVERNANCE", "until": until}
    assert events[1][1]["previous"] is None
    assert events[2][1]["retention"]["until"] == later
    assert events[2][1]["previous"] == {"mode": "GOVERNANCE", "until": until}
    assert events[3][1]["retention"] is None
    assert (events[4][1]["legal_hold"], events[4][1]["previous"]) == (False, True)


def test_a_change_that_fails_emits_nothing() -> None:
    sm = _memory()
    node = sm.node("v:a.txt")
    node.write_text("x")
    seen = _seen(sm)
    with pytest.raises(ValueError):
        node.set_retention("GOVERNANCE", datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(StorageNotFoundError):
        node.set_legal_hold(True, version=5)
    assert seen == []


def test_holds_and_retention_on_a_folder_say_so(tmp_path: Any) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    sm.node("v:dir/f.txt").write_text("x")
    until = datetime.now(UTC) + timedelta(days=1)
    for path in ("v:dir", "v:"):
        node = sm.node(path)
        calls = (functools.partial(node.set_legal_hold, True), node.get_legal_hold,
                 node.get_retention, functools.partial(node.set_retention, "GOVERNANCE", until))
        for call in calls:
            with pytest.raises(IsADirectoryStorageError, match="is a folder"):
                call()
    with pytest.raises(StorageNotFoundError, match="No versions"):
        sm.node("v:missing.txt").set_legal_hold(True)
    sm.node("v:dir/f.txt").delete()
    sm.node("v:dir/f.txt/sub.txt").write_text("y")  # a folder now, a file's history before
    assert sm.node("v:dir/f.txt").get_legal_hold(0) is False


@pytest.mark.parametrize("kind", ["portable", "s3-object-lock"])
def test_hold_and_retention_changes_are_in_the_journal(kind: str, moto: MotoHandle) -> None:
    """Journaled too (docs/EVENTS.md §4): once per real change; an ordinary write after them
    records its one version_created."""
    sm = _memory() if kind == "portable" else _lock_bucket(moto)
    node = sm.node("v:doc.txt")
    node.write_text("one")
    node.write_text("two")
    vid = node.versions[0]["version_id"]
    cursor = sm.events("v:")
    start = [e.cursor for e in cursor][-1]
    node.set_legal_hold(True, version=0)
    node.set_legal_hold(True, version=0)  # no change: no entry
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    node.set_retention("GOVERNANCE", until, version=0)
    node.set_legal_hold(False, version=0)
    events = list(sm.events("v:", since=start))
    assert [e.type for e in events] == ["legal_hold_changed", "retention_changed",
                                        "legal_hold_changed"]
    assert all(e.path == "doc.txt" and e.version_id == vid for e in events)
    assert (events[0].info["legal_hold"], events[0].info["previous"]) == (True, False)
    assert events[1].info["retention"] == {"mode": "GOVERNANCE", "until": until.isoformat()}
    assert events[1].info["previous"] is None
    assert (events[2].info["legal_hold"], events[2].info["previous"]) == (False, True)
    node.write_text("three")  # an ordinary write: one entry, its version_created
    after = list(sm.events("v:", since=events[-1].cursor))
    assert [e.type for e in after] == ["version_created"]


def test_an_ordinary_write_sends_no_extra_request(moto: MotoHandle) -> None:
    """Journaling hold events costs an ordinary write on a lock bucket nothing."""
    sm = _lock_bucket(moto)
    node = sm.node("v:w.txt")
    node.write_text("warm")  # the tail is known, the lock configuration asked
    inner: Any = sm.get_backend("v").unwrap()
    sent: list[str] = []
    inner._client.meta.events.register("before-call.s3.*",
                                       lambda model, **_: sent.append(model.name))
    node.write_text("again")
    assert sent == ["PutObject", "PutObject"]  # the object, its journal entry
