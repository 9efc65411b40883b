"""Review R3: links into the reserved history folder, in both resolution modes (issue 8).

R2's fix (ADR 0003: a link never leads into the history folder) refuses directory links; a
link to a *file* inside ``.storied`` was still read through where the kernel has openat2.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends import _local_fs
from storied.errors import PathEscapeError


@pytest.mark.parametrize("mode", ["openat2", "name-by-name"])
def test_a_link_to_a_file_in_the_history_is_refused_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if mode != "openat2":
        monkeypatch.setattr(_local_fs, "OPENAT2", None)
        monkeypatch.setattr(_local_fs, "_PROC_FD", False)
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])  # fmt: skip
    sm.node("m:f.txt").write_bytes(b"secret old version")
    sm.node("m:f.txt").write_bytes(b"current")
    blob = next(p for p in (tmp_path / ".storied").rglob("*") if p.is_file() and "blobs" in p.parts
                and p.read_bytes() == b"secret old version")  # fmt: skip
    os.symlink(blob.relative_to(tmp_path), tmp_path / "peek")
    with pytest.raises(PathEscapeError):
        sm.node("m:peek").read_bytes()
    with pytest.raises(PathEscapeError), sm.node("m:peek").open("rb") as stream:
        stream.read()
    assert blob.read_bytes() == b"secret old version"
    sm.close()
