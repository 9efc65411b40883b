"""Webhooks of versioned mounts: delivered from the mount's event journal (the outbox written
with the version commit) with a per-endpoint cursor in the history root, against a real HTTP
server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks

from storied import StorageManager
from storied.backends.base import WrappedBackend
from storied.backends.local import LocalBackend
from storied.errors import TransientStorageError
from storied.testing.s3server import TEST_KEY, TEST_SECRET, MotoHandle, make_bucket
from test_he_webhooks import FAST, SECRET, Receiver, dead_url


def versioned(data: Path) -> StorageManager:
    manager = StorageManager()
    manager.configure([{"name": "v", "type": "local", "path": str(data), "versioning": True}])
    return manager


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def subjects_and_ids(server: Receiver) -> dict[str, set[str]]:
    verifier = standardwebhooks.Webhook(SECRET)
    found: dict[str, set[str]] = {}
    for headers, body in server.delivered:
        payload = verifier.verify(body, headers)
        assert payload["id"] == headers["webhook-id"]
        found.setdefault(f'{payload["type"]} {payload["subject"]}', set()).add(
            headers["webhook-id"])
    return found


def test_versioned_writes_are_delivered_from_the_journal(data: Path, receiver: Receiver,
                                                         tmp_path: Path) -> None:
    storage = versioned(data)
    try:
        receiver.script.extend([("status", 500, {}), ("drop",)])
        storage.node("v:before.txt").write_text("not sent: before the registration")
        hook = storage.add_webhook(receiver.url, events=["version_created", "tag_created"],
                                   secret=SECRET, mount="v", retry=FAST,
                                   outbox=tmp_path / "o")
        for i in range(3):
            storage.node(f"v:docs/{i}.txt").write_text(f"v{i}")
        storage.node("v:docs/0.txt").tag_version(-1, "release")
        assert storage.flush_webhooks(timeout=10)
        found = subjects_and_ids(receiver)
        assert sorted(found) == ["storied.tag.created docs/0.txt",
                                 *(f"storied.version.created docs/{i}.txt" for i in range(3))]
        assert all(len(ids) == 1 for ids in found.values())
        # the journal is the outbox: nothing went through the local spool
        assert list((tmp_path / "o").rglob("*.msg")) == []
        cursor = json.loads((data / ".storied" / "webhooks" / f"{hook.key}.json").read_text())
        assert int(cursor["cursor"]) == 5  # before.txt + 3 writes + the tag
        ids = [h["webhook-id"] for _, h, _, _ in receiver.requests]
        assert [e.id for e in storage.events("v:")][1:] == [i.removeprefix("msg_")
                                                             for i in dict.fromkeys(ids)]
    finally:
        storage.close_webhooks()


def test_events_of_a_process_without_the_webhook_are_delivered(data: Path, receiver: Receiver,
                                                               tmp_path: Path) -> None:
    first = versioned(data)
    first.add_webhook(receiver.url, events=["version_created"], secret=SECRET, mount="v",
                      outbox=tmp_path / "o")
    first.close_webhooks()  # the cursor stays in the history root
    writer = versioned(data)  # registers no webhook at all
    for i in range(4):
        writer.node(f"v:w{i}.txt").write_text("x")
    later = versioned(data)
    try:
        later.add_webhook(receiver.url, events=["version_created"], secret=SECRET, mount="v",
                          outbox=tmp_path / "o")
        assert later.flush_webhooks(timeout=10)
        assert sorted(subjects_and_ids(receiver)) == [
            f"storied.version.created w{i}.txt" for i in range(4)]
    finally:
        later.close_webhooks()


CHILD = textwrap.dedent("""
    import os, signal, sys
    from storied import StorageManager
    from storied.events.webhooks import RetryPolicy
    url, data, outbox, secret = sys.argv[1:5]
    storage = StorageManager()
    storage.configure([{"name": "v", "type": "local", "path": data, "versioning": True}])
    storage.add_webhook(url, events=["version_created"], secret=secret, mount="v",
                        outbox=outbox,
                        retry=RetryPolicy(delays=(0.05,), jitter=0.0, max_attempts=1000))
    for i in range(10):
        storage.node(f"v:f{i}.txt").write_text(str(i))
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkill_right_after_the_writes_loses_no_event(data: Path, tmp_path: Path) -> None:
    url = dead_url()
    child = subprocess.run([sys.executable, "-c", CHILD, url, str(data), str(tmp_path / "o"),
                            SECRET], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert "written" in child.stdout and child.returncode == -9, child.stderr
    server = Receiver(port=int(url.rsplit(":", 1)[1].split("/")[0]))
    storage = versioned(data)
    try:
        storage.add_webhook(url, events=["version_created"], secret=SECRET, mount="v",
                            outbox=tmp_path / "o")
        assert storage.flush_webhooks(timeout=10)
        found = subjects_and_ids(server)
        assert sorted(found) == sorted(f"storied.version.created f{i}.txt" for i in range(10))
        assert all(len(ids) == 1 for ids in found.values())
    finally:
        storage.close_webhooks()
        server.stop()


def test_two_processes_share_one_cursor(data: Path, receiver: Receiver, tmp_path: Path) -> None:
    one, two = versioned(data), versioned(data)
    try:
        for manager in (one, two):
            manager.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                                mount="v", outbox=tmp_path / f"o{id(manager)}")
        for i in range(6):
            (one if i % 2 else two).node(f"v:p{i}.txt").write_text("x")
        assert one.flush_webhooks(timeout=10) and two.flush_webhooks(timeout=10)
        found = subjects_and_ids(receiver)
        assert sorted(found) == [f"storied.version.created p{i}.txt" for i in range(6)]
        assert all(len(ids) == 1 for ids in found.values())  # duplicates keep their id
    finally:
        one.close_webhooks()
        two.close_webhooks()


