"""deduplicate(strategy='reference') on local, memory and S3 (moto): every path keeps its
bytes, size, MD5 and listing; writes and deletes of one path never touch another; a file
changed during deduplication is left alone and reported; gc removes only unreferenced copies."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.base import WrappedBackend
from storied.backends.referencing import AREA, REF_SIZE, Referencing, find_layer
from storied.core import mounting
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket

BIG = os.urandom(200_000)
OTHER = os.urandom(150_000)
PATHS = ("a/one.bin", "b/two.bin", "c/three.bin")


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mounts built from configuration get the reference layer (a no-op once
    core/mounting.py inserts it itself)."""
    original = mounting.compressing.wrap

    def wrap(name: str, config: Any, backend: Any) -> Any:
        backend = original(name, config, backend)
        return backend if find_layer(backend, "") else Referencing(backend)

    monkeypatch.setattr(mounting.compressing, "wrap", wrap)


@pytest.fixture(params=["local", "memory", "s3"])
def mount(request: pytest.FixtureRequest, wired: None, tmp_path: Path) -> Iterator[
        tuple[StorageManager, str]]:
    storage = StorageManager()
    if request.param == "local":
        (tmp_path / "d").mkdir()
        storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path / "d")}])
    elif request.param == "memory":
        storage.configure([{"name": "m", "type": "memory"}])
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"ref-{uuid.uuid4().hex[:10]}")
        storage.configure([{"name": "m", "type": "s3", "bucket": bucket,
                            "endpoint_url": moto.endpoint_url, "key": "testing",
                            "secret": "testing"}])
    for path in PATHS:
        storage.node(f"m:{path}").write_bytes(BIG)
    storage.node("m:x/other1").write_bytes(OTHER)
    storage.node("m:x/other2").write_bytes(OTHER)
    storage.node("m:x/unique").write_bytes(b"unique" * 1000)
    yield storage, "m"


def _stored_sizes(storage: StorageManager, mount: str) -> dict[str, int]:
    """Sizes of the stored objects (below the reference layer), reserved area excluded."""
    layer, _ = find_layer(storage.node(f"{mount}:")._be, "") or (None, "")
    assert layer is not None
    return {i.path: i.size for i in layer.inner.walk("") if not i.path.startswith(".storied")}


def test_plan_then_references_keep_every_path_logical(mount: tuple[StorageManager, str]) -> None:
    storage, m = mount
    plan = storage.deduplicate(f"{m}:", strategy="reference", dry_run=True)
    assert plan["dry_run"] and sorted(len(g["done"]) for g in plan["groups"]) == [2, 3]
    assert plan["bytes_reclaimed"] == 3 * (len(BIG) - REF_SIZE) - len(BIG) + 2 * (
        len(OTHER) - REF_SIZE) - len(OTHER)
    assert set(_stored_sizes(storage, m).values()) == {len(BIG), len(OTHER), 6000}  # untouched
    report = storage.deduplicate(f"{m}:", strategy="reference")
    assert report["bytes_reclaimed"] == plan["bytes_reclaimed"]
    assert all(g["skipped"] == [] for g in report["groups"])
    stored = _stored_sizes(storage, m)
    assert {stored[p] for p in PATHS} == {REF_SIZE} and stored["x/unique"] == 6000
    for path in PATHS:
        node = storage.node(f"{m}:{path}")
        assert node.read_bytes() == BIG and node.size() == len(BIG)
        assert node.md5hash() == hashlib.md5(BIG).hexdigest()
    listed = {n.path: n.size() for n in storage.node(f"{m}:a").iterdir()}
    assert listed == {"a/one.bin": len(BIG)}
    assert storage.node(f"{m}:x/other2").read_bytes() == OTHER
    with storage.node(f"{m}:b/two.bin").open("rb") as stream:
        stream.seek(100)
        assert stream.read(50) == BIG[100:150]
    stream = storage.node(f"{m}:c/three.bin").stream_download(chunk_size=64 * 1024)
    with stream:
        assert b"".join(stream) == BIG and stream.size == len(BIG)
    assert storage.find_duplicates(f"{m}:") == []  # references of one copy count once
    assert AREA not in {str(n.path) for n in storage.node(f"{m}:").iterdir()}


