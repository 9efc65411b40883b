"""The storied_cassette fixture, run in a pytest subprocess: record once, replay with the
storage emptied, and a call the cassette lacks fails the test."""

from __future__ import annotations

import importlib.metadata
import os
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

_TESTS = '''
import os
from storied import StorageManager

def _storage():
    storage = StorageManager()
    storage.configure([{"name": "disk", "type": "local", "base_path": os.environ["HF_DISK"]}])
    return storage

def test_roundtrip(storied_cassette):
    storage = _storage()
    storied_cassette(storage)
    node = storage.node("disk:notes/a.txt")
    node.write_text("hello " + os.environ.get("HF_WORD", "world"))
    assert node.read_text().startswith("hello")
    assert [c.basename for c in storage.node("disk:notes").children()] == ["a.txt"]

class TestGroup:
    def test_in_class(self, storied_cassette):
        storage = _storage()
        storied_cassette(storage)
        assert not storage.node("disk:nothing.txt").exists()
'''


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    disk = tmp_path / "disk"
    disk.mkdir()
    monkeypatch.setenv("HF_DISK", str(disk))
    pytester.makepyfile(test_usage=textwrap.dedent(_TESTS))
    return disk


def _installed() -> bool:
    """True once the pytest11 entry point is installed (then ``-p`` would register it twice)."""
    found = importlib.metadata.entry_points(group="pytest11")
    return any(ep.value == "storied.testing.pytest_plugin" for ep in found)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    plugin = () if _installed() else ("-p", "storied.testing.pytest_plugin")
    return pytester.runpytest_inprocess(*plugin, "-q", "-p", "no:cacheprovider", *args)


def test_once_records_then_replays_without_storage(
    pytester: pytest.Pytester, project: Path
) -> None:
    first = _run(pytester, "--record-mode=once")
    first.assert_outcomes(passed=2)
    folder = pytester.path / "cassettes" / "test_usage"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "TestGroup.test_in_class.json",
        "test_roundtrip.json",
    ]
    assert (project / "notes" / "a.txt").read_text() == "hello world"
    for child in (project / "notes").iterdir():
        child.unlink()
    (project / "notes").rmdir()
    again = _run(pytester, "--record-mode=none")
    again.assert_outcomes(passed=2)
    assert os.listdir(project) == []  # answered from the cassettes: nothing reached the disk


def test_an_unrecorded_call_fails_the_test(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(pytester, "--record-mode=once").assert_outcomes(passed=2)
    monkeypatch.setenv("HF_WORD", "moon")  # another body: another call
    result = _run(pytester, "--record-mode=none", "-k", "roundtrip")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ReplayMismatchError*closest recorded call*disk: write*"])


def test_none_without_a_cassette_fails_and_all_records_again(
    pytester: pytest.Pytester, project: Path
) -> None:
    _run(pytester, "--record-mode=none", "-k", "roundtrip").assert_outcomes(errors=0, failed=1)
    _run(pytester, "--record-mode=all").assert_outcomes(passed=2)
    cassette = pytester.path / "cassettes" / "test_usage" / "test_roundtrip.json"
    assert cassette.exists()
    _run(pytester, "--record-mode=new_episodes").assert_outcomes(passed=2)
