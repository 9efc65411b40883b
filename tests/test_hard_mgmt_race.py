"""Issue 8 item 1.5: taggers and snapshot creators racing deleters never leave a dangling tag.

Two processes share one versioned mount (local disk, or a versioned bucket on the moto S3
server): a *deleter* keeps writing new versions and removing old ones (``cleanup_versions``,
``compact_versions``, ``delete_version``, ``bulk_cleanup_versions``), a *tagger* keeps tagging old
versions and taking snapshots. Afterwards no tag and no snapshot entry may name a version that
does not exist, every tag the tagger was told succeeded must be there, and the run must have
actually raced (both sides did work, some tags were refused because their version went).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from storied import StorageManager
from storied.testing.s3server import MotoHandle, make_bucket

SECONDS = 4.0

COMMON = """
import json, random, sys, time
from storied import StorageManager
from storied.errors import StorageNotFoundError, StoragePermissionError

config, seconds, seed = json.loads(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sm = StorageManager()
sm.configure([config])
rnd = random.Random(seed)
node = sm.node("v:race/f.txt")
print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + seconds
"""

DELETER = COMMON + """
counts = {"written": 0, "removed": 0, "refused": 0}
n = 0
while time.monotonic() < end:
    n += 1
    for _ in range(2):
        node.write_text(f"d{n}-{rnd.random()}")
        counts["written"] += 1
    pick = n % 4
    if pick == 0:
        counts["removed"] += len(node.cleanup_versions(keep_last=1))
    elif pick == 1:
        node.write_text(node.read_text())
        counts["removed"] += node.compact_versions()
    elif pick == 2:
        found = node.versions
        try:
            node.delete_version(found[0]["version_id"])
            counts["removed"] += 1
        except (StoragePermissionError, StorageNotFoundError):
            counts["refused"] += 1
    else:
        done = sm.bulk_cleanup_versions("v:race/", keep_last=1)
        counts["removed"] += sum(len(v) for v in done.values())
print(json.dumps(counts), flush=True)
"""

TAGGER = COMMON + """
tags, snaps, refused = {}, [], 0
n = 0
while time.monotonic() < end:
    n += 1
    found = node.versions
    if len(found) < 2:
        continue
    vid = found[rnd.randrange(len(found) - 1)]["version_id"]  # an old one: a deleter's target
    try:
        if n % 5 == 0:
            sm.create_snapshot("v:race", f"s{n}")
            snaps.append(f"s{n}")
        else:
            node.tag_version(vid, f"t{n}")
            tags[f"t{n}"] = vid
    except StorageNotFoundError:
        refused += 1  # its version went meanwhile: refused, nothing left behind
print(json.dumps({"tags": tags, "snaps": snaps, "refused": refused}), flush=True)
"""


def _run_race(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", code, json.dumps(config), str(SECONDS), str(seed)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for seed, code in enumerate((DELETER, TAGGER))
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", (line, proc.stderr.read() if proc.stderr else "")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    deleter, tagger = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    return deleter, tagger


def _check_no_dangling(sm: StorageManager, tagger: dict[str, Any]) -> None:
    node = sm.node("v:race/f.txt")
    existing = {v["version_id"] for v in node.versions}
    tags = node.get_version_tags()
    assert set(tags.values()) <= existing, "a tag names a deleted version"
    for name, vid in tagger["tags"].items():  # every acknowledged tag is there, unchanged
        assert tags.get(name) == vid, name
    listed = {s["tag"] for s in sm.list_snapshots()}
    assert listed == set(tagger["snaps"])  # refused snapshots left no manifest
    for tag in listed:
        for path, vid in sm.get_snapshot(tag)["files"].items():
            assert path == "race/f.txt" and vid in existing, (tag, vid)
    for vid in set(tags.values()):
        assert node.open(version=vid).read()  # readable, not only listed
    report = sm.verify("v:")
    assert report.ok, report.problems


def _assert_raced(deleter: dict[str, Any], tagger: dict[str, Any]) -> None:
    assert deleter["removed"] > 5 and deleter["written"] > 10, deleter
    assert len(tagger["tags"]) > 5, tagger


def test_tagger_racing_cleanup_local(tmp_path: Path) -> None:
    config = {"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}
    sm = StorageManager()
    sm.configure([config])
    for i in range(4):
        sm.node("v:race/f.txt").write_text(f"start {i}")
    deleter, tagger = _run_race(config)
    _assert_raced(deleter, tagger)
    _check_no_dangling(sm, tagger)


def test_tagger_racing_cleanup_native_s3(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"race-{uuid.uuid4().hex[:12]}", versioned=True)
    config = {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
              "key": "k", "secret": "s"}
    sm = StorageManager()
    sm.configure([config])
    history = sm.history("v")
    assert history is not None and history.name == "native"
    for i in range(4):
        sm.node("v:race/f.txt").write_text(f"start {i}")
    try:
        deleter, tagger = _run_race(config)
        _assert_raced(deleter, tagger)
        _check_no_dangling(sm, tagger)
    finally:
        sm.close()
