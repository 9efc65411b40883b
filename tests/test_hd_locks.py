"""node.lock(): tokens, waiting, refusals, events, the write guard, request counts on S3."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import (
    InvalidArgumentError,
    LockLostError,
    LockTimeout,
    StorageError,
    StorageManager,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.backends.base import WrappedBackend
from storied.backends.memory import MemoryBackend
from storied.capabilities import Capabilities
from storied.info import WriteMode
from storied.testing import servers
from storied.testing.s3server import TEST_KEY, TEST_SECRET, CountingProxy, make_bucket

pytestmark = pytest.mark.usefixtures("no_lock_left_held")


def _memory(*extra: dict[str, Any]) -> StorageManager:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}, *extra])
    return storage


def _crash(lock: Any) -> None:
    """Stop the holder's renewals without releasing: what a SIGKILL leaves behind."""
    lock._stop.set()  # the timer's call (renewals not started yet) is then a no-op
    if lock._thread is not None:
        lock._thread.join(timeout=5)


def test_tokens_strictly_increase_over_release_and_takeover() -> None:
    one, two = _memory(), _memory()  # two managers over one store: two "processes"
    a, b = one.node("m:job.txt"), two.node("m:job.txt")
    tokens = []
    for node in (a, b, a, a, b):
        with node.lock(timeout=5, ttl=5) as lock:
            tokens.append(lock.token)
    crashed = a.lock(timeout=5, ttl=0.5).acquire()
    tokens.append(crashed.token)
    _crash(crashed)
    with b.lock(timeout=5, ttl=5) as lock:
        tokens.append(lock.token)  # taken over after the crashed holder's TTL
    with a.lock(timeout=5) as lock:
        tokens.append(lock.token)
    crashed.release()  # its lease was taken over: nothing written
    assert tokens == sorted(set(tokens)) and len(tokens) == 8
    assert tokens == list(range(1, 9))


def test_takeover_waits_a_full_unchanged_ttl_and_the_old_holder_is_lost() -> None:
    one, two = _memory(), _memory()
    holder = one.node("m:data.txt").lock(timeout=1, ttl=1.0)
    with pytest.raises(LockLostError), holder:
        one.node("m:data.txt").write_text("first")
        _crash(holder)  # paused: no renewal
        started = time.monotonic()
        with two.node("m:data.txt").lock(timeout=5, ttl=30) as taker:
            assert time.monotonic() - started >= 1.0
            assert taker.token == holder.token + 1
            assert holder.lost and not holder.held
            with pytest.raises(LockLostError):
                one.node("m:data.txt").write_text("stale")  # guarded
            with pytest.raises(LockLostError):
                one.node("m:data.txt").delete()
            two.node("m:data.txt").write_text("second")
    assert one.node("m:data.txt").read_text() == "second"


def test_renewal_keeps_a_lease_past_its_ttl() -> None:
    storage, other = _memory(), _memory()
    with storage.node("m:long.txt").lock(timeout=1, ttl=0.6) as lock:
        time.sleep(1.5)  # 2.5 TTLs: renewed in the background
        assert lock.held and not lock.lost
        storage.node("m:long.txt").write_text("still mine")
        with pytest.raises(LockTimeout):
            other.node("m:long.txt").lock(timeout=0.8).acquire()
    assert not lock.held


def test_timeout_zero_is_one_try_and_none_waits() -> None:
    storage = _memory()
    node = storage.node("m:x")
    holder = node.lock().acquire()
    started = time.monotonic()
    with pytest.raises(LockTimeout) as caught:
        node.lock(timeout=0).acquire()
    assert time.monotonic() - started < 0.5
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, StorageError)
    assert "m:x" in str(caught.value) and holder.owner in str(caught.value)
    threading.Timer(0.7, holder.release).start()
    started = time.monotonic()
    with node.lock(timeout=None) as lock:
        assert time.monotonic() - started >= 0.6
        assert lock.token == holder.token + 1


