"""iternode and diffnode: virtual nodes computed from other nodes at read time."""

from __future__ import annotations

import io
import zipfile

import pytest

from storied import StorageManager


@pytest.fixture
def sm() -> StorageManager:
    storage = StorageManager()
    storage.configure([{"name": "m", "type": "memory"}])
    storage.node("m:a.txt").write_text("one\ntwo\n")
    storage.node("m:b.txt").write_text("one\nthree\n")
    return storage


def test_iternode_concatenates_lazily(sm: StorageManager) -> None:
    joined = sm.iternode(sm.node("m:a.txt"))
    joined.append(sm.node("m:b.txt"))
    sm.node("m:a.txt").write_text("ONE\n")  # read at read time, not at creation
    assert joined.read_text() == "ONE\none\nthree\n"
    assert joined.exists() is False and joined.fullpath == "None:"
    with pytest.raises(ValueError, match="virtual"):
        joined.write_text("x")
    joined.copy_to("m:joined.txt")
    assert sm.node("m:joined.txt").read_text() == "ONE\none\nthree\n"
    names = zipfile.ZipFile(io.BytesIO(joined.zip())).namelist()
    assert names == ["a.txt", "b.txt"]


def test_diffnode_unified_and_binary(sm: StorageManager) -> None:
    diff = sm.diffnode(sm.node("m:a.txt"), sm.node("m:b.txt")).read_text()
    assert "--- m:a.txt" in diff and "+++ m:b.txt" in diff
    assert "-two" in diff and "+three" in diff
    assert sm.diffnode(sm.node("m:a.txt"), sm.node("m:a.txt")).read_text() == ""
    sm.node("m:bin").write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match="binary"):
        sm.diffnode(sm.node("m:a.txt"), sm.node("m:bin")).read_text()


def test_directory_zip(sm: StorageManager) -> None:
    sm.node("m:d/x.txt").write_text("x")
    sm.node("m:d/sub/y.txt").write_text("y")
    names = sorted(zipfile.ZipFile(io.BytesIO(sm.node("m:d").zip())).namelist())
    assert names == ["sub/y.txt", "x.txt"]  # relative to the directory, as genro-storage
    root = sorted(zipfile.ZipFile(io.BytesIO(sm.node("m:").zip())).namelist())
    assert {"d/sub/y.txt", "d/x.txt"} <= set(root)  # a mount root: no leading '/'
    assert not [name for name in root if name.startswith("/")]
    both = sm.iternode(sm.node("m:d"), sm.node("m:d/x.txt"))
    assert sorted(zipfile.ZipFile(io.BytesIO(both.zip())).namelist()) == [
        "d/sub/y.txt", "d/x.txt", "x.txt"]  # an iternode keeps its sources apart
    with pytest.raises(FileNotFoundError) as caught:
        sm.node("m:nothing").zip()
    assert isinstance(caught.value, ValueError)  # genro-storage raises ValueError
