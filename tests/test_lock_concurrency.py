"""Holds against concurrent cleanups: a hold set while another process's cleanup holds the
maintenance lease waits for it and then protects; a hold set by another OS process is honoured
by this one's cleanup; concurrent retention changes never lose the stricter one."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager, StoragePermissionError
from storied.versioning.maintenance import MaintenanceLease


def _manager(tmp_path: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    return sm


def _node(sm: StorageManager, count: int) -> Any:
    node = sm.node("v:f.txt")
    for i in range(count):
        node.write_text(f"c{i}")
    return node


def test_hold_waits_for_a_running_cleanup_then_protects(tmp_path: Path) -> None:
    sm = _manager(tmp_path)
    node = _node(sm, 4)
    vid = node.versions[1]["version_id"]
    lease = MaintenanceLease(sm.history("v").engine.catalog)  # another deleter, mid-run
    lease.acquire()
    other = _manager(tmp_path).node("v:f.txt")
    done = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            other.set_legal_hold(True, version=vid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        done.set()

    worker = threading.Thread(target=hold)
    worker.start()
    time.sleep(0.4)
    assert not done.is_set()  # the protector waits while the deleter holds the lease
    lease.release()
    worker.join(10)
    assert done.is_set() and not errors
    removed = {row["version_id"] for row in node.cleanup_versions(keep_last=1)}
    assert vid not in removed and vid in {v["version_id"] for v in node.versions}


def test_hold_set_by_another_os_process_is_honoured(tmp_path: Path) -> None:
    sm = _manager(tmp_path)
    node = _node(sm, 3)
    vid = node.versions[0]["version_id"]
    config = tmp_path.parent / f"{tmp_path.name}.json"
    config.write_text(f'[{{"name": "v", "type": "local", "base_path": "{tmp_path}", '
                      '"versioning": true}]')
    run = subprocess.run([sys.executable, "-m", "storied", "-c", str(config), "hold", "v:f.txt",
                          "--version", vid, "on"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert node.get_legal_hold(vid) is True
    with pytest.raises(StoragePermissionError, match="legal-hold"):
        node.delete_version(vid)
    assert vid not in {row["version_id"] for row in node.cleanup_versions(keep_last=1)}


def test_concurrent_retention_changes_keep_the_stricter(tmp_path: Path) -> None:
    sm = _manager(tmp_path)
    node = _node(sm, 2)
    vid = node.versions[0]["version_id"]
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    untils = [base + timedelta(minutes=i) for i in range(8)]
    failures: list[BaseException] = []

    def extend(until: datetime) -> None:
        try:
            _manager(tmp_path).node("v:f.txt").set_retention("COMPLIANCE", until, version=vid)
        except StoragePermissionError:
            pass  # a later period won first: shortening COMPLIANCE is refused, as it must be
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    workers = [threading.Thread(target=extend, args=(u,)) for u in untils]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert not failures
    assert node.get_retention(vid) == {"mode": "COMPLIANCE", "until": untils[-1]}


def test_an_acknowledged_hold_always_names_a_surviving_version(tmp_path: Path) -> None:
    """A hold and a cleanup racing (two managers, threads): whenever set_legal_hold returns,
    the version it held still exists after the cleanup; otherwise it raised and set nothing."""
    from storied.errors import StorageNotFoundError

    for round_ in range(6):
        sm = _manager(tmp_path)
        node = sm.node(f"v:race{round_}.txt")
        for i in range(6):
            node.write_text(f"c{i}")
        target = node.versions[2]["version_id"]
        holder = _manager(tmp_path).node(f"v:race{round_}.txt")
        outcome: list[str] = []

        def hold(holder: Any = holder, target: str = target, outcome: list[str] = outcome
                 ) -> None:
            try:
                holder.set_legal_hold(True, version=target)
                outcome.append("held")
            except StorageNotFoundError:
                outcome.append("gone")

        worker = threading.Thread(target=hold)
        cleaner = threading.Thread(target=lambda node=node: node.cleanup_versions(keep_last=1))
        first, second = (worker, cleaner) if round_ % 2 else (cleaner, worker)
        first.start()
        time.sleep(0.003 * (round_ // 2))
        second.start()
        worker.join(30)
        cleaner.join(30)
        alive = {v["version_id"] for v in node.versions}
        assert outcome in (["held"], ["gone"]), outcome
        if outcome == ["held"]:
            assert target in alive and node.get_legal_hold(target) is True
        else:
            assert target not in alive
