"""``touch()`` and ``mkdir()`` under a lost lease are refused like every other write, on memory
and local; under a held lease they work."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import LockLostError

pytestmark = pytest.mark.usefixtures("no_lock_left_held")


@pytest.fixture(params=["memory", "local"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> StorageManager:
    storage = StorageManager()
    if request.param == "memory":
        storage.configure([{"name": "v", "type": "memory"}])
    else:
        storage.configure([{"name": "v", "type": "local", "base_path": str(tmp_path)}])
    return storage


def test_touch_and_mkdir_refused_under_a_lost_lease(sm: StorageManager) -> None:
    existing, fresh, folder = sm.node("v:a.txt"), sm.node("v:new.txt"), sm.node("v:dir")
    existing.write_bytes(b"kept")
    locks = [node.lock(timeout=1, ttl=5).acquire() for node in (existing, fresh, folder)]
    for lock in locks:
        lock._lost = True  # what a takeover leaves (tested for real in test_hd_locks.py)
    with pytest.raises(LockLostError):
        existing.touch()
    with pytest.raises(LockLostError):
        fresh.touch()
    with pytest.raises(LockLostError):
        folder.mkdir()
    assert existing.read_bytes() == b"kept"
    assert not fresh.exists() and not folder.exists()


def test_touch_and_mkdir_work_under_a_held_lease(sm: StorageManager) -> None:
    fresh, folder = sm.node("v:new.txt"), sm.node("v:dir")
    with fresh.lock(timeout=1, ttl=5), folder.lock(timeout=1, ttl=5):
        fresh.touch()
        folder.mkdir()
    assert fresh.read_bytes() == b"" and folder.is_dir()
