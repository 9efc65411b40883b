"""find_duplicates reads as little as the storage allows; deduplicate proves content right
before changing anything and never loses a byte (local, memory, S3 on moto)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import InvalidArgumentError
from storied.optimize.dedup import BLOCK
from storied.testing.mock import MockBackend
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket

BIG = os.urandom(3 * BLOCK)


def fill(storage: StorageManager, mount: str) -> None:
    for name in ("a/one.bin", "b/two.bin", "c/three.bin"):
        storage.node(f"{mount}:{name}").write_bytes(BIG)
    storage.node(f"{mount}:a/near.bin").write_bytes(BIG[:-1] + b"\x00" if BIG[-1] else
                                                    BIG[:-1] + b"\x01")  # same size, differs
    storage.node(f"{mount}:small1.txt").write_bytes(b"hello")
    storage.node(f"{mount}:small2.txt").write_bytes(b"hello")
    storage.node(f"{mount}:unique.txt").write_bytes(b"only one of this size!")
    storage.node(f"{mount}:empty1").write_bytes(b"")
    storage.node(f"{mount}:empty2").write_bytes(b"")


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[StorageManager, MockBackend]]:
    (tmp_path / "data").mkdir()
    backend = MockBackend(wraps={"type": "local", "base_path": str(tmp_path / "data")})
    storage = StorageManager()
    storage.add_mount({"name": "m", "backend": backend})
    fill(storage, "m")
    yield storage, backend


def test_groups_most_wasted_first_and_unique_sizes_never_read(
        counted: tuple[StorageManager, MockBackend]) -> None:
    storage, backend = counted
    backend.calls.clear()
    groups = storage.find_duplicates("m:")
    assert [[n.path for n in g.nodes] for g in groups] == [
        ["a/one.bin", "b/two.bin", "c/three.bin"], ["small1.txt", "small2.txt"]]
    assert groups[0].wasted == 2 * len(BIG) and groups[0].size == len(BIG)
    assert groups[0].digest.startswith("sha256:") and groups[1].wasted == 5
    reads = backend.calls["open_read"]
    # 4 big files x 2 ends + 3 full reads of the survivors of the ends stage + 2 small reads;
    # unique.txt (unique size) and the empty files (min_size=1) are never opened
    assert reads == 4 * 2 + 3 + 2, backend.calls


def test_min_size_and_a_single_file_prefix(counted: tuple[StorageManager, MockBackend]) -> None:
    storage, _ = counted
    assert [g.size for g in storage.find_duplicates("m:", min_size=6)] == [len(BIG)]
    assert len(storage.find_duplicates("m:", min_size=0)) == 3  # empty files now count
    assert storage.find_duplicates("m:a/one.bin") == []


def test_hard_links_count_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"same bytes")
    os.link(tmp_path / "d" / "x", tmp_path / "d" / "y")
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}])
    assert storage.find_duplicates("l:") == []
    (tmp_path / "d" / "z").write_bytes(b"same bytes")
    (group,) = storage.find_duplicates("l:")
    assert len(group.nodes) == 2 and group.nodes[-1].path == "z"


def test_s3_single_part_objects_need_no_get(moto: MotoHandle, proxy: CountingProxy) -> None:
    bucket = make_bucket(moto.endpoint_url, f"dupes-{uuid.uuid4().hex[:10]}")
    storage = StorageManager()
    storage.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                        "endpoint_url": proxy.endpoint_url, "key": "testing",
                        "secret": "testing"}])
    fill(storage, "s3")
    proxy.reset()
    groups = storage.find_duplicates("s3:")
    assert [len(g.nodes) for g in groups] == [3, 2]
    assert all(g.digest.startswith("md5:") for g in groups)
    assert proxy.counts.get("GET", 0) == 0 and proxy.counts.get("HEAD", 0) == 0
    assert proxy.counts["LIST"] == 1


def test_delete_strategy_proves_then_deletes(counted: tuple[StorageManager, MockBackend],
                                             tmp_path: Path) -> None:
    storage, _ = counted
    plan = storage.deduplicate("m:", strategy="delete", dry_run=True)
    assert plan["dry_run"] is True and plan["bytes_reclaimed"] == 2 * len(BIG) + 5
    assert sorted(len(g["done"]) for g in plan["groups"]) == [1, 2]
    assert storage.node("m:b/two.bin").exists()  # a plan changes nothing
    report = storage.deduplicate("m:", strategy="delete")
    big = next(g for g in report["groups"] if g["size"] == len(BIG))
    assert len(big["done"]) == 2 and big["skipped"] == []
    assert report["bytes_reclaimed"] == 2 * len(BIG) + 5
    assert storage.node(big["kept"]).read_bytes() == BIG
    survivors = [p for p in ("m:a/one.bin", "m:b/two.bin", "m:c/three.bin")
                 if storage.node(p).exists()]
    assert survivors == [big["kept"]]
    assert storage.node("m:a/near.bin").exists() and storage.node("m:unique.txt").exists()


def test_delete_skips_a_file_changed_after_it_was_found(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}])
    storage.node("l:keep.txt").write_bytes(b"x" * 100)
    storage.node("l:dup.txt").write_bytes(b"x" * 100)
    from storied.optimize import apply

    real_proof = apply._proof

    def racing_proof(member: apply.Member) -> tuple[str, str | None]:
        found = real_proof(member)
        if member.node.path == "dup.txt":  # another writer strikes after the hash
            (tmp_path / "d" / "dup.txt").write_bytes(b"y" * 100)
        return found

    apply._proof = racing_proof  # type: ignore[assignment]
    try:
        report = storage.deduplicate("l:", strategy="delete",
                                     keep=lambda g: next(n for n in g.nodes
                                                         if n.path == "keep.txt"))
    finally:
        apply._proof = real_proof  # type: ignore[assignment]
    (group,) = report["groups"]
    assert group["done"] == [] and group["skipped"][0]["reason"].startswith("changed")
    assert (tmp_path / "d" / "dup.txt").read_bytes() == b"y" * 100  # the new content survives


def test_delete_on_a_versioned_mount_keeps_history(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "v", "type": "memory", "versioning": True}])
    storage.node("v:a").write_bytes(b"twin" * 10)
    storage.node("v:b").write_bytes(b"twin" * 10)
    report = storage.deduplicate("v:", strategy="delete")
    gone = report["groups"][0]["done"][0]
    node = storage.node(gone)
    assert not node.exists()
    assert node.open("rb", version=-1).read() == b"twin" * 10


def test_hardlink_strategy_links_and_writes_break_the_link(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}])
    for name in ("x.bin", "y.bin", "z.bin"):
        storage.node(f"l:{name}").write_bytes(BIG)
    report = storage.deduplicate("l:", strategy="hardlink")
    assert report["bytes_reclaimed"] == 2 * len(BIG)
    inodes = {os.stat(tmp_path / "d" / n).st_ino for n in ("x.bin", "y.bin", "z.bin")}
    assert len(inodes) == 1
    assert not [p for p in os.listdir(tmp_path / "d") if p.startswith(".storied-tmp-")]
    storage.node("l:y.bin").write_bytes(b"new")  # an atomic write breaks the link
    assert storage.node("l:x.bin").read_bytes() == BIG
    assert storage.find_duplicates("l:") == []  # x and z are one inode now


def test_hardlink_refused_off_local_and_bad_arguments(tmp_path: Path) -> None:
    storage = StorageManager()
    storage.configure([{"name": "mem", "type": "memory"}])
    storage.node("mem:a").write_bytes(b"1234")
    storage.node("mem:b").write_bytes(b"1234")
    report = storage.deduplicate("mem:", strategy="hardlink")
    assert report["groups"][0]["done"] == [] and "local" in report["groups"][0]["skipped"][0][
        "reason"]
    assert storage.node("mem:b").read_bytes() == b"1234"
    with pytest.raises(InvalidArgumentError):
        storage.deduplicate("mem:", strategy="nope")
    report = storage.deduplicate("mem:", strategy="reference")  # 4-byte files: a reference
    assert report["bytes_reclaimed"] == 0  # would be bigger than the file
    assert "too small" in report["groups"][0]["skipped"][0]["reason"]
    with pytest.raises(InvalidArgumentError):
        storage.deduplicate("mem:", strategy="delete", keep=lambda g: "mem:elsewhere")


def test_cli_dupes_and_dedup(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from storied.cli.main import cli

    (tmp_path / "d").mkdir()
    for name in ("a", "b"):
        (tmp_path / "d" / name).write_bytes(b"dup!" * 8)
    cfg = tmp_path / "storied.yaml"
    cfg.write_text(json.dumps([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}]))
    result = CliRunner().invoke(cli, ["-c", str(cfg), "dupes", "l:", "--json"])
    assert result.exit_code == 0, result.stderr
    (group,) = json.loads(result.stdout)
    assert group["paths"] == ["l:a", "l:b"] and group["wasted"] == 32
    result = CliRunner().invoke(cli, ["-c", str(cfg), "dedup", "l:", "--strategy", "delete",
                                      "-n"])
    assert result.exit_code == 0 and "would delete" in result.stdout
    assert (tmp_path / "d" / "b").exists()
    result = CliRunner().invoke(cli, ["-c", str(cfg), "dedup", "l:", "--strategy", "reference"])
    assert result.exit_code == 0 and "too small" in result.stdout
