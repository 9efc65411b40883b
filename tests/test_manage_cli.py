"""The version-management commands, run as a user would (subprocesses of the CLI entry point).

Histories are seeded in-process on a local ``versioning: true`` mount; every command then runs
in its own process against the same folder, and the outcome is checked both in the output and
through the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storied import StorageManager

STORIED = [sys.executable, "-c", "from storied.cli.main import main; main()"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "220", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [*STORIED, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def ok(args: list[str], cwd: Path) -> str:
    result = run(args, cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(args: list[str], cwd: Path, code: int = 1) -> str:
    """The command fails with ``code`` and a short message (no traceback); return stderr."""
    result = run(args, cwd)
    assert result.returncode == code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    return result.stderr


def line_of(output: str, needle: str) -> str:
    found = [line for line in output.splitlines() if needle in line]
    assert len(found) == 1, (needle, output)
    return found[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "plain").mkdir()
    mounts = [
        {"name": "v", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "plain", "type": "local", "base_path": str(tmp_path / "plain")},
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    return tmp_path


def storage(project: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure(str(project / "storied.yaml"))
    return sm


def seed(project: Path, path: str, contents: list[str]) -> list[str]:
    """Write ``contents`` as successive versions of ``path``; return the version ids."""
    node = storage(project).node(path)
    for text in contents:
        node.write_text(text)
    return [v["version_id"] for v in node.versions]


# ------------------------------------------------------------------------------ tags
def test_tag_tags_untag(project: Path) -> None:
    ids = seed(project, "v:a.txt", ["one", "two", "three", "four"])
    out = ok(["tag", "v:a.txt", "-1", "release-v1.0"], project)
    assert ids[-1] in out and "release-v1.0" in out
    ok(["tag", "v:a.txt", "0", "first"], project)
    ok(["tag", "v:a.txt", ids[1], "by-id"], project)
    ok(["tag", "v:a.txt", "release-v1.0", "alias"], project)  # a tag names a version too

    err = fails(["tag", "v:a.txt", "1", "release-v1.0"], project)
    assert "already points" in err and "--move" in err and len(err.strip().splitlines()) <= 2
    ok(["tag", "v:a.txt", "-3", "first", "--move"], project)

    node = storage(project).node("v:a.txt")
    assert node.get_version_tags() == {"release-v1.0": ids[3], "first": ids[1],
                                       "by-id": ids[1], "alias": ids[3]}
    assert node.open(version="first").read() == "two"

    table = ok(["tags", "v:a.txt"], project)
    row = line_of(table, "release-v1.0")
    assert ids[3] in row and "3" in row.split()
    assert ids[1] in line_of(table, "by-id") and " 1 " in line_of(table, "by-id")

    ok(["untag", "v:a.txt", "alias"], project)
    assert "alias" not in storage(project).node("v:a.txt").get_version_tags()
    assert "alias" not in ok(["tags", "v:a.txt"], project)
    assert "No tag" in fails(["untag", "v:a.txt", "alias"], project)
    assert "no tags" in ok(["tags", "v:fresh.txt"], project)


def test_tag_errors_are_one_line(project: Path) -> None:
    seed(project, "v:a.txt", ["x", "y"])
    assert "out of range" in fails(["tag", "v:a.txt", "7", "t"], project)
    assert "No version or tag" in fails(["tag", "v:a.txt", "nope", "t"], project)
    assert "Invalid tag name" in fails(["tag", "v:a.txt", "-1", " "], project)
    storage(project).node("plain:p.txt").write_text("p")
    assert "versioning" in fails(["tag", "plain:p.txt", "-1", "t"], project)
    assert "versioning" in fails(["tags", "plain:p.txt"], project)


# ------------------------------------------------------------------------------ annotations
def test_annotate_and_find(project: Path) -> None:
    ids = seed(project, "v:doc.txt", ["a", "b", "c", "d"])
    ok(["annotate", "v:doc.txt", "author=user@example.com", "reason=bug fix",
        "reviewed=true", "ticket=42"], project)
    ok(["annotate", "v:doc.txt", "-V", "0", "author=other@example.com"], project)
    ok(["annotate", "v:doc.txt", "--version", "-2", "author=user@example.com"], project)
    merged = ok(["annotate", "v:doc.txt", "-V", ids[0], "reason=initial"], project)
    assert json.loads(merged) == {"author": "other@example.com", "reason": "initial"}

    node = storage(project).node("v:doc.txt")
    assert node.versions[-1]["metadata"] == {"author": "user@example.com", "reason": "bug fix",
                                             "reviewed": True, "ticket": 42}

    found = ok(["find", "v:doc.txt", "author=user@example.com"], project)
    assert "2 matching" in found and ids[3] in found and ids[2] in found and ids[0] not in found
    assert "3" in line_of(found, ids[3]).split()  # the index of each match is shown
    both = ok(["find", "v:doc.txt", "author=user@example.com", "reviewed=true"], project)
    assert "1 matching" in both and ids[3] in both
    assert ids[3] in ok(["find", "v:doc.txt", "ticket=42"], project)
    assert "no matching" in ok(["find", "v:doc.txt", "author=nobody"], project)
    assert "4 matching" in ok(["find", "v:doc.txt"], project)  # no criteria: every version

    # a value annotated from Python as a string is found with the same text
    node.annotate_version(1, {"build": "7"})
    assert ids[1] in ok(["find", "v:doc.txt", "build=7"], project)
    fails(["annotate", "v:doc.txt", "novalue"], project, code=2)


# ------------------------------------------------------------------------------ retention
def test_cleanup_one_file_shows_the_plan(project: Path) -> None:
    ids = seed(project, "v:r.txt", [f"content {i}" for i in range(6)])
    sm = storage(project)
    sm.node("v:r.txt").tag_version(1, "keepme")

    plan = ok(["cleanup", "v:r.txt", "--keep-last", "2", "--dry-run"], project)
    assert "dry run" in plan and "would remove 3 of 6 versions" in plan
    assert "tagged:keepme" in line_of(plan, ids[1]) and "keep" in line_of(plan, ids[1])
    for vid in (ids[0], ids[2], ids[3]):
        assert "remove" in line_of(plan, vid)
    assert "last-2" in line_of(plan, ids[4])
    assert "current" in line_of(plan, ids[5]) and "last-2" in line_of(plan, ids[5])
    assert len(sm.node("v:r.txt").versions) == 6  # a dry run deletes nothing

    days = ok(["cleanup", "v:r.txt", "--keep-days", "1", "--dry-run"], project)
    assert "would remove 0 of 6" in days and "within-1-days" in line_of(days, ids[0])

    done = ok(["cleanup", "v:r.txt", "--keep-last", "2"], project)
    assert "removed 3 of 6 versions" in done and "removed" in line_of(done, ids[0])
    assert [v["version_id"] for v in sm.node("v:r.txt").versions] == [ids[1], ids[4], ids[5]]
    assert sm.node("v:r.txt").read_text() == "content 5"

    nothing = run(["cleanup", "v:r.txt"], project)
    assert nothing.returncode == 0 and "no rule" in nothing.stderr
    assert len(sm.node("v:r.txt").versions) == 3


def test_cleanup_prefix_in_bulk(project: Path) -> None:
    files = [f"v:dir/f{i}.txt" for i in range(4)] + ["v:dir/sub/deep.txt", "v:other.txt"]
    for path in files:
        seed(project, path, [f"{path} {n}" for n in range(4)])
    sm = storage(project)
    snap_vid = sm.node("v:dir/f0.txt").versions[0]["version_id"]
    sm.create_snapshot("v:dir", "before")

    dry = run(["cleanup", "v:dir/", "--keep-last", "1", "--dry-run"], project)
    assert dry.returncode == 0, dry.stderr
    assert "files" not in dry.stderr  # no progress bar when stderr is not a terminal
    assert "would remove 15 versions from 5 files" in dry.stdout
    assert all(len(sm.node(p).versions) == 4 for p in files)

    ok(["tag", "v:dir/f1.txt", "0", "pinned"], project)
    done = run(["cleanup", "v:dir", "--keep-last", "1"], project)  # an existing directory
    assert done.returncode == 0, done.stderr
    assert "removed 14 versions from 5 files" in done.stdout
    assert "v:dir/f2.txt" in done.stdout
    counts = {p: len(sm.node(p).versions) for p in files}
    assert counts == {"v:dir/f0.txt": 1, "v:dir/f1.txt": 2, "v:dir/f2.txt": 1,
                      "v:dir/f3.txt": 1, "v:dir/sub/deep.txt": 1, "v:other.txt": 4}
    # the snapshot recorded each file's current version: still there, nothing older is
    assert sm.node("v:dir/f0.txt").versions[0]["version_id"] != snap_vid
    assert all(sm.node(p).read_text() == f"{p} 3" for p in files)

    whole = run(["cleanup", "v:", "--keep-last", "1"], project)
    assert whole.returncode == 0 and "removed 3 versions from 1 file" in whole.stdout
    assert "no such file" in fails(["cleanup", "v:missing.txt", "--keep-last", "1"], project)
    assert "keeps no history" in fails(["cleanup", "plain:", "--keep-last", "1"], project)


def test_compact(project: Path) -> None:
    seed(project, "v:c/a.txt", ["x", "x", "x", "y", "y"])
    seed(project, "v:c/b.txt", ["z", "z"])
    seed(project, "v:c/u.txt", ["1", "2"])
    dry = run(["compact", "v:c/", "--dry-run"], project)
    assert dry.returncode == 0 and "files" not in dry.stderr  # no bar off a terminal
    assert "would remove 4 duplicate versions from 2 files" in dry.stdout
    assert "v:c/a.txt: 3" in dry.stdout and "v:c/b.txt: 1" in dry.stdout
    sm = storage(project)
    assert len(sm.node("v:c/a.txt").versions) == 5
    assert "removed 4 duplicate versions" in ok(["compact", "v:c"], project)
    assert [len(sm.node(f"v:c/{n}.txt").versions) for n in "abu"] == [2, 1, 2]


# ------------------------------------------------------------------------------ snapshots
def test_snapshot_lifecycle(project: Path) -> None:
    seed(project, "v:cfg/app.yaml", ["app: 1", "app: 2"])
    seed(project, "v:cfg/db.yaml", ["db: 1"])
    seed(project, "v:elsewhere.txt", ["e"])
    sm = storage(project)
    recorded = {p: sm.node(f"v:cfg/{p}").versions[-1]["version_id"]
                for p in ("app.yaml", "db.yaml")}

    assert "2 files" in ok(["snapshot", "create", "v:cfg/", "pre-deploy"], project)
    assert "already exists" in fails(["snapshot", "create", "v:cfg", "pre-deploy"], project)
    assert "Invalid snapshot tag" in fails(["snapshot", "create", "v:cfg", "no good"], project)
    ok(["snapshot", "create", "v:", "everything"], project)

    listing = ok(["snapshot", "list"], project)
    assert "2" in line_of(listing, "pre-deploy").split()
    assert "3" in line_of(listing, "everything").split()
    assert "pre-deploy" in ok(["snapshot", "list", "v:cfg"], project)
    assert "no snapshots" in ok(["snapshot", "list", "plain:"], project)

    shown = ok(["snapshot", "show", "pre-deploy"], project)
    for name, vid in recorded.items():
        assert vid in line_of(shown, name)
    assert "elsewhere" not in shown
    assert "No snapshot" in fails(["snapshot", "show", "nope"], project)

    sm.node("v:cfg/app.yaml").write_text("app: broken")
    sm.node("v:cfg/new.yaml").write_text("new")
    dry = ok(["snapshot", "restore", "pre-deploy", "--dry-run"], project)
    assert "would be restored cfg/app.yaml" in dry and "new since snapshot: cfg/new.yaml" in dry
    assert sm.node("v:cfg/app.yaml").read_text() == "app: broken"

    restored = ok(["snapshot", "restore", "pre-deploy"], project)
    assert "1 restored, 1 unchanged, 1 new, 0 deleted" in restored
    assert sm.node("v:cfg/app.yaml").read_text() == "app: 2"
    assert len(sm.node("v:cfg/app.yaml").versions) == 4  # restoring adds a version
    assert sm.node("v:cfg/new.yaml").exists()

    again = ok(["snapshot", "restore", "pre-deploy", "--delete-new"], project)
    assert "0 restored, 2 unchanged, 1 new, 1 deleted" in again
    assert not sm.node("v:cfg/new.yaml").exists()

    # a snapshot protects its versions from cleanup until it is deleted
    ok(["cleanup", "v:cfg/app.yaml", "--keep-last", "1"], project)
    kept = [v["version_id"] for v in sm.node("v:cfg/app.yaml").versions]
    assert recorded["app.yaml"] in kept
    ok(["snapshot", "delete", "pre-deploy"], project)
    ok(["snapshot", "delete", "everything"], project)
    assert "No snapshot" in fails(["snapshot", "delete", "pre-deploy"], project)
    ok(["cleanup", "v:cfg/app.yaml", "--keep-last", "1"], project)
    assert len(sm.node("v:cfg/app.yaml").versions) == 1
    assert "no snapshots" in ok(["snapshot", "list"], project)


def test_help_lists_the_commands(project: Path) -> None:
    top = ok(["--help"], project)
    for name in ("tag", "untag", "tags", "annotate", "find", "cleanup", "compact", "snapshot"):
        assert f"  {name} " in top
    sub = ok(["snapshot", "--help"], project)
    for name in ("create", "list", "show", "restore", "delete"):
        assert name in sub
