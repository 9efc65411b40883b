"""storied cp/mv --workers N: parallel copies, a summary line on every run (also when a file
failed), and a bytes/rate/ETA/current-file bar on a terminal."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from storied import StorageManager
from storied.cli.main import cli
from storied.testing.s3server import MotoHandle, make_bucket


@pytest.fixture
def project(tmp_path: Path, moto: MotoHandle) -> Path:
    (tmp_path / "plain").mkdir()
    bucket = make_bucket(moto.endpoint_url, f"pcli-{uuid.uuid4().hex[:12]}")
    mounts = [
        {"name": "plain", "type": "local", "base_path": str(tmp_path / "plain")},
        {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
         "key": "testing", "secret": "testing"},
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    return tmp_path


def sm(project: Path) -> StorageManager:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    return storage


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def _fill(project: Path, count: int) -> dict[str, bytes]:
    storage = sm(project)
    files = {f"t/f{i:02d}.txt": b"line %d\n" % i * (i + 1) for i in range(count)}
    for rel, data in files.items():
        storage.node(f"s3:{rel}").write_bytes(data)
    return files


def test_cp_r_with_workers_copies_everything_and_prints_the_summary(project: Path) -> None:
    files = _fill(project, 30)
    code, out, err = run(project, "cp", "-r", "--workers", "6", "s3:t", str(project / "out"))
    assert code == 0, err
    assert "30 copied, 0 skipped, 0 failed" in out
    assert f"{sum(map(len, files.values())) / 1024:.1f} KiB" in out
    assert {f"t/{p.name}": p.read_bytes() for p in (project / "out").iterdir()} == files


def test_cp_r_with_a_failing_file_copies_the_others_and_exits_1(project: Path) -> None:
    files = _fill(project, 12)
    (project / "out" / "f03.txt").mkdir(parents=True)  # a directory where a file must go
    code, out, err = run(project, "cp", "-r", "-j", "4", "s3:t", str(project / "out"))
    assert code == 1
    assert "11 copied, 0 skipped, 1 failed" in out
    assert len(err.strip().splitlines()) == 1 and "f03.txt" in err
    landed = {p.name: p.read_bytes() for p in (project / "out").iterdir() if p.is_file()}
    assert landed == {k[2:]: v for k, v in files.items() if k != "t/f03.txt"}


def test_mv_across_mounts_with_workers_prints_the_summary(project: Path) -> None:
    files = _fill(project, 15)
    code, out, err = run(project, "mv", "--workers", "5", "s3:t", "plain:moved")
    assert code == 0, err
    assert "moved s3:t -> plain:moved (15 files)" in out
    assert "15 moved, 0 skipped, 0 failed" in err
    assert not sm(project).node("s3:t").exists()
    landed = {p.name: p.read_bytes() for p in (project / "plain" / "moved").iterdir()}
    assert landed == {k[2:]: v for k, v in files.items()}


def test_workers_must_be_positive(project: Path) -> None:
    for command in (["cp", "-r"], ["mv"]):
        code, _, err = run(project, *command, "--workers", "0", "s3:t", "plain:x")
        assert code == 2 and "workers" in err.lower()


def test_terminal_bar_shows_bytes_rate_and_current_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = sm(project)
    storage.node("s3:big/large.bin").write_bytes(b"\x07" * (2 * 1024 * 1024))
    screen = io.StringIO()
    monkeypatch.setattr("storied.cli.main.err", Console(file=screen, force_terminal=True,
                                                        width=150, markup=False))
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run(project, "cp", "-r", "s3:big", str(project / "out"))
    assert code == 0 and "1 copied" in out
    shown = screen.getvalue()
    assert "large.bin" in shown and "2.1 MB" in shown and "/s" in shown


def _whole_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".storied" not in p.parts and ".storied-tmp-" not in p.name}


@pytest.mark.parametrize("phase", ["copying", "deleting"])
def test_parallel_mv_sigkilled_keeps_every_file_whole_on_one_side(
    tmp_path: Path, phase: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    src, dst = tmp_path / "a", tmp_path / "b"
    files = {f"t/{i:03}.bin": os.urandom(20_000) for i in range(200)}
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    dst.mkdir()
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps([{"name": "a", "type": "local", "base_path": str(src)},
                               {"name": "b", "type": "local", "base_path": str(dst)}]))
    proc = subprocess.Popen([sys.executable, "-m", "storied", "-c", str(cfg), "mv", "-j", "8",
                             "a:t", "b:t"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def reached() -> bool:
        if phase == "copying":
            return any((dst / "t").glob("*.bin"))
        return len(list((src / "t").glob("*.bin"))) < len(files)  # deletes began

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not reached():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    left, moved = _whole_tree(src), _whole_tree(dst)
    for name, data in files.items():
        assert left.get(name) == data or moved.get(name) == data, name  # whole somewhere
    for side in (left, moved):
        assert all(files[name] == data for name, data in side.items())  # nothing partial
