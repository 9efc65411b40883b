"""node.lock() across real processes: counters on local disk and S3 (moto), SIGKILL, SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import LockTimeout, StorageManager
from storied.core import locking
from storied.testing.s3server import TEST_KEY, TEST_SECRET, make_bucket

WORKER = r"""
import json, sys
from storied import StorageManager
config, path = json.loads(sys.argv[1]), sys.argv[2]
count, ttl = int(sys.argv[3]), float(sys.argv[4])
storage = StorageManager()
storage.configure([config])
node = storage.node(path)
tokens = []
for _ in range(count):
    with node.lock(timeout=None, ttl=ttl) as lock:
        value = int(node.read_text()) if node.exists() else 0
        node.write_text(str(value + 1))
        tokens.append(lock.token)
print(json.dumps(tokens))
"""

HOLDER = r"""
import json, sys
from storied import StorageManager, LockLostError
config, path, ttl = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
storage = StorageManager()
storage.configure([config])
node = storage.node(path)
lock = node.lock(timeout=5, ttl=ttl)
try:
    with lock:
        print(json.dumps({"token": lock.token}), flush=True)
        sys.stdin.readline()  # the test says when to write
        try:
            node.write_text("holder")
            print(json.dumps({"write": "done", "lost": lock.lost}), flush=True)
        except LockLostError as exc:
            print(json.dumps({"write": "refused", "lost": lock.lost, "error": str(exc)}),
                  flush=True)
except LockLostError:
    print(json.dumps({"exit": "LockLostError"}), flush=True)
else:
    print(json.dumps({"exit": "clean"}), flush=True)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _single_threaded_moto() -> Iterator[str]:
    """A moto S3 server that serves one request at a time: moto checks If-None-Match /
    If-Match and then stores in two steps, so its threaded server can grant two conditional
    writes at once; a real S3 is atomic, which one request at a time models."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                         threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def atomic_s3() -> Iterator[str]:
    yield from _single_threaded_moto()


def _s3_config(endpoint: str, name: str = "s3") -> dict[str, Any]:
    bucket = make_bucket(endpoint, f"locks-{uuid.uuid4().hex[:12]}")
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": TEST_KEY, "secret": TEST_SECRET}


def _configs(kind: str, tmp_path: Path, endpoint: str) -> dict[str, Any]:
    if kind == "local":
        return {"name": "disk", "type": "local", "base_path": str(tmp_path)}
    return _s3_config(endpoint, "disk")


def _run_counters(config: dict[str, Any], workers: int, each: int) -> list[list[int]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config), "disk:counter.txt", str(each), "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
        )
        for _ in range(workers)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=170)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize(("kind", "each"), [("local", 250), ("s3", 100)])
def test_four_processes_increment_exactly(
    kind: str, each: int, tmp_path: Path, atomic_s3: str
) -> None:
    config = _configs(kind, tmp_path, atomic_s3)
    started = time.monotonic()
    results = _run_counters(config, 4, each)
    elapsed = time.monotonic() - started
    storage = StorageManager()
    storage.configure([config])
    assert storage.node("disk:counter.txt").read_text() == str(4 * each)
    tokens = [t for worker in results for t in worker]
    assert len(set(tokens)) == 4 * each  # every grant its own token
    for worker in results:
        assert worker == sorted(worker) and len(set(worker)) == len(worker)
    assert max(tokens) == 4 * each and min(tokens) == 1  # one grant per increment, no gaps
    print(f"{kind}: 4 x {each} locked increments in {elapsed:.1f} s")


def _holder(config: dict[str, Any], ttl: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, json.dumps(config), "disk:data.txt", str(ttl)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)["token"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_sigkilled_holder_is_taken_over_after_its_ttl_not_before(
    kind: str, tmp_path: Path, atomic_s3: str
) -> None:
    config = _configs(kind, tmp_path, atomic_s3)
    proc, token = _holder(config, ttl=2.0)
    proc.kill()
    proc.wait(timeout=10)
    storage = StorageManager()
    storage.configure([config])
    node = storage.node("disk:data.txt")
    started = time.monotonic()
    with pytest.raises(LockTimeout):
        node.lock(timeout=1.0, ttl=2).acquire()  # the lease still has time: not before
    with node.lock(timeout=10, ttl=2) as lock:
        waited = time.monotonic() - started
        assert lock.token == token + 1
        node.write_text("new holder")
    assert 2.0 <= waited < 6.0  # a full TTL unchanged, then taken over
    assert node.read_text() == "new holder"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_sigstopped_holder_finds_its_lease_lost_and_its_write_refused(
    kind: str, tmp_path: Path, atomic_s3: str
) -> None:
    config = _configs(kind, tmp_path, atomic_s3)
    proc, token = _holder(config, ttl=2.0)
    assert proc.stdin is not None and proc.stdout is not None
    storage = StorageManager()
    storage.configure([config])
    node = storage.node("disk:data.txt")
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        with node.lock(timeout=15, ttl=30) as lock:
            assert lock.token == token + 1
            node.write_text("taker")
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.3)  # let its renewal thread look at its clock
            proc.stdin.write("go\n")
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())
            assert answer["write"] == "refused" and answer["lost"] is True
            assert json.loads(proc.stdout.readline()) == {"exit": "LockLostError"}
            assert node.read_text() == "taker"  # the other holder's data intact
            assert lock.held and not lock.lost
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert node.read_text() == "taker"


CHAOS = r"""
import json, random, sys, time
from storied import StorageManager, LockLostError
config, out = json.loads(sys.argv[1]), sys.argv[2]
storage = StorageManager()
storage.configure([config])
node = storage.node("disk:chaos.txt")
rnd = random.Random()
stop = sys.argv[3]  # the test creates this file when it has seen enough
import os
with open(out, "a") as log:
    while not os.path.exists(stop):
        lock = node.lock(timeout=None, ttl=1.0)
        try:
            with lock:
                acquired = time.time()
                time.sleep(rnd.uniform(0.05, 0.3))
                ended = time.time()
                still = not lock.lost  # measured after 'ended': valid at least until then
        except LockLostError:
            pass
        log.write(json.dumps([lock.token, acquired, ended, still]) + "\n")
        log.flush()