def test_write_and_delete_one_path_leave_the_others(mount: tuple[StorageManager, str]) -> None:
    storage, m = mount
    report = storage.deduplicate(f"{m}:", strategy="reference")
    kept = next(g["kept"] for g in report["groups"] if g["size"] == len(BIG))
    storage.node(kept).delete()
    others = [f"{m}:{p}" for p in PATHS if f"{m}:{p}" != kept]
    storage.node(others[0]).write_bytes(b"new content")  # copy on write
    assert storage.node(others[0]).read_bytes() == b"new content"
    assert storage.node(others[1]).read_bytes() == BIG
    gc = storage.collect_references(m, grace=0)
    assert gc["removed"] == [] and gc["referenced"] == 2
    assert storage.node(others[1]).read_bytes() == BIG
    storage.node(others[1]).delete()
    gc = storage.collect_references(m, grace=0)
    assert len(gc["removed"]) == 1 and gc["bytes_freed"] == len(BIG)
    assert storage.node(f"{m}:x/other1").read_bytes() == OTHER


def test_gc_waits_a_grace_period_before_removing(mount: tuple[StorageManager, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from storied.errors import InvalidArgumentError
    from storied.optimize import references

    storage, m = mount
    storage.deduplicate(f"{m}:", strategy="reference")
    for path in ("x/other1", "x/other2"):
        storage.node(f"{m}:{path}").delete()
    with pytest.raises(InvalidArgumentError):
        storage.collect_references(m, grace=10)  # shorter than deduplicate's re-check allows
    first = storage.collect_references(m, grace=3600)
    assert len(first["condemned"]) == 0  # a young copy is not even condemned
    monkeypatch.setattr(references, "MIN_GRACE", 0.0)
    first = storage.collect_references(m, grace=0.0001)
    assert len(first["condemned"]) == 1 and first["removed"] == []
    # a condemned copy is never used again: a new deduplicate makes another generation
    storage.node(f"{m}:y/1").write_bytes(OTHER)
    storage.node(f"{m}:y/2").write_bytes(OTHER)
    again = storage.deduplicate(f"{m}:y", strategy="reference")
    assert again["groups"][0]["copied"] == len(OTHER)
    last = storage.collect_references(m, grace=0)
    assert last["removed"] == first["condemned"]
    assert storage.node(f"{m}:y/1").read_bytes() == OTHER == storage.node(f"{m}:y/2").read_bytes()
    assert storage.node(f"{m}:a/one.bin").read_bytes() == BIG


class _ChangeAfterProof(WrappedBackend):
    """A concurrent writer: right after deduplicate's full read of ``path`` (its proof), the
    file is rewritten, so the swap that follows must fail its etag condition."""

    def __init__(self, inner: Any, path: str) -> None:
        super().__init__(inner)
        self.path = path
        self.reads = 0

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> Any:
        stream = self.inner.open_read(path, start, end)
        if path != self.path or start or end is not None:
            return stream
        self.reads += 1
        if self.reads != 2:  # the first full read is find_duplicates'; the second the proof
            return stream
        data = stream.read()
        stream.close()
        self.inner.write(path, b"changed meanwhile")
        return io.BytesIO(data)


def test_a_file_changed_between_proof_and_swap_is_untouched(tmp_path: Path) -> None:
    from storied.backends import registry

    (tmp_path / "d").mkdir()
    inner = registry.build("local", "l", {"base_path": str(tmp_path / "d")})
    racer = _ChangeAfterProof(inner, "b")
    storage = StorageManager()
    storage.add_mount({"name": "l", "backend": Referencing(racer), "retries": 1})
    for name in ("a", "b", "c"):
        storage.node(f"l:{name}").write_bytes(BIG)
    report = storage.deduplicate("l:", strategy="reference")
    (group,) = report["groups"]
    assert [s["path"] for s in group["skipped"]] == ["l:b"]
    assert "changed" in group["skipped"][0]["reason"]
    assert storage.node("l:b").read_bytes() == b"changed meanwhile"
    assert storage.node("l:a").read_bytes() == BIG == storage.node("l:c").read_bytes()


def test_a_file_changed_between_scan_and_swap_is_reported(tmp_path: Path, wired: None) -> None:
    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}])
    for name in ("a", "b", "c"):
        storage.node(f"l:{name}").write_bytes(BIG)

    def keep(group: Any) -> Any:  # runs after the scan, before any change
        storage.node("l:c").write_bytes(OTHER)
        return group.nodes[0]

    report = storage.deduplicate("l:", strategy="reference", keep=keep)
    (group,) = report["groups"]
    assert group["done"] == ["l:b", "l:a"]
    assert group["skipped"] == [{"path": "l:c",
                                 "reason": "changed: content differs from the survivor's"}]
    assert storage.node("l:c").read_bytes() == OTHER


