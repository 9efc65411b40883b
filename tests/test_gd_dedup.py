"""Hostile and unlucky inputs to dedup and its gc: gc on a mount that never deduplicated
reports nothing (it raised "No such file or directory: '.storied/dedup/blobs'"), a prefix that
names nothing is an error (it read as "no duplicates"), ``dedup-gc`` given a path instead of a
mount says so; a reference copied into another mount, or with a broken HMAC, reads as its own
line there and never as the other mount's content; a reference whose content copy was
removed fails its reads with a clear error, while its versions keep their bytes."""

from __future__ import annotations

import glob
import json
import os
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from storied import StorageManager
from storied.backends.referencing import REF_SIZE
from storied.cli.main import cli
from storied.errors import StorageIOError, StorageNotFoundError

BIG = os.urandom(5000)


def _two_mounts(tmp_path: Path) -> StorageManager:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    sm = StorageManager()
    sm.configure([{"name": "A", "type": "local", "base_path": str(tmp_path / "a"),
                   "versioning": True},
                  {"name": "B", "type": "local", "base_path": str(tmp_path / "b")},
                  {"name": "M", "type": "memory", "store": uuid.uuid4().hex}])
    return sm


def test_gc_on_a_mount_that_never_deduplicated(tmp_path: Path) -> None:
    sm = _two_mounts(tmp_path)
    sm.node("B:f.txt").write_text("x")
    for mount in ("B", "M"):
        for dry_run in (True, False):
            report = sm.collect_references(mount, grace=0, dry_run=dry_run)
            assert report == {"mount": mount, "copies": 0, "referenced": 0, "condemned": [],
                              "removed": [], "bytes_freed": 0}
    assert sm.node("B:f.txt").read_text() == "x"


def test_a_prefix_that_names_nothing_is_an_error(tmp_path: Path) -> None:
    sm = _two_mounts(tmp_path)
    sm.node("B:dir/one").write_bytes(BIG)
    sm.node("B:dir/two").write_bytes(BIG)
    (tmp_path / "b" / "empty").mkdir()
    with pytest.raises(StorageNotFoundError, match="B:dri"):
        sm.find_duplicates("B:dri")
    with pytest.raises(StorageNotFoundError, match="B:dri"):
        sm.deduplicate("B:dri", strategy="delete")
    assert sm.find_duplicates("B:empty") == []  # an empty folder is not an error
    assert sm.find_duplicates("B:dir/one") == []  # nor is a single file
    assert len(sm.find_duplicates("B:dir")) == 1
    assert sm.node("B:dir/two").read_bytes() == BIG


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "storied.yaml"
    (tmp_path / "h").mkdir(exist_ok=True)
    config.write_text(json.dumps([{"name": "home", "type": "local",
                                   "base_path": str(tmp_path / "h")}]))
    result = CliRunner().invoke(cli, ["-c", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_dedup_gc_and_dupes_bad_input(tmp_path: Path) -> None:
    code, out, err = _invoke(tmp_path, "dedup-gc", "home", "--json")
    assert code == 0, err
    assert json.loads(out)["copies"] == 0
    for args in (("dedup-gc", "home:a.txt"), ("dedup-gc", "home:a.txt", "--json")):
        code, out, err = _invoke(tmp_path, *args)
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and "whole mount" in err and "home:a.txt" in err
    code, _, err = _invoke(tmp_path, "dedup-gc", "nomount")
    assert code == 1 and err.count("\n") == 1 and "nomount" in err
    missing = str(tmp_path / "no" / "such" / "dir")
    for args in (("dupes", "home:nothere"), ("dupes", missing, "--json"),
                 ("dedup", "home:nothere", "--strategy", "delete")):
        code, out, err = _invoke(tmp_path, *args)
        assert code == 1 and out == "", (args, out)
        assert err.count("\n") == 1 and "No such file or directory" in err, err
        assert "Traceback" not in err


def test_forged_references_never_read_another_mounts_content(tmp_path: Path) -> None:
    sm = _two_mounts(tmp_path)
    for path in ("x1", "x2"):
        sm.node(f"A:{path}").write_bytes(BIG)
    assert sm.deduplicate("A:", strategy="reference")["bytes_reclaimed"] > 0
    line = (tmp_path / "a" / "x1").read_bytes()
    assert len(line) == REF_SIZE and line.startswith(b"storied-ref/1 ")
    (tmp_path / "b" / "copied").write_bytes(line)  # A's reference, planted in B
    assert sm.node("B:copied").read_bytes() == line
    assert sm.node("B:copied").info().size == REF_SIZE
    wrong = line[:-65] + bytes(reversed(line[-65:-1])) + b"\n"  # same form, bad HMAC
    (tmp_path / "a" / "forged").write_bytes(wrong)
    assert sm.node("A:forged").read_bytes() == wrong
    assert sm.collect_references("B", grace=0)["copies"] == 0
    report = sm.collect_references("A", grace=0)  # the forged line keeps, never removes
    assert report["removed"] == [] and report["referenced"] == 1
    assert sm.node("A:x1").read_bytes() == BIG and sm.node("A:x2").read_bytes() == BIG


def test_a_reference_whose_content_copy_is_gone(tmp_path: Path) -> None:
    sm = _two_mounts(tmp_path)
    for path in ("x1", "x2"):
        sm.node(f"A:{path}").write_bytes(BIG)
    sm.deduplicate("A:", strategy="reference")
    (copy,) = glob.glob(str(tmp_path / "a" / ".storied" / "dedup" / "blobs" / "*" / "*" / "*"))
    os.remove(copy)  # outside storied
    with pytest.raises(StorageIOError, match=r"content copy .* is missing"):
        sm.node("A:x1").read_bytes()
    with pytest.raises(StorageIOError):
        sm.node("A:x2").copy_to(sm.node("B:x2"))
    assert not sm.node("B:x2").exists()  # nothing half-copied
    assert sm.node("A:x1").open("rb", version=0).read() == BIG  # the history kept the bytes
    assert sm.collect_references("A", grace=0)["removed"] == []
    sm.node("A:x1").write_bytes(b"new")  # writing the path replaces the reference
    assert sm.node("A:x1").read_bytes() == b"new"
