"""The package type-checks under ``mypy --strict`` (configured in pyproject.toml), so the
typing stays true as the code changes (issue 12 §7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_is_clean() -> None:
    run = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert (ROOT / "src" / "storied" / "py.typed").exists()


def test_local_nodes_are_path_like_and_others_are_not(tmp_path: Path) -> None:
    import os

    import pytest

    from storied import StorageManager

    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path)},
                       {"name": "sub", "path": "l:d"},
                       {"name": "mem", "type": "memory", "versioning": True}])
    node = storage.node("l:d/a.csv")
    node.write_text("a,b\n1,2\n")
    assert os.fspath(node) == str(tmp_path.resolve() / "d" / "a.csv")
    with open(node) as f:  # a real path: any library taking a path works
        assert f.read() == "a,b\n1,2\n"
    assert os.fspath(storage.node("sub:a.csv")) == os.fspath(node)
    assert isinstance(node.parent, os.PathLike) and isinstance(node / "x", os.PathLike)
    mem = storage.node("mem:a.csv")
    assert not isinstance(mem, os.PathLike)
    with pytest.raises(TypeError):
        os.fspath(mem)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="pinned"):
        os.fspath(storage.node("l:d/a.csv", version=0))
    with pytest.raises(TypeError, match="not a file object"):
        node.read(16)  # type: ignore[arg-type]
    pd = pytest.importorskip("pandas")
    assert pd.read_csv(node).to_dict("list") == {"a": [1], "b": [2]}