def test_user_file_with_reference_bytes_is_not_a_reference(
        mount: tuple[StorageManager, str]) -> None:
    storage, m = mount
    storage.deduplicate(f"{m}:", strategy="reference")
    layer, path = find_layer(storage.node(f"{m}:a/one.bin")._be, "a/one.bin") or (None, "")
    assert layer is not None
    raw = layer.inner.read_bytes(path)
    assert len(raw) == REF_SIZE
    forged = raw[:-10] + b"0123456789"[: 9] + b"\n"  # same form, wrong HMAC
    storage.node(f"{m}:forged").write_bytes(forged)
    assert storage.node(f"{m}:forged").read_bytes() == forged
    assert storage.node(f"{m}:forged").size() == REF_SIZE
    # a raw copy of a reference (a server-side copy) is still the logical file
    storage.node(f"{m}:a/one.bin").copy_to(storage.node(f"{m}:copied.bin"))
    assert storage.node(f"{m}:copied.bin").read_bytes() == BIG


def test_reference_refused_without_the_layer_and_on_tiny_files(tmp_path: Path,
                                                                wired: None) -> None:
    storage = StorageManager()
    storage.configure([{"name": "mem", "type": "memory"}])
    storage.node("mem:a").write_bytes(b"1234")
    storage.node("mem:b").write_bytes(b"1234")
    report = storage.deduplicate("mem:", strategy="reference")
    assert report["bytes_reclaimed"] == 0
    assert all("too small" in s["reason"] for s in report["groups"][0]["skipped"])
    assert storage.node("mem:a").read_bytes() == b"1234"


def test_s3_reads_cost_one_extra_get_and_listing_one_get_per_content(
        moto: MotoHandle, proxy: CountingProxy, wired: None) -> None:
    bucket = make_bucket(moto.endpoint_url, f"refc-{uuid.uuid4().hex[:10]}")
    storage = StorageManager()
    storage.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                        "endpoint_url": proxy.endpoint_url, "key": "testing",
                        "secret": "testing"}])
    for i in range(6):
        storage.node(f"s3:d/{i}").write_bytes(BIG)
    storage.node("s3:plain").write_bytes(OTHER)
    storage.deduplicate("s3:", strategy="reference")
    fresh = StorageManager()  # a new process: nothing cached
    fresh.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                      "endpoint_url": proxy.endpoint_url, "key": "testing",
                      "secret": "testing"}])
    assert fresh.node("s3:plain").read_bytes() == OTHER  # the mount's own probes
    proxy.reset()
    assert fresh.node("s3:plain").read_bytes() == OTHER
    assert proxy.counts == {"GET": 1}  # a plain file: no request of the layer's own
    proxy.reset()
    assert fresh.node("s3:d/3").read_bytes() == BIG
    # the reference, then once per process the keys (a LIST and a GET), the content copy
    assert proxy.counts == {"GET": 3, "LIST": 1}
    proxy.reset()
    assert fresh.node("s3:d/4").read_bytes() == BIG
    assert proxy.counts == {"GET": 2}  # one extra request: the content copy
    proxy.reset()
    assert fresh.find_duplicates("s3:") == []
    assert proxy.counts["GET"] == 1  # six references, one content: read once


