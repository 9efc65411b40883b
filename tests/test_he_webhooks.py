"""Webhooks: Standard Webhooks deliveries from a persisted outbox, against a real HTTP server
on 127.0.0.1 (http.server in a thread) that fails on purpose."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from storied import StorageManager
from storied.errors import InvalidArgumentError, MountNotFoundError, StorageConfigError
from storied.events.webhook_worker import parse_retry_after
from storied.events.webhooks import MAX_BODY, RetryPolicy

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = RetryPolicy(delays=(0.05, 0.1), jitter=0.1, max_attempts=20)


class Receiver:
    """A webhook receiver: answers each POST with the next scripted behaviour (then 204) and
    records every request it got: ``(time, headers, body, path)``."""

    def __init__(self, port: int = 0) -> None:
        self.script: deque[tuple[Any, ...]] = deque()
        self.requests: list[tuple[float, dict[str, str], bytes, str]] = []
        self.delivered: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((time.monotonic(), headers, body, self.path))
                step = receiver.script.popleft() if receiver.script else ("status", 204, {})
                try:
                    if step[0] == "drop":  # close without an answer
                        self.close_connection = True
                        return
                    if step[0] == "sleep":  # longer than the client's timeout: it is gone
                        time.sleep(step[1])
                        self.close_connection = True
                        return
                    code, extra = step[1], step[2]
                    if 200 <= code < 300:  # before answering: the client may count at once
                        receiver.delivered.append((headers, body))
                    self.send_response(code)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/storied"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.delivered]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[StorageManager]:
    (tmp_path / "data").mkdir()
    manager = StorageManager()
    manager.configure([{"name": "m", "type": "local", "path": str(tmp_path / "data")}])
    yield manager
    manager.close_webhooks()


def dead_url() -> str:
    """A URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def emit(storage: StorageManager, count: int, event: str = "file_written") -> None:
    for i in range(count):
        storage.bus.emit(event, storage.node(f"m:docs/f{i}.txt"), {"size": i})


def test_failures_then_success_every_event_delivered_and_verified(
        storage: StorageManager, receiver: Receiver, tmp_path: Path) -> None:
    receiver.script.extend([("status", 500, {}), ("drop",), ("sleep", 1.0),
                            ("status", 429, {"Retry-After": "1"}), ("status", 503, {})])
    storage.add_webhook(receiver.url, events=["file_written"], secret=SECRET, mount="m",
                        timeout=0.4, retry=FAST, outbox=tmp_path / "outbox")
    emit(storage, 5)
    assert storage.flush_webhooks(timeout=10) is True
    verifier = standardwebhooks.Webhook(SECRET)
    ids = set()
    for headers, body in receiver.delivered:
        payload = verifier.verify(body, headers)
        ids.add(headers["webhook-id"])
        assert payload["id"] == headers["webhook-id"]
        assert payload["specversion"] == "1.0" and payload["type"] == "storied.file.written"
        assert payload["source"] == "storied://m" and payload["datacontenttype"] == \
            "application/json"
        assert payload["time"].endswith("Z") and payload["data"]["event"] == "file_written"
    assert sorted(b["subject"] for b in receiver.bodies()) == [f"docs/f{i}.txt" for i in range(5)]
    assert len(ids) == 5
    # every attempt (failed ones included) carried the id of a delivered message
    assert {h["webhook-id"] for _, h, _, _ in receiver.requests} == ids
    assert len(receiver.requests) >= 10  # 5 failures, 5 deliveries (+ a slow one retried)
    after_429 = [t for t, _, _, _ in receiver.requests]
    assert after_429[4] - after_429[3] >= 0.9  # Retry-After: 1 honoured


def test_delivery_is_off_the_callers_thread(storage: StorageManager, receiver: Receiver,
                                            tmp_path: Path) -> None:
    receiver.script.append(("sleep", 1.5))
    storage.add_webhook(receiver.url, secret=SECRET, timeout=1, retry=FAST,
                        outbox=tmp_path / "o")
    started = time.monotonic()
    emit(storage, 3)
    assert time.monotonic() - started < 1.0  # sent in the caller's thread: >= 3 s
    assert storage.flush_webhooks(timeout=10)
    assert len(receiver.delivered) == 3


