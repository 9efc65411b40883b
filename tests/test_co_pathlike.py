"""pathlib's names on nodes, on every kind of mount (local, memory, S3 on moto), beside the
genro-storage names."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import DirectoryNotEmptyError, InvalidArgumentError
from storied.testing.s3server import MotoHandle, make_bucket


@pytest.fixture(params=["local", "memory", "s3"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    storage = StorageManager()
    if request.param == "local":
        storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path)}])
    elif request.param == "memory":
        storage.configure([{"name": "m", "type": "memory"}])
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"pl-{uuid.uuid4().hex[:10]}")
        storage.configure([{"name": "m", "type": "s3", "bucket": bucket, "key": "k",
                            "secret": "s", "endpoint_url": moto.endpoint_url}])
    for name in ("a/x.csv", "a/b/y.csv", "a/b/z.txt", "a/c.tar.gz"):
        storage.node(f"m:{name}").write_text(name)
    yield storage
    storage.close()


def test_pure_names(sm: StorageManager) -> None:
    node = sm.node("m:a") / "c.tar.gz"
    assert node.fullpath == "m:a/c.tar.gz" and node.name == "c.tar.gz"
    assert node.suffixes == [".tar", ".gz"] and node.suffix == ".gz" and node.stem == "c.tar"
    assert node.parts == ("m:", "a", "c.tar.gz")
    assert [p.path for p in node.parents] == ["a", ""]
    assert node.with_name("d.txt").fullpath == "m:a/d.txt"
    assert node.with_suffix(".zip").fullpath == "m:a/c.tar.zip"
    assert node.with_suffix("").fullpath == "m:a/c.tar"
    assert sm.node("m:").joinpath("a", "b", "y.csv").fullpath == "m:a/b/y.csv"
    assert node.match("*.gz") and not node.match("b/*.gz")
    for bad in (lambda: node.with_name("x/y"), lambda: node.with_suffix("zip"),
                lambda: sm.node("m:").with_name("x")):
        with pytest.raises(InvalidArgumentError):
            bad()
    with pytest.raises(PermissionError):
        sm.node("m:a") / ".."  # the mount's own rules apply


def test_listing_glob_walk(sm: StorageManager) -> None:
    root = sm.node("m:a")
    assert sorted(n.name for n in root.iterdir()) == ["b", "c.tar.gz", "x.csv"]
    assert [n.path for n in root.glob("*.csv")] == ["a/x.csv"]
    assert [n.path for n in root.glob("**/*.csv")] == ["a/b/y.csv", "a/x.csv"]
    assert [n.path for n in root.rglob("*.txt")] == ["a/b/z.txt"]
    assert [n.path for n in root.glob("b/*")] == ["a/b/y.csv", "a/b/z.txt"]
    walked = [(d.path, sorted(dirs), sorted(files)) for d, dirs, files in root.walk()]
    assert walked == [("a", ["b"], ["c.tar.gz", "x.csv"]), ("a/b", [], ["y.csv", "z.txt"])]
    with pytest.raises(NotADirectoryError):
        list(sm.node("m:a/x.csv").iterdir())


def test_stat_touch_unlink_rmdir_rename(sm: StorageManager) -> None:
    st = sm.node("m:a/x.csv").stat()
    assert isinstance(st, os.stat_result) and stat.S_ISREG(st.st_mode) and st.st_size == 7
    assert st.st_mtime > 0
    new = sm.node("m:t/new.txt")
    new.touch()
    assert new.read_bytes() == b""
    new.write_text("kept")
    new.touch()  # an existing file is left as it is
    assert new.read_text() == "kept"
    with pytest.raises(FileExistsError):
        new.touch(exist_ok=False)
    new.unlink()
    assert not new.exists()
    new.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        new.unlink()
    moved = sm.node("m:a/x.csv").rename("m:a/moved.csv")
    assert moved.read_text() == "a/x.csv" and not sm.node("m:a/x.csv").exists()
    assert sm.node("m:a/moved.csv").samefile("m:a/moved.csv")
    assert not sm.node("m:a/moved.csv").samefile(sm.node("m:a/c.tar.gz"))
    with pytest.raises(IsADirectoryError):
        sm.node("m:a/b").unlink()
    if sm.node("m:").capabilities.empty_dirs:
        with pytest.raises(DirectoryNotEmptyError):
            sm.node("m:a/b").rmdir()
        sm.node("m:empty").mkdir()
        sm.node("m:empty").rmdir()
        assert not sm.node("m:empty").exists()


def test_samefile_across_two_mounts_of_one_folder(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "one", "type": "local", "base_path": str(tmp_path)},
                       {"name": "two", "type": "local", "base_path": str(tmp_path)}])
    storage.node("one:f.txt").write_text("x")
    assert storage.node("one:f.txt").samefile(storage.node("two:f.txt"))


def test_open_and_read_text_take_pathlibs_text_options(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path)}])
    node = storage.node("l:t.txt")
    node.write_bytes(b"caf\xe9\r\nline two\n")
    assert node.read_text(errors="replace") == "caf\ufffd\r\nline two\n"
    with node.open("r", encoding="latin-1", newline=None) as f:
        assert f.read() == "café\nline two\n"  # universal newlines, as open() does
    with node.open("r", encoding="latin-1", newline="") as f:
        assert f.read() == "café\r\nline two\n"
    with node.open("w", encoding="ascii", errors="xmlcharrefreplace", newline="\r\n") as f:
        f.write("é\n")
    assert node.read_bytes() == b"&#233;\r\n"
    with node.open("rb", buffering=0) as f:
        assert f.read() == b"&#233;\r\n"
    for bad in ({"errors": "nope"}, {"newline": "x"}, {"buffering": "1"}):
        with pytest.raises(InvalidArgumentError):
            node.open("r", **bad)  # type: ignore[arg-type]
