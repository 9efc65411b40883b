"""Issue 8 §5 (R2): faster history listings and the fused blob + record creation on local
disks keep their exact results.

``versions_of`` and ``Listing.check`` match a whole listing in one regular-expression call
(a name a line); a name holding a line break must not pass for the records it contains.
``LocalBackend.list_file_names`` lists what ``list_names`` lists as files.
``LocalBackend.create_linked`` is ``write(CREATE)`` + ``link`` in one call.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.local import LocalBackend
from storied.errors import StorageAlreadyExistsError
from storied.versioning._listing import Listing, versions_of
from storied.versioning.records import Record, new_writer_id


def _manager(root: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root), "versioning": True}])
    return sm


def _names(count: int) -> list[str]:
    writer = new_writer_id()
    return [Record(1_700_000_000_000_000_000 + k, writer, False, k, "a" * 32, "b" * 64).name
            for k in range(count)]


def test_a_name_with_a_line_break_never_passes_for_records() -> None:
    good = _names(3)
    forged = f"{good[0][:33]}w.1.{'c' * 32}.{'d' * 64}\n{good[1]}"  # shaped, two "lines"
    names = sorted([*good, forged])
    found = versions_of(names)
    assert [v.version_id for v in found] == [n[:32] for n in good]
    assert found[-1].is_latest and not any(v.is_latest for v in found[:-1])
    listing = Listing(names)
    listing.check()
    assert listing.names == good


def test_malformed_names_are_skipped_alike_by_every_reader() -> None:
    good = _names(4)
    bad = [good[0][:-1] + "Z", good[1].replace(".w.", ".w.-"), good[2][:19] + "x" + good[2][20:]]
    names = sorted([*good, *bad])
    assert [v.version_id for v in versions_of(names)] == [n[:32] for n in good]
    listing = Listing(list(names))
    assert listing.at(-1)[0].version_id == good[-1][:32]  # type: ignore[union-attr]
    assert listing.as_of(datetime.now(UTC)).version_id == good[-1][:32]  # type: ignore[union-attr]
    assert listing.at(-5) == (None, 4)


def test_planted_names_in_a_history_directory_are_not_versions(tmp_path: Path) -> None:
    sm = _manager(tmp_path)
    node = sm.node("m:f.txt")
    for i in range(3):
        node.write_bytes(f"v{i}".encode())
    folder = tmp_path / ".storied" / "versions" / "f.txt"
    real = sorted(os.listdir(folder))
    forged = Record(int(real[-1][:19]) + 1, new_writer_id(), False, 9, "c" * 32, "d" * 64).name
    (folder / f"{real[0][:34]}\n{forged}").write_bytes(b"")  # shaped; its 2nd line a record
    (folder / (real[2][:33] + "w.1")).mkdir()  # a directory is never a record
    assert [v["size"] for v in node.versions] == [2, 2, 2]
    assert node.open(version=-2, mode="rb").read() == b"v1"
    sm.close()


def test_list_file_names_lists_what_list_names_lists_as_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d" / "sub").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("o")
    (root / "d" / "a.txt").write_text("a")
    (root / "d" / ".x.storied-tmp-1-2").write_text("t")
    os.symlink("a.txt", root / "d" / "to-file")
    os.symlink("sub", root / "d" / "to-dir")
    os.symlink(str(tmp_path / "outside.txt"), root / "d" / "to-outside")
    os.symlink("missing", root / "d" / "dangling")
    backend = LocalBackend(str(root))
    files = sorted(n for n, is_dir in backend.list_names("d") if not is_dir)
    assert sorted(backend.list_file_names("d")) == files == ["a.txt", "to-file"]


def test_create_linked_creates_then_links_and_dedupes(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    assert backend.create_linked("blobs/ab/x", b"one", "versions/f/r1") is True
    assert backend.create_linked("blobs/ab/x", b"other", "versions/f/r2") is False
    for name in ("blobs/ab/x", "versions/f/r1", "versions/f/r2"):
        assert backend.read_bytes(name) == b"one"  # an existing path keeps its bytes
    assert os.stat(tmp_path / "blobs/ab/x").st_nlink == 3
    with pytest.raises(StorageAlreadyExistsError):
        backend.create_linked("blobs/ab/y", b"two", "versions/f/r1")
    assert backend.read_bytes("versions/f/r1") == b"one"
    assert sorted(os.listdir(tmp_path / "blobs" / "ab")) == ["x", "y"]  # no temporary left


def test_exists_below_a_file_is_false(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    backend.write("a.txt", b"a")
    assert backend.exists("a.txt") and not backend.exists("a.txt/b")
    assert not backend.exists("a.txt/b/c") and not backend.exists("missing/b")