def test_410_disables_the_endpoint_for_this_and_the_next_process(
        storage: StorageManager, receiver: Receiver, tmp_path: Path) -> None:
    receiver.script.append(("status", 410, {}))
    outbox = tmp_path / "outbox"
    hook = storage.add_webhook(receiver.url, secret=SECRET, mount="m", retry=FAST,
                               outbox=outbox)
    emit(storage, 3)
    assert storage.flush_webhooks(timeout=5)  # nothing pending: dropped with the endpoint
    assert hook.disabled
    emit(storage, 2)
    time.sleep(0.3)
    assert len(receiver.requests) == 1 and receiver.delivered == []

    other = StorageManager()
    other.configure([{"name": "m", "type": "memory"}])
    again = other.add_webhook(receiver.url, secret=SECRET, mount="m", retry=FAST, outbox=outbox)
    assert again.disabled
    assert other.remove_webhook(receiver.url, mount="m") is True
    fresh = other.add_webhook(receiver.url, secret=SECRET, mount="m", outbox=outbox)
    assert not fresh.disabled
    other.bus.emit("file_written", other.node("m:x"), {})
    assert other.flush_webhooks(timeout=5)
    assert len(receiver.delivered) == 1
    other.close_webhooks()


def test_redirect_is_not_followed(storage: StorageManager, receiver: Receiver, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    target = Receiver()
    try:
        receiver.script.append(("status", 307, {"Location": target.url}))
        storage.add_webhook(receiver.url, secret=SECRET, retry=FAST, outbox=tmp_path / "o")
        with caplog.at_level(logging.ERROR, logger="storied.webhooks"):
            emit(storage, 1)
            assert storage.flush_webhooks(timeout=5)
        assert target.requests == [] and len(receiver.requests) == 1
        assert any("redirect" in r.getMessage() for r in caplog.records)
    finally:
        target.stop()


def test_other_4xx_is_final_but_408_409_425_are_retried(storage: StorageManager,
                                                        receiver: Receiver,
                                                        tmp_path: Path) -> None:
    receiver.script.extend([("status", 408, {}), ("status", 409, {}), ("status", 425, {}),
                            ("status", 400, {})])
    storage.add_webhook(receiver.url, secret=SECRET, retry=FAST, outbox=tmp_path / "o")
    emit(storage, 2)
    assert storage.flush_webhooks(timeout=5)
    # message 1: 408, 409, 425, then 400 (dropped); message 2: delivered at once
    assert len(receiver.requests) == 5 and len(receiver.delivered) == 1
    assert receiver.bodies()[0]["subject"] == "docs/f1.txt"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:x",
                                 "http://", "http://:80/x", "hooks.example.com/x",
                                 "http://exa mple.com/", "http://example.com:99999/",
                                 "http://example.com/\r\nX: y"])
