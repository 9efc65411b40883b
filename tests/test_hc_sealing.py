"""Sealing old journal buckets (docs/EVENTS.md §6): reads are unchanged, cheaper, and safe
while a bucket is being sealed; expiry removes sealed buckets too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from storied.backends.memory import MemoryBackend
from storied.backends.s3 import S3Backend
from storied.errors import StorageNotFoundError
from storied.events.journal import BUCKET, SEAL_AFTER, JournalStore
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket

LATER = timedelta(seconds=SEAL_AFTER + 60)


def _filled(store: JournalStore, count: int) -> list[tuple[int, dict[str, object]]]:
    for i in range(count):
        store.append("file_deleted", f"f{i}", None, {"i": i})
    return list(store.read(None))


def test_sealed_buckets_read_exactly_as_before() -> None:
    store = JournalStore(MemoryBackend(), "r")
    total = 2 * BUCKET + 205
    plain = _filled(store, total)
    assert store.seal() == 0  # too young: nothing sealed
    reader = store.read(None)
    first = [next(reader) for _ in range(40)]  # mid-way through bucket 0 ...
    assert store.seal(datetime.now(UTC) + LATER) == 2  # ... when it is sealed
    assert first + list(reader) == plain  # the reader goes on from the sealed object
    dirs, sealed = store._layout()
    assert dirs == [2] and sealed == {0, 1}  # the newest bucket is never sealed
    assert list(store.read(None)) == plain
    for cursor in (0, 1, 5, 998, 999, 1000, 1500, 1999, 2000, 2100, total - 1, total):
        assert [s for s, _ in store.read(cursor)] == list(range(cursor + 1, total + 1))
    assert store.head() == 1 and store.tail() == total
    assert store.append("file_deleted", "next", None, {}) == total + 1
    assert store.seal(datetime.now(UTC) + LATER) == 0  # idempotent


def test_expiry_removes_sealed_buckets_oldest_first() -> None:
    store = JournalStore(MemoryBackend(), "r")
    total = 2 * BUCKET + 10
    _filled(store, total)
    store.seal(datetime.now(UTC) + LATER)
    assert store.expire(keep_days=30) == 0
    removed = store.expire(keep_days=1, now=datetime.now(UTC) + timedelta(days=3))
    assert removed == 2 * BUCKET - 1
    assert store.head() == 2 * BUCKET
    with pytest.raises(StorageNotFoundError, match="expired"):
        list(store.read(10))
    assert [s for s, _ in store.read(2 * BUCKET - 1)][:1] == [2 * BUCKET]


def test_reading_sealed_events_on_s3_is_one_get_per_bucket(moto: MotoHandle,
                                                           proxy: CountingProxy,
                                                           small_journal_buckets: int) -> None:
    size = small_journal_buckets  # 9 events in bucket 0, then 4 in bucket 1
    bucket = make_bucket(moto.endpoint_url, f"seal-{uuid.uuid4().hex[:12]}")
    backend = S3Backend(bucket, key="testing", secret="testing",
                        endpoint_url=moto.endpoint_url)
    store = JournalStore(backend, ".storied")
    plain = _filled(store, size + 3)
    assert store.seal(datetime.now(UTC) + LATER) == 1
    reader = JournalStore(S3Backend(bucket, key="testing", secret="testing",
                                    endpoint_url=proxy.endpoint_url), ".storied")
    proxy.reset()
    assert list(reader.read(None)) == plain
    counts = proxy.counts
    assert counts["GET"] <= 1 + 4 and counts["LIST"] <= 5  # 9 sealed events: one GET
    assert size - 1 > 4  # unsealed, bucket 0 alone would cost more GETs than that
    reader.backend.close()
    backend.close()
