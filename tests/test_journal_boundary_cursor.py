"""A reader parked on a cursor at a bucket's last number (``9`` with buckets of 10) checks
once that the entry exists (a cursor ahead of the journal is refused, EVENTS.md §5); later
idle polls do not check it again (no request for that entry's bucket)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import InvalidArgumentError
from storied.testing.s3server import MotoHandle, s3_client


def _manager(moto: MotoHandle, bucket: str) -> StorageManager:
    storage = StorageManager()
    storage.configure([{"name": "v", "type": "s3", "bucket": bucket, "versioning": True,
                        "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    return storage


def test_idle_polls_from_a_bucket_boundary_cost_one_listing_each(
        moto: MotoHandle, small_journal_buckets: int) -> None:
    client = s3_client(moto.endpoint_url)
    bucket = f"jb-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.close()
    writer = _manager(moto, bucket)
    node = writer.node("v:f.txt")
    while not [e for e in writer.events("v:") if int(e.cursor) >= 9]:
        node.write_text(uuid.uuid4().hex)
    newest = max(int(e.cursor) for e in writer.events("v:"))
    if newest != 9:
        pytest.skip(f"the journal did not stop at 9 (newest {newest})")
    reader = _manager(moto, bucket)  # another process's view: no tail known
    calls: list[str] = []
    inner: Any = reader.get_backend("v").unwrap()
    for op in ("ListObjectsV2", "GetObject", "HeadObject"):
        inner._client.meta.events.register(
            f"provide-client-params.s3.{op}",
            lambda params, op=op, **_: calls.append(f"{op}:{params.get('Key') or params['Prefix']}")
        )
    assert list(reader.events("v:", since="9")) == []  # the first poll checks entry 9 exists
    calls.clear()
    for _ in range(5):
        assert list(reader.events("v:", since="9")) == []
    assert calls and not [c for c in calls if "/000000000/" in c or "000000000.jsonl" in c]
    with pytest.raises(InvalidArgumentError, match="ahead of the journal"):
        list(reader.events("v:", since="19"))  # still refused: never existed
    node.write_text("ten")
    assert [int(e.cursor) for e in reader.events("v:", since="9")] == [10]
    writer.close()
    reader.close()
