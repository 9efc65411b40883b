"""Issue 9 §6: snapshot restores and cleanups in one process, tags added in another, at once.

``restore_snapshot`` removes no version (it writes the recorded ones back as new versions), and
the deleters it is mixed with here (``cleanup_versions``, ``bulk_cleanup_versions``) hold the
maintenance lease of ADR 0005, so a tag added meanwhile never names a deleted version and every
acknowledged tag survives; the snapshot's own versions survive too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from storied import StorageManager

SECONDS = 3.0

COMMON = """
import json, random, sys, time
from storied import StorageManager
from storied.errors import StorageNotFoundError
config, seconds, seed = json.loads(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sm = StorageManager()
sm.configure([config])
rnd = random.Random(seed)
node = sm.node("v:race/f.txt")
print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + seconds
"""

RESTORER = COMMON + """
counts = {"restored": 0, "removed": 0}
n = 0
while time.monotonic() < end:
    n += 1
    node.write_text(f"r{n}-{rnd.random()}")
    node.write_text(f"r{n}b-{rnd.random()}")
    counts["restored"] += len(sm.restore_snapshot("base")["restored"])
    if n % 2:
        counts["removed"] += len(node.cleanup_versions(keep_last=1))
    else:
        done = sm.bulk_cleanup_versions("v:race/", keep_last=1)
        counts["removed"] += sum(len(v) for v in done.values())
print(json.dumps(counts), flush=True)
"""

TAGGER = COMMON + """
tags, refused, n = {}, 0, 0
while time.monotonic() < end:
    n += 1
    found = node.versions
    if len(found) < 2:
        continue
    vid = found[rnd.randrange(len(found) - 1)]["version_id"]
    try:
        node.tag_version(vid, f"t{n}")
        tags[f"t{n}"] = vid
    except StorageNotFoundError:
        refused += 1
print(json.dumps({"tags": tags, "refused": refused}), flush=True)
"""


def _run(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", code, json.dumps(config), str(SECONDS), str(seed)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for seed, code in enumerate((RESTORER, TAGGER))
    ]  # fmt: skip
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
        assert proc.returncode == 0, err[-3000:]
    restorer, tagger = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    return restorer, tagger


def test_tags_survive_restores_and_cleanups_running_at_once(tmp_path: Path) -> None:
    config = {"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}
    sm = StorageManager()
    sm.configure([config])
    node = sm.node("v:race/f.txt")
    node.write_text("base content")
    sm.create_snapshot("v:race", "base")
    base_vid = sm.get_snapshot("base")["files"]["race/f.txt"]
    restorer, tagger = _run(config)
    assert restorer["restored"] > 2 and restorer["removed"] > 2, restorer
    assert tagger["tags"], tagger
    existing = {v["version_id"] for v in node.versions}
    tags = node.get_version_tags()
    assert set(tags.values()) <= existing, "a tag names a deleted version"
    for name, vid in tagger["tags"].items():
        assert tags.get(name) == vid, name
    assert base_vid in existing  # the snapshot protected its version through every cleanup
    assert node.open(version=base_vid).read() == "base content"
    report = sm.verify("v:")
    assert report.ok, report.problems
