"""The storied command line, run as a user would (a subprocess of the installed entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STORIED = [sys.executable, "-c", "from storied.cli.main import main; main()"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run(
        [*STORIED, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data" / "docs").mkdir(parents=True)
    (tmp_path / "data" / "docs" / "a.txt").write_text("alpha\n")
    (tmp_path / "data" / "docs" / "b.txt").write_text("beta\n")
    (tmp_path / "mirror").mkdir()
    mounts = [
        {"name": "home", "type": "local", "base_path": str(tmp_path / "data")},
        {"name": "mirror", "type": "local", "base_path": str(tmp_path / "mirror")},
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    return tmp_path


def test_demo_runs_without_config(tmp_path: Path) -> None:
    result = run(["demo"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped report.txt: same content" in result.stdout
    assert "StoragePermissionError" in result.stdout
    assert "PathEscapeError" in result.stdout
    assert "verify ok: True" in result.stdout and "versions kept: 4" in result.stdout


def test_ls_cat_cp(project: Path) -> None:
    listing = run(["ls", "-l", "home:docs"], project)
    assert listing.returncode == 0, listing.stderr
    assert "a.txt" in listing.stdout and "b.txt" in listing.stdout
    assert run(["cat", "home:docs/a.txt"], project).stdout == "alpha\n"
    copy = run(["cp", "-r", "home:docs", "mirror:docs"], project)
    assert copy.returncode == 0, copy.stderr
    assert "2 copied, 0 skipped" in copy.stdout
    assert (project / "mirror" / "docs" / "b.txt").read_text() == "beta\n"
    again = run(["cp", "-r", "home:docs", "mirror:docs", "--skip", "hash"], project)
    assert "0 copied, 2 skipped" in again.stdout


def test_errors_are_one_line_and_nonzero(project: Path, tmp_path: Path) -> None:
    missing = run(["cat", "home:nope.txt"], project)
    assert missing.returncode == 1 and "error:" in missing.stderr
    assert "Traceback" not in missing.stderr
    escape = run(["cat", "home:../storied.yaml"], project)
    assert escape.returncode == 1 and "traversal" in escape.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    noconf = run(["ls", "home:"], empty)
    assert noconf.returncode != 0 and "storied.yaml" in noconf.stderr


def test_log_and_verify(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    mounts = [{"name": "docs", "type": "local", "base_path": str(tmp_path / "data"),
               "versioning": True}]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    code = ("from storied import StorageManager; s = StorageManager(); s.configure('storied.yaml');"
            "n = s.node('docs:a.txt'); n.write_text('1'); n.write_text('22')")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    log = run(["log", "docs:a.txt"], tmp_path)
    assert log.returncode == 0, log.stderr
    lines = log.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("*") and lines[1].startswith(" ")
    ok = run(["verify"], tmp_path)
    assert ok.returncode == 0 and "ok: 2 records checked" in ok.stdout
    blob = next(p for p in (tmp_path / "data" / ".storied" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"corrupted")
    broken = run(["verify", "docs:"], tmp_path)
    assert broken.returncode == 1 and "corrupt" in broken.stdout
    assert run(["log", "docs:none.txt"], tmp_path).returncode == 1
