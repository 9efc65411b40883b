"""Robustness of version management: retention properties, concurrent catalog updates, snapshots
taken during writes.

* Property tests (hypothesis) check retention against an oracle written from the issue's rule:
  a version is kept iff it is current, tagged, in a snapshot, under a hold, among the newest
  ``keep_last`` or younger than ``keep_days``; with neither rule nothing is removed. Once on the
  pure policy function with synthetic records, once end-to-end through the engines (portable on
  memory, native on versioned S3), where ages are steered with ``cleanup_versions(now=...)``.
* Concurrency: 4 processes (local disk) or 8 threads (memory) tag and annotate the same file at
  once; every tag and every annotation key must survive (the refs compare-and-swap).
* A snapshot taken while a thread keeps writing under its prefix records, for each file, a
  version that really exists in that file's history.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storied import StorageManager, StoragePermissionError
from storied.policies.retention import plan_retention
from storied.testing.s3server import MotoHandle, make_bucket

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = 60_000_000  # microseconds


# ============================================================================ the oracle
def expected_keep(
    *,
    is_current: bool,
    tagged: bool,
    in_snapshot: bool,
    held: bool,
    newest_rank: int,
    age: timedelta,
    keep_last: int | None,
    keep_days: float | None,
) -> bool:
    """The issue's rule, written independently of the implementation.

    ``newest_rank`` is 0 for the newest version, 1 for the one before, ...
    """
    if keep_last is None and keep_days is None:
        return True
    if is_current or tagged or in_snapshot or held:
        return True
    if keep_last is not None and newest_rank < keep_last:
        return True
    return keep_days is not None and age < timedelta(days=keep_days)


# ============================================================================ pure function
@dataclass(frozen=True)
class FakeVersion:
    version_id: str
    last_modified: datetime
    is_latest: bool


@st.composite
def synthetic(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 20))
    # ages up to ~60 days, oldest first (ties allowed); a few may lie in the future
    ages = sorted(draw(st.lists(st.integers(-5 * MINUTE, 60 * 24 * 60 * MINUTE),
                                min_size=count, max_size=count)), reverse=True)
    deleted = draw(st.booleans())
    versions = [
        FakeVersion(f"v{i:02d}", NOW - timedelta(microseconds=age),
                    is_latest=(i == count - 1 and not deleted))
        for i, age in enumerate(ages)
    ]
    ids = st.sampled_from([v.version_id for v in versions])
    tags = draw(st.dictionaries(ids, st.lists(st.sampled_from(["rel", "prod", "x.y"]),
                                              min_size=1, max_size=2, unique=True), max_size=4))
    snaps = draw(st.dictionaries(ids, st.lists(st.sampled_from(["s1", "s2"]),
                                               min_size=1, max_size=2, unique=True), max_size=4))
    holds = draw(st.dictionaries(ids, st.sampled_from(["legal-hold", "retention"]), max_size=2))
    keep_last = draw(st.none() | st.integers(0, 25))
    # keep_days: anything, or exactly the age of one version (the boundary must not keep it)
    exact = draw(st.sampled_from(ages)) / (24 * 60 * MINUTE)
    keep_days = draw(st.none() | st.floats(0, 70, allow_nan=False) | st.just(max(exact, 0.0)))
    return {"versions": versions, "tags": tags, "snaps": snaps, "holds": holds,
            "keep_last": keep_last, "keep_days": keep_days}


@settings(max_examples=400, deadline=None)
@given(synthetic())
def test_policy_keeps_exactly_what_the_rules_say(case: dict[str, Any]) -> None:
    versions: list[FakeVersion] = case["versions"]
    keep_last, keep_days = case["keep_last"], case["keep_days"]
    plan = plan_retention(versions, NOW, keep_last, keep_days,
                          case["tags"], case["snaps"], case["holds"])
    assert [d.version_id for d in plan] == [v.version_id for v in versions]
    for rank, (version, decision) in enumerate(zip(reversed(versions), reversed(plan),
                                                   strict=True)):
        vid = version.version_id
        want = expected_keep(
            is_current=version.is_latest, tagged=vid in case["tags"],
            in_snapshot=vid in case["snaps"], held=vid in case["holds"], newest_rank=rank,
            age=NOW - version.last_modified, keep_last=keep_last, keep_days=keep_days,
        )
        assert decision.keep is want, (vid, decision, case)
        # protected versions are never removed, and say why
        reasons = decision.reasons
        assert ("current" in reasons) is version.is_latest
        for name in case["tags"].get(vid, []):
            assert f"tagged:{name}" in reasons
        for name in case["snaps"].get(vid, []):
            assert f"snapshot:{name}" in reasons
        if vid in case["holds"]:
            assert any(r.startswith("hold:") for r in reasons)
        assert any(r.startswith("last-") for r in reasons) is (
            bool(keep_last) and rank < (keep_last or 0))
        young = keep_days is not None and NOW - version.last_modified < timedelta(days=keep_days)
        assert any(r.startswith("within-") for r in reasons) is young
        if decision.keep and (keep_last is not None or keep_days is not None):
            assert reasons, decision  # every kept version has a reason when a rule is active
        assert decision.reason == (", ".join(reasons) if reasons else "remove")


def test_policy_rejects_negative_rules() -> None:
    versions = [FakeVersion("a", NOW, True)]
    with pytest.raises(ValueError):
        plan_retention(versions, NOW, keep_last=-1)
    with pytest.raises(ValueError):
        plan_retention(versions, NOW, keep_days=-0.5)


# ============================================================================ through the engine
@dataclass
class FileModel:
    """What a file's history must look like: (version_id, content) writes, and whether the
    newest event is a write (the file exists)."""

    writes: list[tuple[str, str]] = field(default_factory=list)
    exists: bool = False
    snapshots: dict[str, str] = field(default_factory=dict)  # vid -> snapshot tag


@st.composite
def engine_cases(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(st.lists(
        st.sampled_from(["w", "w", "w", "w", "snap", "del"]), min_size=1, max_size=12,
    ))
    steps = ["w", *steps]
    contents = draw(st.lists(st.sampled_from(["a", "b", "c", "dd"]), min_size=len(steps),
                             max_size=len(steps)))
    tag_picks = draw(st.lists(st.integers(0, 50), max_size=4))
    keep_last = draw(st.none() | st.integers(0, 14))
    keep_days = draw(st.none() | st.floats(0, 60, allow_nan=False))
    when = draw(st.sampled_from(["past", "future", "split"]))
    split = draw(st.integers(0, 50))
    nudge = draw(st.sampled_from([-1, 0, 1]))  # microseconds around the boundary
    via_relative = draw(st.booleans())
    return {"steps": steps, "contents": contents, "tag_picks": tag_picks,
            "keep_last": keep_last, "keep_days": keep_days, "when": when, "split": split,
            "nudge": nudge, "via_relative": via_relative}


def run_engine_case(sm: StorageManager, case: dict[str, Any]) -> None:
    """Build the history the case describes, then check dry-run plan, cleanup and protection."""
    writer = sm.node("v:dir/f.txt")
    sibling = sm.node("v:dir/sibling.txt")
    sibling.write_text("s1")
    sibling.write_text("s2")
    model = FileModel()
    snap_count = 0
    for step, content in zip(case["steps"], case["contents"], strict=True):
        if step == "w":
            writer.write_text(content)
            model.writes.append((writer.versions[-1]["version_id"], content))
            model.exists = True
        elif step == "del" and model.exists:
            writer.delete()
            model.exists = False
        elif step == "snap":
            tag = f"snap{snap_count}"
            snap_count += 1
            sm.create_snapshot("v:dir", tag)
            if model.exists:
                model.snapshots.setdefault(model.writes[-1][0], tag)
    ids = [vid for vid, _ in model.writes]
    sibling_before = sibling.versions
    node = sm.node("sub:f.txt") if case["via_relative"] else sm.node("v:dir/f.txt")
    listed = node.versions
    assert [v["version_id"] for v in listed] == ids
    tags: dict[str, str] = {}
    for n, pick in enumerate(case["tag_picks"]):
        vid = ids[pick % len(ids)]
        node.tag_version(vid, f"t{n}")
        tags.setdefault(vid, f"t{n}")

    keep_last, keep_days = case["keep_last"], case["keep_days"]
    stamps = [v["last_modified"] for v in listed]
    if case["when"] == "past":
        now = stamps[0] - timedelta(days=400)
    elif case["when"] == "future":
        now = stamps[-1] + timedelta(days=400)
    else:
        base = stamps[case["split"] % len(stamps)]
        now = base + timedelta(days=keep_days or 0, microseconds=case["nudge"])

    current = ids[-1] if model.exists else None
    want: dict[str, bool] = {}
    for rank, vid in enumerate(reversed(ids)):
        stamp = stamps[len(ids) - 1 - rank]
        want[vid] = expected_keep(
            is_current=vid == current, tagged=vid in tags, in_snapshot=vid in model.snapshots,
            held=False, newest_rank=rank, age=now - stamp, keep_last=keep_last,
            keep_days=keep_days,
        )

    plan = node.cleanup_versions(keep_last=keep_last, keep_days=keep_days, dry_run=True, now=now)
    assert [row["version_id"] for row in plan] == ids
    for row in plan:
        vid = row["version_id"]
        assert row["keep"] is want[vid], (row, case)
        assert ("current" in row["reasons"]) is (vid == current)
        if vid in tags:
            assert f"tagged:{tags[vid]}" in row["reasons"]
        if vid in model.snapshots:
            assert f"snapshot:{model.snapshots[vid]}" in row["reasons"]
    assert [v["version_id"] for v in node.versions] == ids  # the dry run deleted nothing

    removed = node.cleanup_versions(keep_last=keep_last, keep_days=keep_days, now=now)
    assert [v["version_id"] for v in removed] == [vid for vid in ids if not want[vid]]
    remaining = node.versions
    assert [v["version_id"] for v in remaining] == [vid for vid in ids if want[vid]]
    content_of = dict(model.writes)
    for version in remaining:
        assert node.open(version=version["version_id"]).read() == content_of[version["version_id"]]
    assert node.exists() is model.exists
    if model.exists:
        assert node.read_text() == model.writes[-1][1]
        assert remaining[-1]["is_latest"] and remaining[-1]["version_id"] == current
    assert [v["etag"] for v in sibling.versions] == [v["etag"] for v in sibling_before]

    # a protected version cannot be deleted one by one either
    guarded = [vid for vid in ids if vid != current and (vid in tags or vid in model.snapshots)]
    if guarded:
        with pytest.raises(StoragePermissionError):
            node.delete_version(guarded[0])


def fresh_memory_manager() -> StorageManager:
    sm = StorageManager()
    sm.configure([
        {"name": "v", "type": "memory", "store": uuid.uuid4().hex, "versioning": True},
        {"name": "sub", "path": "v:dir"},
    ])
    return sm


@settings(max_examples=150, deadline=None)
@given(engine_cases())
def test_engine_cleanup_matches_the_policy_portable_memory(case: dict[str, Any]) -> None:
    run_engine_case(fresh_memory_manager(), case)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(engine_cases())
def test_engine_cleanup_matches_the_policy_native_s3(moto: MotoHandle,
                                                     case: dict[str, Any]) -> None:
    bucket = make_bucket(moto.endpoint_url, f"mr-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([
        {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
         "key": "k", "secret": "s"},
        {"name": "sub", "path": "v:dir"},
    ])
    try:
        run_engine_case(sm, case)
    finally:
        sm.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.integers(0, 7),
       st.sampled_from([None, 0.0, 365.0]), st.lists(st.integers(0, 40), max_size=3))
def test_bulk_cleanup_agrees_with_per_file_plans(sizes: list[int], keep_last: int,
                                                 keep_days: float | None,
                                                 picks: list[int]) -> None:
    """``bulk_cleanup_versions`` removes exactly what each file's own plan removes."""
    sm = fresh_memory_manager()
    files = [f"v:dir/f{i}.txt" for i in range(len(sizes))]
    for path, size in zip(files, sizes, strict=True):
        for n in range(size):
            sm.node(path).write_text(f"{path}-{n}")
    for n, pick in enumerate(picks):
        node = sm.node(files[pick % len(files)])
        node.tag_version(pick % len(node.versions), f"t{n}", move=True)
    planned = {}
    for path in files:
        rows = sm.node(path).cleanup_versions(keep_last=keep_last, keep_days=keep_days,
                                              dry_run=True)
        if any(not r["keep"] for r in rows):
            planned[path] = [r["version_id"] for r in rows if not r["keep"]]
        planned.setdefault("kept:" + path, [r["version_id"] for r in rows if r["keep"]])
    progress: list[tuple[int, int]] = []
    dry = sm.bulk_cleanup_versions("v:dir", keep_last=keep_last, keep_days=keep_days,
                                   dry_run=True)
    done = sm.bulk_cleanup_versions("v:dir/", keep_last=keep_last, keep_days=keep_days,
                                    progress=lambda d, t: progress.append((d, t)))
    wanted = {k: v for k, v in planned.items() if not k.startswith("kept:")}
    assert dry == done == wanted
    assert progress[-1] == (len(files), len(files))
    for path in files:
        assert [v["version_id"] for v in sm.node(path).versions] == planned["kept:" + path]