def test_cli_dedup_reference(tmp_path: Path, wired: None) -> None:
    from click.testing import CliRunner

    from storied.cli.main import cli

    (tmp_path / "d").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "d" / name).write_bytes(BIG)
    cfg = tmp_path / "storied.yaml"
    cfg.write_text(json.dumps([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}]))
    runner = CliRunner()
    result = runner.invoke(cli, ["-c", str(cfg), "dedup", "l:", "--strategy", "reference", "-n"])
    assert result.exit_code == 0, result.output
    assert "would reference l:b" in result.stdout
    assert (tmp_path / "d" / "b").stat().st_size == len(BIG)
    result = runner.invoke(cli, ["-c", str(cfg), "dedup", "l:", "--strategy", "reference",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["strategy"] == "reference" and len(report["groups"][0]["done"]) == 3
    assert (tmp_path / "d" / "b").stat().st_size == REF_SIZE
    result = runner.invoke(cli, ["-c", str(cfg), "cat", "l:b"])
    assert result.exit_code == 0 and result.stdout_bytes == BIG
    (tmp_path / "d" / "a").unlink()
    (tmp_path / "d" / "b").unlink()
    (tmp_path / "d" / "c").unlink()
    result = runner.invoke(cli, ["-c", str(cfg), "dedup-gc", "l", "--grace", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes_freed"] == len(BIG)


def test_portable_history_and_relative_mounts_see_logical_files(tmp_path: Path,
                                                                wired: None) -> None:
    (tmp_path / "v").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "v"),
                        "versioning": True}, {"name": "sub", "path": "v:x"}])
    for path in ("x/a", "x/b", "c"):
        storage.node(f"v:{path}").write_bytes(BIG)
    report = storage.deduplicate("sub:", strategy="reference")
    assert sorted(report["groups"][0]["done"]) == ["sub:a", "sub:b"]
    assert (tmp_path / "v" / "x" / "a").stat().st_size == REF_SIZE
    assert (tmp_path / "v" / "c").stat().st_size == len(BIG)  # outside the prefix
    assert len(storage.node("v:x/a").versions) == 1  # a reference is no new version
    assert storage.verify("v").problems == [] and storage.verify("v").stale == []
    storage.node("sub:b").write_bytes(b"next")
    assert [v["size"] for v in storage.node("v:x/b").versions] == [len(BIG), 4]
    assert storage.node("v:x/a").read_bytes() == BIG == storage.node("sub:a").read_bytes()
    stream = storage.node("v:x/a").stream_download(chunk_size=64 * 1024)
    with stream:
        assert b"".join(stream) == BIG


def test_native_versions_are_refused(moto: MotoHandle, wired: None) -> None:
    from storied.errors import UnsupportedOperation

    bucket = make_bucket(moto.endpoint_url, f"refv-{uuid.uuid4().hex[:10]}", versioned=True)
    storage = StorageManager()
    storage.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                        "endpoint_url": moto.endpoint_url, "key": "testing",
                        "secret": "testing"}])
    storage.node("s3:a").write_bytes(BIG)
    storage.node("s3:b").write_bytes(BIG)
    with pytest.raises(UnsupportedOperation, match="version"):
        storage.deduplicate("s3:", strategy="reference")
    assert storage.node("s3:b").read_bytes() == BIG


def test_the_layer_keeps_the_local_fast_paths_and_alias_refusal(tmp_path: Path,
                                                                 wired: None) -> None:
    from storied.errors import PathEscapeError

    (tmp_path / "v").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "v"),
                        "versioning": True}])
    raw = storage._raw["v"]
    assert find_layer(raw, "") is not None
    for name in ("create_linked", "through_link", "holding", "dir_stamp", "list_file_names"):
        assert callable(getattr(raw, name)), name
    assert not hasattr(raw, "no_such_fast_path")
    os.symlink(".", tmp_path / "v" / "cur")
    with pytest.raises(PathEscapeError):
        storage.node("v:cur/f.txt").write_bytes(b"through a link")
    storage.node("v:f.txt").write_bytes(BIG)
    record = next((tmp_path / "v" / ".storied" / "versions" / "f.txt").iterdir())
    assert record.stat().st_nlink == 2  # the record is a hard link of its blob (ADR 0012)


