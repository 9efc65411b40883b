"""CLI for scripts: ``--json`` on every listing command (one document, stable keys),
``--version``, ``python -m storied``, global options after the command, plain lines and no
progress bars off the terminal, names printed as they are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from storied import StorageManager
from storied.cli.main import cli, hoist_globals


@pytest.fixture
def project(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    mounts = [{"name": "home", "type": "local", "base_path": str(data), "versioning": True}]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    storage = StorageManager()
    storage.configure(str(tmp_path / "storied.yaml"))
    node = storage.node("home:docs/a.txt")
    for text in ("one\n", "two\n", "three\n"):
        node.write_text(text)
    node.tag_version(0, "first")
    node.annotate_version(-1, {"author": "ana"})
    storage.node("home:docs/[bold]x").write_text("markup?\n")
    storage.node("home:docs/" + "n" * 150 + ".txt").write_text("long\n")
    storage.create_snapshot("home:docs", "snap1")
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def doc(project: Path, *args: str) -> object:
    code, out, err = invoke(project, *args, "--json")
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") == 1  # one document, one line
    return json.loads(out)


def test_ls_json_has_stable_keys(project: Path) -> None:
    rows = doc(project, "ls", "home:docs")
    assert isinstance(rows, list)
    names = {r["name"] for r in rows}
    assert {"a.txt", "[bold]x", "n" * 150 + ".txt"} <= names
    row = next(r for r in rows if r["name"] == "a.txt")
    assert set(row) == {"name", "path", "type", "size", "modified", "etag"}
    assert row["type"] == "file" and row["size"] == 6 and row["path"] == "home:docs/a.txt"
    assert row["modified"].endswith("+00:00")


def test_log_json_is_oldest_first_with_tags_and_metadata(project: Path) -> None:
    log = doc(project, "log", "home:docs/a.txt")
    versions = log["versions"]
    assert [v["index"] for v in versions] == [0, 1, 2]
    assert versions[0]["tags"] == ["first"] and versions[-1]["is_latest"] is True
    assert versions[-1]["metadata"] == {"author": "ana"}
    assert [v["size"] for v in versions] == [4, 4, 6]


def test_tags_find_snapshot_verify_cleanup_json(project: Path) -> None:
    tags = doc(project, "tags", "home:docs/a.txt")
    log = doc(project, "log", "home:docs/a.txt")
    assert tags == {"path": "home:docs/a.txt", "tags": {"first": log["versions"][0]["version_id"]}}
    found = doc(project, "find", "home:docs/a.txt", "author=ana")
    assert [v["index"] for v in found["versions"]] == [2]
    snaps = doc(project, "snapshot", "list")
    assert [s["tag"] for s in snaps] == ["snap1"] and snaps[0]["file_count"] == 3
    shown = doc(project, "snapshot", "show", "snap1")
    assert shown["files"]["docs/a.txt"] == log["versions"][-1]["version_id"]
    report = doc(project, "verify")
    assert report["ok"] is True and report["problems"] == [] and report["checked"] > 0
    plan = doc(project, "cleanup", "home:docs/a.txt", "--keep-last", "1", "--dry-run")
    decided = {v["version_id"]: v["would_remove"] for v in plan["versions"]}
    ids = [v["version_id"] for v in log["versions"]]
    assert decided == {ids[0]: False, ids[1]: True, ids[2]: False}  # tagged, old, current
    assert [v["reasons"] for v in plan["versions"]] == [["tagged:first"], [],
                                                         ["current", "last-1", "snapshot:snap1"]]
    assert len(doc(project, "log", "home:docs/a.txt")["versions"]) == 3  # dry run kept all


def test_global_options_after_the_command(project: Path) -> None:
    result = CliRunner().invoke(cli, ["ls", "home:docs", "-c", str(project / "storied.yaml")])
    assert result.exit_code == 0, result.stderr
    assert "a.txt" in result.stdout
    result = CliRunner().invoke(cli, ["ls", f"--config={project / 'storied.yaml'}", "home:"])
    assert result.exit_code == 0 and "docs/" in result.stdout
    # after "--" nothing moves (a command's own arguments)
    assert hoist_globals(["lock", "m:p", "--", "cmd", "-c", "x"]) == [
        "lock", "m:p", "--", "cmd", "-c", "x"]
    assert hoist_globals(["ls", "-q", "m:"]) == ["-q", "ls", "m:"]


def test_piped_listing_is_plain_and_uncut(project: Path) -> None:
    code, out, _ = invoke(project, "ls", "-l", "home:docs")
    assert code == 0
    lines = out.splitlines()
    assert any(line.endswith("n" * 150 + ".txt") for line in lines)  # never cut to 80 columns
    assert any(line.endswith("[bold]x") for line in lines)  # markup printed as text
    assert "━" not in out and "│" not in out  # no table drawing off a terminal


def test_version_and_python_dash_m(project: Path) -> None:
    code, out, _ = invoke(project, "--version")
    assert code == 0 and out.startswith("storied, version ")
    run = subprocess.run([sys.executable, "-m", "storied", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("storied, version ")


def test_no_progress_bar_off_the_terminal(project: Path, tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    cfg = json.loads((project / "storied.yaml").read_text())
    cfg.append({"name": "mirror", "type": "local", "base_path": str(tmp_path / "mirror")})
    (project / "storied.yaml").write_text(json.dumps(cfg))
    code, out, err = invoke(project, "cp", "-r", "home:docs", "mirror:docs")
    assert code == 0, err
    assert "3 copied" in out
    assert "copying" not in err and "files" not in err  # no bar: stderr is not a terminal


def test_verify_json_exits_1_when_broken(project: Path) -> None:
    blobs = project / "data" / ".storied" / "blobs"
    victim = next(p for p in blobs.rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(b"corrupted")
    code, out, _ = invoke(project, "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["problems"]


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from storied.cli.progress import QUIET, progress_bar

    monkeypatch.delenv("NO_COLOR", raising=False)
    shown = io.StringIO()
    with progress_bar("copying", Console(file=shown, force_terminal=True, width=80)) as cb:
        cb(3, 3)
    assert "3/3 files" in shown.getvalue()
    hidden = io.StringIO()
    with progress_bar("copying", Console(file=hidden, force_terminal=False)) as cb:
        cb(3, 3)
    assert hidden.getvalue() == ""
    QUIET["on"] = True
    try:
        quiet = io.StringIO()
        with progress_bar("copying", Console(file=quiet, force_terminal=True)) as cb:
            cb(3, 3)
        assert quiet.getvalue() == ""
    finally:
        QUIET["on"] = False
    monkeypatch.setenv("NO_COLOR", "1")
    plain = io.StringIO()
    with progress_bar("copying", Console(file=plain, force_terminal=True)) as cb:
        cb(3, 3)
    assert plain.getvalue() == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_STORIED_COMPLETE" in result.stdout and "storied" in result.stdout


def test_completion_offers_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.shell_completion import ShellComplete

    names = [c.value for c in ShellComplete(cli, {}, "storied", "_STORIED_COMPLETE")
             .get_completions([], "sna")]
    assert names == ["snapshot"]