# ============================================================================ concurrency
CHILD = """
import json, random, sys
from storied import StorageManager

root, who, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sm = StorageManager()
sm.configure([{"name": "v", "type": "local", "base_path": root, "versioning": True}])
node = sm.node("v:shared.txt")
ids = [v["version_id"] for v in node.versions]
rnd = random.Random(who)
print("ready", flush=True)
sys.stdin.readline()
done = []
for j in range(count):
    vid = ids[rnd.randrange(len(ids))]
    node.tag_version(vid, f"p{who}-t{j}")
    other = ids[rnd.randrange(len(ids))]
    node.annotate_version(other, {f"p{who}-k{j}": j})
    done.append([vid, other, j])
print(json.dumps(done), flush=True)
"""


def check_refs(node: Any, expected_tags: dict[str, str],
               expected_notes: dict[str, tuple[str, int]]) -> None:
    assert node.get_version_tags() == expected_tags
    found: dict[str, tuple[str, int]] = {}
    for version in node.versions:
        for key, value in version["metadata"].items():
            found[key] = (version["version_id"], value)
        assert sorted(version["tags"]) == sorted(
            t for t, vid in expected_tags.items() if vid == version["version_id"])
    assert found == expected_notes


def test_processes_tagging_and_annotating_one_file(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    node = sm.node("v:shared.txt")
    for i in range(5):
        node.write_text(f"content {i}")
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(who), "20"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for who in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # release them together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert all(proc.returncode == 0 for proc in procs)
    tags: dict[str, str] = {}
    notes: dict[str, tuple[str, int]] = {}
    for who, out in enumerate(outputs):
        for vid, other, j in json.loads(out.strip().splitlines()[-1]):
            tags[f"p{who}-t{j}"] = vid
            notes[f"p{who}-k{j}"] = (other, j)
    assert len(tags) == 80 and len(notes) == 80
    check_refs(node, tags, notes)


@pytest.mark.parametrize("shared_manager", [True, False])
def test_threads_tagging_and_annotating_one_file(shared_manager: bool) -> None:
    store = uuid.uuid4().hex
    config = [{"name": "v", "type": "memory", "store": store, "versioning": True}]

    def manager() -> StorageManager:
        sm = StorageManager()
        sm.configure(config)
        return sm

    shared = manager()
    node = shared.node("v:shared.txt")
    for i in range(4):
        node.write_text(f"content {i}")
    ids = [v["version_id"] for v in node.versions]
    barrier = threading.Barrier(8)
    tags: dict[str, str] = {}
    notes: dict[str, tuple[str, int]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(who: int) -> None:
        try:
            sm = shared if shared_manager else manager()
            mine = sm.node("v:shared.txt")
            rnd = random.Random(who)
            barrier.wait()
            for j in range(10):
                vid, other = rnd.choice(ids), rnd.choice(ids)
                mine.tag_version(vid, f"w{who}-t{j}")
                mine.annotate_version(other, {f"w{who}-k{j}": j})
                with lock:
                    tags[f"w{who}-t{j}"] = vid
                    notes[f"w{who}-k{j}"] = (other, j)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(who,)) for who in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(tags) == 80 and len(notes) == 80
    check_refs(node, tags, notes)


# ============================================================================ snapshot vs writers
def _local_manager(tmp_path: Path) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                   "versioning": True}])
    return sm


