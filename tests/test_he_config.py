"""A mount's ``webhooks:`` list, through ``configure``, ``add_mount`` and ``delete_mount``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks

from storied import StorageManager
from storied.errors import StorageConfigError
from test_he_webhooks import SECRET, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def test_configured_webhooks_deliver_and_go_with_their_mount(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    storage = StorageManager()
    try:
        storage.configure([{"name": "m", "type": "memory", "webhooks": [
            {"url": receiver.url, "secret_env": "HOOK_SECRET", "events": ["file_written"]}]}])
        storage.node("m:a.txt").write_text("x")
        assert storage.flush_webhooks(timeout=5)
        headers, body = receiver.delivered[0]
        assert standardwebhooks.Webhook(SECRET).verify(body, headers)["subject"] == "a.txt"
        storage.delete_mount("m")
        assert storage.get_webhooks() == []
    finally:
        storage.close_webhooks()


def test_a_bad_webhooks_entry_refuses_the_whole_configuration(receiver: Receiver) -> None:
    storage = StorageManager()
    with pytest.raises(StorageConfigError, match=r"webhooks\[0\]"):
        storage.configure([{"name": "ok", "type": "memory"},
                           {"name": "m", "type": "memory",
                            "webhooks": [{"url": "ftp://example.com/", "secret": SECRET}]}])
    assert storage.get_mount_names() == [] and storage.get_webhooks() == []


def test_reconfiguring_a_mount_replaces_its_webhooks(receiver: Receiver, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    other = Receiver()
    storage = StorageManager()
    try:
        storage.add_mount({"name": "m", "type": "memory",
                           "webhooks": [{"url": receiver.url, "secret": SECRET}]})
        storage.add_mount({"name": "m", "type": "memory",
                           "webhooks": [{"url": other.url, "secret": SECRET}]})
        assert [h.url for h in storage.get_webhooks()] == [other.url]
        storage.node("m:b.txt").write_text("y")
        assert storage.flush_webhooks(timeout=5)
        assert receiver.delivered == [] and len(other.delivered) == 1
        storage.add_mount({"name": "m", "type": "memory"})  # no list: none left
        assert storage.get_webhooks() == []
    finally:
        storage.close_webhooks()
        other.stop()