@pytest.mark.parametrize("engine", ["portable", "native"])
def test_s3_mounts_deliver_from_their_journal(moto: MotoHandle, receiver: Receiver,
                                              tmp_path: Path, engine: str) -> None:
    bucket = make_bucket(moto.endpoint_url, f"hk-{uuid.uuid4().hex[:12]}",
                         versioned=engine == "native")
    config = {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
              "key": TEST_KEY, "secret": TEST_SECRET, "versioning": True}
    managers = [StorageManager(), StorageManager()]
    try:
        for number, manager in enumerate(managers):
            manager.configure([config])
            manager.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                                mount="v", retry=FAST, outbox=tmp_path / f"o{number}")
        receiver.script.append(("status", 503, {"Retry-After": "0"}))
        for i in range(4):
            managers[i % 2].node(f"v:s{i}.txt").write_text(str(i))
        assert all(m.flush_webhooks(timeout=10) for m in managers)
        found = subjects_and_ids(receiver)
        assert sorted(found) == [f"storied.version.created s{i}.txt" for i in range(4)]
        assert all(len(ids) == 1 for ids in found.values())
        assert not list(tmp_path.rglob("*.msg"))  # the journal was the outbox
    finally:
        for manager in managers:
            manager.close_webhooks()


def test_a_journal_started_anew_is_sent_from_its_start(data: Path, receiver: Receiver,
                                                       tmp_path: Path) -> None:
    storage = versioned(data)
    hook = storage.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                               mount="v", outbox=tmp_path / "o")
    for i in range(3):
        storage.node(f"v:old{i}.txt").write_text("x")
    assert storage.flush_webhooks(timeout=10)
    storage.close_webhooks()
    cursor = data / ".storied" / "webhooks" / f"{hook.key}.json"
    saved = cursor.read_bytes()
    fresh = tmp_path / "fresh"  # the history deleted and started again: numbering restarts
    fresh.mkdir()
    (fresh / ".storied" / "webhooks").mkdir(parents=True)
    (fresh / ".storied" / "webhooks" / cursor.name).write_bytes(saved)
    again = versioned(fresh)
    try:
        again.node("v:new.txt").write_text("y")
        again.add_webhook(receiver.url, events=["version_created"], secret=SECRET, mount="v",
                          outbox=tmp_path / "o")
        assert again.flush_webhooks(timeout=10)
        assert sorted(subjects_and_ids(receiver)) == [
            "storied.version.created new.txt",
            *(f"storied.version.created old{i}.txt" for i in range(3))]
    finally:
        again.close_webhooks()


def test_one_journal_reader_per_machine(data: Path, receiver: Receiver, tmp_path: Path) -> None:
    managers = [versioned(data), versioned(data)]  # two processes' worth, one outbox
    try:
        for manager in managers:
            manager.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                                mount="v", outbox=tmp_path / "o")
        for i in range(6):
            managers[i % 2].node(f"v:q{i}.txt").write_text("x")
        assert all(m.flush_webhooks(timeout=10) for m in managers)
        assert sorted(subjects_and_ids(receiver)) == [
            f"storied.version.created q{i}.txt" for i in range(6)]
        assert len(receiver.delivered) == 6  # one reader: no duplicates at all
    finally:
        for manager in managers:
            manager.close_webhooks()


def test_same_mount_name_other_storage_is_not_starved(receiver: Receiver,
                                                      tmp_path: Path) -> None:
    apps = []
    for name in ("app1", "app2"):  # two programs, each with its own 'v', one webhook URL
        (tmp_path / name).mkdir()
        apps.append(versioned(tmp_path / name))
    try:
        for app in apps:
            app.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                            mount="v", outbox=tmp_path / "o")
        for number, app in enumerate(apps):
            app.node(f"v:from{number}.txt").write_text("x")
        assert all(app.flush_webhooks(timeout=10) for app in apps)
        assert sorted(subjects_and_ids(receiver)) == [
            "storied.version.created from0.txt", "storied.version.created from1.txt"]
    finally:
        for app in apps:
            app.close_webhooks()


