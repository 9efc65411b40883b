"""Issue 8, items 1.8 and §2 (config part): every config value is type-checked, a mistyped
configuration is a StorageConfigError (never TypeError/AttributeError/UnicodeDecodeError/
RecursionError), and a refused configuration changes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from storied import StorageConfigError, StorageManager, StoragePermissionError
from storied.backends import registry
from storied.errors import InvalidPathError

NOT_BOOLS = ["true", "yes", "false", 1, 0, "1", [True]]


# ------------------------------------------------------------------------------- 1.8
@pytest.mark.parametrize("value", NOT_BOOLS)
@pytest.mark.parametrize(
    "base",
    [
        {"type": "memory"},
        {"type": "local", "base_path": "TMP"},
        {"path": "parent:sub"},
        {"type": "s3", "bucket": "b"},
        {"type": "sftp", "host": "127.0.0.1", "username": "u"},
    ],
)
def test_readonly_accepts_only_a_bool(tmp_path: Path, base: dict[str, Any], value: Any) -> None:
    sm = StorageManager()
    sm.add_mount({"name": "parent", "type": "memory"})
    config = {k: str(tmp_path) if v == "TMP" else v for k, v in base.items()}
    with pytest.raises(StorageConfigError) as caught:
        sm.add_mount({"name": "m", **config, "readonly": value})
    message = str(caught.value)
    assert "'m'" in message and "'readonly'" in message and "bool" in message
    assert not sm.has_mount("m")


def test_readonly_true_refuses_writes_and_contradictions() -> None:
    sm = StorageManager()
    sm.add_mount({"name": "ro", "type": "memory", "readonly": True})
    with pytest.raises(StoragePermissionError):
        sm.node("ro:a.txt").write_text("x")
    sm.add_mount({"name": "rw", "type": "memory", "readonly": False})
    assert sm.node("rw:a.txt").write_text("x")
    with pytest.raises(StorageConfigError, match="contradicts"):
        sm.add_mount({"name": "bad", "type": "memory", "readonly": True, "permissions": "delete"})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("permissions", 1, "a string"),
        ("permissions", ["readonly"], "a string"),
        ("permissions", "all", "Valid values: readonly, readwrite, delete"),
        ("versioning", "true", "bool"),
        ("versioning", 1, "bool"),
        ("history", 42, "'mount:prefix'"),
        ("history", "no-colon", "'mount:prefix'"),
        ("retries", True, "integer >= 1"),
        ("retries", 0, "integer >= 1"),
        ("retries", "3", "integer >= 1"),
        ("retries", 2.5, "integer >= 1"),
        ("type", 42, "a string"),
        ("store", 7, "a string"),
        ("base_path", ["a"], "a string"),
    ],
)
def test_common_and_memory_keys_are_typed(key: str, value: Any, expected: str) -> None:
    sm = StorageManager()
    with pytest.raises(StorageConfigError) as caught:
        sm.add_mount({"name": "m", "type": "memory", key: value})
    message = str(caught.value)
    assert "'m'" in message and expected in message
    assert repr(key) in message or key == "permissions"


@pytest.mark.parametrize(
    ("config", "key", "expected"),
    [
        ({"type": "local", "base_path": 42}, "base_path", "os.PathLike) or a callable"),
        ({"type": "local", "base_path": "TMP", "fsync": "yes"}, "fsync", "bool"),
        ({"type": "s3", "bucket": 5}, "bucket", "a string"),
        ({"type": "s3", "bucket": "b", "anon": "false"}, "anon", "bool"),
        ({"type": "s3", "bucket": "b", "multipart_threshold": "8MB"}, "multipart_threshold", "int"),
        ({"type": "s3", "bucket": "b", "client_kwargs": "x"}, "client_kwargs", "mapping"),
        ({"type": "sftp", "host": "h", "username": "u", "port": "abc"}, "port", "port number"),
        ({"type": "sftp", "host": "h", "username": "u", "port": 0}, "port", "port number"),
        ({"type": "sftp", "host": "h", "username": "u", "port": 70000}, "port", "port number"),
        ({"type": "sftp", "host": "h", "username": "u", "port": True}, "port", "port number"),
        ({"type": "sftp", "host": "h", "username": "u", "timeout": "soon"}, "timeout", "seconds"),
        ({"type": "sftp", "host": "h", "username": "u", "timeout": -1}, "timeout", "seconds"),
        ({"type": "sftp", "host": ["h"], "username": "u"}, "host", "a string"),
        ({"type": "webdav", "url": "http://x", "verify_ssl": "false"}, "verify_ssl", "bool"),
        ({"type": "http", "base_path": "http://x", "headers": {"a": 1}}, "headers", "strings"),
        ({"type": "tar", "file": "TMP", "compression": "zip"}, "compression", "'gz'"),
        ({"type": "zip", "file": 3}, "file", "a path"),
        ({"type": "gcs", "bucket": "b", "token": 5}, "token", "a string or a mapping"),
    ],
)
def test_type_specific_keys_are_typed(
    tmp_path: Path, config: dict[str, Any], key: str, expected: str
) -> None:
    config = {k: str(tmp_path) if v == "TMP" else v for k, v in config.items()}
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().add_mount({"name": "m", **config})
    message = str(caught.value)
    assert "'m'" in message and repr(key) in message and expected in message


def _valid(kind: registry.Kind, tmp: Path) -> Any:
    samples: list[Any] = [str(tmp), True, 22, "gz", {"a": "b"}]
    return next(v for v in samples if kind.accepts(v))


@pytest.mark.parametrize("type_name", sorted(set(registry.TYPES) - {"az"}))
def test_every_key_of_every_type_refuses_a_wrong_type(tmp_path: Path, type_name: str) -> None:
    """The schema is declarative and complete: any key given an object of no accepted type is
    refused by name, before any adapter is built."""
    spec = registry.TYPES[type_name]
    valid = {k: _valid(spec.kinds.get(k, registry.STR), tmp_path) for k in spec.required}
    for key in (*spec.required, *spec.optional, *registry.COMMON_SCHEMA):
        if key in ("name", "history"):
            continue
        config = {"name": "m", "type": type_name, **valid, key: object()}
        with pytest.raises(StorageConfigError) as caught:
            StorageManager().add_mount(config)
        assert "'m'" in str(caught.value) and repr(key) in str(caught.value), key


def test_accepted_conversions(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.add_mount({"name": "p", "type": "local", "base_path": tmp_path})  # a PathLike
    sm.node("p:a.txt").write_text("ok")
    assert (tmp_path / "a.txt").read_text() == "ok"
    backend = registry.build("sftp", "s", {"host": "127.0.0.1", "username": "u", "port": "2222"})
    assert 2222 in backend.unwrap().location_key  # type: ignore[attr-defined]
    sm.add_mount({"name": "e", "type": "memory", "base_path": None, "retries": None})  # absent
    assert sm.node("e:x").write_text("1")


def test_refused_mounts_change_nothing(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.add_mount({"name": "keep", "type": "local", "base_path": str(tmp_path)})
    with pytest.raises(StorageConfigError):
        sm.configure([
            {"name": "new", "type": "memory"},
            {"name": "keep", "type": "memory", "readonly": "yes"},
        ])
    assert sm.get_mount_names() == ["keep"]
    assert sm.node("keep:x.txt").write_text("still local")
    assert (tmp_path / "x.txt").exists()
    with pytest.raises(StorageConfigError):  # checked after the build: still nothing changes
        sm.add_mount({"name": "keep", "type": "memory", "history": "keep:h"})
    assert sm.node("keep:x.txt").resolved_path == str((tmp_path / "x.txt").resolve())


# ------------------------------------------------------------------------------- section 2
@pytest.mark.parametrize(
    "source",
    [
        {"name": "x", "type": "memory"},
        ["memory", "local"],
        [None],
        [["name", "x"]],
        42,
        None,
        b"mounts.yaml",
    ],
)
def test_mistyped_sources_are_config_errors(source: Any) -> None:
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().configure(source)
    assert not isinstance(caught.value, AttributeError)
    # a source that is neither a list nor a path is also the TypeError genro-storage raises;
    # a list holding a wrong item is a configuration error only
    assert isinstance(caught.value, TypeError) == (not isinstance(source, list))


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (None, ["mapping"]),
        ({"name": None, "type": "memory"}, ["'name'"]),
        ({"name": 5, "type": "memory"}, ["5"]),
        ({"name": "x", "type": None}, ["'x'", "'protocol'"]),
        ({"name": "x", "type": "local", "base_path": None}, ["'x'", "'base_path'"]),
        ({"name": "x", "type": "s3", "bucket": ""}, ["'x'", "'bucket'"]),
        ({"name": "x", "type": "memory", 3: "y"}, ["'x'", "3"]),
        ({"name": "x", "path": "parent:../up"}, ["'x'", "'path'"]),
        ({"name": "x", "type": "memory", "base_path": "../up"}, ["'x'"]),
        ({"name": "x", "type": "memory", "protocol": "local"}, ["'x'", "disagree"]),
    ],
)
def test_mistyped_mounts_are_config_errors(config: Any, words: list[str]) -> None:
    sm = StorageManager()
    sm.add_mount({"name": "parent", "type": "memory"})
    with pytest.raises(StorageConfigError) as caught:
        sm.add_mount(config)
    for word in words:
        assert word in str(caught.value)


def test_non_utf8_config_file_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "mounts.yaml"
    file.write_bytes(b"- name: caf\xe9\n  type: memory\n")
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().configure(file)
    assert str(file) in str(caught.value) and "UTF-8" in str(caught.value)
    assert not isinstance(caught.value, UnicodeDecodeError)


@pytest.mark.parametrize(
    ("suffix", "text", "line"),
    [
        (".yaml", "- name: a\n  type: memory\n- name: [b\n", "line 4"),
        (".json", '[\n{"name": "a",\n "type": memory}\n]', "line 3"),
        (".toml", '[[mounts]]\nname = "a"\ntype = memory\n', "line 3"),
    ],
)
def test_invalid_files_report_the_parser_line(
    tmp_path: Path, suffix: str, text: str, line: str
) -> None:
    file = tmp_path / f"mounts{suffix}"
    file.write_text(text)
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().configure(str(file))
    assert str(file) in str(caught.value) and line in str(caught.value)


def test_a_directory_as_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "mounts.yaml"
    folder.mkdir()
    with pytest.raises(StorageConfigError, match=r"mounts\.yaml"):
        StorageManager().configure(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_config_file(tmp_path: Path) -> None:
    file = tmp_path / "mounts.json"
    file.write_text("[]")
    file.chmod(0)
    with pytest.raises(StoragePermissionError, match=r"mounts\.json"):
        StorageManager().configure(file)


def test_mount_relative_to_itself_or_a_cycle() -> None:
    sm = StorageManager()
    with pytest.raises(StorageConfigError, match="'a'"):
        sm.add_mount({"name": "a", "path": "a:x"})  # not there yet: no parent
    sm.add_mount({"name": "a", "type": "memory", "versioning": True})
    with pytest.raises(StorageConfigError, match="itself"):
        sm.add_mount({"name": "a", "path": "a:x"})
    sm.add_mount({"name": "b", "path": "a:sub"})
    sm.add_mount({"name": "c", "path": "b:deeper"})
    with pytest.raises(StorageConfigError, match="leads back"):
        sm.add_mount({"name": "a", "path": "c:x"})
    # the refused mounts changed nothing: history resolves without recursion
    sm.node("c:f.txt").write_text("1")
    sm.node("c:f.txt").write_text("2")
    assert sm.history("c") is not None
    assert sm.node("a:sub/deeper/f.txt").version_count == 2


@pytest.mark.parametrize("args", [(42,), (b"m:x",), ("m", 3), ("m:x", None)])
def test_mistyped_node_paths_are_storied_errors(args: tuple[Any, ...]) -> None:
    sm = StorageManager()
    sm.add_mount({"name": "m", "type": "memory"})
    with pytest.raises(InvalidPathError):
        sm.node(*args)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_file_may_hold_its_mounts_under_a_mounts_key(tmp_path: Any, suffix: str) -> None:
    """What a new user writes first (``mounts:`` then the list, as TOML's ``[[mounts]]``) is
    read as the list; any other mapping is still refused, saying what the file must hold."""
    import json

    good = tmp_path / f"good{suffix}"
    good.write_text(json.dumps({"mounts": [{"name": "m", "type": "memory"}]}))
    sm = StorageManager()
    sm.configure(str(good))
    assert sm.has_mount("m")
    bad = tmp_path / f"bad{suffix}"
    bad.write_text(json.dumps({"mounts": [{"name": "m", "type": "memory"}], "other": 1}))
    with pytest.raises(StorageConfigError, match=r"list of mounts \(or a 'mounts' key"):
        StorageManager().configure(str(bad))
