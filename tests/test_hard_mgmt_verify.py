"""Issue 8 items 1.14 (snapshot names across mounts) and verify (1.5, 1.12).

* A snapshot name two mounts have is ambiguous: get/restore/delete refuse it naming both
  candidates; ``'mount:name'`` picks one, everywhere a snapshot tag is taken.
* ``verify`` reports a tag or a snapshot entry naming a version that does not exist, on both
  engines, and always returns a report (a directory where a working copy belongs, an unreadable
  refs document or manifest become report lines, not exceptions).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import StorageError, StorageNotFoundError
from storied.testing.s3server import MotoHandle, make_bucket


def two_mounts() -> StorageManager:
    sm = StorageManager()
    sm.configure([
        {"name": "a", "type": "memory", "store": uuid.uuid4().hex, "versioning": True},
        {"name": "b", "type": "memory", "store": uuid.uuid4().hex, "versioning": True},
        {"name": "bsub", "path": "b:cfg"},
    ])
    for mount in ("a", "b"):
        sm.node(f"{mount}:cfg/app.txt").write_text(f"{mount} good")
    sm.create_snapshot("a:cfg", "pre-deploy")
    # the same name on mount b: created by another manager that knows only b
    other = StorageManager()
    other.configure([sm._configs["b"]])
    other.create_snapshot("b:cfg", "pre-deploy")
    for mount in ("a", "b"):
        sm.node(f"{mount}:cfg/app.txt").write_text(f"{mount} broken")
    return sm


def test_ambiguous_snapshot_name_is_an_error_naming_the_candidates() -> None:
    sm = two_mounts()
    for call in (lambda: sm.get_snapshot("pre-deploy"),
                 lambda: sm.restore_snapshot("pre-deploy"),
                 lambda: sm.restore_snapshot("pre-deploy", dry_run=True),
                 lambda: sm.delete_snapshot("pre-deploy")):
        with pytest.raises(LookupError) as caught:
            call()
        assert isinstance(caught.value, StorageError) and isinstance(caught.value, ValueError)
        assert "'a:pre-deploy'" in str(caught.value) and "'b:pre-deploy'" in str(caught.value)
    # nothing was restored or deleted
    assert [sm.node(f"{m}:cfg/app.txt").read_text() for m in "ab"] == ["a broken", "b broken"]
    assert len(sm.list_snapshots()) == 2


def test_mount_qualified_snapshot_names_pick_one() -> None:
    sm = two_mounts()
    assert sm.get_snapshot("b:pre-deploy")["prefix"] == "b:cfg"
    assert sm.get_snapshot("bsub:pre-deploy")["prefix"] == "b:cfg"  # a relative mount: its parent
    report = sm.restore_snapshot("b:pre-deploy")
    assert report["restored"] == ["cfg/app.txt"]
    assert [sm.node(f"{m}:cfg/app.txt").read_text() for m in "ab"] == ["a broken", "b good"]
    sm.delete_snapshot("b:pre-deploy")
    assert sm.get_snapshot("pre-deploy")["prefix"] == "a:cfg"  # no longer ambiguous
    with pytest.raises(StorageNotFoundError):
        sm.get_snapshot("b:pre-deploy")
    with pytest.raises(StorageNotFoundError):
        sm.delete_snapshot("b:pre-deploy")
    sm.restore_snapshot("pre-deploy")
    assert sm.node("a:cfg/app.txt").read_text() == "a good"


# ============================================================================ verify
@pytest.fixture(params=["memory", "native-s3"])
def sm(request: pytest.FixtureRequest) -> Any:
    storage = StorageManager()
    if request.param == "memory":
        storage.configure([{"name": "v", "type": "memory", "store": uuid.uuid4().hex,
                            "versioning": True}])
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        bucket = make_bucket(moto.endpoint_url, f"hv-{uuid.uuid4().hex[:12]}", versioned=True)
        storage.configure([{"name": "v", "type": "s3", "bucket": bucket, "key": "k",
                            "secret": "s", "endpoint_url": moto.endpoint_url}])
    yield storage
    storage.close()


def test_verify_reports_dangling_tags_and_snapshot_entries(sm: StorageManager) -> None:
    node = sm.node("v:d/f.txt")
    for text in ("1", "2", "3"):
        node.write_text(text)
    ids = [v["version_id"] for v in node.versions]
    node.tag_version(0, "good")
    sm.create_snapshot("v:d", "snap")
    assert sm.verify().ok and sm.verify("v:d").ok
    history = sm.history("v")
    assert history is not None
    # what a deleter that ignored protection (or an older storied) leaves behind
    node.write_text("4")
    for vid in (ids[0], ids[2]):
        history.delete_version("d/f.txt", next(v for v in history.versions("d/f.txt")
                                               if v.version_id == vid))
    report = sm.verify("v:")
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"dangling tag 'good' of d/f.txt: version {ids[0]}" in text
    assert f"dangling entry of snapshot 'snap': version {ids[2]} of d/f.txt" in text
    assert len(sm.verify("v:d").problems) == 2  # a prefix check finds them too
    assert sm.verify("v:elsewhere").ok  # outside the prefix: not this check's business


def test_verify_reports_unreadable_catalog_objects_instead_of_raising(sm: StorageManager) -> None:
    sm.node("v:x.txt").write_text("x")
    sm.node("v:x.txt").tag_version(-1, "t")
    sm.create_snapshot("v:", "s")
    history = sm.history("v")
    assert history is not None
    catalog = history.engine.catalog
    catalog.backend.write(catalog._key("refs", "x.txt", "refs.json"), b"{not json")
    catalog.backend.write(catalog._key("snapshots", "s.json"), b"[]")
    report = sm.verify()
    assert not report.ok
    text = "\n".join(report.problems)
    assert "unreadable tags and annotations of x.txt" in text and "unreadable snapshot 's'" in text


def test_verify_returns_a_report_when_a_working_copy_became_a_directory(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}])
    sm.node("v:a.txt").write_text("a")
    (tmp_path / "a.txt").unlink()
    (tmp_path / "a.txt").mkdir()
    (tmp_path / "a.txt" / "inner").write_text("in the way")
    report = sm.verify()
    assert any(line.startswith("v: a.txt:") for line in report.stale), report


def test_verify_returns_a_report_when_a_parent_became_a_file(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}])
    sm.node("v:x/below.txt").write_text("b")
    (tmp_path / "x" / "below.txt").unlink()
    (tmp_path / "x").rmdir()
    (tmp_path / "x").write_text("a file where the folder was")
    report = sm.verify("v:x")
    assert report.ok and any(line.startswith("v: x/below.txt:") for line in report.stale)
    assert len(sm.verify().stale) == 1