def test_release_twice_and_reacquire_are_harmless() -> None:
    node = _memory().node("m:r")
    lock = node.lock(timeout=0)
    lock.release()  # never acquired
    lock.acquire()
    with pytest.raises(InvalidArgumentError):
        lock.acquire()  # not re-entrant
    lock.release()
    lock.release()
    assert not lock.held and not lock.lost
    first = lock.token
    with lock:
        assert lock.token == first + 1  # type: ignore[operator]


def test_a_lock_is_per_path_and_shared_by_relative_mounts() -> None:
    storage = _memory({"name": "sub", "path": "m:dir"})
    with storage.node("sub:f.txt").lock(timeout=0):
        with pytest.raises(LockTimeout):
            storage.node("m:dir/f.txt").lock(timeout=0).acquire()
        with storage.node("m:dir/g.txt").lock(timeout=0):
            pass  # another path: free
        with storage.node("m:dir").lock(timeout=0):
            pass  # the folder is another name too


@pytest.mark.parametrize("versioning", [False, True])
def test_lock_objects_stay_in_the_reserved_area(versioning: bool) -> None:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory", "versioning": versioning}])
    node = storage.node("m:doc.txt")
    with node.lock(timeout=0):
        node.write_text("v1")
    assert [c.basename for c in storage.node("m:").children()] == ["doc.txt"]
    raw = MemoryBackend("m")
    keys = [i.path for i in raw.walk("")]
    lock_keys = [k for k in keys if "/locks/paths/" in k]
    assert len(lock_keys) == 1 and lock_keys[0].startswith(".storied/locks/paths/")
    if versioning:
        assert len(node.versions) == 1


def test_events_report_acquire_and_release() -> None:
    storage = _memory()
    seen: list[tuple[str, str, dict[str, Any]]] = []
    storage.on("lock_acquired", lambda n, i: seen.append(("a", n.fullpath, i)))
    storage.on("lock_released", lambda n, i: seen.append(("r", n.fullpath, i)))
    with storage.node("m:e.txt").lock(ttl=7) as lock:
        pass
    assert [s[:2] for s in seen] == [("a", "m:e.txt"), ("r", "m:e.txt")]
    for _, _, info in seen:
        assert {k: info[k] for k in ("token", "ttl", "owner")} == {
            "token": lock.token, "ttl": 7.0, "owner": lock.owner}


