"""Off a terminal, the management commands print plain lines: long cells are never cut and
names that look like rich markup print as themselves."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from storied.cli.main import cli

LONG = "a-very-long-release-tag-name-" + "x" * 40  # 69 characters: past an 80-column table


def _config(tmp_path: Path) -> str:
    (tmp_path / "data").mkdir()
    config = tmp_path / "storied.yaml"
    config.write_text(f"- name: home\n  type: local\n  base_path: {tmp_path / 'data'}\n"
                      "  versioning: true\n")
    return str(config)


def _run(config: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["-c", config, *args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_tags_find_snapshots_and_cleanup_are_never_cut(tmp_path: Path) -> None:
    config = _config(tmp_path)
    from storied import StorageManager

    sm = StorageManager()
    sm.configure(config)
    node = sm.node("home:[bold]reports/" + "n" * 50 + ".txt")
    node.write_text("one")
    node.write_text("two")
    node.tag_version(-1, LONG)
    sm.create_snapshot("home:[bold]reports", "snap-" + "s" * 60)
    sm.close()
    path = "home:" + node.path
    assert LONG in _run(config, "tags", path)
    found = _run(config, "find", path)
    assert LONG in found
    listed = _run(config, "snapshot", "list")
    assert "snap-" + "s" * 60 in listed
    shown = _run(config, "snapshot", "show", "snap-" + "s" * 60)
    assert "[bold]reports/" + "n" * 50 + ".txt" in shown
    plan = _run(config, "cleanup", path, "--keep-last", "1", "--dry-run")
    assert "…" not in plan and "…" not in listed and "…" not in shown
