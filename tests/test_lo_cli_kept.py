"""``storied cleanup`` / ``storied compact`` on an S3 Object Lock bucket (moto server, the CLI
run as a user would, in a subprocess): versions the server refuses to delete (a legal hold set
outside storied) are shown, per file and in a summary line, and are in the ``--json`` output
as ``kept_by_server`` (``{path: [version ids]}``; a single file's cleanup: ``[ids]``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.testing.s3server import MotoHandle, s3_client

STORIED = [sys.executable, "-c", "from storied.cli.main import main; main()"]
SUMMARY = "kept by the server (object lock): {}"


def _summary(versions: int, files: int) -> str:
    return SUMMARY.format(f"{versions} version{'s' * (versions != 1)} in "
                          f"{files} file{'s' * (files != 1)}")


@pytest.fixture
def setup(moto: MotoHandle, tmp_path: Path) -> Iterator[tuple[StorageManager, Any, str]]:
    client = s3_client(moto.endpoint_url)
    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    mount = {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
             "key": "k", "secret": "s"}
    (tmp_path / "storied.json").write_text(json.dumps([mount]))
    sm = StorageManager()
    sm.configure([mount])
    yield sm, client, bucket
    client.close()


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "220", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run([*STORIED, "--config", "storied.json", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _write(sm: StorageManager, path: str, texts: list[str]) -> list[str]:
    node = sm.node(path)
    for text in texts:
        node.write_text(text)
    return [v["version_id"] for v in node.versions]


def _hold(client: Any, bucket: str, key: str, vid: str) -> None:
    client.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=vid,
                                 LegalHold={"Status": "ON"})


def test_cleanup_of_a_prefix_shows_the_kept_versions(setup: Any, tmp_path: Path) -> None:
    sm, client, bucket = setup
    a = _write(sm, "v:d/a.txt", ["1", "2", "3"])
    b = _write(sm, "v:d/b.txt", ["1", "2", "3"])
    _hold(client, bucket, "d/a.txt", a[0])
    _hold(client, bucket, "d/a.txt", a[1])
    out = _run(["cleanup", "v:d/", "--keep-last", "1"], tmp_path)
    assert _summary(2, 1) in out
    assert out.count("kept by the server (object lock)") == 2  # the column, the summary
    row = next(line for line in out.splitlines() if "v:d/a.txt" in line)
    assert row.split()[-2:] == ["0", "2"]  # none removed, two kept by the server
    assert "removed 2 versions from 1 file" in out  # b.txt's two
    c = _write(sm, "v:d/c.txt", ["1", "2"])
    _hold(client, bucket, "d/c.txt", c[0])
    doc = json.loads(_run(["cleanup", "v:d/", "--keep-last", "1", "--json"], tmp_path))
    assert doc["kept_by_server"] == {"v:d/a.txt": a[:2], "v:d/c.txt": [c[0]]}
    assert doc["files"] == {} and doc["removed"] == 0
    assert [v["version_id"] for v in sm.node("v:d/b.txt").versions] == [b[2]]


def test_cleanup_of_one_file_shows_the_kept_versions(setup: Any, tmp_path: Path) -> None:
    sm, client, bucket = setup
    ids = _write(sm, "v:f.txt", ["1", "2", "3"])
    _hold(client, bucket, "f.txt", ids[0])
    out = _run(["cleanup", "v:f.txt", "--keep-last", "1"], tmp_path)
    assert "removed 1 of 3 versions" in out and _summary(1, 1) in out
    doc = json.loads(_run(["cleanup", "v:f.txt", "--keep-last", "1", "--json"], tmp_path))
    assert doc["kept_by_server"] == [ids[0]]
    first = next(v for v in doc["versions"] if v["version_id"] == ids[0])
    assert first["removed"] is False
    assert "kept by the server (object lock)" in first["reasons"]


def test_compact_shows_the_kept_versions(setup: Any, tmp_path: Path) -> None:
    sm, client, bucket = setup
    ids = _write(sm, "v:d/same.txt", ["x", "x", "x", "x"])
    _hold(client, bucket, "d/same.txt", ids[0])
    out = _run(["compact", "v:d/"], tmp_path)
    assert "v:d/same.txt: 2 (kept by the server: 1)" in out
    assert "removed 2 duplicate versions from 1 file" in out
    assert _summary(1, 1) in out
    doc = json.loads(_run(["compact", "v:d/", "--json"], tmp_path))
    assert doc["kept_by_server"] == {"v:d/same.txt": [ids[0]]}
    assert doc["files"] == {} and doc["removed"] == 0
    assert [v["version_id"] for v in sm.node("v:d/same.txt").versions] == [ids[0], ids[3]]
