"""Record/replay of writes to mounts with storied's portable history (issue 11 §4): the
engine's volatile inputs (clock, random ids, lease and lock nonces) are recorded in the cassette
and given back in replay, so versioned writes, reads and tags replay with no storage, against
S3 (moto stopped) and local (an empty folder), with identical results."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.testing import ReplayMismatchError
from storied.testing.s3server import make_bucket, start_moto


def workload(sm: StorageManager, mount: str) -> list[Any]:
    """Versioned writes, reads, tags, a delete and a rewrite; what a test would assert on."""
    out: list[Any] = []
    node = sm.node(f"{mount}:docs/report.txt")
    for text in ("one", "two", "three"):
        node.write_text(text)
    out.append(node.read_text())
    out.append(node.version_count)
    out.append([(v["size"], v["version_id"]) for v in node.versions])
    node.tag_version(0, "first")
    out.append(sorted(node.get_version_tags().items()))
    with node.open("rb", version="first") as f:
        out.append(f.read())
    sm.node(f"{mount}:docs/other.bin").write_bytes(b"\x00" * 3000)  # a body beside the json
    out.append(sorted(c.path for c in sm.node(f"{mount}:docs").children()))
    node.delete()
    out.append((node.exists(), node.version_count))
    node.write_text("back")
    out.append((node.read_text(), node.version_count))
    out.append(sm.verify().ok)
    return out


def s3_config(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    return [{"name": "s", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
             "key": "testing", "secret": "testing", "versioning": True}]


def test_portable_history_on_s3_replays_with_the_server_stopped(tmp_path: Path) -> None:
    server = start_moto()
    try:
        bucket = make_bucket(server.endpoint_url, f"replay-{uuid.uuid4().hex[:10]}")
        config = s3_config(server.endpoint_url, bucket)
        live = StorageManager()
        live.configure(config)
        with live.record_mode(tmp_path / "s3.json"):
            recorded = workload(live, "s")
        live.close()
    finally:
        server.stop()
    offline = StorageManager()
    offline.configure(config)  # same names and types; nothing answers at the endpoint now
    with offline.replay_mode(tmp_path / "s3.json"):
        began = time.perf_counter()
        replayed = workload(offline, "s")
        took = time.perf_counter() - began
    assert replayed == recorded
    assert recorded[1] == 3 and recorded[3] == [("first", recorded[2][0][1])]
    assert took < 30  # no timeouts waited for: every call was answered from the cassette
    document = json.loads((tmp_path / "s3.json").read_text())
    assert document["storied_cassette"] == 2 and document["volatile"]["time_ns"]
    assert "testing" not in (tmp_path / "s3.json").read_text()  # the credentials never


def test_portable_history_on_local_replays_on_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "empty").mkdir()
    live = StorageManager()
    live.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "live"),
                     "versioning": True}])
    with live.record_mode(tmp_path / "local.json"):
        recorded = workload(live, "v")
    shutil.rmtree(tmp_path / "live")
    offline = StorageManager()
    offline.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "empty"),
                        "versioning": True}])
    with offline.replay_mode(tmp_path / "local.json"):
        assert workload(offline, "v") == recorded
    assert list((tmp_path / "empty").iterdir()) == []  # replay wrote nothing


def test_replaying_twice_in_one_process_gives_the_same_ids(tmp_path: Path) -> None:
    """The id clock restarts where the recording's did, although this process made later
    ids meanwhile (max(clock, last + 1))."""
    (tmp_path / "live").mkdir()
    live = StorageManager()
    live.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "live"),
                     "versioning": True}])
    with live.record_mode(tmp_path / "c.json"):
        recorded = workload(live, "v")
    live.node("v:later.txt").write_text("an id after the recorded ones")
    for _ in range(2):
        offline = StorageManager()
        offline.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                            "versioning": True}])
        with offline.replay_mode(tmp_path / "c.json"):
            assert workload(offline, "v") == recorded


def test_a_different_write_still_mismatches(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    config = [{"name": "v", "type": "local", "base_path": str(tmp_path / "live"),
               "versioning": True}]
    live = StorageManager()
    live.configure(config)
    with live.record_mode(tmp_path / "c.json"):
        live.node("v:a.txt").write_text("recorded")
    offline = StorageManager()
    offline.configure(config)
    with offline.replay_mode(tmp_path / "c.json"), pytest.raises(ReplayMismatchError) as err:
        offline.node("v:a.txt").write_text("something else")
    assert err.value.closest is not None


def test_the_real_clock_is_back_after_a_session(tmp_path: Path) -> None:
    import os

    from storied.versioning import portable, records

    (tmp_path / "live").mkdir()
    live = StorageManager()
    live.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "live"),
                     "versioning": True}])
    with live.record_mode(tmp_path / "c.json"):
        live.node("v:a.txt").write_text("x")
        assert records.time is not time and records.os is not os
    assert records.time is time and records.os is os and portable.uuid is uuid
    before = records.next_timestamp()
    assert before >= time.time_ns() - 10**9


def test_a_format_1_cassette_still_replays(tmp_path: Path) -> None:
    cassette = tmp_path / "old.json"
    cassette.write_text(json.dumps({
        "storied_cassette": 1,
        "mounts": {"m": {"protocol": "memory"}},
        "interactions": [{"mount": "m", "op": "read_bytes", "args": {"path": "a.txt"},
                          "result": {"t": "bytes", "v": {"sha256": "2cf24dba5fb0a30e26e83b2a"
                                     "c5b9e29e1b161e5c1fa7425e73043362938b9824", "size": 5,
                                     "b64": "aGVsbG8="}}}],
    }))
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "memory"}])
    with sm.replay_mode(cassette):
        assert sm.node("m:a.txt").read_bytes() == b"hello"
