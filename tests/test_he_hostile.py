"""Webhooks against hostile servers and unlucky setups: a server dribbling its answer, two
managers on one outbox, a corrupt or vanished spool, odd paths."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks

from storied import StorageManager
from storied.errors import InvalidArgumentError
from storied.events.webhooks import RetryPolicy, endpoint_key
from test_he_webhooks import FAST, SECRET, Receiver, dead_url, emit


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def storage() -> Iterator[StorageManager]:
    manager = StorageManager()
    manager.configure([{"name": "m", "type": "memory"}])
    yield manager
    manager.close_webhooks()


class Dribbler:
    """A TCP server that answers one byte every 0.2 s, for ever; records accept times."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.accepted: list[float] = []
        self.stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, conn: socket.socket) -> None:
        with conn:
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 10_000:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:
                return

    def stop(self) -> None:
        self.stopping = True
        self.sock.close()


def test_timeout_bounds_the_whole_attempt(storage: StorageManager, tmp_path: Path) -> None:
    server = Dribbler()
    try:
        storage.add_webhook(server.url, secret=SECRET, timeout=0.5, retry=FAST,
                            outbox=tmp_path / "o")
        emit(storage, 1)
        assert storage.flush_webhooks(timeout=2.5) is False
        assert len(server.accepted) >= 2  # the first attempt was cut, then retried
        assert server.accepted[1] - server.accepted[0] < 1.5
    finally:
        server.stop()


def test_two_managers_one_outbox_one_deliverer(receiver: Receiver, tmp_path: Path) -> None:
    managers = [StorageManager(), StorageManager()]
    try:
        for manager in managers:
            manager.configure([{"name": "m", "type": "memory"}])
            manager.add_webhook(receiver.url, secret=SECRET, mount="m", outbox=tmp_path / "o")
        for manager in managers:
            emit(manager, 5)
        assert all(m.flush_webhooks(timeout=10) for m in managers)
        ids = [h["webhook-id"] for h, _ in receiver.delivered]
        assert len(ids) == len(set(ids)) == 10
    finally:
        for manager in managers:
            manager.close_webhooks()


def test_corrupt_and_vanished_spool(storage: StorageManager, receiver: Receiver, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    hook = storage.add_webhook(receiver.url, secret=SECRET, outbox=tmp_path / "o")
    spool = tmp_path / "o" / hook.key
    storage.close_webhooks()
    (spool / "00000000000000000001-deadbeef.msg").write_bytes(b"{not json")
    (spool / "00000000000000000002-deadbeef.msg").write_bytes(b"")
    hook = storage.add_webhook(receiver.url, secret=SECRET, outbox=tmp_path / "o")
    with caplog.at_level(logging.ERROR, logger="storied.webhooks"):
        emit(storage, 1)
        assert storage.flush_webhooks(timeout=5)
    assert len(receiver.delivered) == 1
    assert sum("unreadable" in r.getMessage() for r in caplog.records) == 2
    for path in spool.iterdir():  # a cleanup removes the whole outbox meanwhile
        path.unlink()
    spool.rmdir()
    emit(storage, 1)  # the spool is made again: the event is not lost
    assert storage.flush_webhooks(timeout=5)
    assert len(receiver.delivered) == 2


def test_outbox_that_is_a_file_is_refused(storage: StorageManager, receiver: Receiver,
                                          tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgumentError, match="outbox"):
        storage.add_webhook(receiver.url, outbox=tmp_path / "file")
    assert storage.get_webhooks() == []


def test_odd_paths_and_info_survive_signing(storage: StorageManager, receiver: Receiver,
                                            tmp_path: Path) -> None:
    storage.add_webhook(receiver.url, secret=SECRET, outbox=tmp_path / "o")
    name = 'dïr/ä "quoted" \u202e\U0001f600 {x}.txt'
    storage.bus.emit("version_created", storage.node(f"m:{name}"),
                     {"when": time.time(), "tags": {"a"}, "raw": b"\x00\xff", "nested": [None]})
    assert storage.flush_webhooks(timeout=5)
    headers, body = receiver.delivered[0]
    payload = standardwebhooks.Webhook(SECRET).verify(body, headers)
    assert payload["subject"] == name
    assert payload["data"]["tags"] == ["a"] and payload["data"]["raw"] == "<2 bytes>"


def test_a_spool_past_its_bound_drops_the_oldest(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from storied.events import webhook_spool

    monkeypatch.setattr(webhook_spool, "MAX_PENDING", 5)
    url, slow = dead_url(), RetryPolicy(delays=(60.0,))
    key = endpoint_key(url, None)
    spool = tmp_path / "o" / key
    piled = webhook_spool.Spool(tmp_path / "o", key, {"url": url})
    for i in range(8):  # what processes spooled while the endpoint was down
        piled.put(f"msg_{i}", b"{}")
    oldest = sorted(p.name for p in spool.glob("*.msg"))
    assert len(oldest) == 8
    reader = StorageManager()
    try:  # the next process to deliver trims the spool at once
        with caplog.at_level(logging.ERROR, logger="storied.webhooks"):
            reader.add_webhook(url, secret=SECRET, retry=slow, outbox=tmp_path / "o")
            deadline = time.monotonic() + 5
            while len(list(spool.glob("*.msg"))) > 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert sorted(p.name for p in spool.glob("*.msg")) == oldest[3:]
        assert any("3 oldest dropped" in r.getMessage() for r in caplog.records)
    finally:
        reader.close_webhooks()
