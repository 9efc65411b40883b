"""deduplicate(strategy='reference') SIGKILLed at random points (in a subprocess, before and
after each of its writes, and at random times) leaves every path readable with its original
bytes, on local disk and on S3 (moto); a later run finishes the job and gc keeps what is used."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.referencing import Referencing, find_layer
from storied.core import mounting
from storied.testing.s3server import MotoHandle, make_bucket

CHILD = r'''
import json, os, signal, sys
from storied import StorageManager
from storied.backends.base import WrappedBackend
from storied.backends.referencing import Referencing
from storied.core import mounting

config, kill_at = json.loads(sys.argv[1]), int(sys.argv[2])
calls = 0

class Killer(WrappedBackend):
    def write(self, path, data, **kw):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # before this write
        info = self.inner.write(path, data, **kw)
        if calls == -kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # right after it
        return info

original = mounting.compressing.wrap
mounting.compressing.wrap = lambda n, c, b: Referencing(Killer(original(n, c, b)))
storage = StorageManager()
storage.configure([config])
print("ready", flush=True)
storage.deduplicate("m:", strategy="reference", workers=int(sys.argv[3]))
'''

CONTENTS = {f"g{g}/{i}.bin": bytes([g]) * 3000 for g in range(6)
            for i in range(3)}
CONTENTS.update({"solo.bin": b"alone" * 1000, "g0/other.bin": b"\x07" * 3000})


def _check(config: dict[str, Any]) -> None:
    storage = _storage(config)
    for path, data in CONTENTS.items():
        assert storage.node(f"m:{path}").read_bytes() == data, path


def _storage(config: dict[str, Any]) -> StorageManager:
    original = mounting.compressing.wrap
    mounting.compressing.wrap = lambda n, c, b: (  # type: ignore[assignment]
        lambda x: x if find_layer(x, "") else Referencing(x))(original(n, c, b))
    try:
        storage = StorageManager()
        storage.configure([config])
    finally:
        mounting.compressing.wrap = original  # type: ignore[assignment]
    return storage


def _run(config: dict[str, Any], kill_at: int, workers: int, after: float | None) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(config), str(kill_at),
                              str(workers)], stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    if after is not None:
        time.sleep(after)
        child.send_signal(signal.SIGKILL)
    return child.wait(timeout=120)


def _exercise(config: dict[str, Any]) -> None:
    storage = _storage(config)
    rng = random.Random(os.environ.get("PYTEST_SEED", "ref-sigkill"))
    # the writes of a run from plain files: the key (first run only), 6 content copies
    # (until one is kept), 18 references
    points = [1, 2, 7, -7, 8, *rng.sample(range(3, 19), 3), -rng.randrange(1, 19)]
    killed = 0
    for point in points:
        for path, data in CONTENTS.items():  # plain files again: every point is reached
            storage.node(f"m:{path}").write_bytes(data)
        code = _run(config, point, rng.choice([1, 4]), None)
        killed += code == -signal.SIGKILL
        _check(config)
    for _ in range(2):
        _run(config, 0, 4, rng.uniform(0.0, 0.4))
        _check(config)
    assert killed >= len(points) - 1  # the kills did land mid-run
    report = _storage(config).deduplicate("m:", strategy="reference")
    assert all(not s["reason"].startswith("changed") for g in report["groups"]
               for s in g["skipped"])
    _check(config)
    gc = _storage(config).collect_references("m", grace=0)
    assert gc["referenced"] == 6
    _check(config)
    assert _storage(config).find_duplicates("m:") == []


def test_sigkill_local(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    _exercise({"name": "m", "type": "local", "base_path": str(tmp_path / "d")})


def test_sigkill_s3(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"kill-{uuid.uuid4().hex[:10]}")
    _exercise({"name": "m", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
               "key": "testing", "secret": "testing"})


@pytest.fixture(autouse=True)
def _quiet_boto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
