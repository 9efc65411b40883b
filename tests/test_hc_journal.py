"""The event journal (issue 9 §2): several writer processes, a reader resuming from its
cursor, a writer killed with SIGKILL after acknowledged writes, expiry, cursors, watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.base import WrappedBackend
from storied.backends.memory import MemoryBackend
from storied.errors import (
    InvalidArgumentError,
    InvalidContentError,
    StorageNotFoundError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.events.journal import BUCKET, JournalStore
from storied.events.model import Event
from storied.events.view import Journal, journal_for
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket

_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

_WRITER = textwrap.dedent("""
    import json, sys
    from storied import StorageManager
    config, tag, count = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sm = StorageManager()
    sm.configure([config])
    for i in range(count):
        node = sm.node(f"v:{tag}/f{i % 3}.txt")
        node.write_text(f"{tag} {i}")
        print(node.versions[-1]["version_id"] if count < 10**6 else "", flush=True)
""")

_FAST_WRITER = textwrap.dedent("""
    import json, sys
    from storied import StorageManager
    config, tag = json.loads(sys.argv[1]), sys.argv[2]
    sm = StorageManager()
    sm.configure([config])
    seen = []
    sm.on("version_created", lambda node, info: seen.append(info["version_id"]))
    i = 0
    while True:
        sm.node(f"v:{tag}/f{i % 5}.txt").write_text(f"{tag} {i}")
        print(seen[-1], flush=True)  # acknowledged: write_text returned
        i += 1
""")

_READER = textwrap.dedent("""
    import json, sys, time
    from storied import StorageManager
    config, want = json.loads(sys.argv[1]), int(sys.argv[2])
    sm = StorageManager()
    sm.configure([config])
    cursor, got, deadline = None, [], time.monotonic() + 120
    while len(got) < want and time.monotonic() < deadline:
        batch = list(sm.events("v:", since=cursor, limit=7))  # resumes mid-way, again and again
        for event in batch:
            got.append([event.cursor, event.type, event.path, event.version_id])
        if batch:
            cursor = batch[-1].cursor
        else:
            time.sleep(0.05)
    print(json.dumps(got))
