"""Review R4: forms of the reserved name that fold to ``.storied``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from storied import StorageManager, StoragePermissionError

FORMS = ["\uff0e\uff53\uff54\uff4f\uff52\uff49\uff45\uff44", ".\uff53toried", "%2estoried",
         "%2Estoried%2E", ".storied%20"]


@pytest.mark.parametrize("name", FORMS)
def test_equivalent_forms_of_reserved_name_are_refused(tmp_path: Path, name: str) -> None:
    storage = StorageManager()
    storage.configure([{"name": "a", "type": "local", "base_path": str(tmp_path)}])
    with pytest.raises(StoragePermissionError):
        storage.node(f"a:{name}/x").write_bytes(b"x")
    with pytest.raises(StoragePermissionError):
        storage.node("a:").child("sub", name, "x").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []


def test_zip_entries_in_equivalent_forms_are_not_copied(tmp_path: Path) -> None:
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{FORMS[0]}/e", "z")
        z.writestr("ok", "y")
    (tmp_path / "out").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "z", "type": "zip", "file": str(archive)},
                       {"name": "o", "type": "local", "base_path": str(tmp_path / "out")}])
    skipped: list[tuple[str, str]] = []
    storage.node("z:").copy_to(storage.node("o:"), on_skip=lambda n, r: skipped.append((n.path, r)))
    assert skipped == [(f"{FORMS[0]}/e", "reserved")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok"]
    assert (tmp_path / "out" / "ok").read_bytes() == b"y"
