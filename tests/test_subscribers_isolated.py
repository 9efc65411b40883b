"""Subscribers of one event cannot see each other's changes to ``info``, and a callback that
cancels a later subscription stops its delivery of that same event."""

from __future__ import annotations

from typing import Any

import pytest

from storied import StorageManager


def _storage(versioning: bool = True) -> StorageManager:
    storage = StorageManager()
    storage.configure([{"name": "v", "type": "memory", "versioning": versioning}])
    return storage


@pytest.mark.parametrize("versioning", [True, False])
def test_each_subscriber_gets_the_event_unchanged_by_the_others(versioning: bool) -> None:
    storage = _storage(versioning)
    seen: list[dict[str, Any]] = []

    def vandal(node: Any, info: dict[str, Any]) -> None:
        seen.append({k: (list(v) if isinstance(v, list) else v) for k, v in info.items()})
        info["path"] = "forged"
        info.setdefault("tags", []).append("forged")
        info.setdefault("metadata", {})["who"] = "mallory"
        info.pop("event")

    event = "version_created" if versioning else "file_written"
    for _ in range(3):
        storage.on(event, vandal)
    storage.node("v:a.txt").write_bytes(b"x", **({"metadata": {"who": "alice"}}
                                                 if versioning else {}))
    assert len(seen) == 3
    assert seen[0] == seen[1] == seen[2]
    assert seen[0]["event"] == event and "forged" not in str(seen[0])


def test_a_callback_cancelling_a_later_subscription_stops_its_delivery() -> None:
    storage = _storage()
    calls: list[str] = []
    later: list[Any] = []
    storage.on("version_created", lambda n, i: (calls.append("first"), later[0].cancel()))
    later.append(storage.on("version_created", lambda n, i: calls.append("second")))
    storage.node("v:b.txt").write_bytes(b"x")
    storage.node("v:b.txt").write_bytes(b"y")
    assert calls == ["first", "first"]
