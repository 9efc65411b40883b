"""Issue 8, item 1.11: a ``history:`` target must be writable, unshared and outside the mount's
own data; resolution goes through relative mounts down to the storage and its full path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storied import StorageConfigError, StorageManager, StoragePermissionError


def _dirs(tmp_path: Path, *names: str) -> list[str]:
    out = []
    for name in names:
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        out.append(str(tmp_path / name))
    return out


@pytest.mark.parametrize(
    "target",
    [
        {"name": "archive", "type": "memory", "permissions": "readonly"},
        {"name": "archive", "type": "memory", "readonly": True},
        {"name": "archive", "type": "memory", "permissions": "readwrite"},  # no deletes
        {"name": "archive", "type": "base64"},  # a read-only storage
    ],
)
def test_history_target_must_accept_writes_and_deletes(
    tmp_path: Path, target: dict[str, Any]
) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.add_mount(target)
    with pytest.raises(StorageConfigError) as caught:
        sm.add_mount({"name": "v", "type": "local", "base_path": data, "versioning": True,
                      "history": "archive:h"})
    assert "'v'" in str(caught.value) and "'archive'" in str(caught.value)
    assert not sm.has_mount("v")


def test_history_target_through_a_readonly_relative_mount(tmp_path: Path) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.add_mount({"name": "archive", "type": "memory"})
    sm.add_mount({"name": "pub", "path": "archive:pub", "permissions": "readonly"})
    with pytest.raises(StorageConfigError, match="'pub'"):
        sm.add_mount({"name": "v", "type": "local", "base_path": data, "versioning": True,
                      "history": "pub:h"})


def test_target_made_readonly_later_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "type": "memory"},
        {"name": "v", "type": "local", "base_path": data, "versioning": True,
         "history": "archive:h"},
    ])
    with pytest.raises(StorageConfigError, match="'v'"):
        sm.add_mount({"name": "archive", "type": "memory", "readonly": True})
    sm.node("v:a.txt").write_text("1")  # the old, writable target is still in place
    assert sm.node("archive:h").exists()
    with pytest.raises(StorageConfigError, match="holds the history"):
        sm.delete_mount("archive")


def test_mount_under_a_history_target_cannot_be_deleted(tmp_path: Path) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "type": "memory"},
        {"name": "rel", "path": "archive:h"},
        {"name": "v", "type": "local", "base_path": data, "versioning": True,
         "history": "rel:v"},
    ])
    with pytest.raises(StorageConfigError, match="'v'"):
        sm.delete_mount("archive")  # the target 'rel' lives in it
    sm.add_mount({"name": "other", "type": "memory"})  # the checks still resolve every target
    sm.node("v:a.txt").write_text("1")
    assert sm.node("archive:h/v").exists()
    sm.delete_mount("v")
    sm.delete_mount("archive")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("archive:h", "archive:h"),
        ("archive:h", "archive:h/sub"),  # nested
        ("archive:h/sub", "archive:h"),
        ("archive:h/sub", "rel:sub"),  # the same place through a relative mount
        ("archive:h", "twin:h"),  # another memory mount on the same store
    ],
)
def test_two_mounts_cannot_share_a_history(tmp_path: Path, first: str, second: str) -> None:
    one, two = _dirs(tmp_path, "one", "two")
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "type": "memory"},
        {"name": "twin", "type": "memory", "store": "archive"},
        {"name": "rel", "path": "archive:h"},
        {"name": "v1", "type": "local", "base_path": one, "versioning": True, "history": first},
    ])
    with pytest.raises(StorageConfigError) as caught:
        sm.add_mount({"name": "v2", "type": "local", "base_path": two, "versioning": True,
                      "history": second})
    assert "'v1'" in str(caught.value) and "'v2'" in str(caught.value)
    assert not sm.has_mount("v2")


def test_two_versioned_mounts_on_one_directory(tmp_path: Path) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.add_mount({"name": "a", "type": "local", "base_path": data, "versioning": True})
    with pytest.raises(StorageConfigError, match="share one history"):
        sm.add_mount({"name": "b", "type": "local", "base_path": data + "/.", "versioning": True})
    sm.add_mount({"name": "b", "path": "a:"})  # the supported way: b shares a's history
    sm.node("b:x.txt").write_text("1")
    assert sm.node("a:x.txt").version_count == 1


def test_separate_histories_are_accepted(tmp_path: Path) -> None:
    one, two, arch = _dirs(tmp_path, "one", "two", "arch")
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "type": "local", "base_path": arch},
        {"name": "v1", "type": "local", "base_path": one, "versioning": True,
         "history": "archive:h1"},
        {"name": "v2", "type": "local", "base_path": two, "versioning": True,
         "history": "archive:h2"},
        {"name": "v3", "type": "memory", "versioning": True},
        {"name": "v4", "type": "memory", "versioning": True},
    ])
    for mount in ("v1", "v2", "v3", "v4"):
        sm.node(f"{mount}:f.txt").write_text("x")
        assert sm.node(f"{mount}:f.txt").version_count == 1


@pytest.mark.parametrize("spec", ["inner:", "inner:deep", "same:h", "parent:data/h"])
def test_history_inside_the_mounts_own_data_is_refused(tmp_path: Path, spec: str) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.configure([
        {"name": "parent", "type": "local", "base_path": str(tmp_path)},
        {"name": "same", "type": "local", "base_path": data},
    ])
    sm.add_mount({"name": "v", "type": "local", "base_path": data})
    sm.add_mount({"name": "inner", "path": "v:sub"})
    with pytest.raises(StorageConfigError, match="own data"):
        sm.add_mount({"name": "v", "type": "local", "base_path": data, "versioning": True,
                      "history": spec})


def test_history_key_errors() -> None:
    sm = StorageManager()
    sm.add_mount({"name": "archive", "type": "memory"})
    for spec, words in [
        ("v:h", "names the mount itself"),
        ("archive:../up", "invalid 'history'"),
        ("nope:h", "existing mount"),
    ]:
        with pytest.raises(StorageConfigError, match=words):
            sm.add_mount({"name": "v", "type": "memory", "versioning": True, "history": spec})
    with pytest.raises(StorageConfigError, match="needs 'versioning: true'"):
        sm.add_mount({"name": "v", "type": "memory", "history": "archive:h"})


def test_replacing_a_mount_refreshes_the_histories_that_depend_on_it() -> None:
    sm = StorageManager()
    sm.configure([
        {"name": "base", "type": "memory", "versioning": True},
        {"name": "child", "path": "base:sub"},
        {"name": "plain", "type": "memory", "versioning": True},
    ])
    kept = sm.history("plain")
    assert sm.history("child") is not None
    sm.add_mount({"name": "base", "type": "memory", "versioning": False})
    assert sm.history("child") is None  # not a stale cached history of the old 'base'
    assert sm.history("plain") is kept  # unrelated histories stay cached


def test_a_history_kept_in_another_mount_is_protected_there(tmp_path: Path) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "type": "memory"},
        {"name": "docs", "type": "local", "base_path": data, "versioning": True,
         "history": "archive:histories/docs"},
    ])
    sm.node("archive:other.txt").write_text("plain file")
    sm.node("docs:a.txt").write_text("1")
    sm.node("docs:a.txt").write_text("2")
    assert sm.node("archive:histories").children() == []  # the history is not listed
    sm.node("archive:").delete(recursive=True)
    assert sm.node("docs:a.txt").version_count == 2
    assert sm.verify("docs:").ok
    with pytest.raises(StoragePermissionError):
        sm.node("archive:histories/docs/x").write_text("forged")


def test_a_refused_configure_hides_nothing(tmp_path: Path) -> None:
    (data,) = _dirs(tmp_path, "data")
    sm = StorageManager()
    sm.add_mount({"name": "archive", "type": "memory"})
    with pytest.raises(StorageConfigError):
        sm.configure([
            {"name": "docs", "type": "local", "base_path": data, "versioning": True,
             "history": "archive:h"},
            {"name": "bad", "type": "memory", "readonly": "no"},
        ])
    sm.node("archive:h/x.txt").write_text("still an ordinary folder")
    assert sm.node("archive:h/x.txt").read_text() == "still an ordinary folder"
