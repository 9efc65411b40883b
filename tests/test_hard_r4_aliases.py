"""Review R4: a portable history seen through another mount of the same storage (an alias)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storied import StorageConfigError, StorageManager, StoragePermissionError


def _setup(tmp_path: Path, alias_base: str) -> StorageManager:
    (tmp_path / "A").mkdir()
    (tmp_path / "H").mkdir()
    storage = StorageManager()
    storage.configure([
        {"name": "h", "type": "local", "base_path": str(tmp_path / "H")},
        {"name": "a", "type": "local", "base_path": str(tmp_path / "A"), "versioning": True,
         "history": "h:hist"},
    ])  # fmt: skip
    storage.node("a:f.txt").write_bytes(b"v1")
    storage.node("a:f.txt").write_bytes(b"v2")
    storage.add_mount({"name": "alias", "type": "local", "base_path": alias_base})
    return storage


@pytest.mark.parametrize("form", ["slash", "symlink"])
def test_alias_of_history_target_cannot_see_or_destroy_history(
    tmp_path: Path, form: str
) -> None:
    if form == "slash":
        alias = str(tmp_path / "H") + "/"
    else:
        os.symlink(tmp_path / "H", tmp_path / "L")
        alias = str(tmp_path / "L")
    storage = _setup(tmp_path, alias)
    storage.node("alias:user.txt").write_bytes(b"u")
    assert [n.path for n in storage.node("alias:").children()] == ["user.txt"]
    with pytest.raises(StoragePermissionError):
        storage.node("alias:hist/x").write_bytes(b"x")
    storage.node("alias:").delete(recursive=True)
    assert len(storage.node("a:f.txt").versions) == 2
    assert storage.node("a:f.txt", version=0).read_bytes() == b"v1"


def test_alias_recursive_move_keeps_history(tmp_path: Path) -> None:
    storage = _setup(tmp_path, str(tmp_path / "H") + "/")
    storage.add_mount({"name": "m", "type": "memory"})
    storage.node("alias:").move_to(storage.node("m:moved"))
    assert storage.node("m:moved").children() == []
    assert len(storage.node("a:f.txt").versions) == 2


def test_mount_inside_a_history_is_refused(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "a", "type": "local", "base_path": str(tmp_path / "A"),
                        "versioning": True}])
    storage.node("a:f.txt").write_bytes(b"v1")
    with pytest.raises(StorageConfigError, match="inside the history"):
        storage.add_mount({"name": "peek", "type": "local",
                           "base_path": str(tmp_path / "A" / ".storied")})
    assert not storage.has_mount("peek")
    assert len(storage.node("a:f.txt").versions) == 1
