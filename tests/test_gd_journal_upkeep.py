"""A bulk cleanup on an S3 Object Lock bucket with a default retention: the journal upkeep it
runs at its end (sealing old full buckets, expiring old ones) cannot remove journal entries
the bucket's default retention protects. That refusal is logged and leaves the entries (they
stay readable), instead of failing the cleanup that already did its work."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from storied import StorageManager
from storied.events import _upkeep, journal
from storied.testing.s3server import MotoHandle, s3_client


def test_bulk_cleanup_survives_journal_entries_the_bucket_retains(
        moto: MotoHandle, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # small journal buckets that seal at once: the upkeep has old full buckets to work on
    monkeypatch.setattr(journal, "BUCKET", 3)
    monkeypatch.setattr(_upkeep, "BUCKET", 3)
    monkeypatch.setattr(_upkeep, "SEAL_AFTER", -60.0)
    client = s3_client(moto.endpoint_url)
    bucket = f"gj-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    node = sm.node("v:d/f.txt")
    for i in range(9):
        node.write_text(f"v{i}")
    before = [e.cursor for e in sm.events("v:")]
    assert len(before) == 9
    with caplog.at_level(logging.WARNING):
        result: Any = sm.bulk_cleanup_versions("v:d", keep_last=1)
    assert result == {} and node.version_count == 9  # the default retention keeps them all
    assert "journal upkeep" in caplog.text
    assert [e.cursor for e in sm.events("v:")] == before  # every event still readable
    client.close()