"""


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_no_double_grant_while_holders_are_paused_past_their_ttl(
    kind: str, tmp_path: Path, atomic_s3: str
) -> None:
    """Three processes take the lock in turn while the test SIGSTOPs one of them for 1.5 TTLs
    at a time: any two grants that overlap in time include one whose holder knew it was lost."""
    import random

    config = _configs(kind, tmp_path / "data", atomic_s3)
    (tmp_path / "data").mkdir()
    out = tmp_path / "grants.jsonl"
    stop = tmp_path / "stop"
    procs = [
        subprocess.Popen([sys.executable, "-c", CHAOS, json.dumps(config), str(out), str(stop)],
                         stderr=subprocess.PIPE, env=_env(), text=True)
        for _ in range(3)
    ]  # fmt: skip
    rnd = random.Random(9)
    paused = 0
    storage = StorageManager()
    storage.configure([config])
    backend, key, _ = locking._where(storage.node("disk:chaos.txt"))
    pids = {proc.pid for proc in procs}
    def lost_seen() -> bool:  # a holder that knew its lease was lost has logged its grant
        lines = out.read_text().splitlines() if out.exists() else []
        return any(line.endswith("false]") for line in lines)

    try:  # pause holders until one of them was paused past its TTL (under load that can
        start = time.monotonic()  # take several tries: a victim may have just released)
        while time.monotonic() - start < 6 or not (paused >= 3 and lost_seen()):
            assert time.monotonic() - start < 90, "no holder was ever paused past its TTL"
            time.sleep(rnd.uniform(0.1, 0.4))
            seen = locking._read_tagged(backend, key)  # pause the holder, or anyone
            body = json.loads(seen[0]) if seen else {}
            owner = str(body.get("owner", ""))
            pid = int(owner.split(":")[1]) if owner.count(":") == 2 else 0
            if body.get("state") != "held" or pid not in pids:
                continue  # nobody holds it right now: look again
            os.kill(pid, signal.SIGSTOP)
            time.sleep(1.5)
            os.kill(pid, signal.SIGCONT)
            paused += 1
    finally:
        stop.touch()
        for proc in procs:
            os.kill(proc.pid, signal.SIGCONT)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
    grants = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(grants) > 10 and paused >= 3
    tokens = [g[0] for g in grants]
    assert len(set(tokens)) == len(tokens)  # every grant its own token
    by_start = sorted(grants, key=lambda g: g[1])
    assert [g[0] for g in by_start] == sorted(tokens)  # tokens follow the order of grants
    for held in (g for g in grants if g[3]):
        for other in grants:
            if other is not held and held[1] <= other[1]:
                assert other[1] >= held[2], ("double grant", held, other)
    assert any(not g[3] for g in grants)  # some holder was paused past its TTL, and knew