class JournalOutage(WrappedBackend):
    """A real backend whose journal listings fail while ``down`` is set."""

    down = False
    failed = 0

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        if self.down and "journal" in path:
            self.failed += 1
            raise TransientStorageError("journal listing refused (outage)")
        return self.inner.list_names(path, start_after)


def test_journal_outage_is_backed_off_then_delivered(data: Path, receiver: Receiver,
                                                     tmp_path: Path) -> None:
    flaky = JournalOutage(LocalBackend(str(data)))
    storage = StorageManager()
    storage.configure([{"name": "v", "backend": flaky, "versioning": True, "retries": 1}])
    try:
        storage.add_webhook(receiver.url, events=["version_created"], secret=SECRET, mount="v",
                            outbox=tmp_path / "o")
        storage.node("v:first.txt").write_text("x")  # learns the journal's tail
        assert storage.flush_webhooks(timeout=10)
        flaky.down = True
        for i in range(3):
            storage.node(f"v:during{i}.txt").write_text("x")
        assert storage.flush_webhooks(timeout=1.6) is False
        assert 1 <= flaky.failed <= 3  # backed off (0.2 s reads would have made 8)
        flaky.down = False
        assert storage.flush_webhooks(timeout=10)
        assert sorted(subjects_and_ids(receiver)) == [
            *(f"storied.version.created during{i}.txt" for i in range(3)),
            "storied.version.created first.txt"]
    finally:
        storage.close_webhooks()


def test_relative_mount_gets_its_own_events_with_its_paths(data: Path, receiver: Receiver,
                                                           tmp_path: Path) -> None:
    storage = versioned(data)
    storage.add_mount({"name": "sub", "path": "v:docs"})
    try:
        storage.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                            mount="sub", outbox=tmp_path / "o")
        storage.node("sub:x.txt").write_text("in")
        storage.node("v:elsewhere.txt").write_text("out")
        storage.node("v:docs/y.txt").write_text("in, written through the parent")
        assert storage.flush_webhooks(timeout=10)
        bodies = [json.loads(body) for _, body in receiver.delivered]
        assert [(b["source"], b["subject"]) for b in bodies] == [("storied://sub", "x.txt"),
                                                                ("storied://sub", "y.txt")]
    finally:
        storage.close_webhooks()


def test_file_written_on_a_versioned_mount_comes_from_the_journal(
        data: Path, receiver: Receiver, tmp_path: Path) -> None:
    storage = versioned(data)
    try:
        storage.add_webhook(receiver.url, events=["file_written", "version_created"],
                            secret=SECRET, mount="v", outbox=tmp_path / "o")
        storage.node("v:a.txt").write_text("12345")
        with storage.node("v:b.txt").open("w") as handle:
            handle.write("xy")
        assert storage.flush_webhooks(timeout=10)
        assert list((tmp_path / "o").rglob("*.msg")) == []  # none through the spool
        found = subjects_and_ids(receiver)
        assert sorted(found) == ["storied.file.written a.txt", "storied.file.written b.txt",
                                 "storied.version.created a.txt",
                                 "storied.version.created b.txt"]
        assert len(receiver.delivered) == 4  # each once: the bus copies were not sent
        sizes = {json.loads(body)["subject"]: json.loads(body)["data"]["size"]
                 for _, body in receiver.delivered
                 if json.loads(body)["type"] == "storied.file.written"}
        assert sizes == {"a.txt": 5, "b.txt": 2}
    finally:
        storage.close_webhooks()


def test_journal_outcomes_final_failures_advance_410_stops(data: Path, receiver: Receiver,
                                                           tmp_path: Path) -> None:
    storage = versioned(data)
    try:
        receiver.script.extend([("status", 400, {}), ("status", 410, {})])
        hook = storage.add_webhook(receiver.url, events=["version_created"], secret=SECRET,
                                   mount="v", retry=FAST, outbox=tmp_path / "o")
        for i in range(3):
            storage.node(f"v:o{i}.txt").write_text("x")
        assert storage.flush_webhooks(timeout=10)
        assert hook.disabled and len(receiver.requests) == 2 and receiver.delivered == []
        storage.close_webhooks()  # the worker saves its cursor, then ends
        cursor = json.loads((data / ".storied" / "webhooks" / f"{hook.key}.json").read_text())
        assert cursor["cursor"] == "1"  # past the 400 (final), not past the 410
    finally:
        storage.close_webhooks()
