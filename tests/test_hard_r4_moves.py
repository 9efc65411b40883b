"""Review R4: moves onto non-empty folders, and moves whose copy fails half-way."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import DirectoryNotEmptyError, StorageManager
from storied.testing.doubles import FaultyBackend


@pytest.fixture
def storage(tmp_path: Path) -> StorageManager:
    manager = StorageManager()
    manager.configure([
        {"name": "plain", "type": "local", "base_path": str(tmp_path)},
        {"name": "mem", "type": "memory", "store": f"r4-{tmp_path.name}"},
        {"name": "ver", "type": "memory", "store": f"r4v-{tmp_path.name}", "versioning": True},
    ])  # fmt: skip
    return manager


@pytest.mark.parametrize(("src_mount", "dest_mount"),
                         [("plain", "plain"), ("ver", "ver"), ("mem", "plain"), ("plain", "ver")])
def test_move_dir_onto_non_empty_dir_is_refused_everywhere(
    storage: StorageManager, src_mount: str, dest_mount: str
) -> None:
    """A rename refused this; a copy-and-delete move (versioned, cross-mount) merged and
    overwrote ``dst/same``."""
    storage.node(f"{src_mount}:src/same").write_bytes(b"new")
    storage.node(f"{dest_mount}:dst/same").write_bytes(b"old")
    with pytest.raises(DirectoryNotEmptyError):
        storage.node(f"{src_mount}:src").move_to(storage.node(f"{dest_mount}:dst"))
    assert storage.node(f"{dest_mount}:dst/same").read_bytes() == b"old"
    assert storage.node(f"{src_mount}:src/same").read_bytes() == b"new"


def test_move_dir_onto_empty_dir_still_works(storage: StorageManager) -> None:
    storage.node("ver:src/f").write_bytes(b"f")
    storage.node("ver:dst").mkdir(parents=True, exist_ok=True)
    storage.node("ver:src").move_to(storage.node("ver:dst"))
    assert storage.node("ver:dst/f").read_bytes() == b"f"
    assert not storage.node("ver:src/f").exists()


class _FailThirdWrite(FaultyBackend):
    def _maybe_fail(self, operation: str) -> None:
        self.calls[operation] += 1
        if operation == "write" and self.calls[operation] == 3:
            raise OSError("disk full")


def test_cross_mount_move_failing_half_way_deletes_no_source(
    storage: StorageManager, tmp_path: Path
) -> None:
    for i in range(5):
        storage.node(f"mem:dir/f{i}").write_bytes(b"%d" % i)
    storage._mounts["plain"] = _FailThirdWrite(storage._mounts["plain"])
    with pytest.raises(OSError, match="disk full"):
        storage.node("mem:dir").move_to(storage.node("plain:dir"))
    assert [storage.node(f"mem:dir/f{i}").read_bytes() for i in range(5)] == [
        b"0", b"1", b"2", b"3", b"4"
    ]
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["f0", "f1"]
