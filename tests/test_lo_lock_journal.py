"""Legal hold and retention changes are journaled (docs/EVENTS.md §4): ``storage.events(mount)``
shows ``legal_hold_changed`` / ``retention_changed`` on a portable history (memory) and on
native S3 with Object Lock (moto server), once per real change; an ordinary write still
records one entry and sends no extra request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager
from storied.testing.s3server import MotoHandle, s3_client


def _memory(_: MotoHandle) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex,
                   "versioning": True}])
    return sm


def _lock_bucket(moto: MotoHandle) -> StorageManager:
    client = s3_client(moto.endpoint_url)
    bucket = f"ll-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.close()
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    return sm


@pytest.mark.parametrize("make", [_memory, _lock_bucket], ids=["portable", "s3-object-lock"])
def test_hold_and_retention_changes_are_in_the_journal(make: Any, moto: MotoHandle) -> None:
    sm = make(moto)
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
    sm = _lock_bucket(moto)
    node = sm.node("v:w.txt")
    node.write_text("warm")  # the tail is known, the lock configuration asked
    inner: Any = sm.get_backend("v").unwrap()
    sent: list[str] = []
    inner._client.meta.events.register("before-call.s3.*",
                                       lambda model, **_: sent.append(model.name))
    node.write_text("again")
    assert sent == ["PutObject", "PutObject"]  # the object, its journal entry
