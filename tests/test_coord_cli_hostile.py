"""The CLI's data moves under failing storage and SIGKILL: `cp -r --delete` onto a flaky mount
never touches the source and deletes only the extras; `storied mv` killed midway across mounts
leaves every file whole on one side or the other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from storied.cli.main import cli


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".storied" not in p.parts
            and ".storied-tmp-" not in p.name}  # a killed write's hidden leftover


def test_cp_delete_onto_failing_storage_loses_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(12):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.txt").write_bytes(f"content {i}".encode() * 50)
    (dst / "d0").mkdir(parents=True)
    (dst / "d0" / "f0.txt").write_bytes(b"old")
    (dst / "extra.txt").write_bytes(b"extra")
    cfg = tmp_path / "s.json"
    before = _tree(src)
    failed = 0
    for attempt in range(60):  # a new fault trace each run (the seed), until one gets through
        cfg.write_text(json.dumps([
            {"name": "home", "type": "local", "base_path": str(src)},
            {"name": "flaky", "type": "mock", "failure_rate": 0.04, "seed": attempt,
             "retries": 1, "wraps": {"type": "local", "base_path": str(dst)}},
        ]))
        result = CliRunner().invoke(cli, ["-c", str(cfg), "cp", "-r", "--delete", "home:",
                                          "flaky:"])
        assert _tree(src) == before  # the source is never touched
        now = _tree(dst)
        assert all(v in (before.get(k), b"old", b"extra") for k, v in now.items()), now
        if result.exit_code == 0 and failed:
            break
        if result.exit_code == 0:  # no fault hit this run: start over until one does
            import shutil

            shutil.rmtree(dst)
            (dst / "d0").mkdir(parents=True)
            (dst / "d0" / "f0.txt").write_bytes(b"old")
            (dst / "extra.txt").write_bytes(b"extra")
            continue
        failed += 1
        assert result.exit_code == 1, result.stderr
        assert result.stderr.splitlines()[-1].startswith("error:"), result.stderr
    assert failed > 0  # the storage did fail along the way
    assert _tree(dst) == before  # synced: extras gone, everything copied whole


def test_mv_across_mounts_killed_midway_keeps_every_file_whole(tmp_path: Path) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    files = {f"t/{i:03}.bin": os.urandom(20_000) for i in range(300)}
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    dst.mkdir()
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps([{"name": "a", "type": "local", "base_path": str(src)},
                               {"name": "b", "type": "local", "base_path": str(dst)}]))
    proc = subprocess.Popen([sys.executable, "-m", "storied", "-c", str(cfg), "mv", "a:t",
                             "b:t"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any((dst / "t").glob("*.bin")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    left, moved = _tree(src), _tree(dst)
    for name, data in files.items():
        assert left.get(name) == data or moved.get(name) == data, name  # whole somewhere
    for side in (left, moved):
        assert all(files[name] == data for name, data in side.items())  # nothing partial
    from storied import StorageManager

    storage = StorageManager()
    storage.configure(str(cfg))
    listed = {n.basename for n in storage.node("b:t").children()} if moved else set()
    assert listed == {Path(n).name for n in moved}  # leftovers are never listed
