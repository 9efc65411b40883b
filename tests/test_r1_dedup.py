"""Review R1: deduplicate never loses what a link, an alias or a swapped directory points at."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import InvalidArgumentError, StorageError
from storied.testing.s3server import MotoHandle, make_bucket

DATA = b"the same bytes, twice or more " * 40


def local(tmp_path: Path, **extra: object) -> tuple[StorageManager, Path]:
    base = tmp_path / "m"
    base.mkdir()
    storage = StorageManager()
    storage.add_mount({"name": "m", "type": "local", "base_path": str(base), **extra})
    return storage, base


def test_a_symlink_and_its_target_are_one_file(tmp_path: Path) -> None:
    storage, base = local(tmp_path)
    (base / "z.txt").write_bytes(DATA)
    (base / "a.txt").symlink_to("z.txt")  # sorts first and is as old: it would survive
    assert storage.find_duplicates("m:") == []
    report = storage.deduplicate("m:", strategy="delete")
    assert report["bytes_reclaimed"] == 0
    assert (base / "a.txt").read_bytes() == DATA and (base / "z.txt").read_bytes() == DATA


def test_delete_never_removes_a_symlink_target(tmp_path: Path) -> None:
    storage, base = local(tmp_path)
    (base / "a_copy.txt").write_bytes(DATA)
    os.utime(base / "a_copy.txt", (1, 1))  # the oldest: the survivor
    (base / "z.txt").write_bytes(DATA)
    (base / "link.txt").symlink_to("z.txt")
    report = storage.deduplicate("m:", strategy="delete")
    skipped = [s for g in report["groups"] for s in g["skipped"]]
    assert [s["path"] for s in skipped] == ["m:z.txt"], report
    assert "symbolic link" in skipped[0]["reason"]
    assert (base / "link.txt").read_bytes() == DATA


def test_hardlink_of_an_already_linked_pair_is_a_no_op(tmp_path: Path) -> None:
    storage, base = local(tmp_path)
    (base / "a.txt").write_bytes(DATA)
    os.link(base / "a.txt", base / "b.txt")
    report = storage.deduplicate("m:", strategy="hardlink")
    assert report["groups"] == [] and report["bytes_reclaimed"] == 0
    assert sorted(os.listdir(base)) == ["a.txt", "b.txt"]


def test_hardlink_on_a_versioned_mount_keeps_history_and_verifies(tmp_path: Path) -> None:
    storage, base = local(tmp_path, versioning=True)
    storage.node("m:a.txt").write_bytes(DATA)
    storage.node("m:b.txt").write_bytes(b"first")
    storage.node("m:b.txt").write_bytes(DATA)
    report = storage.deduplicate("m:", strategy="hardlink")
    assert report["bytes_reclaimed"] == len(DATA)
    assert os.stat(base / "a.txt").st_ino == os.stat(base / "b.txt").st_ino
    assert storage.verify("m:").problems == []
    assert storage.node("m:b.txt", version=0).read_bytes() == b"first"
    storage.node("m:b.txt").write_bytes(b"changed")  # breaks the link, never edits a.txt
    assert storage.node("m:a.txt").read_bytes() == DATA
    assert storage.verify("m:").problems == []


def test_hardlink_never_follows_a_directory_swapped_for_a_link(tmp_path: Path) -> None:
    """A racer swaps ``sub`` for a link to a directory outside the mount, again and again,
    while deduplication runs: the outside file keeps its bytes and gets no temporary file."""
    storage, base = local(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "dup.txt").write_bytes(b"SECRET" * len(DATA))
    (base / "keep.txt").write_bytes(DATA)
    os.utime(base / "keep.txt", (1, 1))
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            try:
                os.rename(base / "sub", base / "real")
                os.symlink(outside, base / "sub")
                time.sleep(0.0005)
                os.unlink(base / "sub")
                os.rename(base / "real", base / "sub")
            except OSError:
                pass

    deadline = time.monotonic() + 1.5
    racer = threading.Thread(target=swap)
    (base / "sub").mkdir()
    racer.start()
    try:
        while time.monotonic() < deadline:
            try:  # confined: refused while sub leads outside
                storage.node("m:sub/dup.txt").write_bytes(DATA)
            except StorageError:
                pass
            storage.deduplicate("m:", strategy="hardlink")
    finally:
        stop.set()
        racer.join()
    assert (outside / "dup.txt").read_bytes() == b"SECRET" * len(DATA)
    assert os.listdir(outside) == ["dup.txt"]
    assert os.stat(outside / "dup.txt").st_nlink == 1


def test_failing_storage_never_loses_the_last_copy() -> None:
    """Faults everywhere (transient, cut reads, lost preconditions, deletes applied but their
    answer lost): every group keeps its survivor, with its bytes; what is reported done is
    gone, and nothing else is, beyond lost answers."""
    from storied.testing.mock import MockBackend

    seen = {"done": 0, "skipped": 0}
    for seed in range(8):
        backend = MockBackend(failure_rate=0.25, seed=seed,
                              faults=["transient", "truncated", "precondition", "lost_response"])
        storage = StorageManager()
        storage.add_mount({"name": "f", "backend": backend})
        contents = {f"g{g}/c{c}.bin": bytes([g]) * 5000 for g in range(3) for c in range(4)}
        for path, data in contents.items():
            while True:
                try:
                    storage.node(f"f:{path}").write_bytes(data)
                    break
                except StorageError:
                    continue
        backend.failure_rate = 0.0
        assert len(storage.find_duplicates("f:")) == 3
        backend.failure_rate = 0.25
        try:
            report = storage.deduplicate("f:", strategy="delete")
        except StorageError:
            continue  # the scan itself failed: nothing changed
        backend.failure_rate = 0.0
        for group in report["groups"]:
            kept = group["kept"].split(":", 1)[1]
            assert storage.node(group["kept"]).read_bytes() == contents[kept], seed
            for path in group["done"]:
                assert not storage.node(path).exists(), seed
            seen["done"] += len(group["done"])
            seen["skipped"] += len(group["skipped"])
    assert seen["done"] and seen["skipped"], seen  # the faults did hit the deletes


@pytest.mark.parametrize("extra", [{}, {"versioning": True}])
def test_delete_on_a_versioned_s3_bucket_keeps_every_byte_in_versions(
        moto: MotoHandle, extra: dict[str, object]) -> None:
    bucket = make_bucket(moto.endpoint_url, f"r1-dedup-{uuid.uuid4().hex[:10]}", versioned=True)
    storage = StorageManager()
    storage.configure([{"name": "s3", "type": "s3", "bucket": bucket, "key": "testing",
                        "secret": "testing", "endpoint_url": moto.endpoint_url, **extra}])
    for name in ("a.bin", "b.bin", "c.bin"):
        storage.node(f"s3:{name}").write_bytes(DATA)
    report = storage.deduplicate("s3:", strategy="delete")
    (group,) = report["groups"]
    assert len(group["done"]) == 2 and report["bytes_reclaimed"] == 2 * len(DATA)
    assert storage.node(group["kept"]).read_bytes() == DATA
    for path in group["done"]:
        node = storage.node(path)
        assert not node.exists()
        assert storage.node(path, version=node.versions[0]["version_id"]).read_bytes() == DATA
    assert storage.verify("s3:").problems == []


def test_sigkill_at_any_point_leaves_every_path_with_its_bytes(tmp_path: Path) -> None:
    """A deduplicating process killed (SIGKILL) at random moments, on fresh trees: every path
    still reads its original bytes (hardlink never removes a name; delete keeps a survivor
    per group) and no temporary name shows in a listing."""
    import random
    import signal
    import subprocess
    import sys

    contents = {f"d{g % 4}/g{g}_c{c}.bin": bytes([g]) * (3000 + g) for g in range(40)
                for c in range(8)}
    script = (
        "import sys; from storied import StorageManager; s = StorageManager(); "
        "s.add_mount({'name': 'm', 'type': 'local', 'base_path': sys.argv[1]}); "
        "print('start', flush=True); s.deduplicate('m:', strategy=sys.argv[2])")
    rng = random.Random(7)
    partial = 0
    for round_ in range(10):
        strategy = ("hardlink", "delete")[round_ % 2]
        base = tmp_path / f"r{round_}"
        for path, data in contents.items():
            (base / path).parent.mkdir(parents=True, exist_ok=True)
            (base / path).write_bytes(data)
        proc = subprocess.Popen([sys.executable, "-c", script, str(base), strategy],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"start\n"
        first = [base / f"d3/g39_c{c}.bin" for c in range(8)]  # the first group changed
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if any(os.stat(p).st_nlink > 1 for p in first):
                    break
            except FileNotFoundError:
                break
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        storage = StorageManager()
        storage.add_mount({"name": "m", "type": "local", "base_path": str(base)})
        listed = {n.path for n in storage.node("m:").rglob("*") if n.is_file()}
        assert listed <= set(contents) and not any(".storied-tmp-" in p for p in listed)
        for path in listed:
            assert (base / path).read_bytes() == contents[path], path
        if strategy == "hardlink":
            assert listed == set(contents)
            inodes = len({os.stat(base / p).st_ino for p in listed})
            partial += 40 < inodes < len(contents)
        else:
            partial += 40 < len(listed) < len(contents)
        assert {p.split("_c")[0] for p in listed} == {p.split("_c")[0] for p in contents}
    assert partial >= 5  # the kills did land in the middle of the work


def test_hardlink_never_widens_a_private_copy(tmp_path: Path) -> None:
    storage, base = local(tmp_path)
    (base / "a_public.txt").write_bytes(DATA)
    os.utime(base / "a_public.txt", (1, 1))  # the survivor
    (base / "a_public.txt").chmod(0o644)
    (base / "private.txt").write_bytes(DATA)
    (base / "private.txt").chmod(0o600)
    report = storage.deduplicate("m:", strategy="hardlink")
    (skipped,) = report["groups"][0]["skipped"]
    assert skipped["path"] == "m:private.txt" and "permissions" in skipped["reason"]
    assert os.stat(base / "private.txt").st_mode & 0o777 == 0o600
    assert os.stat(base / "private.txt").st_nlink == 1


def test_delete_through_another_name_of_a_versioned_mount_is_refused(tmp_path: Path) -> None:
    storage, base = local(tmp_path, versioning=True)
    storage.node("m:a.txt").write_bytes(DATA)
    storage.node("m:b.txt").write_bytes(DATA)
    for prefix in (f"file://{base}", "alias:"):
        if prefix == "alias:":
            storage.add_mount({"name": "alias", "type": "local", "base_path": str(base)})
        report = storage.deduplicate(prefix, strategy="delete")
        assert report["bytes_reclaimed"] == 0, report
        assert "versioned mount" in report["groups"][0]["skipped"][0]["reason"]
    assert storage.verify("m:").stale == [] and (base / "b.txt").read_bytes() == DATA
    assert storage.deduplicate("m:", strategy="delete")["bytes_reclaimed"] == len(DATA)
    assert storage.verify("m:").stale == []


def test_a_plain_mount_that_used_locks_still_deduplicates(tmp_path: Path) -> None:
    storage, base = local(tmp_path)
    storage.node("m:a.txt").write_bytes(DATA)
    storage.node("m:b.txt").write_bytes(DATA)
    with storage.node("m:a.txt").lock():
        pass
    assert (base / ".storied").is_dir()  # the locks' area, no history
    assert storage.deduplicate("m:", strategy="delete")["bytes_reclaimed"] == len(DATA)


def test_delete_refuses_a_portable_history_reached_through_another_s3_mount(
        moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"r1-fh-{uuid.uuid4().hex[:10]}")
    common = {"type": "s3", "bucket": bucket, "key": "testing", "secret": "testing",
              "endpoint_url": moto.endpoint_url}
    storage = StorageManager()
    storage.configure([{"name": "raw", **common},
                       {"name": "docs", **common, "base_path": "docs", "versioning": True}])
    storage.node("docs:a.txt").write_bytes(DATA)
    storage.node("docs:b.txt").write_bytes(DATA)
    storage.node("raw:a_loose.txt").write_bytes(DATA)
    storage.node("raw:z_loose.txt").write_bytes(DATA)
    report = storage.deduplicate("raw:", strategy="delete",
                                 keep=lambda g: storage.node("raw:a_loose.txt"))
    (group,) = report["groups"]
    assert group["done"] == ["raw:z_loose.txt"], report
    assert sorted(s["path"] for s in group["skipped"]) == ["raw:docs/a.txt", "raw:docs/b.txt"]
    assert storage.verify("docs:").stale == []


def test_a_keep_that_fails_on_a_later_group_changes_nothing(tmp_path: Path) -> None:
    storage, base = local(tmp_path)
    for name in ("a1", "a2", "b1", "b2"):
        (base / name).write_bytes((name[0] * 100).encode() * (3 if name[0] == "a" else 1))
    first = storage.node("m:a1")

    def keep(group: object) -> object:
        return first  # right for the first group (most wasted), not in the second

    with pytest.raises(InvalidArgumentError):
        storage.deduplicate("m:", strategy="delete", keep=keep)
    assert sorted(os.listdir(base)) == ["a1", "a2", "b1", "b2"]
