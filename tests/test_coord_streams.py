"""Atomic writers: a writer nobody closed (collected after an exception) commits nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from storied import StorageManager


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_a_writer_never_closed_commits_nothing(tmp_path: Path, mode: str) -> None:
    import gc
    import warnings

    storage = StorageManager()
    storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path)}])
    node = storage.node("m:f.txt")
    node.write_bytes(b"old")

    def interrupted() -> None:
        writer = node.open(mode)
        writer.write(b"half" if "b" in mode else "half")
        raise RuntimeError("interrupted mid-write")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            interrupted()
        gc.collect()
    assert node.read_bytes() == b"old"  # the garbage collector never commits half a file
    if "b" in mode:  # the text layer's own finaliser closes its buffer first: no warning then
        assert any(issubclass(w.category, ResourceWarning) and "never closed" in
                   str(w.message) for w in caught)
