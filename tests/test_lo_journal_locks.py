"""Journal upkeep (``storage.expire_events``, docs/EVENTS.md §6) on an S3 Object Lock bucket
(moto server) whose server refuses to delete journal entries: the bucket's default retention,
or a legal hold set outside storied on one entry. Upkeep never raises for that: it skips the
locked entries (logged on ``storied.events``, not counted), and what stays always reads
correctly, from the oldest kept entry on. A refusal that is not a lock (a bucket policy)
still raises."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import StorageNotFoundError, StoragePermissionError
from storied.events import _upkeep, journal
from storied.testing.s3server import MotoHandle, s3_client


class _Later(datetime):
    """The upkeep's clock, three days on (the server's, and retention's, stay real)."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + timedelta(days=3)


@pytest.fixture
def client(moto: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(journal, "BUCKET", 3)  # buckets of 3 entries, sealed at once
    monkeypatch.setattr(_upkeep, "BUCKET", 3)
    monkeypatch.setattr(_upkeep, "SEAL_AFTER", -60.0)
    monkeypatch.setattr(_upkeep, "datetime", _Later)
    c = s3_client(moto.endpoint_url)
    yield c
    c.close()


def _setup(moto: MotoHandle, client: Any, retention_days: int = 0
           ) -> tuple[StorageManager, str]:
    bucket = f"lj-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    if retention_days:
        client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": retention_days}}})
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    node = sm.node("v:d/f.txt")
    for i in range(9):  # entries 1..9: buckets 0 (1, 2), 1 (3-5), 2 (6-8), 3 (9)
        node.write_text(f"v{i}")
    return sm, bucket


def _entry_key(seq: int) -> str:
    return f".storied/journal/{seq // 3:09d}/{seq:012d}.json"


def _cursors(sm: StorageManager, since: str | None = None) -> list[int]:
    return [int(e.cursor) for e in sm.events("v:", since=since)]


def test_default_retention_keeps_every_entry_and_nothing_is_sent(
        moto: MotoHandle, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    sm, _ = _setup(moto, client, retention_days=1)
    sm.get_backend("v").unwrap().object_lock_config()  # asked before the count starts
    deletes: list[Any] = []
    inner: Any = sm.get_backend("v").unwrap()
    inner._client.meta.events.register("provide-client-params.s3.DeleteObjects",
                                       lambda params, **_: deletes.append(params))
    with caplog.at_level(logging.WARNING, logger="storied.events"):
        assert sm.expire_events("v", keep_days=1) == 0
    assert "journal upkeep" in caplog.text and "default retention" in caplog.text
    assert deletes == []  # the retention is computed from the listing: no refused request
    assert _cursors(sm) == list(range(1, 10))


def test_a_held_entry_stops_the_expiry_and_the_rest_reads(
        moto: MotoHandle, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    sm, bucket = _setup(moto, client)
    listed = client.list_object_versions(Bucket=bucket, Prefix=_entry_key(4))["Versions"]
    client.put_object_legal_hold(Bucket=bucket, Key=_entry_key(4),
                                 VersionId=listed[0]["VersionId"], LegalHold={"Status": "ON"})
    with caplog.at_level(logging.WARNING, logger="storied.events"):
        removed = sm.expire_events("v", keep_days=1)
    assert removed == 2  # bucket 0; bucket 1 keeps its held entry, so the expiry stops there
    assert "a lock on entry 4" in caplog.text
    assert _cursors(sm) == list(range(3, 10))  # from the oldest kept entry, no hole
    assert _cursors(sm, since="4") == list(range(5, 10))
    with pytest.raises(StorageNotFoundError, match="expired"):
        list(sm.events("v:", since="1"))
    keys = {o["Key"] for o in client.list_objects_v2(
        Bucket=bucket, Prefix=".storied/journal/000000001/").get("Contents", [])}
    assert keys == {_entry_key(4), _entry_key(5)}  # entry 5, removed with 3, written back
    sm.node("v:d/f.txt").write_text("after")
    assert _cursors(sm, since="9") == [10]
    assert sm.expire_events("v", keep_days=1) == 0  # again: still kept, still no error
    assert _cursors(sm) == list(range(3, 11))


def test_a_refusal_that_is_no_lock_still_raises(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _setup(moto, client)
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
                       "Resource": f"arn:aws:s3:::{bucket}/.storied/journal/*"}]}))
    with pytest.raises(StoragePermissionError):
        sm.expire_events("v", keep_days=1)
    assert _cursors(sm) == list(range(1, 10))


def test_bulk_cleanup_runs_the_same_upkeep(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _setup(moto, client)
    listed = client.list_object_versions(Bucket=bucket, Prefix=_entry_key(1))["Versions"]
    client.put_object_legal_hold(Bucket=bucket, Key=_entry_key(1),
                                 VersionId=listed[0]["VersionId"], LegalHold={"Status": "ON"})
    result: Any = sm.bulk_cleanup_versions("v:d", keep_last=1)
    assert list(result) == ["v:d/f.txt"]
    assert _cursors(sm)[:9] == list(range(1, 10))