@pytest.mark.parametrize(
    ("timeout", "ttl"),
    [(-1, 60), (float("nan"), 60), (True, 60), ("5", 60), (30, 0), (30, -2), (30, None),
     (30, float("inf")), (30, 10**9), (30, 0.01)],
)
def test_bad_arguments_are_refused(timeout: Any, ttl: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        _memory().node("m:a").lock(timeout=timeout, ttl=ttl)


def test_a_read_only_mount_refuses_to_lock() -> None:
    storage = _memory({"name": "ro", "type": "memory", "store": "m", "readonly": True},
                      {"name": "pub", "path": "m:pub", "permissions": "readonly"})
    for path in ("ro:a.txt", "pub:a.txt"):
        with pytest.raises(StoragePermissionError, match="read-only"):
            storage.node(path).lock(timeout=0).acquire()
    assert [i.path for i in MemoryBackend("m").walk("")] == []  # nothing written


class _NoConditional(WrappedBackend):
    """A storage that cannot compare-and-swap."""

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities.replace(conditional_write=False)


def test_a_mount_without_conditional_writes_refuses_to_lock() -> None:
    storage = StorageManager()
    storage.configure([{"name": "plain", "backend": _NoConditional(MemoryBackend("p"))}])
    with pytest.raises(UnsupportedOperation, match=r"'plain'.*conditional writes"):
        storage.node("plain:a.txt").lock(timeout=0).acquire()
    assert list(MemoryBackend("p").walk("")) == []


def test_sftp_refuses_to_lock(tmp_path: Path) -> None:
    handle = servers.start_sftp(tmp_path)
    try:
        storage = StorageManager()
        storage.configure([{"name": "sftp", "type": "sftp", **handle.config}])
        lock = storage.node("sftp:a.txt").lock(timeout=0)
        with pytest.raises(UnsupportedOperation, match="'sftp'"):
            lock.acquire()
        assert not lock.held
        storage.close()
    finally:
        handle.stop()
    assert not any(tmp_path.rglob("locks"))


def _moto_app(strip_conditions: bool) -> Any:
    from moto.server import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    if not strip_conditions:
        return app

    def ignoring(environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop("HTTP_IF_NONE_MATCH", None)
        environ.pop("HTTP_IF_MATCH", None)
        return app(environ, start_response)

    return ignoring


@pytest.fixture
def careless_s3() -> Iterator[str]:
    """An S3-compatible server that ignores If-None-Match and If-Match (moto behind a layer
    dropping those headers)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, _moto_app(True), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def _s3(endpoint: str, versioned: bool = False) -> dict[str, Any]:
    bucket = make_bucket(endpoint, f"lk-{uuid.uuid4().hex[:12]}", versioned=versioned)
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": TEST_KEY, "secret": TEST_SECRET}


def test_an_s3_server_ignoring_preconditions_refuses_to_lock(careless_s3: str) -> None:
    storage = StorageManager()
    config = _s3(careless_s3, versioned=True)
    storage.configure([{**config, "versioning": False}])
    with pytest.raises(UnsupportedOperation, match=r"'s3'.*conditional writes"):
        storage.node("s3:a.txt").lock(timeout=0).acquire()
    with pytest.raises(UnsupportedOperation, match="conditional deletes"):
        storage.get_backend("s3").unwrap().delete_if_match("a.txt", "x")
    from storied.testing.s3server import s3_client

    client = s3_client(careless_s3)
    left = client.list_object_versions(Bucket=config["bucket"])
    client.close()
    assert not left.get("Versions") and not left.get("DeleteMarkers")  # probes left nothing


def test_requests_per_acquire_and_release_on_s3(proxy: CountingProxy) -> None:
    storage = StorageManager()
    storage.configure([_s3(proxy.endpoint_url)])
    node = storage.node("s3:counted.txt")
    node.write_text("probe first")  # the conditional-write probe is paid once per mount
    with node.lock(timeout=0):
        pass
    proxy.reset()
    with node.lock(timeout=0):  # this process released it last: straight over its etag
        pass
    assert dict(proxy.counts) == {"PUT": 2}
    fresh = storage.node("s3:fresh.txt")
    proxy.reset()
    with fresh.lock(timeout=0):
        pass
    assert dict(proxy.counts) == {"GET": 1, "PUT": 2}  # GET (404), create-only PUT, release


def test_s3_delete_if_match(moto: Any) -> None:
    storage = StorageManager()
    storage.configure([_s3(moto.endpoint_url)])
    backend = storage.get_backend("s3").unwrap()
    info = backend.write("k.txt", b"one")
    from storied import PreconditionFailedError, StorageNotFoundError

    with pytest.raises(PreconditionFailedError):
        backend.delete_if_match("k.txt", "0" * 32)
    assert backend.read_bytes("k.txt") == b"one"
    assert info.etag is not None
    backend.delete_if_match("k.txt", info.etag)
    assert not backend.exists("k.txt")
    with pytest.raises(StorageNotFoundError):
        backend.delete_if_match("k.txt", info.etag)


def test_memory_delete_if_match_and_read_tagged() -> None:
    backend = MemoryBackend("t")
    info = backend.write("a/b", b"x")
    assert backend.read_tagged("a/b") == (b"x", info.etag)
    from storied import PreconditionFailedError, StorageNotFoundError

    with pytest.raises(PreconditionFailedError):
        backend.delete_if_match("a/b", "other")
    assert info.etag is not None
    backend.delete_if_match("a/b", info.etag)
    with pytest.raises(StorageNotFoundError):
        backend.delete_if_match("a/b", info.etag)


def test_guard_is_silent_without_locks_and_for_other_paths() -> None:
    storage = _memory()
    storage.node("m:free.txt").write_text("no lock held")
    holder = storage.node("m:held.txt").lock(timeout=1, ttl=0.5).acquire()
    _crash(holder)
    time.sleep(0.6)
    assert holder.lost
    storage.node("m:free.txt").write_text("another path is not guarded")
    held = storage.node("m:held.txt")
    with pytest.raises(LockLostError):
        held.write_text("refused")
    with pytest.raises(LockLostError):
        held.write_bytes(b"refused")
    with pytest.raises(LockLostError), held.open("w") as stream:
        stream.write("refused when it would commit")
    with pytest.raises(LockLostError):
        storage.node("m:free.txt").move_to(held)  # a move onto the locked path
    with pytest.raises(LockLostError):
        held.delete()
    assert not held.exists() and storage.node("m:free.txt").exists()
    holder.release()  # a lost lease: released without error
    storage.node("m:held.txt").write_text("no lock held any more")


class _LostReplies(WrappedBackend):
    """Conditional writes land, then the reply is lost (a transient error) the first times."""

    def __init__(self, inner: Any, lose: int) -> None:
        super().__init__(inner)
        self.lose = lose

    def write(self, path: str, data: Any, **kwargs: Any) -> Any:
        written = self.inner.write(path, data, **kwargs)
        if kwargs.get("mode", WriteMode.OVERWRITE) is not WriteMode.OVERWRITE and self.lose:
            self.lose -= 1
            from storied import TransientStorageError

            raise TransientStorageError("reply lost after the write landed")
        return written


def test_a_retried_conditional_write_that_had_landed_still_grants_once() -> None:
    lossy = _LostReplies(MemoryBackend("lossy"), lose=10**6)
    storage = StorageManager()
    storage.configure([{"name": "l", "backend": lossy, "retries": 2}])
    node = storage.node("l:f.txt")
    tokens = []
    for _ in range(3):  # grant and release: each first reply lost, the retry refused
        with node.lock(timeout=2, ttl=0.6) as lock:
            time.sleep(0.5)  # a renewal, its reply lost too
            assert lock.held
            node.write_text("ok")
            tokens.append(lock.token)
    assert tokens == [1, 2, 3]
    with node.lock(timeout=0) as again:  # the last release did land: free at once
        assert again.token == 4


def test_transient_failures_while_acquiring_are_waited_out() -> None:
    from storied.testing.doubles import FaultyBackend

    faulty = FaultyBackend(MemoryBackend("faulty"), fail_times=3,
                           operations=frozenset({"write", "info", "open_read"}))
    storage = StorageManager()
    storage.configure([{"name": "f", "backend": faulty, "retries": 1}])
    with storage.node("f:x").lock(timeout=5) as lock:
        assert lock.token == 1


def test_s3_mount_with_a_base_path_keeps_locks_below_it(proxy: CountingProxy) -> None:
    config = {**_s3(proxy.endpoint_url), "base_path": "team/a"}
    storage = StorageManager()
    storage.configure([config])
    node = storage.node("s3:job.txt")
    node.write_text("x")  # the probe, once
    proxy.reset()
    from storied.core import locking

    locking._RELEASED.clear()  # as if another process had released it last
    with node.lock(timeout=0):
        pass
    assert dict(proxy.counts) == {"GET": 1, "PUT": 2}  # one GET through the prefix layer
    from storied.testing.s3server import s3_client

    client = s3_client(proxy.endpoint_url)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=config["bucket"])["Contents"]]
    client.close()
    assert any(k.startswith("team/a/.storied/locks/paths/") for k in keys), keys
    assert [c.basename for c in storage.node("s3:").children()] == ["job.txt"]


def test_a_lock_held_at_exit_is_released(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from storied import StorageManager; s = StorageManager(); "
        f"s.configure([{{'name': 'd', 'type': 'local', 'base_path': {str(tmp_path)!r}}}]); "
        "s.node('d:x').lock(ttl=60).acquire(); print('held')"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60).stdout == "held\n"  # fmt: skip
    storage = StorageManager()
    storage.configure([{"name": "d", "type": "local", "base_path": str(tmp_path)}])
    with storage.node("d:x").lock(timeout=0) as lock:  # free at once, not after 60 s
        assert lock.token == 2


FORKER = r"""
import os, sys
from storied import StorageManager, LockTimeout
s = StorageManager()
s.configure([{"name": "d", "type": "local", "base_path": sys.argv[1]}])
node = s.node("d:forked.txt")
with node.lock(timeout=0, ttl=30) as lock:
    pid = os.fork()
    if pid == 0:
        node.write_text("child")  # not judged by the parent's lock
        sys.exit(0)  # a normal exit: exit hooks run in the child
    os.waitpid(pid, 0)
    other = StorageManager()
    other.configure([{"name": "d", "type": "local", "base_path": sys.argv[1]}])
    try:
        other.node("d:forked.txt").lock(timeout=0).acquire()
        print("released by the child")
    except LockTimeout:
        print("still held" if lock.held else "lost")
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork() here")
def test_a_forked_child_does_not_release_its_parents_lock(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FORKER, str(tmp_path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.stdout == "still held\n", result.stderr[-2000:]


def test_a_history_kept_elsewhere_keeps_the_locks_too() -> None:
    storage = StorageManager()
    storage.configure([{"name": "h", "type": "memory"},
                       {"name": "d", "type": "memory", "versioning": True, "history": "h:hist"}])
    node = storage.node("d:f.txt")
    with node.lock(timeout=0):
        node.write_text("one")
    assert [i.path for i in MemoryBackend("d").walk("")] == ["f.txt"]
    held = [i.path for i in MemoryBackend("h").walk("") if "/locks/paths/" in i.path]
    assert len(held) == 1 and held[0].startswith("hist/locks/paths/")
    assert len(node.versions) == 1


class _SlowFirstWrites(WrappedBackend):
    """The first conditional writes take ``delay`` seconds to return (after landing)."""

    def __init__(self, inner: Any, slow: int, delay: float) -> None:
        super().__init__(inner)
        self.slow, self.delay = slow, delay

    def write(self, path: str, data: Any, **kwargs: Any) -> Any:
        written = self.inner.write(path, data, **kwargs)
        if kwargs.get("mode", WriteMode.OVERWRITE) is not WriteMode.OVERWRITE and self.slow:
            self.slow -= 1
            time.sleep(self.delay)
        return written


def test_a_grant_slower_than_its_ttl_is_renewed_before_it_is_handed_out() -> None:
    storage = StorageManager()
    storage.configure([{"name": "s", "backend": _SlowFirstWrites(MemoryBackend("slow"), 1, 0.4)}])
    lock = storage.node("s:f").lock(timeout=5, ttl=0.3).acquire()
    try:
        assert lock.held and not lock.lost and lock.token == 1
        storage.node("s:f").write_text("guarded, and allowed")
    finally:
        lock.release()


def test_a_lease_expired_on_the_holders_clock_but_not_taken_is_still_released() -> None:
    storage, other = _memory(), _memory()
    lock = storage.node("m:quiet.txt").lock(timeout=0, ttl=0.3)
    with pytest.raises(LockLostError), lock:
        _crash(lock)
        time.sleep(0.4)  # expired for its holder; nobody else wanted it
    with other.node("m:quiet.txt").lock(timeout=0) as again:  # freed by the release
        assert again.token == lock.token + 1  # type: ignore[operator]


class _Outage(WrappedBackend):
    """Every call fails transiently while ``down`` is set."""

    down = False

    def _check(self) -> None:
        if self.down:
            from storied import TransientStorageError

            raise TransientStorageError("storage unreachable")

    def write(self, path: str, data: Any, **kwargs: Any) -> Any:
        self._check()
        return self.inner.write(path, data, **kwargs)

    def info(self, path: str) -> Any:
        self._check()
        return self.inner.info(path)


@pytest.mark.parametrize(("outage", "lost"), [(0.5, False), (1.6, True)])
def test_a_storage_outage_loses_the_lease_only_when_longer_than_its_ttl(
    outage: float, lost: bool
) -> None:
    flaky = _Outage(MemoryBackend("outage"))
    storage = StorageManager()
    storage.configure([{"name": "o", "backend": flaky, "retries": 1}])
    lock = storage.node("o:f").lock(timeout=0, ttl=1.2).acquire()
    flaky.down = True
    time.sleep(outage)
    flaky.down = False
    time.sleep(0.6)  # a renewal attempt after the storage came back
    assert lock.lost is lost and lock.held is not lost
    if lost:
        with pytest.raises(LockLostError):
            storage.node("o:f").write_text("refused")
    else:
        storage.node("o:f").write_text("allowed")
    lock.release()
