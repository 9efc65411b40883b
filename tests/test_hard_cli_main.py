"""The CLI never shows a traceback: every failure is one ``error:`` line and an exit code.

Most cases run the real ``storied`` group through click's ``CliRunner`` (which calls the same
``StoriedGroup.main`` as the installed script); Ctrl-C and a closed pipe run the entry point in
a subprocess, as a user's shell would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from storied import StorageManager
from storied.cli.errors import exit_code_for, one_line
from storied.cli.main import StoriedGroup, cli
from storied.errors import StorageNotFoundError

STORIED = [sys.executable, "-c", "from storied.cli.main import main; main()"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with storied.yaml: ``v:`` versioned local (a.txt with 2 versions), ``plain:``."""
    (tmp_path / "data").mkdir()
    (tmp_path / "plain").mkdir()
    mounts = [
        {"name": "v", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "plain", "type": "local", "base_path": str(tmp_path / "plain")},
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    sm = StorageManager()
    sm.configure(str(tmp_path / "storied.yaml"))
    sm.node("v:a.txt").write_text("one\n")
    sm.node("v:a.txt").write_text("two\n")
    sm.node("v:img.png").write_bytes(b"not a png")
    sm.node("v:img.png").write_bytes(b"still not a png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, prog_name="storied")


def one_error_line(result: Result, code: int = 1) -> str:
    """Assert: exit ``code``, no traceback, exactly one line on stderr starting ``error:``."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


BAD_COMMANDS = [
    # (arguments, a piece of the message)
    (["diff", "v:a.txt", "0", "99"], "out of range"),  # IndexError before
    (["diff", "v:a.txt", "--encoding", "nope"], "unknown encoding"),  # LookupError before
    (["diff", "v:a.txt", "--encoding", "rot13"], "not a text encoding"),
    (["diff", "v:a.txt", "-f", "html", "-o", "/nonexistent-dir/x.html"], "cannot write"),
    (["diff", "v:a.txt", "-f", "json", "--encoding", "nope"], "unknown encoding"),
    (["diff", "v:a.txt", "nosuchversion"], "nosuchversion"),
    (["diff", "v:img.png", "--semantic"], "not a readable image"),
    (["diff", "plain:x.txt"], ""),
    (["cat", "v:missing.txt"], "missing.txt"),
    (["cat", "v:"], ""),
    (["cat", "nomount:a.txt"], "nomount"),
    (["cat", "v:../storied.yaml"], ".."),
    (["ls", "v:a.txt/x"], ""),
    (["ls", "v:missing/"], ""),
    (["cp", "v:missing", "plain:x"], "missing"),
    (["log", "v:missing.txt"], "no history"),
    (["tag", "v:a.txt", "99", "t"], "out of range"),
    (["tag", "v:a.txt", "nosuch", "t"], "nosuch"),
    (["untag", "v:a.txt", "nosuch"], "nosuch"),
    (["annotate", "v:a.txt", "k=1", "-V", "99"], "out of range"),
    (["cleanup", "v:missing", "--keep-last", "1"], "missing"),
    (["cleanup", "v:a.txt", "--keep-days", "nan"], "keep_days"),
    (["snapshot", "show", "nosuch"], "nosuch"),
    (["snapshot", "restore", "nosuch"], "nosuch"),
    (["snapshot", "delete", "nosuch"], "nosuch"),
    (["snapshot", "create", "v:", ""], ""),
    (["verify", "nomount:"], "nomount"),
    (["demo", "--keep", "/proc/no-such-dir/x"], "cannot run the demo"),  # OSError before
]


@pytest.mark.parametrize(
    ("args", "needle"), BAD_COMMANDS, ids=[" ".join(a) for a, _ in BAD_COMMANDS]
)
def test_bad_arguments_give_one_error_line(project: Path, args: list[str], needle: str) -> None:
    line = one_error_line(invoke(args))
    assert needle in line
    assert "internal error" not in line  # each of these is a storied (or command) error


BAD_CONFIGS = {
    "missing.yaml": None,
    "latin1.yaml": b"- name: caf\xe9\n  type: memory\n",
    "broken.yaml": b"- name: x\n  type: [memory\n",
    "unknown-type.json": b'[{"name": "x", "type": "nosuch"}]',
    "wrong-type.json": b'[{"name": "x", "type": "local", "base_path": 5}]',
    "self-relative.json": b'[{"name": "x", "path": "x:sub"}]',
    "not-a-list.json": b'{"name": "x"}',
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_files_give_one_error_line(tmp_path: Path, name: str) -> None:
    content = BAD_CONFIGS[name]
    if content is not None:
        (tmp_path / name).write_bytes(content)
    line = one_error_line(invoke(["--config", str(tmp_path / name), "ls", "x:"]))
    assert "internal error" not in line


def test_no_config_in_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "storied.yaml" in one_error_line(invoke(["ls", "x:"]))


def test_usage_errors_keep_clicks_message_and_code_2(project: Path) -> None:
    for args in (["nosuchcommand"], ["cleanup", "v:a.txt", "--keep-last", "-1"],
                 ["annotate", "v:a.txt", "novalue"]):
        result = invoke(args)
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert "Usage:" in result.stderr and "Error:" in result.stderr


def test_verify_reports_and_exits_1(project: Path) -> None:
    blob = next(p for p in (project / "data" / ".storied" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"corrupted")
    result = invoke(["verify"])
    assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr
    assert "problem" in result.stdout and "BROKEN" in result.stdout


def test_names_are_printed_as_they_are(project: Path) -> None:
    (project / "plain" / "[bold]x.txt").write_text("x")
    result = invoke(["ls", "plain:"])
    assert result.exit_code == 0 and "[bold]x.txt" in result.stdout


# ------------------------------------------------------------------ the one handler itself
def group_raising(exc: BaseException) -> click.Group:
    """A real StoriedGroup whose only command raises ``exc`` (what a bug would do)."""

    @click.group(cls=StoriedGroup)
    @click.option("--debug", is_flag=True)
    def group(debug: bool) -> None:
        pass

    @group.command()
    def boom() -> None:
        raise exc

    return group


def test_an_unexpected_exception_is_one_line_with_a_hint() -> None:
    result = CliRunner().invoke(group_raising(RuntimeError("kaput")), ["boom"])
    line = one_error_line(result)
    assert line.startswith("error: internal error: RuntimeError: kaput")
    assert "--debug" in line


def test_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(group_raising(RuntimeError("kaput")), ["--debug", "boom"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "RuntimeError: kaput" in result.stderr
    assert result.stderr.splitlines()[-1] == "error: internal error: RuntimeError: kaput"


def test_eof_error_is_not_mistaken_for_ctrl_c() -> None:
    line = one_error_line(CliRunner().invoke(group_raising(EOFError("truncated")), ["boom"]))
    assert "EOFError: truncated" in line  # click alone says "Aborted!" (as for Ctrl-C)


def test_keyboard_interrupt_in_a_command_exits_130() -> None:
    result = CliRunner().invoke(group_raising(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130 and result.stderr == "error: interrupted\n"


def test_messages_are_folded_and_control_characters_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = exit_code_for(StorageNotFoundError("bad\x1b[2Jname\nsecond line"))
    assert code == 1
    assert capsys.readouterr().err == "error: bad\\x1b[2Jname second line\n"
    assert one_line("a\r\nb\tc\x00") == "a b\\tc\\x00"


# ------------------------------------------------------------------ real processes
def test_ctrl_c_exits_130_with_one_line(project: Path) -> None:
    os.mkfifo(project / "data" / "fifo")  # reading it blocks until we interrupt
    proc = subprocess.Popen(
        [*STORIED, "cat", "v:fifo"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    writer = None
    try:
        deadline = time.monotonic() + 60
        while writer is None:  # succeeds once storied has opened the FIFO (and waits to read)
            try:
                writer = os.open(project / "data" / "fifo", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert err == "error: interrupted\n"


def test_broken_pipe_ends_quietly(project: Path) -> None:
    (project / "data" / "big.bin").write_bytes(os.urandom(4 * 2**20))
    proc = subprocess.Popen(
        [*STORIED, "cat", "v:big.bin"], cwd=project, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(1)) == 1
    proc.stdout.close()  # like `storied cat ... | head -c1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err and "Exception ignored" not in err and err == ""


def test_the_installed_entry_point_reports_in_one_line(project: Path) -> None:
    result = subprocess.run([*STORIED, "diff", "v:a.txt", "0", "99"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_non_utf8_file_name_is_listed_not_a_crash(project: Path) -> None:
    (project / "plain").joinpath(os.fsdecode(b"\xffbad.txt")).write_text("x")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "COLUMNS": "120"}
    result = subprocess.run([*STORIED, "ls", "-l", "plain:"], cwd=project, capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\\udcffbad.txt" in result.stdout and "Traceback" not in result.stderr
