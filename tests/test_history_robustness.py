"""Robustness of the portable history engine: a model-based property test, crashes, concurrency.

* The property test drives one file through random writes, deletes, rollbacks, compactions and
  version deletions, and compares every observable (versions, their contents, ``is_latest``,
  the working copy, ``verify``) with a small in-test model after every step.
* The crash test SIGKILLs a writing child process at random moments and checks that what was
  acknowledged survives, nothing partial is visible, and ``verify`` stays clean.
* The concurrency tests have 4 processes (local disk) or 4 threads (memory) write the same file
  and check that no version is lost and the working copy converges to the newest one.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storied import StorageManager
from storied.backends.local import TMP_MARK

# --------------------------------------------------------------------------- the model

ALPHABET = ["a", "b", "c", ""]


@dataclass
class Model:
    """A file's history as storied promises it: writes and tombstones, oldest first.

    Each event is ``("w", content, version_id)`` or ``("d", "", "")``; version ids are those
    storied returned when the write happened, so removing the wrong one of two equal versions
    shows. The file exists when the newest event is a write; removing a version removes its
    event, so removing the newest write shows whatever came before it (the previous content,
    or a deletion: S3's delete-marker semantics).
    """

    events: list[tuple[str, str, str]] = field(default_factory=list)

    def writes(self) -> list[int]:
        return [i for i, (kind, _, _) in enumerate(self.events) if kind == "w"]

    def contents(self) -> list[str]:
        return [self.events[i][1] for i in self.writes()]

    def version_ids(self) -> list[str]:
        return [self.events[i][2] for i in self.writes()]

    @property
    def exists(self) -> bool:
        return bool(self.events) and self.events[-1][0] == "w"

    def write(self, content: str, version_id: str) -> None:
        assert version_id not in self.version_ids()
        self.events.append(("w", content, version_id))

    def delete(self) -> bool:
        if not self.exists:
            return False  # deleting a missing file is a no-op (no tombstone)
        self.events.append(("d", "", ""))
        return True

    def delete_version(self, index: int) -> None:
        del self.events[self.writes()[index]]

    def compact(self) -> int:
        """Each run of equal consecutive versions keeps the current one if it is in the run,
        else the oldest (``versioning/history.py:compact_plan``)."""
        writes = self.writes()
        current = writes[-1] if self.exists else None
        doomed: list[int] = []
        run: list[int] = []
        for pos in [*writes, None]:
            if pos is not None and run and self.events[pos][1] == self.events[run[0]][1]:
                run.append(pos)
                continue
            if len(run) > 1:
                keep = current if current in run else run[0]
                doomed.extend(p for p in run if p != keep)
            run = [pos] if pos is not None else []
        for pos in sorted(doomed, reverse=True):
            del self.events[pos]
        return len(doomed)


def check_against_model(sm: StorageManager, path: str, model: Model) -> None:
    node = sm.node(path)
    found = node.versions
    expected = model.contents()
    assert [v["version_id"] for v in found] == model.version_ids()
    assert [node.open(version=i).read() for i in range(len(found))] == expected
    flags = [False] * len(expected)
    if model.exists:
        flags[-1] = True
    assert [v["is_latest"] for v in found] == flags
    assert node.exists() is model.exists
    if model.exists:
        assert node.read_text() == expected[-1]
    report = sm.verify()
    assert report.ok, report.problems
    assert report.stale == [], report.stale


# An operation and a number (the content index for writes, a version pick for delete_version).
OPERATION = st.one_of(
    st.tuples(st.just("write"), st.integers(0, len(ALPHABET) - 1)),
    st.tuples(st.just("write"), st.integers(0, len(ALPHABET) - 1)),
    st.tuples(st.sampled_from(["delete", "delete", "rollback", "compact"]), st.just(0)),
    st.tuples(st.just("delete_version"), st.integers(0, 60)),
)


def run_operations(sm: StorageManager, path: str, operations: list[tuple[str, int]]) -> None:
    node = sm.node(path)
    model = Model()
    check_against_model(sm, path, model)
    for op, number in operations:
        count = len(model.contents())
        if op == "write":
            node.write_text(ALPHABET[number])
            model.write(ALPHABET[number], node.versions[-1]["version_id"])
        elif op == "delete":
            assert node.delete() is model.delete()
        elif op == "rollback":
            if count < 2:
                with pytest.raises(IndexError):
                    node.rollback(to_version=-2)
                continue
            assert node.rollback(to_version=-2) is True
            model.write(model.contents()[-2], node.versions[-1]["version_id"])
        elif op == "compact":
            assert node.compact_versions(dry_run=True) == Model(list(model.events)).compact()
            assert node.compact_versions() == model.compact()
        else:
            if count == 0:
                with pytest.raises(IndexError):
                    node.delete_version(0)
                continue
            # half the picks remove the newest version (the case that moves the working copy)
            index = count - 1 if number % 2 else (number // 2) % count
            how = (number // 2) % 3  # by positive index, by negative index, by version id
            pick: int | str = (index, index - count, node.versions[index]["version_id"])[how]
            if model.exists and index == count - 1:  # the current version is protected
                with pytest.raises(PermissionError):
                    node.delete_version(pick)
                continue
            node.delete_version(pick)
            model.delete_version(index)
        check_against_model(sm, path, model)


PROPERTY_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestModelOnMemory:
    @settings(PROPERTY_SETTINGS, max_examples=80)
    @given(operations=st.lists(OPERATION, min_size=1, max_size=30))
    def test_random_history(self, operations: list[tuple[str, int]]) -> None:
        sm = StorageManager()
        sm.configure(
            [{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}]
        )
        run_operations(sm, "v:config/app.json", operations)


class TestModelOnLocal:
    @settings(PROPERTY_SETTINGS, max_examples=60)
    @given(operations=st.lists(OPERATION, min_size=1, max_size=30))
    def test_random_history(self, operations: list[tuple[str, int]]) -> None:
        with tempfile.TemporaryDirectory(prefix="storied-model-") as base:
            sm = StorageManager()
            sm.configure([{"name": "v", "type": "local", "base_path": base, "versioning": True}])
            run_operations(sm, "v:config/app.json", operations)


# --------------------------------------------------------------------------- child processes


def crash_content(round_no: int, index: int) -> bytes:
    """The deterministic content of write ``index`` of round ``round_no`` (8 KiB)."""
    head = f"r{round_no:03d}w{index:06d}|".encode()
    return (head * (8192 // len(head) + 1))[:8192]


def is_crash_content(body: bytes) -> bool:
    """True when ``body`` is, whole, one of the contents a crash-test child writes."""
    try:
        return body == crash_content(int(body[1:4]), int(body[5:11]))
    except ValueError:
        return False


CRASH_PATHS = ["data/a.bin", "data/b.bin", "data/c.bin"]

CHILD = """
import sys
from storied import StorageManager

{crash_content}

def main() -> None:
    mode, base = sys.argv[1], sys.argv[2]
    sm = StorageManager()
    sm.configure([{{"name": "v", "type": "local", "base_path": base, "versioning": True}}])
    if mode == "crash":
        round_no, paths = int(sys.argv[3]), sys.argv[4].split(",")
        nodes = [sm.node("v:" + p) for p in paths]
        print("ready", flush=True)
        index = 0
        while True:
            nodes[index % len(nodes)].write_bytes(crash_content(round_no, index))
            print(round_no, index, flush=True)
            index += 1
    else:
        worker, count, path = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        node = sm.node("v:" + path)
        print("ready", flush=True)
        sys.stdin.readline()  # the start signal: every worker begins at once
        for i in range(count):
            node.write_bytes(f"p{{worker}}-w{{i}}".encode())
        print("done", flush=True)

main()
"""


@pytest.fixture
def child_script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(crash_content=inspect.getsource(crash_content)))
    return script


def local_manager(base: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(base), "versioning": True}])
    return sm


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, child_script: Path) -> None:
    base = tmp_path / "mount"
    base.mkdir()
    rng = random.Random(20240607)
    acknowledged: list[tuple[int, int]] = []
    for round_no in range(20):
        child = subprocess.Popen(
            [
                sys.executable,
                str(child_script),
                "crash",
                str(base),
                str(round_no),
                ",".join(CRASH_PATHS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        lines = out.splitlines()
        # a line cut by the kill is not an acknowledgement
        complete = lines if out.endswith("\n") else lines[:-1]
        acknowledged += [(int(r), int(i)) for r, i in (line.split() for line in complete)]
    assert len(acknowledged) > 20, "the children should have acknowledged some writes"

    sm = local_manager(base)
    report = sm.verify()
    assert report.ok, report.problems  # orphans and stale working copies are allowed

    for k, path in enumerate(CRASH_PATHS):
        node = sm.node(f"v:{path}")
        mine = [crash_content(r, i) for r, i in acknowledged if i % len(CRASH_PATHS) == k]
        stored = {v["sha256"] for v in node.versions}
        # verify() hashed every blob, so a listed sha256 is readable content
        missing = [c[:12] for c in mine if hashlib.sha256(c).hexdigest() not in stored]
        assert missing == [], f"acknowledged writes lost on {path}"
        for k in range(1, min(3, len(stored)) + 1):  # the newest versions read back whole
            assert is_crash_content(node.open(version=-k, mode="rb").read())
        if node.exists():
            assert is_crash_content(node.read_bytes()), f"partial working copy at {path}"

    names = [c.basename for c in sm.node("v:data").children()]
    assert not [n for n in names if TMP_MARK in n]
    assert set(names) <= {p.rsplit("/", 1)[1] for p in CRASH_PATHS}
    assert [c.basename for c in sm.node("v:").children()] == ["data"]

    # the next write repairs whatever a crash left stale
    for path in CRASH_PATHS:
        sm.node(f"v:{path}").write_bytes(b"final")
    report = sm.verify()
    assert report.ok and report.stale == [], (report.problems, report.stale)
    assert all(sm.node(f"v:{p}").read_bytes() == b"final" for p in CRASH_PATHS)


WORKERS, WRITES = 4, 50


def check_concurrent_result(sm: StorageManager, path: str) -> None:
    node = sm.node(path)
    found = node.versions
    assert len(found) == WORKERS * WRITES
    expected = {f"p{w}-w{i}" for w in range(WORKERS) for i in range(WRITES)}
    by_sha = Counter(v["sha256"] for v in found)
    assert by_sha == Counter(hashlib.sha256(c.encode()).hexdigest() for c in expected)
    assert [v["is_latest"] for v in found] == [False] * (len(found) - 1) + [True]
    report = sm.verify()
    assert report.ok, report.problems
    assert report.stale == [], report.stale
    assert node.read_text() == node.open(version=-1).read()
    # each worker's own writes keep their order in the history
    for w in range(WORKERS):
        mine = [
            v["sha256"]
            for v in found
            if v["sha256"]
            in {hashlib.sha256(f"p{w}-w{i}".encode()).hexdigest() for i in range(WRITES)}
        ]
        assert mine == [hashlib.sha256(f"p{w}-w{i}".encode()).hexdigest() for i in range(WRITES)]


def test_processes_writing_one_file(tmp_path: Path, child_script: Path) -> None:
    base = tmp_path / "mount"
    base.mkdir()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(child_script),
                "writer",
                str(base),
                str(w),
                str(WRITES),
                "shared/file.txt",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0 and out.strip() == "done"
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    check_concurrent_result(local_manager(base), "v:shared/file.txt")


@pytest.mark.parametrize("shared_manager", [True, False], ids=["one-manager", "manager-per-thread"])
def test_threads_writing_one_file(shared_manager: bool) -> None:
    store = uuid.uuid4().hex
    config: list[dict[str, Any]] = [
        {"name": "v", "type": "memory", "store": store, "versioning": True}
    ]

    def manager() -> StorageManager:
        sm = StorageManager()
        sm.configure(config)
        return sm

    common = manager()
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            sm = common if shared_manager else manager()
            node = sm.node("v:shared/file.txt")
            barrier.wait()
            for i in range(WRITES):
                node.write_text(f"p{worker}-w{i}")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads as much as possible
    try:
        threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    check_concurrent_result(common, "v:shared/file.txt")


def test_model_matches_engine_on_tombstone_before_latest() -> None:
    """Removing the newest version when a deletion preceded it shows the deletion again (the
    file is deleted again first: a current version is protected)."""
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True}])
    run_operations(
        sm, "v:f.txt",
        [("write", 0), ("delete", 0), ("write", 1), ("delete", 0), ("delete_version", 1)],
    )
    assert not sm.node("v:f.txt").exists()
