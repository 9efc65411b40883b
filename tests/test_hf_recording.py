"""Record/replay at the backend API: record against a real S3 server (moto), stop it, replay
with identical results; mismatches name the closest call; no credential reaches a cassette."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import StorageError, StorageIOError, StorageNotFoundError
from storied.testing.mock import MockBackend
from storied.testing.recording import INLINE_LIMIT, ReplayMismatchError, secrets_of
from storied.testing.s3server import MotoHandle, make_bucket, start_moto

KEY = "AKIAHFTESTKEY0000001"
SECRET = "hf/Secret+Value=0123456789abcdefghij"
TOKEN = "FwoGZXIvYXdzHFTESTSESSIONTOKEN0123456789"


@pytest.fixture(autouse=True)
def _no_session_outlives_its_test() -> Iterator[None]:
    """Sessions a test leaves open (a tampered cassette kept in replay) end with the test: an
    open session keeps the clock and id stand-ins in place for the whole process."""
    yield
    from storied.core.recording import _ACTIVE

    for session in list(_ACTIVE):
        session.stop()


@pytest.fixture
def own_moto() -> Iterator[MotoHandle]:
    """A moto server of this test alone: the test stops it before replaying."""
    handle = start_moto()
    try:
        yield handle
    finally:
        handle.stop()


def _s3(endpoint: str, bucket: str) -> dict[str, Any]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": KEY, "secret": SECRET, "token": TOKEN, "region": "us-east-1",
            "retries": 1}  # fmt: skip


def _scenario(storage: StorageManager) -> list[Any]:
    """What the code under test does; returns everything it observed."""
    seen: list[Any] = []
    small = storage.node("s3:docs/readme.txt")
    small.write_text("hello replay")
    big = storage.node("s3:data/blob.bin")
    big.write_bytes(bytes(range(256)) * 40)  # > INLINE_LIMIT: goes to the bodies folder
    seen += [small.read_text(), small.exists(), small.size(), small.md5hash()]
    seen += [big.read_bytes() == bytes(range(256)) * 40, big.info().etag]
    seen.append(sorted(n.path for n in storage.node("s3:").children()))
    with big.open("rb") as stream:
        stream.seek(100)
        seen.append(stream.read(10))
    small.copy_to("s3:docs/copy.txt")
    seen.append(storage.node("s3:docs/copy.txt").read_text())
    try:
        storage.node("s3:missing.txt").read_text()
    except StorageNotFoundError as exc:
        seen.append(("missing", type(exc).__name__, str(exc)))
    seen.append(small.delete())
    seen.append(small.exists())
    seen.append(storage.node("s3:docs").children()[0].path)
    return seen


def test_record_against_moto_stop_it_replay_identically(
    own_moto: MotoHandle, tmp_path: Path
) -> None:
    bucket = make_bucket(own_moto.endpoint_url, f"rec-{uuid.uuid4().hex[:10]}")
    cassette = tmp_path / "fixtures" / "api-calls.json"
    live = StorageManager()
    live.configure([_s3(own_moto.endpoint_url, bucket)])
    with live.record_mode(cassette):
        recorded = _scenario(live)
    assert cassette.exists() and any((tmp_path / "fixtures" / "api-calls.bodies").iterdir())
    own_moto.stop()  # no storage from here on

    offline = StorageManager()
    offline.configure([_s3(own_moto.endpoint_url, bucket)])
    with offline.replay_mode(cassette):
        replayed = _scenario(offline)
    assert replayed == recorded
    with pytest.raises(StorageError):  # outside replay the server really is gone
        offline.node("s3:docs/copy.txt").read_text()


def test_no_credential_reaches_the_cassette(
    moto: MotoHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_secret = "EnvSecretValueHF0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", env_secret)
    bucket = make_bucket(moto.endpoint_url, f"sec-{uuid.uuid4().hex[:10]}")
    storage = StorageManager()
    storage.configure([
        _s3(moto.endpoint_url, bucket),
        {"name": "wrapped", "type": "mock",
         "wraps": {"type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                   "key": KEY, "secret": SECRET, "base_path": "w",
                   "client_kwargs": {"aws_session_token": TOKEN}}},
    ])  # fmt: skip
    cassette = tmp_path / "secrets.json"
    with storage.record_mode(cassette):
        _scenario(storage)
        url = storage.node("s3:data/blob.bin").url()
        storage.node("wrapped:x.txt").write_text(f"not a secret, {len(SECRET)}")
        storage.node("wrapped:x.txt").read_text()
        storage.node("s3:echo.txt").write_bytes(b"x" * (INLINE_LIMIT + 1) + SECRET.encode())
        storage.node("s3:echo.txt").read_bytes()  # a body that happens to hold the secret
    assert url is not None and KEY in url  # the live answer was signed with the key...
    texts = [cassette.read_text()]
    texts += [p.read_bytes().decode("latin-1") for p in (tmp_path / "secrets.bodies").iterdir()]
    for text in texts:
        for secret in (KEY, SECRET, TOKEN, env_secret):
            assert secret not in text
    assert "X-Amz-Signature=<redacted>" in texts[0]  # ...the recorded one is not


def test_secrets_of_finds_nested_and_url_credentials() -> None:
    config = {"name": "w", "type": "webdav", "url": "https://bob:pa55word@dav.example/x",
              "password": "hunter22", "client_kwargs": {"aws_secret_access_key": "nested-s"},
              "key_filename": "/home/bob/.ssh/id", "base_path": "secretive/but/a/path"}  # fmt: skip
    found = secrets_of(config, environ={"GITHUB_TOKEN": "ghp_abcdef", "HOME": "/root"})
    assert found == {"pa55word", "hunter22", "nested-s", "ghp_abcdef"}


def _memory_cassette(tmp_path: Path) -> Path:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    cassette = tmp_path / "m.json"
    with storage.record_mode(cassette):
        storage.node("m:notes/a.txt").write_text("one")
        storage.node("m:notes/a.txt").read_text()
    return cassette


def test_a_call_not_in_the_cassette_names_the_closest(tmp_path: Path) -> None:
    cassette = _memory_cassette(tmp_path)
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    with storage.replay_mode(cassette):
        with pytest.raises(ReplayMismatchError) as caught:
            storage.node("m:notes/b.txt").read_text()
        assert isinstance(caught.value, StorageError) and isinstance(caught.value, LookupError)
        assert "notes/b.txt" in str(caught.value)
        assert caught.value.closest is not None and "notes/a.txt" in caught.value.closest
        assert storage.node("m:notes/a.txt").write_text("one")
        assert storage.node("m:notes/a.txt").read_text() == "one"
        with pytest.raises(ReplayMismatchError, match="already played"):
            storage.node("m:notes/a.txt").read_text()  # recorded once, asked twice
        with pytest.raises(ReplayMismatchError):
            storage.node("m:notes/a.txt").write_text("two")  # other content, other call


def test_new_episodes_records_what_is_missing(tmp_path: Path) -> None:
    cassette = _memory_cassette(tmp_path)
    before = len(json.loads(cassette.read_text())["interactions"])
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory", "store": "fresh"}])
    with storage.replay_mode(cassette, mode="new_episodes"):
        storage.node("m:notes/a.txt").write_text("one")  # replayed: the store stays empty
        storage.node("m:new.txt").write_text("new")  # not recorded: reaches the store
    assert storage.node("m:new.txt").read_text() == "new"
    assert not storage.node("m:notes/a.txt").exists()
    after = json.loads(cassette.read_text())["interactions"]
    assert len(after) > before and any(i["args"].get("path") == "new.txt" for i in after)
    fresh = StorageManager()
    fresh.configure([{"name": "m", "type": "memory", "store": "elsewhere"}])
    with fresh.replay_mode(cassette):
        fresh.node("m:notes/a.txt").write_text("one")
        fresh.node("m:new.txt").write_text("new")


def test_only_the_chosen_mounts_and_back_after_the_block(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "a", "type": "memory"}, {"name": "b", "type": "memory"},
                       {"name": "sub", "path": "a:inner"}])  # fmt: skip
    cassette = tmp_path / "only-a.json"
    with storage.record_mode(cassette, mounts=["sub"]):  # a relative mount: its root, 'a'
        storage.node("sub:x.txt").write_text("x")
        storage.node("b:y.txt").write_text("y")
    mounts = {i["mount"] for i in json.loads(cassette.read_text())["interactions"]}
    assert mounts == {"a"}
    assert storage.node("a:inner/x.txt").read_text() == "x"  # recorded calls really happened
    storage.record_mode(tmp_path / "other.json")
    storage.node("a:z.txt").write_text("z")
    storage.stop_cassette()
    assert "z.txt" in (tmp_path / "other.json").read_text()
    storage.node("a:after.txt").write_text("after")  # not recorded any more
    assert "after.txt" not in (tmp_path / "other.json").read_text()


def test_replay_refuses_a_missing_or_foreign_cassette(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    with pytest.raises(StorageIOError, match="No cassette"):
        storage.replay_mode(tmp_path / "none.json")
    (tmp_path / "x.json").write_text('{"interactions": []}')
    with pytest.raises(StorageIOError, match="not a storied cassette"):
        storage.replay_mode(tmp_path / "x.json")


def test_errors_and_faults_replay_as_recorded(tmp_path: Path) -> None:
    backend = MockBackend(failure_rate=0.5, seed=3, faults=["transient"])
    storage = StorageManager()
    storage.add_mount({"name": "flaky", "backend": backend, "retries": 1})
    cassette = tmp_path / "faults.json"

    def run(sm: StorageManager) -> list[str]:
        out = []
        for i in range(20):
            try:
                sm.node(f"flaky:f{i}").write_text("x")
                out.append("ok")
            except StorageError as exc:
                out.append(f"{type(exc).__name__}: {exc}")
        return out

    with storage.record_mode(cassette):
        live = run(storage)
    assert "ok" in live and any(r != "ok" for r in live)
    offline = StorageManager()
    offline.add_mount({"name": "flaky", "backend": MockBackend(), "retries": 1})
    with offline.replay_mode(cassette):
        assert run(offline) == live


def test_native_s3_versions_replay(own_moto: MotoHandle, tmp_path: Path) -> None:
    bucket = make_bucket(own_moto.endpoint_url, f"ver-{uuid.uuid4().hex[:10]}", versioned=True)
    cassette = tmp_path / "versions.json"

    def run(storage: StorageManager) -> list[Any]:
        node = storage.node("s3:report.txt")
        for text in ("first", "second", "third"):
            node.write_text(text)
        versions = node.versions
        oldest = storage.node("s3:report.txt", version=versions[0]["version_id"])
        return [[v["version_id"] for v in versions], oldest.read_text(), node.read_text(),
                node.version_count]  # fmt: skip

    live = StorageManager()
    live.configure([_s3(own_moto.endpoint_url, bucket)])
    with live.record_mode(cassette):
        recorded = run(live)
    assert recorded[1:] == ["first", "third", 3]
    own_moto.stop()
    offline = StorageManager()
    offline.configure([_s3(own_moto.endpoint_url, bucket)])
    with offline.replay_mode(cassette):
        assert run(offline) == recorded


def test_portable_history_reads_replay(tmp_path: Path) -> None:
    """Reads of a mount with storied's own history replay (its writes name records by time
    and writer id, so they cannot: docs/CASSETTE.md)."""
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory", "versioning": True, "store": "hist"}])
    storage.node("m:a.txt").write_text("one")
    storage.node("m:a.txt").write_text("two")

    def read(sm: StorageManager) -> list[Any]:
        versions = sm.node("m:a.txt").versions
        return [[v["version_id"] for v in versions],
                sm.node("m:a.txt", version=versions[0]["version_id"]).read_text()]  # fmt: skip

    with storage.record_mode(tmp_path / "hist.json"):
        recorded = read(storage)
    offline = StorageManager()
    offline.configure([{"name": "m", "type": "memory", "versioning": True, "store": "empty"}])
    with offline.replay_mode(tmp_path / "hist.json"):
        assert read(offline) == recorded == [recorded[0], "one"]


def _tampered(tmp_path: Path, change: Any) -> StorageManager:
    cassette = _memory_cassette(tmp_path)
    document = json.loads(cassette.read_text())
    change(document["interactions"])
    cassette.write_text(json.dumps(document))
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory", "store": "tampered"}])
    storage.replay_mode(cassette)
    return storage


def test_a_hostile_cassette_names_no_file_outside_and_no_foreign_class(tmp_path: Path) -> None:
    def body_outside(items: list[dict[str, Any]]) -> None:
        read = next(i for i in items if i["op"] == "read_bytes")
        read["result"] = {"t": "bytes", "v": {"sha256": "0" * 64, "size": 4,
                                              "file": "../../../../etc/passwd"}}  # fmt: skip

    storage = _tampered(tmp_path, body_outside)
    storage.node("m:notes/a.txt").write_text("one")
    with pytest.raises(StorageIOError, match="not a SHA-256"):
        storage.node("m:notes/a.txt").read_text()

    def foreign_error(items: list[dict[str, Any]]) -> None:
        read = next(i for i in items if i["op"] == "read_bytes")
        del read["result"]
        read["error"] = {"class": "subprocess.CalledProcessError", "message": "boom"}

    storage = _tampered(tmp_path, foreign_error)
    storage.node("m:notes/a.txt").write_text("one")
    with pytest.raises(StorageIOError, match=r"subprocess\.CalledProcessError: boom"):
        storage.node("m:notes/a.txt").read_text()


def test_recording_from_threads_keeps_every_call(tmp_path: Path) -> None:
    import threading

    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    cassette = tmp_path / "threads.json"
    with storage.record_mode(cassette):
        def work(n: int) -> None:
            for i in range(25):
                storage.node(f"m:t{n}/f{i}").write_text("x")

        workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    writes = [i for i in json.loads(cassette.read_text())["interactions"] if i["op"] == "write"]
    assert len(writes) == 100
    offline = StorageManager()
    offline.configure([{"name": "m", "type": "memory", "store": "threads-replay"}])
    with offline.replay_mode(cassette):
        for n in range(4):
            for i in range(25):
                offline.node(f"m:t{n}/f{i}").write_text("x")


def test_a_mount_added_while_recording_everything_is_recorded(tmp_path: Path) -> None:
    storage = StorageManager()
    cassette = tmp_path / "late.json"
    with storage.record_mode(cassette):
        storage.add_mount({"name": "late", "type": "memory"})
        storage._cassette_mount_added("late")  # the manager's hook after a mount is added
        storage._cassette_mount_added("late")  # idempotent
        storage.node("late:a.txt").write_text("x")
    interactions = json.loads(cassette.read_text())["interactions"]
    assert [i["op"] for i in interactions if i["mount"] == "late"] == ["has_native_versions",
                                                                      "write"]  # fmt: skip
    storage.node("late:b.txt").write_text("after")  # the block is over: back to the store
    assert "b.txt" not in cassette.read_text()
    assert storage.node("late:b.txt").read_text() == "after"


def test_a_corrupt_cassette_is_a_storage_error_not_a_crash(tmp_path: Path) -> None:
    def bad_info(items: list[dict[str, Any]]) -> None:
        write = next(i for i in items if i["op"] == "write")
        write["result"] = {"t": "info", "v": {"path": "x", "no_such_field": 1}}

    storage = _tampered(tmp_path, bad_info)
    with pytest.raises(StorageIOError, match="malformed"):
        storage.node("m:notes/a.txt").write_text("one")
    with pytest.raises(StorageIOError, match="interaction 0 is malformed"):
        _tampered(tmp_path, lambda items: items[0].pop("op"))


def _child(tmp_path: Path, body: str) -> int:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, sys
        from storied import StorageManager
        storage = StorageManager()
        storage.configure([{{"name": "m", "type": "memory"}}])
        storage.record_mode(sys.argv[1])
        storage.node("m:child.txt").write_text("from the child")
        {body}
    """)
    cassette = str(tmp_path / "child.json")
    return subprocess.run([sys.executable, "-c", script, cassette], timeout=60).returncode


def test_without_with_the_cassette_is_written_at_exit(tmp_path: Path) -> None:
    assert _child(tmp_path, "sys.exit(0)") == 0
    assert "child.txt" in (tmp_path / "child.json").read_text()


def test_sigkill_while_recording_leaves_the_previous_cassette(tmp_path: Path) -> None:
    previous = _memory_cassette(tmp_path)
    (tmp_path / "child.json").write_bytes(previous.read_bytes())
    assert _child(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)") == -9
    document = json.loads((tmp_path / "child.json").read_text())  # still whole, still valid
    assert document == json.loads(previous.read_text())


def test_bad_record_and_replay_arguments(tmp_path: Path) -> None:
    from storied.errors import InvalidArgumentError, MountNotFoundError

    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    with pytest.raises(MountNotFoundError):
        storage.record_mode(tmp_path / "x.json", mounts=["nope"])
    cassette = _memory_cassette(tmp_path)
    with pytest.raises(InvalidArgumentError, match="new_episodes"):
        storage.replay_mode(cassette, mode="sometimes")
    storage.node("m:still.txt").write_text("mounts untouched")  # nothing was left half-wrapped
    assert "still.txt" not in cassette.read_text()