""")


def _local(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    return {"name": "v", "type": "local", "base_path": str(root), "versioning": True}


def _s3(moto: MotoHandle, native: bool = False) -> dict[str, Any]:
    bucket = make_bucket(moto.endpoint_url, f"jr-{uuid.uuid4().hex[:12]}", versioned=native)
    return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
            "key": "testing", "secret": "testing", "versioning": True}


@pytest.fixture(params=["local", "s3"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "local":
        return _local(tmp_path)
    return _s3(request.getfixturevalue("moto"))


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_ENV)


def _manager(config: dict[str, Any]) -> StorageManager:
    sm = StorageManager()
    sm.configure([config])
    return sm


def test_two_writer_processes_and_a_reader_see_every_event_once_in_order(
        config: dict[str, Any]) -> None:
    count = 25
    raw = json.dumps(config)
    reader = _spawn(_READER, raw, str(2 * count))
    writers = [_spawn(_WRITER, raw, tag, str(count)) for tag in ("a", "b")]
    acknowledged: set[str] = set()
    for proc in writers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        acknowledged |= set(out.split())
    out, err = reader.communicate(timeout=180)
    assert reader.returncode == 0, err
    got = json.loads(out)
    assert len(acknowledged) == 2 * count
    assert [int(c) for c, *_ in got] == list(range(1, 2 * count + 1))  # gap-free, in order
    assert {vid for _, _, _, vid in got} == acknowledged  # every event exactly once
    assert all(kind == "version_created" for _, kind, _, _ in got)
    # a fresh reader in this process agrees, and so does each writer's own order per file
    sm = _manager(config)
    again = [[e.cursor, e.type, e.path, e.version_id] for e in sm.events("v:")]
    assert again == got
    for tag in ("a", "b"):
        for i in range(3):
            path = f"{tag}/f{i}.txt"
            listed = [v["version_id"] for v in sm.node(f"v:{path}").versions]
            assert [vid for _, _, p, vid in got if p == path] == listed
    sm.close()


def test_writer_killed_after_acknowledged_writes_loses_no_event(
        config: dict[str, Any]) -> None:
    proc = _spawn(_FAST_WRITER, json.dumps(config), "k")
    assert proc.stdout is not None
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) >= 12:
            break
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    acknowledged += rest.split()  # printed before the kill: acknowledged too
    sm = _manager(config)
    journaled = [e.version_id for e in sm.events("v:") if e.type == "version_created"]
    assert set(acknowledged) <= set(journaled)
    assert journaled[: len(acknowledged)] == acknowledged
    sm.close()


def test_cursor_resume_prefix_filter_and_limit() -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True},
                  {"name": "sub", "path": "v:docs"}])
    for path in ("docs/a", "other/b", "docs/deep/c", "docs/a"):
        sm.node(f"v:{path}").write_text(path)
    everything = list(sm.events("v:"))
    assert [e.path for e in everything] == ["docs/a", "other/b", "docs/deep/c", "docs/a"]
    assert [e.cursor for e in everything] == ["1", "2", "3", "4"]
    assert all(isinstance(e, Event) and e.mount == "v" for e in everything)
    assert everything[0].info["version_id"] == everything[0].version_id
    assert isinstance(everything[0].info["last_modified"], datetime)
    assert len({e.id for e in everything}) == 4
    assert [e.path for e in sm.events("v:docs")] == ["docs/a", "docs/deep/c", "docs/a"]
    assert [e.path for e in sm.events("sub:")] == ["a", "deep/c", "a"]  # relative mount
    assert [e.mount for e in sm.events("sub:deep")] == ["sub"]
    assert [e.cursor for e in sm.events("v:", since="2")] == ["3", "4"]
    assert [e.cursor for e in sm.events("v:", since="1", limit=2)] == ["2", "3"]
    assert list(sm.events("v:", since="4")) == []
    assert list(sm.events("v:", limit=0)) == []
    for bad in ("x", "-1", "1.5"):
        with pytest.raises(InvalidArgumentError):
            sm.events("v:", since=bad)  # refused at the call, not at the first next()
    with pytest.raises(InvalidArgumentError):
        sm.events("v:", limit=-1)
    with pytest.raises(InvalidArgumentError, match="ahead of the journal"):
        list(sm.events("v:", since="9"))  # another journal's cursor, never waited on
    plain = StorageManager()
    plain.configure([{"name": "p", "type": "memory"}])
    with pytest.raises(UnsupportedOperation, match="'p'"):
        plain.events("p:")
    assert journal_for(plain, "p") is None
    journal = journal_for(sm, "sub")
    assert isinstance(journal, Journal) and journal.tail_cursor() == "4"


def test_buckets_expiry_and_an_expired_cursor() -> None:
    store = JournalStore(MemoryBackend(), ".storied")
    total = BUCKET + 205
    for i in range(total):
        assert store.append("file_deleted", f"f{i}", None, {"i": i}) == i + 1
    assert store.tail() == total and store.head() == 1
    seen = [seq for seq, _ in store.read(None)]
    assert seen == list(range(1, total + 1))  # across the bucket boundary
    assert [seq for seq, _ in store.read(BUCKET - 3)][:5] == list(range(BUCKET - 2, BUCKET + 3))
    assert store.expire(keep_days=30) == 0  # nothing is old yet
    with pytest.raises(InvalidArgumentError):
        store.expire(keep_days=0.5)
    later = datetime.now(UTC) + timedelta(days=3)
    assert store.expire(keep_days=1, now=later) == BUCKET - 1  # bucket 0 (1..999) went
    assert store.head() == BUCKET and store.tail() == total  # the newest bucket always stays
    assert [seq for seq, _ in store.read(None)][:2] == [BUCKET, BUCKET + 1]
    assert [seq for seq, _ in store.read(BUCKET - 1)][:1] == [BUCKET]
    with pytest.raises(StorageNotFoundError, match="expired"):
        list(store.read(5))
    with pytest.raises(InvalidArgumentError, match="ahead"):
        list(store.read(total + 50))
    assert list(store.read(total)) == []  # the newest event's cursor: nothing yet
    # numbering continues after expiry (a new writer finds the tail)
    fresh = JournalStore(store.backend, ".storied")
    assert fresh.append("file_deleted", "z", None, {}) == total + 1


def test_a_corrupted_entry_is_a_clear_error() -> None:
    backend = MemoryBackend()
    store = JournalStore(backend, "r")
    store.append("tag_created", "a", "v1", {})
    backend.write("r/journal/000000000/000000000002.json", b"\xff not json")
    with pytest.raises(InvalidContentError, match="2"):
        list(store.read(None))


def test_a_stale_writer_takes_the_next_free_number() -> None:
    backend = MemoryBackend()
    first, second = JournalStore(backend, "r"), JournalStore(backend, "r")
    assert first.append("tag_created", "a", "v1", {}) == 1
    assert second.append("tag_created", "b", "v2", {}) == 2  # lists the tail once
    assert first.append("tag_created", "c", "v3", {}) == 3  # 2 was taken: tries the next
    assert [e["path"] for _, e in first.read(None)] == ["a", "b", "c"]


def test_concurrent_threads_share_one_gap_free_sequence() -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])

    def work(tag: str) -> None:
        for i in range(40):
            sm.node(f"v:{tag}/{i}").write_text(tag)

    threads = [threading.Thread(target=work, args=(t,)) for t in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cursors = [int(e.cursor) for e in sm.events("v:")]
    assert cursors == list(range(1, 161))


def test_watch_tails_new_events_and_stops() -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    sm.node("v:before").write_text("old")
    got: list[Event] = []
    with sm.watch("v:", got.append, poll=0.02) as watch:
        assert watch.running
        sm.node("v:x/a").write_text("a")
        sm.node("v:y/b").write_text("b")
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not watch.running
    assert [e.path for e in got] == ["x/a", "y/b"]  # events after the start only
    assert watch.cursor == got[-1].cursor
    replay: list[Event] = []
    with sm.watch("v:x", replay.append, poll=0.02, since="0"):
        deadline = time.monotonic() + 10
        while not replay and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [e.path for e in replay] == ["x/a"]
    with pytest.raises(InvalidArgumentError):
        sm.watch("v:", got.append, poll=0)


def test_s3_requests_per_write_and_per_read(moto: MotoHandle, proxy: CountingProxy) -> None:
    config = _s3(moto)
    config["endpoint_url"] = proxy.endpoint_url
    sm = _manager(config)
    sm.node("v:warm").write_text("w")  # the format marker, the journal's tail: once
    proxy.reset()
    sm.node("v:a.txt").write_text("a")
    journal_puts = [r for r in proxy.requests if "/.storied/journal/" in r[1]]
    assert len(journal_puts) == 1  # one small extra object per write
    for i in range(20):
        sm.node(f"v:r/{i}").write_text(str(i))
    proxy.reset()
    events = list(sm.events("v:", since="2"))
    assert len(events) == 20
    counts = proxy.counts
    assert counts["LIST"] <= 2 and counts["GET"] == 20  # one listing page, one GET each
    sm.close()


def test_expiry_on_a_versioned_bucket_removes_every_version(moto: MotoHandle,
                                                            small_journal_buckets: int) -> None:
    from storied.backends.s3 import S3Backend

    size = small_journal_buckets
    bucket = make_bucket(moto.endpoint_url, f"jx-{uuid.uuid4().hex[:12]}", versioned=True)
    backend = S3Backend(bucket, key="testing", secret="testing",
                        endpoint_url=moto.endpoint_url)
    store = JournalStore(backend, ".storied")
    for i in range(size + 1):
        store.append("file_deleted", f"f{i}", None, {})
    assert store.expire(keep_days=1, now=datetime.now(UTC) + timedelta(days=3)) == size - 1
    left = list(backend.walk_versions(".storied/journal"))
    assert sorted(v.path.rsplit("/", 1)[1] for v in left) == [
        f"{size:012d}.json", f"{size + 1:012d}.json"]  # no delete markers, no old versions
    assert [seq for seq, _ in store.read(None)] == [size, size + 1]
    backend.close()


class _JournalFails(WrappedBackend):
    """A real memory store whose journal entries cannot be written while ``failing``."""

    failing = True

    def write(self, path: str, data: Any, **kwargs: Any) -> Any:
        if self.failing and "/journal/" in f"/{path}":
            raise TransientStorageError(f"injected: cannot write {path}")
        return self.inner.write(path, data, **kwargs)


def test_a_journal_that_cannot_be_written_fails_the_call_and_reports_nothing() -> None:
    backend = _JournalFails(MemoryBackend())
    sm = StorageManager()
    sm.configure([{"name": "v", "backend": backend, "versioning": True}])
    called: list[str] = []
    sm.on("*", lambda node, info: called.append(info["event"]))
    node = sm.node("v:a.txt")
    with pytest.raises(TransientStorageError, match="journal"):
        node.write_text("one")
    assert called == []  # no callback for an event the journal does not have
    assert node.read_text() == "one" and len(node.versions) == 1  # the write itself is done
    backend.failing = False
    node.write_text("two")
    assert called == ["version_created", "file_written"]
    assert [(e.cursor, e.version_id) for e in sm.events("v:")] == [
        ("1", node.versions[-1]["version_id"])]


def test_hostile_entries_become_safe_events() -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    sm.node("v:a").write_text("a")
    journal = journal_for(sm, "v")
    assert journal is not None
    store, backend = journal.store, journal.store.backend
    bodies = [{"type": "tag_created", "path": "../../etc/passwd", "info": {}},
              {"type": "tag_created", "path": "ok/file", "info": ["not", "a", "dict"],
               "time": "2026-01-01T00:00:00", "version_id": 5}]
    for seq, body in enumerate(bodies, start=2):
        backend.write(store._entry_key(seq), json.dumps(body).encode())
    events = list(sm.events("v:"))
    assert [e.cursor for e in events] == ["1", "3"]  # the escaping path is skipped
    last = events[-1]
    assert last.info == {"event": "tag_created"} and last.version_id == "5"
    assert last.time.tzinfo is not None
