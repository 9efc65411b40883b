"""Events from every write path (issue 9 §1) on memory, local, S3 portable and S3 native: the
in-process bus (``storage.on``) and the journal (``storage.events``) agree."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import InvalidArgumentError
from storied.testing.s3server import MotoHandle, make_bucket

KINDS = ["memory", "local", "s3-portable", "s3-native"]


def _s3(name: str, endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", **extra}


def _versioned(kind: str, tmp_path: Path, moto: MotoHandle | None) -> dict[str, object]:
    if kind == "memory":
        return {"name": "v", "type": "memory", "versioning": True}
    if kind == "local":
        (tmp_path / "v").mkdir()
        return {"name": "v", "type": "local", "base_path": str(tmp_path / "v"),
                "versioning": True}
    assert moto is not None
    native = kind == "s3-native"
    bucket = make_bucket(moto.endpoint_url, f"ev-{uuid.uuid4().hex[:12]}", versioned=native)
    return _s3("v", moto.endpoint_url, bucket, versioning=True)


@pytest.fixture(params=KINDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    """``v``: a versioned mount of the parametrised kind; ``p``: a plain memory mount;
    ``l``: a plain local mount."""
    moto = request.getfixturevalue("moto") if request.param.startswith("s3") else None
    (tmp_path / "l").mkdir()
    sm = StorageManager()
    sm.configure([_versioned(request.param, tmp_path, moto),
                  {"name": "p", "type": "memory"},
                  {"name": "l", "type": "local", "base_path": str(tmp_path / "l")}])
    yield sm
    sm.close()


class Recorder:
    def __init__(self, sm: StorageManager, event: str = "*", **filters: Any) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.sub = sm.on(event, self, **filters)

    def __call__(self, node: Any, info: dict[str, Any]) -> None:
        self.seen.append((info["event"], node.fullpath, info))

    def kinds(self) -> list[tuple[str, str]]:
        return [(e, p) for e, p, _ in self.seen]


def _journal(sm: StorageManager, prefix: str = "v:") -> list[tuple[str, str]]:
    return [(e.type, e.path) for e in sm.events(prefix)]


def _same_version(info: dict[str, Any], listed: dict[str, Any], native: bool) -> None:
    got = {k: v for k, v in info.items() if k != "event"}
    if native:  # the PUT response's Last-Modified is to the second; the listing's finer
        for key in ("version_id", "size", "etag", "is_latest", "tags", "metadata"):
            assert got[key] == listed[key]
        assert abs((got["last_modified"] - listed["last_modified"]).total_seconds()) < 2
    else:
        assert got == listed


def test_write_paths_emit_version_created_equal_to_versions_entry(
        storage: StorageManager) -> None:
    native = storage.history("v").name == "native"  # type: ignore[union-attr]
    rec = Recorder(storage, "version_created")
    node = storage.node("v:docs/a.txt")
    node.write_bytes(b"one")
    node.write_text("two", skip_if_unchanged=True)
    assert node.write_text("two", skip_if_unchanged=True) is False  # skipped: no event
    with node.open("w") as f:
        f.write("three")
    with node.open("a") as f:
        f.write("+")
    with storage.node("v:docs/x.txt").open("x") as f:
        f.write("new")
    node.write_bytes(b"meta", metadata={"k": "v"})
    node.rollback(0)
    assert [p for _, p, _ in rec.seen] == ["v:docs/a.txt"] * 4 + ["v:docs/x.txt"] + [
        "v:docs/a.txt"] * 2
    versions = node.versions
    infos = [i for _, p, i in rec.seen if p == "v:docs/a.txt"]
    for info, listed in zip(infos, versions, strict=True):
        assert info["is_latest"] is True  # it was the latest when the event came
        _same_version(info, {**listed, "is_latest": True}, native)
    assert infos[4]["metadata"] == {"k": "v"}
    # the journal has the same events, in the same order, readable by anyone
    assert _journal(storage) == [("version_created", p.partition(":")[2])
                                 for _, p, _ in rec.seen]


def test_copy_and_move_into_a_versioned_mount(storage: StorageManager) -> None:
    rec = Recorder(storage)
    storage.node("p:src/a.txt").write_text("a")
    storage.node("p:src/b/c.txt").write_text("c")
    storage.node("p:src").copy_to("v:copied")
    storage.node("v:copied/a.txt").copy_to("v:again.txt")  # within the versioned mount
    storage.node("p:src").move_to("v:moved")
    storage.node("v:again.txt").move_to("v:renamed.txt")
    kinds = rec.kinds()
    for path in ("v:copied/a.txt", "v:copied/b/c.txt", "v:again.txt", "v:moved/a.txt",
                 "v:moved/b/c.txt", "v:renamed.txt"):
        assert ("version_created", path) in kinds
        assert ("file_written", path) in kinds
    for path in ("p:src/a.txt", "p:src/b/c.txt", "v:again.txt"):
        assert ("file_deleted", path) in kinds
    journal = _journal(storage)
    assert ("version_created", "renamed.txt") in journal
    assert ("file_deleted", "again.txt") in journal
    assert [v for v in storage.node("v:renamed.txt").versions if v["is_latest"]]


def test_plain_mounts_emit_file_events(storage: StorageManager) -> None:
    for mount in ("p", "l"):
        rec = Recorder(storage, mount=mount)
        node = storage.node(f"{mount}:d/f.txt")
        node.write_text("x")
        with storage.node(f"{mount}:d/g.txt").open("wb") as f:
            f.write(b"g")
        node.copy_to(f"{mount}:d/h.txt")
        node.move_to(f"{mount}:e/f.txt")
        storage.node(f"{mount}:d").delete(recursive=True)
        assert rec.kinds() == [
            ("file_written", f"{mount}:d/f.txt"), ("file_written", f"{mount}:d/g.txt"),
            ("file_written", f"{mount}:d/h.txt"), ("file_deleted", f"{mount}:d/f.txt"),
            ("file_written", f"{mount}:e/f.txt"), ("file_deleted", f"{mount}:d/g.txt"),
            ("file_deleted", f"{mount}:d/h.txt")]
        assert rec.seen[0][2]["size"] == 1
        rec.sub.cancel()


def test_deletes_tags_annotations_and_version_removal(storage: StorageManager) -> None:
    rec = Recorder(storage)
    node = storage.node("v:f.txt")
    for text in ("1", "1", "2", "3"):
        node.write_text(text)
    rec.seen.clear()
    first = node.versions[0]["version_id"]
    node.tag_version(0, "keep")
    node.annotate_version(-1, {"who": "me"})
    node.untag_version("keep")
    assert node.compact_versions() == 1
    node.delete_version(0)
    node.cleanup_versions(keep_last=1)
    kinds = [e for e, _, _ in rec.seen]
    assert kinds == ["tag_created", "version_annotated", "tag_deleted", "version_deleted",
                     "version_deleted", "version_deleted"]
    assert rec.seen[0][2]["version_id"] == first and rec.seen[0][2]["tag"] == "keep"
    annotated = rec.seen[1][2]
    _same_version(annotated, node.versions[-1],
                  storage.history("v").name == "native")  # type: ignore[union-attr]
    assert annotated["metadata"] == {"who": "me"}
    storage.node("v:f.txt").delete()
    storage.node("v:dir/a").write_text("a")
    storage.node("v:dir/b").write_text("b")
    storage.node("v:dir").delete(recursive=True)
    deleted = [p for e, p, _ in rec.seen if e == "file_deleted"]
    assert deleted == ["v:f.txt", "v:dir/a", "v:dir/b"]
    journal = [t for t, _ in _journal(storage)]
    assert journal[-11:] == ["tag_created", "version_annotated", "tag_deleted",
                             "version_deleted", "version_deleted", "version_deleted",
                             "file_deleted", "version_created", "version_created",
                             "file_deleted", "file_deleted"]


def test_bulk_operations_and_snapshots(storage: StorageManager) -> None:
    for name in ("a", "b"):
        for text in ("1", "1", "2"):
            storage.node(f"v:s/{name}.txt").write_text(text)
    rec = Recorder(storage)
    assert storage.bulk_compact_versions("v:s") == {"v:s/a.txt": 1, "v:s/b.txt": 1}
    storage.create_snapshot("v:s", "snap1")
    storage.node("v:s/a.txt").write_text("changed")
    report = storage.restore_snapshot("snap1")
    assert report["restored"] == ["s/a.txt"]
    storage.delete_snapshot("snap1")
    storage.bulk_cleanup_versions("v:s", keep_last=1)
    kinds = rec.kinds()
    assert kinds[:2] == [("version_deleted", "v:s/a.txt"), ("version_deleted", "v:s/b.txt")]
    assert kinds[2] == ("snapshot_created", "v:s")
    assert rec.seen[2][2]["file_count"] == 2 and rec.seen[2][2]["tag"] == "snap1"
    restored = kinds.index(("snapshot_restored", "v:s"))
    assert ("version_created", "v:s/a.txt") in kinds[3:restored]
    assert rec.seen[restored][2]["restored"] == 1
    assert ("snapshot_deleted", "v:s") in kinds
    assert kinds.count(("version_deleted", "v:s/a.txt")) >= 3
    journal = _journal(storage)
    assert ("snapshot_created", "s") in journal and ("snapshot_deleted", "s") in journal


def test_filters_wildcard_cancel_off_and_errors(storage: StorageManager,
                                                caplog: pytest.LogCaptureFixture) -> None:
    only_cfg = Recorder(storage, "file_written", mount="v", path="config/*")
    everything = Recorder(storage)
    storage.node("v:config/a.yml").write_text("a")
    storage.node("v:other/b.yml").write_text("b")
    storage.node("p:config/a.yml").write_text("c")
    assert only_cfg.kinds() == [("file_written", "v:config/a.yml")]
    assert len(everything.seen) == 5
    everything.sub.cancel()
    everything.sub.cancel()  # idempotent
    seen: list[str] = []

    def cb(node: Any, info: dict[str, Any]) -> None:
        seen.append(node.fullpath)

    storage.on("version_created", cb)
    storage.node("v:x").write_text("x")
    storage.off("version_created", cb)
    storage.node("v:y").write_text("y")
    assert seen == ["v:x"] and len(everything.seen) == 5
    with pytest.raises(ValueError, match="version_created") as raised:
        storage.on("version_made", cb)
    assert isinstance(raised.value, InvalidArgumentError)

    def boom(node: Any, info: dict[str, Any]) -> None:
        raise RuntimeError("callback broke")

    storage.on("version_created", boom)
    with caplog.at_level(logging.ERROR, logger="storied.events"):
        assert storage.node("v:z").write_text("z") is True  # the write is not failed
    assert "callback broke" in caplog.text
    assert storage.node("v:z").read_text() == "z"


def test_a_callback_writing_what_it_listens_to_does_not_recurse_forever(
        caplog: pytest.LogCaptureFixture) -> None:
    from storied.events.bus import MAX_DEPTH

    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    calls: list[int] = []

    def audit(node: Any, info: dict[str, Any]) -> None:
        calls.append(1)
        sm.node("v:audit.log").write_text(f"saw {info['version_id']}")

    sm.on("version_created", audit)
    with caplog.at_level(logging.ERROR, logger="storied.events"):
        assert sm.node("v:a.txt").write_text("a") is True
    assert len(calls) == MAX_DEPTH
    assert "nested" in caplog.text
    # every write was journaled, delivered or not
    assert len([e for e in sm.events("v:") if e.type == "version_created"]) == MAX_DEPTH + 1