def _memory_manager(tmp_path: Path) -> StorageManager:
    return fresh_memory_manager()


@pytest.mark.parametrize("make", [_memory_manager, _local_manager], ids=["memory", "local"])
def test_snapshot_during_writes_records_real_versions(tmp_path: Path, make: Any) -> None:
    sm = make(tmp_path)
    stable = [f"v:dir/s{i}.txt" for i in range(6)]
    for path in stable:
        sm.node(path).write_text(f"{path} start")
    written: dict[str, set[str]] = {p: {f"{p} start"} for p in stable}
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            rnd = random.Random(7)
            n = 0
            while not stop.is_set():
                n += 1
                path = rnd.choice([*stable, f"v:dir/new{n % 5}.txt", "v:dir/gone.txt"])
                text = f"{path} {n}"
                written.setdefault(path, set()).add(text)
                sm.node(path).write_text(text)
                if path == "v:dir/gone.txt" and rnd.random() < 0.5:
                    sm.node(path).delete()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        snaps = [sm.create_snapshot("v:dir", f"during-{i}") for i in range(6)]
    finally:
        stop.set()
        thread.join(60)
    assert not failures, failures
    for snap in snaps:
        files = snap["files"]
        for path in stable:  # files that existed throughout are all recorded
            assert path.removeprefix("v:") in files, (snap["tag"], path)
        stored = sm.get_snapshot(snap["tag"])
        assert stored["files"] == files and stored["prefix"] == snap["prefix"]
        for rel, vid in files.items():
            node = sm.node(f"v:{rel}")
            assert vid in {v["version_id"] for v in node.versions}, (snap["tag"], rel, vid)
            assert node.open(version=vid).read() in written[f"v:{rel}"]
    # restoring the last snapshot brings every recorded file back to its recorded content
    last = snaps[-1]
    expected = {rel: sm.node(f"v:{rel}").open(version=vid).read()
                for rel, vid in last["files"].items()}
    sm.restore_snapshot(last["tag"])
    for rel, text in expected.items():
        assert sm.node(f"v:{rel}").read_text() == text


