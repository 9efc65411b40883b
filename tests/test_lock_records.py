"""The lock records and rules themselves: Refs keep locks and unknown keys through every writer,
a broken record protects, the rules refuse what S3 Object Lock refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from storied import StorageManager, StoragePermissionError
from storied.errors import InvalidArgumentError
from storied.policies.retention import (
    Lock,
    check_retention_change,
    lock_reasons,
    normalize_until,
    use_clock,
)
from storied.versioning.catalog import Refs

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_refs_keep_locks_and_unknown_keys() -> None:
    raw = json.dumps({"schema_version": 1, "tags": {"t": "v1"}, "annotations": {},
                      "locks": {"v1": {"legal_hold": True},
                                "v2": {"mode": "COMPLIANCE", "until": "2027-01-01T00:00:00+00:00"}},
                      "future_key": {"x": 1}}).encode()
    refs = Refs.from_json(raw)
    refs.tags["u"] = "v2"
    again = json.loads(Refs.from_json(refs.to_json()).to_json())
    assert again["future_key"] == {"x": 1}
    assert again["locks"]["v1"] == {"legal_hold": True}
    assert again["locks"]["v2"]["mode"] == "COMPLIANCE" and again["tags"]["u"] == "v2"


def test_a_broken_until_protects_forever() -> None:
    lock = Lock.from_json({"mode": "GOVERNANCE", "until": "not a date"})
    assert lock.retained(datetime(9000, 1, 1, tzinfo=UTC))


def test_tag_and_annotation_writes_keep_holds() -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}])
    node = sm.node("v:f.txt")
    node.write_text("a")
    node.write_text("b")
    node.set_legal_hold(True, version=0)
    node.tag_version(0, "t")
    node.annotate_version(0, {"k": "v"})
    node.untag_version("t")
    assert node.get_legal_hold(0) is True
    with pytest.raises(StoragePermissionError, match="legal-hold"):
        node.delete_version(0)


def test_rules_table() -> None:
    soon, later = NOW + timedelta(days=1), NOW + timedelta(days=2)
    gov, comp = Lock(False, "GOVERNANCE", soon), Lock(False, "COMPLIANCE", soon)
    assert check_retention_change("v", gov, "GOVERNANCE", later, now=NOW) == ("GOVERNANCE", later)
    assert check_retention_change("v", gov, "COMPLIANCE", soon, now=NOW) == ("COMPLIANCE", soon)
    assert check_retention_change("v", gov, None, None, True, NOW) == (None, None)
    assert check_retention_change("v", comp, "COMPLIANCE", later, now=NOW)[1] == later
    for current, mode, until, bypass in ((gov, "GOVERNANCE", NOW + timedelta(hours=1), False),
                                         (gov, None, None, False),
                                         (comp, "GOVERNANCE", later, True),
                                         (comp, "COMPLIANCE", NOW + timedelta(hours=1), True),
                                         (comp, None, None, True)):
        with pytest.raises(StoragePermissionError):
            check_retention_change("v", current, mode, until, bypass, NOW)
    expired = Lock(False, "COMPLIANCE", NOW - timedelta(seconds=1))
    assert check_retention_change("v", expired, None, None, now=NOW) == (None, None)
    assert lock_reasons({"a": expired, "b": Lock(True)}, NOW) == {"b": ("legal-hold",)}


def test_until_is_checked_and_rounded_up() -> None:
    assert normalize_until(datetime(2027, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == datetime(
        2027, 1, 1, 0, 0, 1, tzinfo=UTC)
    top = datetime.max.replace(tzinfo=UTC)
    assert normalize_until(top) == top.replace(microsecond=0)
    for bad in (datetime(2027, 1, 1), "2027-01-01", 5):
        with pytest.raises(InvalidArgumentError):
            normalize_until(bad)
    with use_clock(lambda: NOW), pytest.raises(InvalidArgumentError, match="future"):
        check_retention_change("v", Lock(), "GOVERNANCE", NOW)


def test_a_failing_storage_records_no_half_lock() -> None:
    from storied.backends.memory import MemoryBackend
    from storied.errors import StorageError
    from storied.testing.doubles import FaultyBackend

    faulty = FaultyBackend(MemoryBackend(f"lf-{uuid.uuid4().hex[:8]}"), fail_times=0)
    sm = StorageManager()
    sm.configure([{"name": "v", "backend": faulty, "versioning": True, "retries": 1}])
    node = sm.node("v:f.txt")
    for text in ("a", "b", "c"):
        node.write_text(text)
    faulty.calls.clear()
    faulty.fail_times, faulty.operations = 10**6, frozenset({"write"})
    until = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(StorageError):
        node.set_legal_hold(True, version=0)
    with pytest.raises(StorageError):
        node.set_retention("COMPLIANCE", until, version=1)
    faulty.fail_times = 0
    assert node.get_legal_hold(0) is False and node.get_retention(1) is None
    node.set_legal_hold(True, version=0)
    assert len(node.cleanup_versions(keep_last=1)) == 1 and node.get_legal_hold(0) is True