def test_non_http_urls_are_refused(storage: StorageManager, url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        storage.add_webhook(url, secret=SECRET, outbox=tmp_path / "o")
    assert isinstance(info.value, ValueError)
    assert storage.get_webhooks() == []


def test_bad_arguments_are_refused(storage: StorageManager, receiver: Receiver,
                                   tmp_path: Path) -> None:
    outbox = tmp_path / "o"
    for kwargs in ({"events": ["version_made"]}, {"events": []}, {"timeout": 0},
                   {"timeout": float("nan")}, {"secret": ""}, {"retry": "fast"}):
        with pytest.raises(InvalidArgumentError):
            storage.add_webhook(receiver.url, outbox=outbox, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(MountNotFoundError):
        storage.add_webhook(receiver.url, mount="nope", outbox=outbox)
    assert storage.get_webhooks() == []


def test_secret_never_in_logs_reprs_errors_or_outbox(
        storage: StorageManager, receiver: Receiver, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    raw = SECRET.removeprefix("whsec_")
    with pytest.raises(InvalidArgumentError) as info:
        storage.add_webhook(receiver.url, secret="whsec_" + raw + "!!", outbox=tmp_path / "o")
    assert raw not in str(info.value)
    receiver.script.extend([("status", 500, {}), ("status", 410, {})])
    url = receiver.url.replace("http://", "http://user:pa55word@") + "?token=t0ken"
    with caplog.at_level(logging.DEBUG):
        hook = storage.add_webhook(url, secret=SECRET, retry=FAST, outbox=tmp_path / "o")
        emit(storage, 2)
        assert storage.flush_webhooks(timeout=5)
    seen = [repr(hook), repr(storage.get_webhooks()), caplog.text]
    seen += [p.read_text() for p in (tmp_path / "o").rglob("*") if p.is_file()]
    for text in seen:
        for secret in (raw, "pa55word", "t0ken"):
            assert secret not in text
    assert receiver.requests[0][1]["authorization"].startswith("Basic ")


def test_raw_string_secret_is_its_utf8_bytes(storage: StorageManager, receiver: Receiver,
                                             tmp_path: Path) -> None:
    storage.add_webhook(receiver.url, secret="plain secret", outbox=tmp_path / "o")
    emit(storage, 1)
    assert storage.flush_webhooks(timeout=5)
    headers, body = receiver.delivered[0]
    standardwebhooks.Webhook(b"plain secret").verify(body, headers)
    assert headers["webhook-signature"].startswith("v1,")


def test_flush_times_out_while_the_server_is_down(storage: StorageManager,
                                                  tmp_path: Path) -> None:
    storage.add_webhook(dead_url(), secret=SECRET, retry=FAST, outbox=tmp_path / "o")
    emit(storage, 2)
    started = time.monotonic()
    assert storage.flush_webhooks(timeout=0.5) is False
    assert 0.45 <= time.monotonic() - started < 2.0


def test_events_and_mount_filters(storage: StorageManager, receiver: Receiver,
                                  tmp_path: Path) -> None:
    storage.add_mount({"name": "other", "type": "memory"})
    storage.add_webhook(receiver.url, events=["version_created", "tag_created"], mount="m",
                        outbox=tmp_path / "o")
    emit(storage, 2, "file_written")
    storage.bus.emit("tag_created", storage.node("other:a"), {"tag": "x"})
    storage.bus.emit("tag_created", storage.node("m:a"), {"tag": "v1"})
    storage.bus.emit("version_created", storage.node("m:a"), {"version_id": "1"})
    assert storage.flush_webhooks(timeout=5)
    assert sorted(b["type"] for b in receiver.bodies()) == ["storied.tag.created",
                                                           "storied.version.created"]


def test_large_info_is_cut_to_a_thin_body(storage: StorageManager, receiver: Receiver,
                                          tmp_path: Path) -> None:
    storage.add_webhook(receiver.url, secret=SECRET, outbox=tmp_path / "o")
    storage.bus.emit("version_created", storage.node("m:big"),
                     {"version_id": "7", "size": 3, "metadata": {"blob": "x" * 50_000}})
    assert storage.flush_webhooks(timeout=5)
    headers, body = receiver.delivered[0]
    assert len(body) <= MAX_BODY
    data = standardwebhooks.Webhook(SECRET).verify(body, headers)["data"]
    assert data == {"version_id": "7", "size": 3, "event": "version_created", "truncated": True}


def test_registering_again_updates_and_remove_keeps_pending(storage: StorageManager,
                                                            tmp_path: Path) -> None:
    url, outbox = dead_url(), tmp_path / "o"
    first = storage.add_webhook(url, events=["tag_created"], secret=SECRET, retry=FAST,
                                outbox=outbox)
    second = storage.add_webhook(url, events=["file_written"], secret=SECRET, retry=FAST,
                                 outbox=outbox)
    assert second is first and first.events == ("file_written",)
    emit(storage, 2)
    assert storage.remove_webhook(url) is True
    assert storage.get_webhooks() == []
    assert len(list(outbox.rglob("*.msg"))) == 2  # kept for the next registrant
    assert storage.remove_webhook(url, drop_pending=True, outbox=outbox) is False
    assert list(outbox.rglob("*.msg")) == []


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412475.0) == 5.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(delays=(1.0, 10.0), jitter=0.0, max_retry_after=60)
    assert [policy.delay(n) for n in (1, 2, 5)] == [1.0, 10.0, 10.0]
    assert policy.delay(1, retry_after=1e9) == 60


def test_mount_config_webhooks(storage: StorageManager, receiver: Receiver,
                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    for bad in ([{"events": ["x"]}], [{"url": "ftp://x"}], ["http://x"],
                [{"url": receiver.url, "secret": SECRET, "colour": 1}],
                [{"url": receiver.url, "secret_env": "NOT_SET_ANYWHERE"}]):
        with pytest.raises(StorageConfigError) as info:
            storage._check_webhooks("m", {"webhooks": bad})
        assert SECRET not in str(info.value)
    config = {"webhooks": [{"url": receiver.url, "secret_env": "HOOK_SECRET",
                            "events": ["file_written"]}]}
    storage._mount_webhooks("m", config)
    emit(storage, 1)
    assert storage.flush_webhooks(timeout=5)
    standardwebhooks.Webhook(SECRET).verify(receiver.delivered[0][1], receiver.delivered[0][0])
    assert (tmp_path / "state" / "storied" / "outbox").is_dir()
    storage._unmount_webhooks("m")
    assert storage.get_webhooks() == []


CHILD = textwrap.dedent("""
    import os, signal, sys
    from storied import StorageManager
    from storied.events.webhooks import RetryPolicy
    url, data, outbox, how, secret = sys.argv[1:6]
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "local", "path": data}])
    storage.add_webhook(url, secret=secret, mount="m", outbox=outbox,
                        retry=RetryPolicy(delays=(0.05,), jitter=0.0, max_attempts=1000))
    for i in range(20):
        storage.bus.emit("file_written", storage.node(f"m:f{i}.txt"), {"size": i})
    assert storage.flush_webhooks(timeout=0.3) is False
    print("pending", flush=True)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_pending_deliveries_survive_the_process(tmp_path: Path, how: str) -> None:
    url = dead_url()
    outbox, data = tmp_path / "outbox", tmp_path / "data"
    data.mkdir()
    child = subprocess.run([sys.executable, "-c", CHILD, url, str(data), str(outbox), how, SECRET],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert "pending" in child.stdout, child.stderr
    assert child.returncode == (-9 if how == "kill" else 0), child.stderr
    assert len(list(outbox.rglob("*.msg"))) == 20
    server = Receiver(port=int(url.rsplit(":", 1)[1].split("/")[0]))
    storage = StorageManager()
    try:
        storage.configure([{"name": "m", "type": "local", "path": str(data)}])
        storage.add_webhook(url, secret=SECRET, mount="m", outbox=outbox)
        assert storage.flush_webhooks(timeout=10)
        verifier = standardwebhooks.Webhook(SECRET)
        by_subject: dict[str, set[str]] = {}
        for headers, body in server.delivered:
            subject = verifier.verify(body, headers)["subject"]
            by_subject.setdefault(subject, set()).add(headers["webhook-id"])
        assert sorted(by_subject) == sorted(f"f{i}.txt" for i in range(20))
        assert all(len(ids) == 1 for ids in by_subject.values())
    finally:
        storage.close_webhooks()
        server.stop()


def test_real_writes_and_deletes_on_plain_mounts(receiver: Receiver, tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "mem", "type": "memory"}])
    try:
        storage.add_webhook(receiver.url, events=["file_written", "file_deleted"],
                            secret=SECRET, mount="mem", outbox=tmp_path / "o")
        storage.node("mem:a/b.txt").write_text("hello")
        with storage.node("mem:c.txt").open("w") as handle:
            handle.write("x")
        storage.node("mem:a/b.txt").delete()
        assert storage.flush_webhooks(timeout=5)
        got = [(b["type"], b["subject"]) for b in receiver.bodies()]
        assert got == [("storied.file.written", "a/b.txt"), ("storied.file.written", "c.txt"),
                       ("storied.file.deleted", "a/b.txt")]
        assert receiver.bodies()[0]["data"]["size"] == 5
    finally:
        storage.close_webhooks()


def test_a_dropped_manager_stops_its_threads(receiver: Receiver, tmp_path: Path) -> None:
    import gc

    storage = StorageManager()
    storage.add_webhook(receiver.url, outbox=tmp_path / "o")
    name = f"storied-webhook-{storage.get_webhooks()[0].key[:8]}"
    assert any(t.name == name for t in threading.enumerate())
    del storage
    gc.collect()
    deadline = time.monotonic() + 5
    while any(t.name == name for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == name for t in threading.enumerate())


def test_secret_rotation_signs_with_each(storage: StorageManager, receiver: Receiver,
                                         tmp_path: Path) -> None:
    new, old = "whsec_" + "bmV3LXNlY3JldC1mb3ItdGhlLWhvb2s=", SECRET
    storage.add_webhook(receiver.url, secret=[new, old], outbox=tmp_path / "o")
    emit(storage, 1)
    assert storage.flush_webhooks(timeout=5)
    headers, body = receiver.delivered[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):  # receivers not yet rotated, and those already rotated
        standardwebhooks.Webhook(secret).verify(body, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "b3RoZXI=").verify(body, headers)
    with pytest.raises(InvalidArgumentError):
        storage.add_webhook(receiver.url, secret=[], outbox=tmp_path / "o2")
