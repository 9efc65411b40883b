"""A replay session whose manager is dropped without stopping it puts the real clock and ids
back: a later session (another manager) records and replays portable-history writes."""

from __future__ import annotations

import gc
import time as real_time
from pathlib import Path

from storied import StorageManager
from storied.versioning import records


def _cassette(tmp_path: Path) -> Path:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "memory", "store": "rec"}])
    cassette = tmp_path / "c.json"
    with sm.record_mode(cassette):
        sm.node("m:a.txt").write_text("one")
    return cassette


def test_a_dropped_session_releases_the_clock(tmp_path: Path) -> None:
    cassette = _cassette(tmp_path)

    def replaying() -> StorageManager:
        sm = StorageManager()
        sm.configure([{"name": "m", "type": "memory", "store": "again"}])
        sm.replay_mode(cassette)  # never stopped
        sm.node("m:a.txt").write_text("one")
        return sm

    kept = replaying()
    kept = replaying()  # the first manager and its session are dropped here
    kept.stop_cassette()
    del kept
    gc.collect()
    assert records.time is real_time

    (tmp_path / "live").mkdir()
    live = StorageManager()
    live.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "live"),
                     "versioning": True}])
    with live.record_mode(tmp_path / "v.json"):
        live.node("v:f.txt").write_text("x")
        live.node("v:f.txt").write_text("y")
    (tmp_path / "empty").mkdir()
    offline = StorageManager()
    offline.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "empty"),
                        "versioning": True}])
    with offline.replay_mode(tmp_path / "v.json"):
        offline.node("v:f.txt").write_text("x")
        offline.node("v:f.txt").write_text("y")
    assert records.time is real_time
