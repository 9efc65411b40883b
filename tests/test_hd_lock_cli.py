"""``storied lock MOUNT:PATH -- COMMAND``: run as a user would, in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

STORIED = [sys.executable, "-c", "from storied.cli.main import main; main()"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "storied.yaml").write_text(
        f"- name: disk\n  type: local\n  base_path: {tmp_path / 'data'}\n"
    )
    return tmp_path


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([*STORIED, *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


def test_the_command_runs_under_the_lock_and_its_exit_code_is_kept(project: Path) -> None:
    result = run(["lock", "disk:job", "--", sys.executable, "-c",
                  "print('inside'); raise SystemExit(3)"], project)  # fmt: skip
    assert result.returncode == 3 and result.stdout == "inside\n"
    assert run(["lock", "disk:job", "--timeout", "0", "--", "true"], project).returncode == 0


def test_a_busy_lock_is_one_line_and_exit_1(project: Path) -> None:
    holder = subprocess.Popen(
        [*STORIED, "lock", "disk:job", "--", sys.executable, "-c",
         "import time; print('held', flush=True); time.sleep(30)"],
        cwd=project, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        result = run(["lock", "disk:job", "--timeout", "0.5", "--", "echo", "never"], project)
        assert time.monotonic() - started >= 0.5
        assert result.returncode == 1 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: Lock on disk:job not acquired")
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_missing_command_and_bad_options(project: Path) -> None:
    missing = run(["lock", "disk:job", "--", "no-such-command-xyz"], project)
    assert missing.returncode == 127 and "command not found" in missing.stderr
    bad = run(["lock", "disk:job", "--ttl", "0", "--", "true"], project)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ttl must be")
    assert run(["lock", "disk:job", "--timeout", "soon", "--", "true"], project).returncode == 2
    assert run(["lock", "nomount:job", "--", "true"], project).returncode == 1


def test_two_cli_processes_serialise_a_shell_read_modify_write(project: Path) -> None:
    counter = project / "data" / "n.txt"
    counter.write_text("0")
    script = (
        f"import pathlib, time; p = pathlib.Path({str(counter)!r}); v = int(p.read_text()); "
        "time.sleep(0.01); p.write_text(str(v + 1))"
    )
    loop = (
        "import subprocess, sys\n"
        "for _ in range(6):\n"
        f"    assert subprocess.call({STORIED!r} + ['lock', 'disk:n.txt', '--timeout', 'none',"
        f" '--', sys.executable, '-c', {script!r}]) == 0\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", loop], cwd=project) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=170) == 0
    assert counter.read_text() == "12"


def _start(project: Path, ttl: str, child: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*STORIED, "lock", "disk:job", "--ttl", ttl, "--", sys.executable,
                             "-c", child], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


CHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: (print('got term', flush=True), sys.exit(7)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_sigterm_is_passed_on_and_the_lock_released(project: Path) -> None:
    import signal

    proc = _start(project, "60", CHILD)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 7 and out == "got term\n", err
    free = run(["lock", "disk:job", "--timeout", "0", "--", "true"], project)
    assert free.returncode == 0, free.stderr  # released, not left to expire


def test_a_lost_lease_terminates_the_command(project: Path) -> None:
    import signal

    from storied import StorageManager

    proc = _start(project, "1", CHILD)
    os.kill(proc.pid, signal.SIGSTOP)  # the lock holder pauses; its command runs on
    try:
        storage = StorageManager()
        storage.configure([{"name": "disk", "type": "local", "base_path": str(project / "data")}])
        with storage.node("disk:job").lock(timeout=10, ttl=30):
            os.kill(proc.pid, signal.SIGCONT)
            out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
    assert out == "got term\n"
    assert proc.returncode == 7
    assert "lease lost while the command ran" in err