def test_one_layer_only_and_gc_sees_stored_objects(tmp_path: Path, wired: None) -> None:
    from storied.backends import registry
    from storied.backends.wrappers import Retrying

    inner = registry.build("memory", "x", {})
    layer = Referencing(inner)
    assert Referencing(layer) is layer and layer.inner is inner
    assert Referencing(Retrying(layer)).inner is layer  # handed back: no second layer
    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")}])
    chain, count = storage.node("l:")._be, 0
    while chain is not None:
        count += isinstance(chain, Referencing)
        chain = getattr(chain, "inner", None)
    assert count == 1
    for name in ("a", "b", "c"):
        storage.node(f"l:{name}").write_bytes(BIG)
    storage.deduplicate("l:", strategy="reference")
    storage.node("l:a").delete()
    gc = storage.collect_references("l", grace=0)
    assert gc["referenced"] == 1 and gc["removed"] == []
    assert storage.node("l:b").read_bytes() == BIG


def test_gc_respects_the_mount_permissions(tmp_path: Path, wired: None) -> None:
    from storied.errors import StoragePermissionError

    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "l", "type": "local", "base_path": str(tmp_path / "d")},
                       {"name": "ro", "path": "l:", "permissions": "readonly"},
                       {"name": "nodel", "path": "l:", "permissions": "readwrite"}])
    for name in ("a", "b", "c"):
        storage.node(f"l:{name}").write_bytes(BIG)
    report = storage.deduplicate("ro:", strategy="reference")
    assert report["bytes_reclaimed"] == 0 and len(report["groups"][0]["skipped"]) == 3
    assert all("read-only" in s["reason"] for s in report["groups"][0]["skipped"])
    assert (tmp_path / "d" / "a").stat().st_size == len(BIG)
    storage.deduplicate("l:", strategy="reference")
    for name in ("a", "b", "c"):
        storage.node(f"l:{name}").delete()
    for mount in ("ro", "nodel"):
        with pytest.raises(StoragePermissionError):
            storage.collect_references(mount, grace=0)
        plan = storage.collect_references(mount, grace=0, dry_run=True)
        assert len(plan["condemned"]) == 1 and plan["bytes_freed"] == len(BIG)
    assert storage.collect_references("l", grace=0)["bytes_freed"] == len(BIG)


def test_cli_reference_needs_a_configured_mount_and_takes_workers(tmp_path: Path,
                                                                  wired: None) -> None:
    from click.testing import CliRunner

    from storied.cli.main import cli

    (tmp_path / "d").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "d" / name).write_bytes(BIG)
    runner = CliRunner()
    result = runner.invoke(cli, ["dedup", str(tmp_path / "d"), "--strategy", "reference"])
    assert result.exit_code == 2 and "configured mount" in result.output
    assert not (tmp_path / "d" / ".storied").exists()
    assert (tmp_path / "d" / "a").stat().st_size == len(BIG)
    result = runner.invoke(cli, ["dupes", str(tmp_path / "d"), "--workers", "2", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)[0]["paths"]) == 3


def test_a_reference_url_serves_the_file_bytes(moto: MotoHandle) -> None:
    import urllib.request

    bucket = make_bucket(moto.endpoint_url, f"refu-{uuid.uuid4().hex[:10]}")
    storage = StorageManager()
    storage.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                        "endpoint_url": moto.endpoint_url, "key": "testing",
                        "secret": "testing"}])
    storage.node("s3:a").write_bytes(BIG)
    storage.node("s3:b").write_bytes(BIG)
    storage.node("s3:plain").write_bytes(OTHER)
    storage.deduplicate("s3:", strategy="reference")
    for path, data in (("s3:a", BIG), ("s3:plain", OTHER)):
        url = storage.node(path).url()
        assert url is not None
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == data


