"""Review R1: storied:// deletes and moves touch only what they name: never the current file
for a ``?version=`` path, never through a pinned filesystem, never the root, never glob
siblings of a name with ``?``, never data moved onto itself through another mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import (
    InvalidPathError,
    PathEscapeError,
    ReadOnlyVersionError,
    UnsupportedOperation,
)
from storied.fsspec import StoriedFileSystem


@pytest.fixture
def fs(tmp_path: Path) -> StoriedFileSystem:
    for name in ("v", "p", "outside"):
        (tmp_path / name).mkdir()
    (tmp_path / "outside" / "secret").write_text("S")
    storage = StorageManager()
    storage.add_mount({"name": "v", "type": "local", "base_path": str(tmp_path / "v"),
                       "versioning": True})
    storage.add_mount({"name": "p", "type": "local", "base_path": str(tmp_path / "p")})
    storage.add_mount({"name": "alias", "type": "local", "base_path": str(tmp_path / "p")})
    storage.node("v:a/f.txt").write_text("1")
    storage.node("v:a/f.txt").write_text("2")
    for name in ("q?x.txt", "qax.txt", "qbx.txt"):
        storage.node(f"p:{name}").write_text(name)
    storage.node("p:dir/inner.txt").write_text("inner")
    return StoriedFileSystem(storage=storage)


def test_a_version_path_is_never_deleted_as_the_current_file(fs: StoriedFileSystem) -> None:
    for call in (lambda: fs.rm("v/a/f.txt?version=0"), lambda: fs.rm_file("v/a/f.txt?version=0"),
                 lambda: fs.mv("v/a/f.txt?version=0", "v/b.txt")):
        with pytest.raises(ReadOnlyVersionError):
            call()
    assert fs.cat_file("v/a/f.txt") == b"2"


def test_a_pinned_filesystem_changes_nothing(fs: StoriedFileSystem) -> None:
    pinned = StoriedFileSystem(storage=fs.storage, version=0)
    for call in (lambda: pinned.rm("v/a", recursive=True), lambda: pinned.rm_file("v/a/f.txt"),
                 lambda: pinned.mv("v/a/f.txt", "v/b.txt"), lambda: pinned.mkdir("v/new"),
                 lambda: pinned.pipe_file("v/a/f.txt", b"x")):
        with pytest.raises(ReadOnlyVersionError):
            call()
    assert fs.cat_file("v/a/f.txt") == b"2" and not fs.exists("v/new")


def test_rm_of_the_root_is_refused_before_deleting(fs: StoriedFileSystem) -> None:
    for root in ("", "/", "storied://"):
        with pytest.raises(InvalidPathError):
            fs.rm(root, recursive=True)
    assert fs.cat_file("v/a/f.txt") == b"2" and fs.cat_file("p/qax.txt") == b"qax.txt"


def test_rm_of_a_mount_root_keeps_its_history(fs: StoriedFileSystem, tmp_path: Path) -> None:
    fs.rm("v", recursive=True)
    assert fs.ls("v", detail=False) == []
    assert (tmp_path / "v" / ".storied").is_dir()
    assert [v["size"] for v in fs.storage.node("v:a/f.txt").versions] == [1, 1]


def test_a_name_with_a_question_mark_deletes_only_itself(fs: StoriedFileSystem) -> None:
    fs.rm("p/q?x.txt")
    assert sorted(fs.ls("p", detail=False)) == ["p/dir", "p/qax.txt", "p/qbx.txt"]
    fs.rm("p/q?x.txt")  # now nothing has the name: a glob, as fsspec has it
    assert sorted(fs.ls("p", detail=False)) == ["p/dir"]


def test_mv_of_a_directory_onto_itself_through_an_alias_loses_nothing(
        fs: StoriedFileSystem) -> None:
    fs.mv("p/dir", "alias/dir", recursive=True)
    assert fs.cat_file("p/dir/inner.txt") == b"inner"
    fs.mv("p/dir", "alias/moved", recursive=True)
    assert fs.cat_file("p/moved/inner.txt") == b"inner" and not fs.exists("p/dir")


@pytest.mark.parametrize("path", ["v/../outside/secret", "v/a/../../outside/secret",
                                  "v/%2e%2e/outside/secret"])
def test_escapes_are_refused(fs: StoriedFileSystem, path: str) -> None:
    with pytest.raises(PathEscapeError):
        fs.cat_file(path)
    with pytest.raises(PathEscapeError):
        fs.pipe_file(path, b"x")
    with pytest.raises(PathEscapeError):
        fs.rm(path)


def test_pandas_cannot_write_through_a_readonly_mount(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "x.csv").write_text("a\n1\n")
    storage = StorageManager()
    storage.add_mount({"name": "ro", "type": "local", "base_path": str(tmp_path / "ro"),
                       "permissions": "readonly"})
    for name in ("x.csv", "new.csv"):
        with pytest.raises(PermissionError):
            pd.DataFrame({"a": [2]}).to_csv(f"storied://ro/{name}",
                                            storage_options={"storage": storage})
    assert sorted(p.name for p in (tmp_path / "ro").iterdir()) == ["x.csv"]
    assert (tmp_path / "ro" / "x.csv").read_text() == "a\n1\n"


def test_a_versioned_mount_reached_through_another_mount_is_not_deleted(
        fs: StoriedFileSystem, tmp_path: Path) -> None:
    fs.storage.add_mount({"name": "raw", "type": "local", "base_path": str(tmp_path)})
    for call in (lambda: fs.rm("raw/v", recursive=True), lambda: fs.rm_file("raw/v/a/f.txt"),
                 lambda: fs.mv("raw/v/a", "raw/elsewhere", recursive=True)):
        with pytest.raises(UnsupportedOperation, match="versioned mount 'v'"):
            call()
    assert fs.cat_file("v/a/f.txt") == b"2"
    fs.rm("raw/p/qax.txt")  # the plain mount's files: no history to keep in step
    assert fs.storage.verify("v:").stale == []
