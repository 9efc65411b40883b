"""``storied watch`` run as a user would: lines and ``--json``, ``--since``, live tailing of
another process's writes, Ctrl-C exits 0 quietly, errors are one line with exit code 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from storied import StorageManager

STORIED = [sys.executable, "-c", "from storied.cli.main import main; main()"]
ENV = {**os.environ, "COLUMNS": "220", "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}


def _setup(tmp_path: Path) -> StorageManager:
    (tmp_path / "data").mkdir()
    (tmp_path / "storied.yaml").write_text(json.dumps([
        {"name": "docs", "type": "local", "base_path": str(tmp_path / "data"),
         "versioning": True},
        {"name": "plain", "type": "local", "base_path": str(tmp_path)}]))
    sm = StorageManager()
    sm.configure(str(tmp_path / "storied.yaml"))
    return sm


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STORIED, *args], cwd=cwd, capture_output=True, text=True, env=ENV,
                          timeout=120)


def test_once_lines_json_and_since(tmp_path: Path) -> None:
    sm = _setup(tmp_path)
    sm.node("docs:a.txt").write_text("1")
    sm.node("docs:sub/b.txt").write_text("2")
    sm.node("docs:a.txt").tag_version(-1, "rel")
    done = _run(["watch", "docs:", "--since", "0", "--once"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("1 ") and " version_created docs:a.txt " in lines[0]
    assert " tag_created docs:a.txt " in lines[2]
    done = _run(["watch", "docs:sub", "--since", "0", "--once", "--json"], tmp_path)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["type"], r["path"], r["cursor"]) for r in rows] == [
        ("version_created", "sub/b.txt", "2")]
    assert set(rows[0]) == {"cursor", "id", "type", "mount", "path", "version_id", "time",
                            "info"}
    assert rows[0]["info"]["size"] == 1
    done = _run(["watch", "docs:", "--since", "2", "--once"], tmp_path)
    assert [line.split()[2] for line in done.stdout.splitlines()] == ["tag_created"]


def test_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    _setup(tmp_path)
    for args in (["watch", "plain:", "--once"], ["watch", "docs:", "--since", "nope"],
                 ["watch", "nosuch:", "--once"], ["watch", "docs"]):
        done = _run(args, tmp_path)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1, args
        assert "Traceback" not in done.stderr


def test_tails_another_process_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    sm = _setup(tmp_path)
    sm.node("docs:old.txt").write_text("before the watch started")
    proc = subprocess.Popen([*STORIED, "watch", "docs:", "--poll", "0.05", "--json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        time.sleep(1.5)  # let it start and find the tail
        writer = StorageManager()
        writer.configure(str(tmp_path / "storied.yaml"))
        writer.node("docs:new.txt").write_text("live")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert json.loads(line)["path"] == "new.txt"  # only events after it started
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err == "" and out == ""


def test_a_hostile_journal_entry_cannot_fake_lines() -> None:
    from datetime import UTC, datetime

    from storied.cli.watch_command import event_line
    from storied.events.model import Event

    event = Event(type="version_created\x1b[2J", mount="docs", path="a\nfake 2 line",
                  version_id="v\r1", time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), cursor="7")
    line = event_line(event)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.startswith("7 2026-01-02T03:04:05Z version_created\\x1b[2J docs:a fake 2 line")
