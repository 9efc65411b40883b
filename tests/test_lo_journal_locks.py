"""Journal upkeep (``storage.expire_events``, docs/EVENTS.md §6) on an S3 Object Lock bucket
(moto server) whose server refuses to delete journal entries: the bucket's default retention,
or a legal hold set outside storied on one entry. Upkeep never raises for that: it skips the
locked entries (logged on ``storied.events``, not counted), and what stays always reads
correctly, from the oldest kept entry on. A refusal that is not a lock (a bucket policy)
still raises."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import StorageNotFoundError, StoragePermissionError, TransientStorageError
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


def _hold_entry(client: Any, bucket: str, seq: int) -> None:
    listed = client.list_object_versions(Bucket=bucket, Prefix=_entry_key(seq))["Versions"]
    client.put_object_legal_hold(Bucket=bucket, Key=_entry_key(seq),
                                 VersionId=listed[0]["VersionId"], LegalHold={"Status": "ON"})


def test_a_failing_write_back_leaves_every_kept_entry_readable(
        moto: MotoHandle, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage refuses the write-back of entry 5 (removed in the batch the server refused
    for held entry 4): the upkeep raises, and every entry from the oldest kept one still
    reads (from the bucket's sealed copy); the next upkeep that can write puts entry 5
    back, so a reader going through entry 4 reads on from 5 from the folder again (until
    then it reads on from the sealed copy: test_a_reader_crosses_a_hole_the_write_back_left)."""
    sm, bucket = _setup(moto, client)
    _hold_entry(client, bucket, 4)
    real = journal.JournalStore._create

    def failing(store: Any, key: str, data: bytes) -> None:
        if key.endswith(".json"):
            raise TransientStorageError(f"injected: cannot write {key}")
        real(store, key, data)

    monkeypatch.setattr(journal.JournalStore, "_create", failing)
    with pytest.raises(TransientStorageError):
        sm.expire_events("v", keep_days=1)  # fails while sealing bucket 1: nothing expired
    assert _cursors(sm) == list(range(1, 10))
    monkeypatch.setattr(journal.JournalStore, "_create", real)
    assert sm.expire_events("v", keep_days=1) == 2  # bucket 0 goes; held bucket 1 stays
    assert _cursors(sm) == list(range(3, 10))
    assert _cursors(sm, since="4") == list(range(5, 10))  # entry 5 is back


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from datetime import datetime, timedelta
    from storied import StorageManager
    from storied.events import _upkeep, journal

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(days=3)

    journal.BUCKET = _upkeep.BUCKET = 3
    _upkeep.SEAL_AFTER = -60.0
    _upkeep.datetime = Later
    endpoint, bucket, role = sys.argv[1:4]
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
                   "key": "k", "secret": "s"}])
    if role == "kill-at-write-back":
        real = journal.JournalStore._create
        def create(store, key, data):
            if key.endswith(".json"):  # after the refused batch, before the write-back
                os.kill(os.getpid(), signal.SIGKILL)
            real(store, key, data)
        journal.JournalStore._create = create
        sm.expire_events("v", keep_days=1)
    else:  # a writer: 15 more versions, one journal entry each
        node = sm.node("v:d/g.txt")
        for i in range(15):
            node.write_text(f"g{i}")
    print("done")
""")


def _child(moto: MotoHandle, bucket: str, role: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, moto.endpoint_url, bucket, role],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_upkeep_killed_before_its_write_back_loses_no_kept_entry(
        moto: MotoHandle, client: Any) -> None:
    """SIGKILL between the batch the server refused in part and the write-back of what it
    removed above the held entry: the hole reads from the sealed copy, and the next upkeep
    neither fails nor loses anything."""
    sm, bucket = _setup(moto, client)
    _hold_entry(client, bucket, 4)
    child = _child(moto, bucket, "kill-at-write-back")
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, (out, err)
    assert _cursors(sm) == list(range(1, 10))  # killed while sealing: nothing expired yet
    assert sm.expire_events("v", keep_days=1) == 2  # bucket 0 goes; held bucket 1 stays
    assert _cursors(sm) == list(range(3, 10))
    assert _cursors(sm, since="4") == list(range(5, 10))  # the hole repaired
    sm.node("v:d/f.txt").write_text("after")
    assert _cursors(sm, since="9") == [10]


def test_upkeep_racing_a_writer_process_keeps_every_event_in_order(
        moto: MotoHandle, client: Any) -> None:
    """Another process appends 15 events while this one runs the upkeep again and again
    against a held entry (each run refused, checked, written back): every event from the
    oldest kept one reads once, in order, with no hole."""
    sm, bucket = _setup(moto, client)
    _hold_entry(client, bucket, 4)
    writer = _child(moto, bucket, "write")
    runs = 0
    while writer.poll() is None or runs == 0:
        sm.expire_events("v", keep_days=1)
        runs += 1
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0 and out.strip() == "done", err
    sm.expire_events("v", keep_days=1)
    seqs = _cursors(sm)
    assert seqs == list(range(3, 25))  # 9 before, 15 from the writer
    assert sum(e.path == "d/g.txt" for e in sm.events("v:")) == 15


def test_a_reader_crosses_a_hole_the_write_back_left(moto: MotoHandle, client: Any) -> None:
    """A hole above the held entry (entry 5 removed, its write-back never made: a failed or
    killed upkeep) before any upkeep repairs it: readers from every cursor read on through
    the bucket's sealed copy, and a watcher in another process parked on the held entry reads
    on at once (its first check of that bucket is not delayed)."""
    sm, bucket = _setup(moto, client)
    _hold_entry(client, bucket, 4)
    assert sm.expire_events("v", keep_days=1) == 2
    client.delete_object(Bucket=bucket, Key=_entry_key(5))  # the write-back undone: a hole
    assert _cursors(sm) == list(range(3, 10))
    assert _cursors(sm, since="3") == list(range(4, 10))
    assert _cursors(sm, since="4") == list(range(5, 10))
    got: list[int] = []
    sm2 = StorageManager()  # another process's view: it never wrote, no tail cached
    sm2.configure([{"name": "v", "type": "s3", "bucket": bucket,
                    "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    with sm2.watch("v:", lambda event: got.append(int(event.cursor)), poll=0.01,
                   since="4") as watch:
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert watch.error is None
    assert got == list(range(5, 10))
    sm2.close()


def test_a_tail_reader_checks_for_a_hole_once_a_minute(moto: MotoHandle, client: Any) -> None:
    """A reader that cannot tell a tail from a hole (it never wrote to that bucket) looks for
    the bucket's sealed copy at most once per ``HOLE_CHECK_EVERY`` seconds: idle polls stay
    one listing each."""
    _, bucket = _setup(moto, client)
    gets: list[str] = []
    sm2 = StorageManager()
    sm2.configure([{"name": "v", "type": "s3", "bucket": bucket,
                    "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    inner: Any = sm2.get_backend("v").unwrap()
    inner._client.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    for _ in range(5):
        assert _cursors(sm2, since="9") == []
    sealed = [k for k in gets if k.endswith(".jsonl")]
    assert sealed == [".storied/journal/000000003.jsonl"]  # once, not once per poll
    sm2.close()
