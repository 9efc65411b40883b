"""The CLI moves data: cp/mv with local paths and '-' on either side, -r, --dry-run, --delete,
rm/mkdir/stat/du/rollback, cat --version; errors one line exit 1, usage errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from storied import StorageManager
from storied.cli.main import cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "plain").mkdir()
    mounts = [
        {"name": "home", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "plain", "type": "local", "base_path": str(tmp_path / "plain")},
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    return tmp_path


def sm(project: Path) -> StorageManager:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    return storage


def run(project: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_cp_local_file_into_a_mount_directory_and_back(project: Path, tmp_path: Path) -> None:
    local = tmp_path / "in.txt"
    local.write_text("from disk\n")
    sm(project).node("home:docs").mkdir(parents=True)
    code, out, err = run(project, "cp", str(local), "home:docs/")
    assert code == 0, err
    assert "1 copied, 0 skipped, 0 failed" in out
    assert sm(project).node("home:docs/in.txt").read_text() == "from disk\n"
    code, _, err = run(project, "cp", "home:docs/in.txt", str(tmp_path / "out.txt"))
    assert code == 0, err
    assert (tmp_path / "out.txt").read_text() == "from disk\n"


def test_cp_stdin_and_stdout(project: Path) -> None:
    code, _, err = run(project, "cp", "-", "home:piped.bin", stdin=b"\x00\x01bytes")
    assert code == 0, err
    assert sm(project).node("home:piped.bin").read_bytes() == b"\x00\x01bytes"
    result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), "cp",
                                      "home:piped.bin", "-"])
    assert result.exit_code == 0 and result.stdout_bytes == b"\x00\x01bytes"
    code, _, err = run(project, "cp", "-", "-")
    assert code == 2 and "both" in err


def test_directory_needs_r_and_dry_run_changes_nothing(project: Path) -> None:
    storage = sm(project)
    for name in ("a.txt", "sub/b.txt"):
        storage.node(f"home:tree/{name}").write_text(name)
    code, _, err = run(project, "cp", "home:tree", "plain:copy")
    assert code == 1 and "use -r" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(project, "cp", "-r", "-n", "home:tree", "plain:copy")
    assert code == 0 and out.count("would copy") == 2
    assert not (project / "plain" / "copy").exists()
    code, out, err = run(project, "cp", "-r", "home:tree", "plain:copy")
    assert code == 0, err
    assert (project / "plain" / "copy" / "sub" / "b.txt").read_text() == "sub/b.txt"


def test_cp_delete_syncs_and_says_so_first(project: Path) -> None:
    storage = sm(project)
    storage.node("home:src/keep.txt").write_text("keep")
    storage.node("plain:dst/keep.txt").write_text("old")
    storage.node("plain:dst/extra.txt").write_text("extra")
    code, out, _ = run(project, "cp", "-r", "--delete", "-n", "home:src", "plain:dst")
    assert code == 0 and "would delete plain:dst/extra.txt" in out
    assert (project / "plain" / "dst" / "extra.txt").exists()
    code, out, err = run(project, "cp", "-r", "--delete", "home:src", "plain:dst")
    assert code == 0, err
    assert "deleting plain:dst/extra.txt" in err
    assert not (project / "plain" / "dst" / "extra.txt").exists()
    assert (project / "plain" / "dst" / "keep.txt").read_text() == "keep"


def test_local_only_copy_needs_no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    result = CliRunner().invoke(cli, ["cp", "a.txt", "b.txt"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "b.txt").read_text() == "x"
    result = CliRunner().invoke(cli, ["cp", "nomount:a.txt", "b.txt"])
    assert result.exit_code == 1 and "storied.yaml" in result.stderr


def test_mv_rm_mkdir(project: Path) -> None:
    storage = sm(project)
    storage.node("plain:a.txt").write_text("a")
    code, _, err = run(project, "mkdir", "-p", "plain:x/y")
    assert code == 0, err
    assert (project / "plain" / "x" / "y").is_dir()
    code, _, err = run(project, "mv", "plain:a.txt", "plain:x/y/")
    assert code == 0, err
    assert (project / "plain" / "x" / "y" / "a.txt").read_text() == "a"
    assert not (project / "plain" / "a.txt").exists()
    code, _, err = run(project, "rm", "plain:x")
    assert code == 1 and "use -r" in err
    code, _, err = run(project, "rm", "plain:nope")
    assert code == 1 and "no such file" in err
    assert run(project, "rm", "-f", "plain:nope")[0] == 0
    code, _, err = run(project, "rm", "-r", "plain:x")
    assert code == 0, err
    assert not (project / "plain" / "x").exists()


def test_rm_on_a_versioned_mount_keeps_history(project: Path) -> None:
    storage = sm(project)
    node = storage.node("home:doc.txt")
    node.write_text("v1")
    node.write_text("v2")
    assert run(project, "rm", "home:doc.txt")[0] == 0
    assert not node.exists()
    code, out, _ = run(project, "cat", "--version", "-1", "home:doc.txt")
    assert code == 0 and out == "v2"


def test_stat_du_rollback_cat_version(project: Path) -> None:
    storage = sm(project)
    node = storage.node("home:d/f.txt")
    node.write_text("first")
    node.write_text("second!")
    node.tag_version(0, "one")
    storage.node("home:d/g.txt").write_text("12345")
    code, out, _ = run(project, "stat", "--json", "home:d/f.txt")
    row = json.loads(out)
    assert code == 0 and row["size"] == 7 and row["versions"] == 2 and row["type"] == "file"
    assert set(row) >= {"path", "size", "modified", "etag", "mimetype", "version_id"}
    code, out, _ = run(project, "du", "--json", "home:d")
    assert code == 0 and json.loads(out) == {"path": "home:d", "files": 2, "bytes": 12}
    assert run(project, "cat", "--version", "-2", "home:d/f.txt")[1] == "first"
    assert run(project, "cat", "-V", "one", "home:d/f.txt")[1] == "first"
    code, _, err = run(project, "rollback", "home:d/f.txt")
    assert code == 0, err
    assert node.read_text() == "first" and len(node.versions) == 3
    code, _, err = run(project, "rollback", "home:d/f.txt", "--tag", "one")
    assert code == 0 and len(node.versions) == 4


def test_usage_error_exits_2(project: Path) -> None:
    code, _, err = run(project, "cp", "home:a")
    assert code == 2 and "Missing argument" in err
