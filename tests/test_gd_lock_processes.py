"""A legal hold racing a cleanup in another OS process (real processes, not threads), on the
portable engine (local disk) and on an S3 Object Lock bucket (moto): whenever
``set_legal_hold`` returns, the version it held exists after the cleanup, held; when it fails,
it says the version is gone, and nothing is left recorded. Single-file and bulk cleanups."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.testing.s3server import MotoHandle, s3_client

_SCRIPT = r'''
import json, os, sys, time
from storied import StorageManager
from storied.errors import StorageNotFoundError
config, role, path, target, go, delay = sys.argv[1:7]
sm = StorageManager()
sm.configure(json.loads(config))
node = sm.node(path)
open(go + "." + role, "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.0005)
time.sleep(float(delay))
if role == "hold":
    try:
        node.set_legal_hold(True, version=target)
        print("held")
    except StorageNotFoundError as exc:
        print("gone", exc)
elif role == "bulk":
    sm.bulk_cleanup_versions(path.rsplit("/", 1)[0] + "/", keep_last=1)
    print("cleaned")
else:
    node.cleanup_versions(keep_last=1)
    print("cleaned")
'''


def _race(tmp_path: Path, config: list[dict[str, Any]], path: str, target: str,
          cleaner: str, hold_delay: float, clean_delay: float) -> str:
    script = tmp_path / "race.py"
    script.write_text(_SCRIPT)
    go = tmp_path / f"go-{uuid.uuid4().hex[:8]}"
    text = json.dumps(config)
    procs = {role: subprocess.Popen([sys.executable, str(script), text, role, path, target,
                                     str(go), str(delay)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for role, delay in (("hold", hold_delay), (cleaner, clean_delay))}
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{role}").exists() for role in procs):
        assert time.monotonic() < deadline, "the racers never got ready"
        assert all(p.poll() is None for p in procs.values()), [p.communicate()
                                                               for p in procs.values()]
        time.sleep(0.01)
    go.touch()
    outputs = {role: p.communicate(timeout=60) for role, p in procs.items()}
    for role, p in procs.items():
        assert p.returncode == 0, (role, outputs[role])
    assert outputs[cleaner][0].strip() == "cleaned"
    return outputs["hold"][0].split(" ", 1)[0].strip()


def _check_round(sm: StorageManager, path: str, target: str, outcome: str) -> None:
    node = sm.node(path)
    alive = {v["version_id"] for v in node.versions}
    assert outcome in ("held", "gone")
    if outcome == "held":
        assert target in alive and node.get_legal_hold(target) is True
    else:
        assert target not in alive


def _rounds(tmp_path: Path, config: list[dict[str, Any]], cleaner: str) -> list[str]:
    sm = StorageManager()
    sm.configure(config)
    seen = []
    for round_ in range(6):
        path = f"v:r{round_}/f.txt"
        node = sm.node(path)
        for i in range(5):
            node.write_text(f"c{i}")
        target = node.versions[1]["version_id"]
        hold_delay, clean_delay = (0.0, 0.002 * round_) if round_ % 2 else (0.002 * round_, 0.0)
        outcome = _race(tmp_path, config, path, target, cleaner, hold_delay, clean_delay)
        _check_round(sm, path, target, outcome)
        seen.append(outcome)
    return seen


@pytest.mark.parametrize("cleaner", ["single", "bulk"])
def test_hold_racing_a_cleanup_in_another_process_local(tmp_path: Path, cleaner: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = [{"name": "v", "type": "local", "base_path": str(data), "versioning": True}]
    assert set(_rounds(tmp_path, config, cleaner)) <= {"held", "gone"}


def test_hold_racing_a_cleanup_in_another_process_s3_object_lock(tmp_path: Path,
                                                                 moto: MotoHandle) -> None:
    client = s3_client(moto.endpoint_url)
    bucket = f"gp-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.close()
    config = [{"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
               "key": "k", "secret": "s"}]
    assert set(_rounds(tmp_path, config, "bulk")) <= {"held", "gone"}
