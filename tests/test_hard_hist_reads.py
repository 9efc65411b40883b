"""Reading long histories: lazy resolution agrees with the full version list; cached listings
never hide a change made by another engine."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from storied.backends.local import LocalBackend
from storied.backends.memory import MemoryBackend
from storied.versioning.history import MountHistory, _at_date, _at_index
from storied.versioning.portable import PortableEngine


def quiet(folder: Path) -> None:
    """Make a history directory look untouched for a minute (as if nobody wrote it lately)."""
    old = time.time() - 60
    os.utime(folder, (old, old))


def engines(tmp_path: Path) -> tuple[PortableEngine, PortableEngine]:
    return (PortableEngine(LocalBackend(tmp_path), LocalBackend(tmp_path)),
            PortableEngine(LocalBackend(tmp_path), LocalBackend(tmp_path)))


def test_cached_listing_sees_other_engines_writes_and_removals(tmp_path: Path) -> None:
    reader, writer = engines(tmp_path)
    for i in range(5):
        writer.write("a.txt", f"v{i}".encode())
    folder = tmp_path / ".storied" / "versions" / "a.txt"
    quiet(folder)
    assert len(reader.versions("a.txt")) == 5
    assert reader.version_at("a.txt", -1)[0] == reader.versions("a.txt")[-1]  # cached now
    newest = writer.write("a.txt", b"v5")
    assert reader.versions("a.txt")[-1] == newest
    assert reader.version_at("a.txt", -1)[0] == newest
    assert reader.version_at("a.txt", 6) == (None, 6)
    quiet(folder)
    assert len(reader.versions("a.txt")) == 6
    writer.delete_version("a.txt", newest)
    assert len(reader.versions("a.txt")) == 5 and reader.version_at("a.txt", -6) == (None, 5)
    quiet(folder)
    reader.versions("a.txt")
    writer.delete("a.txt")
    assert not any(v.is_latest for v in reader.versions("a.txt"))
    assert reader.version_at("a.txt", -1)[0] == reader.versions("a.txt")[-1]


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_lazy_index_and_date_match_the_full_list(tmp_path: Path, backend: str) -> None:
    store = LocalBackend(tmp_path) if backend == "local" else MemoryBackend("hh-reads")
    engine = PortableEngine(store, store)
    history = MountHistory(engine)
    for i in range(12):
        engine.write("f.txt", f"{i}".encode())
        if i in (3, 7):
            engine.delete("f.txt")
    # names that look like records but are not, and one that is not even shaped like one
    folder = ".storied/versions/f.txt"
    store.write(f"{folder}/0000000000000000001.abcdefabcdef.w.zz", b"")
    store.write(f"{folder}/notes.txt", b"")
    found = engine.versions("f.txt")
    assert len(found) == 12
    for index in range(-14, 14):
        try:
            expected = _at_index(found, index, "f.txt")
        except IndexError as exc:
            with pytest.raises(IndexError, match=str(exc).split(".")[0]):
                history.resolve("f.txt", index)
            continue
        assert history.resolve("f.txt", index) == expected
    moments = [v.last_modified + timedelta(microseconds=d) for v in found for d in (-1, 0, 1)]
    for moment in [found[0].last_modified - timedelta(days=1), *moments]:
        try:
            expected = _at_date(found, moment, "f.txt")
        except FileNotFoundError:
            with pytest.raises(FileNotFoundError):
                history.resolve("f.txt", None, as_of=moment)
            continue
        assert history.resolve("f.txt", None, as_of=moment) == expected
    engine.delete("f.txt")
    assert history.resolve("f.txt", -1) == engine.versions("f.txt")[-1]
    assert not history.resolve("f.txt", -1).is_latest
