"""The lock-semantics conformance suite: legal holds and retention on every history engine.

Subclass :class:`LockConformance` and provide ``mount_config``: the config dict of a fresh,
empty mount named ``v`` that keeps history (native S3 with Object Lock, native S3 without it,
the portable engine anywhere). The suite builds managers from it; two managers on the same
config must see the same storage (another process's hold is seen).

Retention periods in this suite are short (seconds) where a test waits for them to expire, so
that servers which enforce them on their own clock (S3) agree with storied's injectable clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager, StoragePermissionError
from storied.errors import InvalidArgumentError, StorageNotFoundError
from storied.policies.retention import use_clock

__all__ = ["LockConformance"]


def _soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


class LockConformance:
    """Behaviour every history engine must show for legal holds and retention."""

    @pytest.fixture
    def sm(self, mount_config: dict[str, Any]) -> StorageManager:
        return self._manager(mount_config)

    def _manager(self, mount_config: dict[str, Any]) -> StorageManager:
        storage = StorageManager()
        storage.configure([dict(mount_config),
                           {"name": "vro", "path": "v:", "permissions": "readonly"}])
        return storage

    def _history(self, sm: StorageManager, path: str, contents: list[str]) -> Any:
        node = sm.node(path)
        for text in contents:
            node.write_text(text)
        return node

    def _ids(self, node: Any) -> list[str]:
        return [v["version_id"] for v in node.versions]

    # ------------------------------------------------------------------ legal hold
    def test_legal_hold_round_trip_seen_by_another_manager(
            self, sm: StorageManager, mount_config: dict[str, Any]) -> None:
        node = self._history(sm, "v:h.txt", ["a", "b", "c"])
        first = self._ids(node)[0]
        assert node.get_legal_hold(0) is False
        node.set_legal_hold(True, version=0)
        assert node.get_legal_hold(0) is True and node.get_legal_hold(first) is True
        assert node.get_legal_hold() is False  # the latest is not held
        other = self._manager(mount_config).node("v:h.txt")
        assert other.get_legal_hold(first) is True  # recorded in the storage
        with pytest.raises(StoragePermissionError, match=f"{first}.*legal-hold"):
            other.delete_version(first)
        other.set_legal_hold(False, version=first)
        assert node.get_legal_hold(0) is False
        node.delete_version(first)
        assert first not in self._ids(node)

    def test_hold_by_tag_and_by_pinned_node(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:t.txt", ["a", "b", "c"])
        vid = node.tag_version(1, "keep")
        node.set_legal_hold(True, version="keep")
        assert node.get_legal_hold(vid) is True
        pinned = sm.node("v:t.txt", version=vid)
        assert pinned.get_legal_hold() is True  # a pinned node means its version
        assert sm.node("vro:t.txt").get_legal_hold(vid) is True  # reading needs no write
        with pytest.raises(StoragePermissionError):
            sm.node("vro:t.txt").set_legal_hold(False, version=vid)
        assert node.get_legal_hold(vid) is True

    # ------------------------------------------------------------------ retention rules
    def test_retention_extend_and_governance_bypass(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:r.txt", ["a", "b"])
        until = _soon(3600).replace(microsecond=0)
        got = node.set_retention(mode="GOVERNANCE", until=until, version=0)
        assert got == {"mode": "GOVERNANCE", "until": until}
        assert node.get_retention(0) == got and node.get_retention() is None
        later = until + timedelta(hours=1)
        assert node.set_retention("GOVERNANCE", later, version=0)["until"] == later  # extend
        with pytest.raises(StoragePermissionError, match="bypass_governance"):
            node.set_retention("GOVERNANCE", until, version=0)  # shorten
        with pytest.raises(StoragePermissionError, match="bypass_governance"):
            node.set_retention(None, None, version=0)  # remove
        assert node.get_retention(0)["until"] == later  # nothing changed
        assert node.set_retention("GOVERNANCE", until, version=0,
                                  bypass_governance=True)["until"] == until
        assert node.set_retention(None, None, version=0, bypass_governance=True) is None
        assert node.get_retention(0) is None

    def test_compliance_can_only_be_extended(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:c.txt", ["a", "b"])
        until = _soon(3600).replace(microsecond=0)
        node.set_retention("GOVERNANCE", until, version=0)
        node.set_retention("COMPLIANCE", until, version=0)  # raising the mode is allowed
        attempts: list[Callable[[], object]] = [
            lambda: node.set_retention("COMPLIANCE", until - timedelta(minutes=1), version=0,
                                       bypass_governance=True),
            lambda: node.set_retention("GOVERNANCE", until + timedelta(hours=1), version=0,
                                       bypass_governance=True),
            lambda: node.set_retention(None, None, version=0, bypass_governance=True),
        ]
        for attempt in attempts:
            with pytest.raises(StoragePermissionError, match="COMPLIANCE"):
                attempt()
        assert node.get_retention(0) == {"mode": "COMPLIANCE", "until": until}
        later = until + timedelta(days=1)
        assert node.set_retention("COMPLIANCE", later, version=0)["until"] == later

    def test_bad_arguments_change_nothing(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:b.txt", ["a", "b"])
        naive = datetime.now() + timedelta(days=1)
        bad: list[Callable[[], object]] = [
            lambda: node.set_retention("GOVERNANCE", naive),
            lambda: node.set_retention("GOVERNANCE", _soon(-60)),
            lambda: node.set_retention("FOREVER", _soon(60)),
            lambda: node.set_retention("GOVERNANCE", None),
            lambda: node.set_retention(None, _soon(60)),
            lambda: node.set_legal_hold("yes"),
        ]
        for attempt in bad:
            with pytest.raises(InvalidArgumentError):
                attempt()
        with pytest.raises(StorageNotFoundError):
            node.set_legal_hold(True, version="no-such-version")
        assert node.get_retention() is None and node.get_legal_hold() is False

    # ------------------------------------------------------------------ enforcement
    def test_locked_versions_survive_every_deletion_path(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:e.txt", ["dup", "dup", "x", "y", "z"])
        first, held, retained, free, _current = self._ids(node)
        node.set_legal_hold(True, version=held)  # the duplicate compaction would remove
        node.set_retention("GOVERNANCE", _soon(3600), version=retained)
        for vid, rule in ((held, "legal-hold"), (retained, "retention:GOVERNANCE until")):
            with pytest.raises(StoragePermissionError, match=f"{vid}.*{rule}"):
                node.delete_version(vid)
        assert node.compact_versions(dry_run=True) == 0
        assert node.compact_versions() == 0
        plan = {row["version_id"]: row for row in node.cleanup_versions(keep_last=1,
                                                                       dry_run=True)}
        assert plan[held]["reasons"] == ["legal-hold"] and not plan[free]["keep"]
        assert plan[retained]["reasons"][0].startswith("retention:GOVERNANCE until ")
        removed = {row["version_id"] for row in node.cleanup_versions(keep_last=1)}
        assert removed == {first, free}
        node.delete()  # deleting the file stays allowed (a delete marker / tombstone)
        assert not node.exists()
        with pytest.raises(StoragePermissionError, match="legal-hold"):
            node.delete_version(held)  # the versions of a deleted file keep their locks
        node.cleanup_versions(keep_last=0)
        assert set(self._ids(node)) == {held, retained}

    def test_bulk_cleanup_and_compaction_keep_locked_versions(self, sm: StorageManager) -> None:
        a = self._history(sm, "v:bulk/a.txt", ["d", "d", "x", "y"])
        b = self._history(sm, "v:bulk/b.txt", ["1", "2", "3"])
        d1, d2, x, y = self._ids(a)
        b0, b1, b2 = self._ids(b)
        a.set_legal_hold(True, version=d2)  # the duplicate compaction would remove
        a.set_retention("GOVERNANCE", _soon(3600), version=x)
        b.set_legal_hold(True, version=b0)
        assert sm.bulk_compact_versions("v:bulk", dry_run=True) == {}
        assert sm.bulk_compact_versions("v:bulk") == {}
        plan = sm.bulk_cleanup_versions("v:bulk", keep_last=1, dry_run=True)
        assert plan == {"v:bulk/a.txt": [d1], "v:bulk/b.txt": [b1]}
        assert sm.bulk_cleanup_versions("v:bulk", keep_last=1) == plan
        assert self._ids(a) == [d2, x, y] and self._ids(b) == [b0, b2]

    def test_snapshot_deletion_keeps_locked_versions(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:s/a.txt", ["a", "b"])
        first = self._ids(node)[0]
        node.set_legal_hold(True, version=first)
        node.write_text("c")
        sm.create_snapshot("v:s", "snap1")
        sm.delete_snapshot("snap1")
        node.cleanup_versions(keep_last=1)
        assert first in self._ids(node)

    def test_hold_is_independent_of_retention(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:i.txt", ["a", "b"])
        vid = self._ids(node)[0]
        node.set_legal_hold(True, version=vid)
        node.set_retention("GOVERNANCE", _soon(3600), version=vid)
        node.set_retention(None, None, version=vid, bypass_governance=True)
        assert node.get_legal_hold(vid) is True  # removing retention leaves the hold
        with pytest.raises(StoragePermissionError, match="legal-hold"):
            node.delete_version(vid)
        node.set_retention("GOVERNANCE", _soon(3600), version=vid)
        node.set_legal_hold(False, version=vid)
        assert node.get_retention(vid) is not None  # removing the hold leaves retention
        with pytest.raises(StoragePermissionError, match="retention:GOVERNANCE"):
            node.delete_version(vid)

    def test_expired_retention_no_longer_protects(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:x.txt", ["a", "b", "c"])
        vid = self._ids(node)[0]
        until = _soon(1.2)
        node.set_retention("GOVERNANCE", until, version=vid)
        kept = node.get_retention(vid)
        assert kept is not None
        time.sleep(max(0.0, (kept["until"] - datetime.now(UTC)).total_seconds()) + 0.3)
        with use_clock(lambda: kept["until"] - timedelta(seconds=1)):  # storied's clock rules
            with pytest.raises(StoragePermissionError, match="retention"):
                node.delete_version(vid)
            plan = node.cleanup_versions(keep_last=1, dry_run=True)
            assert plan[0]["keep"] and plan[0]["reasons"][0].startswith("retention:")
        with use_clock(lambda: kept["until"] + timedelta(seconds=1)):
            assert node.cleanup_versions(keep_last=1, dry_run=True)[0]["reasons"] == ["remove"]
            # an expired period restricts nothing: a shorter one needs no bypass
            node.set_retention("GOVERNANCE", _soon(3600), version=1)
        node.delete_version(vid)
        assert vid not in self._ids(node)

    def test_cleanup_now_never_releases_a_version(self, sm: StorageManager) -> None:
        node = self._history(sm, "v:n.txt", ["a", "b"])
        vid = self._ids(node)[0]
        node.set_retention("GOVERNANCE", _soon(3600), version=vid)
        future = datetime.now(UTC) + timedelta(days=365)
        node.cleanup_versions(keep_last=1, now=future)  # a caller's "now" is not the clock
        assert vid in self._ids(node)