# ============================================================================ regressions


def test_restore_of_relative_mount_snapshot_stays_inside_its_prefix() -> None:
    sm = fresh_memory_manager()  # "sub" is "v:dir"
    sm.node("v:dir/x.txt").write_text("x")
    sm.node("v:outside.txt").write_text("o")
    sm.create_snapshot("sub:", "rel")
    report = sm.restore_snapshot("rel", dry_run=True)
    assert report["new"] == []
    sm.node("v:dir/y.txt").write_text("y")
    report = sm.restore_snapshot("rel", delete_new=True)
    assert report["deleted"] == ["dir/y.txt"]
    assert sm.node("v:outside.txt").read_text() == "o"


def test_list_snapshots_prefix_is_a_path_prefix() -> None:
    sm = fresh_memory_manager()
    sm.node("v:dir/a.txt").write_text("a")
    sm.node("v:dirty/b.txt").write_text("b")
    sm.create_snapshot("v:dirty", "dirty")
    assert sm.list_snapshots("v:dir") == []
    assert [s["tag"] for s in sm.list_snapshots("v:dirty")] == ["dirty"]


def test_tag_named_like_a_version_id_is_refused() -> None:
    node = fresh_memory_manager().node("v:a.txt")
    node.write_text("1")
    node.write_text("2")
    first = node.versions[0]["version_id"]
    with pytest.raises(ValueError):
        node.tag_version(-1, first)
