"""``--workers N`` on the bulk management commands gives the same result as one worker."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from storied import StorageManager
from storied.cli.main import cli


def test_bulk_commands_with_workers(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    config = tmp_path / "storied.yaml"
    config.write_text(f"- name: home\n  type: local\n  base_path: {tmp_path / 'data'}\n"
                      "  versioning: true\n")
    sm = StorageManager()
    sm.configure(str(config))
    for i in range(6):
        for text in ("a", "b", "b", "c"):
            sm.node(f"home:d/f{i}.txt").write_text(text)
    sm.close()

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["-c", str(config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "removed 6 duplicate versions from 6 files" in run("compact", "home:d/", "-j", "3")
    run("snapshot", "create", "home:d/", "before", "--workers", "4")  # a, b, c: c in it
    sm = StorageManager()
    sm.configure(str(config))
    for i in range(6):
        sm.node(f"home:d/f{i}.txt").write_text("d")
    assert '"would_remove": 12' in run("cleanup", "home:d/", "--keep-last", "1", "--dry-run",
                                       "--workers", "2", "--json")  # a and b of each file
    run("cleanup", "home:d/", "--keep-last", "1", "-j", "4")
    assert all(len(sm.node(f"home:d/f{i}.txt").versions) == 2 for i in range(6))  # c and d
    run("snapshot", "restore", "before", "--workers", "3")
    assert all(sm.node(f"home:d/f{i}.txt").read_text() == "c" for i in range(6))
    bad = CliRunner().invoke(cli, ["-c", str(config), "compact", "home:d/", "--workers", "0"])
    assert bad.exit_code == 2


def test_a_refused_record_start_leaves_the_real_clock(tmp_path: Path) -> None:
    """record_mode naming an unknown mount is refused and leaves no stand-ins behind: a later
    session on another manager still replays portable-history writes."""
    import time as real_time

    import pytest

    from storied.errors import MountNotFoundError
    from storied.versioning import records

    sm = StorageManager()
    sm.configure([{"name": "m", "type": "memory"}])
    with pytest.raises(MountNotFoundError):
        sm.record_mode(tmp_path / "x.json", mounts=["nope"])
    assert records.time is real_time
    assert not (tmp_path / "x.json").exists()