def test_files_the_mount_compresses_are_left_compressed(tmp_path: Path, wired: None) -> None:
    (tmp_path / "d").mkdir()
    storage = StorageManager()
    storage.configure([{"name": "z", "type": "local", "base_path": str(tmp_path / "d"),
                        "compress": ["*.log"]}])
    text = b"2026-12-02 03:00:00 INFO a line that repeats\n" * 5000
    for name in ("a.log", "b.log", "a.bin", "b.bin"):
        storage.node(f"z:{name}").write_bytes(text if name.endswith(".log") else BIG)
    report = storage.deduplicate("z:", strategy="reference")
    by_size = {g["size"]: g for g in report["groups"]}
    assert all("compresses" in s["reason"] for s in by_size[len(text)]["skipped"])
    assert sorted(by_size[len(BIG)]["done"]) == ["z:a.bin", "z:b.bin"]
    assert storage.node("z:a.log").read_bytes() == text
    assert (tmp_path / "d" / "a.log").stat().st_size < len(text) // 4


class _UnreadableOnce(WrappedBackend):
    """``path`` cannot be read (a storage error, not a missing file) while ``failing``."""

    def __init__(self, inner: Any, path: str) -> None:
        super().__init__(inner)
        self.path, self.failing = path, False

    def read_bytes(self, path: str) -> bytes:
        if self.failing and path == self.path:
            from storied.errors import StorageIOError

            raise StorageIOError("injected: unreadable right now")
        return self.inner.read_bytes(path)


def test_gc_never_decides_on_a_partial_view(tmp_path: Path) -> None:
    from storied.backends import registry
    from storied.errors import StorageIOError

    (tmp_path / "d").mkdir()
    flaky = _UnreadableOnce(registry.build("local", "l", {"base_path": str(tmp_path / "d")}),
                            "b")
    storage = StorageManager()
    storage.add_mount({"name": "l", "backend": Referencing(flaky), "retries": 1})
    for name in ("a", "b"):
        storage.node(f"l:{name}").write_bytes(BIG)
    storage.deduplicate("l:", strategy="reference")
    raw = flaky.inner.read_bytes("a")
    storage.node("l:a").delete()
    fresh = StorageManager()  # nothing cached about b
    fresh.add_mount({"name": "l", "backend": Referencing(flaky), "retries": 1})
    flaky.failing = True
    with pytest.raises(StorageIOError):
        fresh.collect_references("l", grace=0)
    flaky.failing = False
    assert fresh.node("l:b").read_bytes() == BIG  # its copy is still there
    # a reference-shaped line with a wrong HMAC still keeps the copy it names alive
    flaky.inner.write("forged", raw[:-10] + b"000000000\n")
    fresh.node("l:b").delete()
    assert fresh.collect_references("l", grace=0)["removed"] == []
    fresh.node("l:forged").delete()
    assert len(fresh.collect_references("l", grace=0)["removed"]) == 1


class _KeysUnlistable(WrappedBackend):
    """The keys folder cannot be listed while ``failing`` (a storage error)."""

    failing = False

    def list(self, path: str) -> Any:
        if self.failing and path.startswith(".storied/dedup/keys"):
            from storied.errors import StorageIOError

            raise StorageIOError("injected: cannot list the keys")
        return self.inner.list(path)


def test_unreadable_keys_never_turn_a_reference_into_its_line(tmp_path: Path) -> None:
    from storied.backends import registry
    from storied.errors import StorageIOError

    (tmp_path / "d").mkdir()
    flaky = _KeysUnlistable(registry.build("local", "l", {"base_path": str(tmp_path / "d")}))
    storage = StorageManager()
    storage.add_mount({"name": "l", "backend": Referencing(flaky), "retries": 1})
    for name in ("a", "b"):
        storage.node(f"l:{name}").write_bytes(BIG)
    storage.node("l:plain").write_bytes(OTHER)
    storage.deduplicate("l:", strategy="reference")
    fresh = StorageManager()  # a new process, whose first key listing fails
    fresh.add_mount({"name": "l", "backend": Referencing(flaky), "retries": 1})
    flaky.failing = True
    with pytest.raises(StorageIOError):
        fresh.node("l:a").read_bytes()
    with pytest.raises(StorageIOError):
        fresh.node("l:b").size()
    assert fresh.node("l:plain").read_bytes() == OTHER  # plain files are unaffected
    flaky.failing = False  # an unknown key id lists the keys again at once
    assert fresh.node("l:a").read_bytes() == BIG
