"""Atomic writers: a writer nobody closed (collected after an exception) commits nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import StorageManager


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_a_writer_never_closed_commits_nothing(tmp_path: Path, mode: str) -> None:
    import gc
    import warnings

    storage = StorageManager()
    storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path)}])
    node = storage.node("m:f.txt")
    node.write_bytes(b"old")

    def interrupted() -> None:
        writer = node.open(mode)
        writer.write(b"half" if "b" in mode else "half")
        raise RuntimeError("interrupted mid-write")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            interrupted()
        gc.collect()
    assert node.read_bytes() == b"old"  # the garbage collector never commits half a file
    if "b" in mode:  # the text layer's own finaliser closes its buffer first: no warning then
        assert any(issubclass(w.category, ResourceWarning) and "never closed" in
                   str(w.message) for w in caught)


def test_a_writable_zip_refuses_locks(tmp_path: Path) -> None:
    from storied.errors import UnsupportedOperation

    storage = StorageManager()
    storage.configure([{"name": "z", "type": "zip", "file": str(tmp_path / "a.zip"),
                        "mode": "w"}])
    storage.node("z:x.txt").write_text("x")
    with pytest.raises(UnsupportedOperation, match="another process"):
        storage.node("z:x.txt").lock(timeout=0).acquire()
    storage.close()


def test_find_duplicates_leaves_out_a_file_it_cannot_read(tmp_path: Path) -> None:
    from storied.backends.local import LocalBackend
    from storied.testing.doubles import FaultyBackend

    inner = LocalBackend(str(tmp_path))  # no MD5 in its listings: every file is read
    for name in ("a", "b", "c"):
        inner.write(name, b"same bytes")
    storage = StorageManager()
    storage.add_mount({"name": "f", "retries": 1,
                       "backend": FaultyBackend(inner, 1, frozenset({"open_read"}))})
    (group,) = storage.find_duplicates("f:")  # the first read fails: that file drops out
    assert len(group.nodes) == 2 and group.digest.startswith("sha256:")


def test_rm_dry_run_also_refuses_a_tree_holding_another_mounts_history(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from storied.cli.main import cli

    (tmp_path / "data").mkdir()
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps([
        {"name": "outer", "type": "local", "base_path": str(tmp_path)},
        {"name": "v", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
    ]))
    storage = StorageManager()
    storage.configure(str(cfg))
    storage.node("v:f.txt").write_text("kept")
    for extra in (["-n"], []):
        result = CliRunner().invoke(cli, ["-c", str(cfg), "rm", "-r", *extra, "outer:data"])
        assert result.exit_code == 1 and "history" in result.stderr, result.stderr
    assert storage.node("v:f.txt").read_text() == "kept"
