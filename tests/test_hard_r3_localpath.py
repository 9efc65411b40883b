"""Review R3: ``local_path`` for writing and hard links planted in a local mount (issue 8).

Kept apart from test_hard_r3_local.py (R2 is landing fixes with that file). The defect is in
``src/storied/core/localfile.py``: a file with several names goes through a temporary copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storied import StorageManager


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    base.mkdir()
    return base


@pytest.mark.parametrize("mode", ["w", "rw"])
def test_local_path_for_writing_never_writes_through_a_planted_hard_link(
    root: Path, tmp_path: Path, mode: str
) -> None:
    """Storied's own writes replace a hard-linked file; ``local_path('w')`` gave the real
    path, so a program rewriting it in place wrote into the file outside the mount."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"outside\n")
    os.link(victim, root / "report.txt")
    sm = StorageManager()
    sm.configure([{"name": "m", "type": "local", "base_path": str(root)}])
    with sm.node("m:report.txt").local_path(mode) as path, open(path, "w") as out:
        out.write("regenerated")
    assert victim.read_bytes() == b"outside\n"
    assert (root / "report.txt").read_bytes() == b"regenerated"
    sm.close()
