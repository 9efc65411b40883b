"""StorageManager: configuration sources, validation errors, mounts, callable base paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import storied
from storied import (
    MountNotFoundError,
    StorageConfigError,
    StorageError,
    StorageManager,
    StorageNotFoundError,
)


def test_configure_from_list_and_replace(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure(
        [
            {"name": "a", "type": "memory"},
            {"name": "b", "protocol": "local", "base_path": str(tmp_path)},
        ]
    )
    assert sm.get_mount_names() == ["a", "b"]
    assert sm.has_mount("a") and not sm.has_mount("zzz")
    sm.configure([{"name": "a", "type": "local", "base_path": str(tmp_path)}])
    assert sm.node("a:x.txt").resolved_path == str(tmp_path.resolve() / "x.txt")
    assert repr(sm) == "StorageManager(mounts=[a, b])"


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ".toml"])
def test_configure_from_files(tmp_path: Path, suffix: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    file = tmp_path / f"mounts{suffix}"
    if suffix == ".toml":
        file.write_text(
            f'[[mounts]]\nname = "home"\ntype = "local"\nbase_path = "{root}"\n'
            '[[mounts]]\nname = "pub"\npath = "home:public"\npermissions = "readonly"\n'
        )
    else:
        mounts = [
            {"name": "home", "type": "local", "base_path": str(root)},
            {"name": "pub", "path": "home:public", "permissions": "readonly"},
        ]
        file.write_text(json.dumps(mounts))  # JSON is valid YAML too
    sm = StorageManager()
    sm.configure(str(file))
    sm.node("home:public/x.txt").write_text("ok")
    assert sm.node("pub:x.txt").read_text() == "ok"


def test_configure_file_errors(tmp_path: Path) -> None:
    sm = StorageManager()
    with pytest.raises(FileNotFoundError):
        sm.configure(str(tmp_path / "absent.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(StorageConfigError, match="Cannot parse"):
        sm.configure(str(bad))
    notlist = tmp_path / "dict.json"
    notlist.write_text('{"name": "x"}')
    with pytest.raises(StorageConfigError, match="list"):
        sm.configure(str(notlist))
    other = tmp_path / "mounts.ini"
    other.write_text("x")
    with pytest.raises(StorageConfigError, match="Unsupported"):
        sm.configure(str(other))
    with pytest.raises(StorageConfigError, match="list of mount dicts"):
        sm.configure(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"type": "memory"}, ["'name'"]),
        ({"name": "x"}, ["'x'", "'type'"]),
        ({"name": "x", "type": "floppy"}, ["'floppy'", "'x'", "Supported types"]),
        ({"name": "x", "type": "memory", "colour": "red"}, ["'colour'", "'x'"]),
        ({"name": "x", "type": "local"}, ["'x'", "'base_path'"]),
        ({"name": "x", "type": "s3"}, ["'x'", "'bucket'"]),
        ({"name": "x", "type": "sftp"}, ["'x'", "'host'"]),
        ({"name": "x", "type": "memory", "permissions": "all"}, ["'all'", "'x'", "readonly"]),
        ({"name": "x", "path": "nope:sub"}, ["'nope'", "'x'"]),
        ({"name": "x", "path": "p:sub", "base_path": "/tmp"}, ["'base_path'", "'x'"]),
        ({"name": "x", "type": "local", "base_path": "relative/dir"}, ["absolute"]),
        ({"name": "bad:name", "type": "memory"}, ["'bad:name'"]),
        ({"name": "x", "type": "memory", "retries": 0}, ["'x'", "'retries'"]),
    ],
)
def test_config_errors_name_mount_and_key(config: dict, words: list[str]) -> None:
    sm = StorageManager()
    sm.add_mount({"name": "p", "type": "memory"})
    with pytest.raises(StorageConfigError) as caught:
        sm.add_mount(config)
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)


def test_local_base_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        StorageManager().add_mount(
            {"name": "x", "type": "local", "base_path": str(tmp_path / "missing")}
        )


def test_readonly_backend_accepts_only_readonly(tmp_path: Path) -> None:
    sm = StorageManager()
    with pytest.raises(StorageConfigError, match="read-only"):
        sm.add_mount({"name": "b", "type": "base64", "permissions": "readwrite"})


def test_unknown_mount_and_delete_mount() -> None:
    sm = StorageManager()
    sm.add_mount({"name": "a", "type": "memory"})
    with pytest.raises(StorageNotFoundError, match="Available mounts: a"):
        sm.node("zzz:file")
    node = sm.node("a:kept.txt")
    node.write_text("still here")
    sm.delete_mount("a")
    assert node.read_text() == "still here"
    with pytest.raises(KeyError):
        sm.delete_mount("a")
    with pytest.raises(MountNotFoundError):
        sm.delete_mount("a")


def test_node_forms_and_virtual_node() -> None:
    sm = StorageManager()
    sm.add_mount({"name": "m", "type": "memory"})
    assert sm.node("m", "a", "b/c.txt").fullpath == "m:a/b/c.txt"
    assert sm.node("m").fullpath == "m:"
    assert sm.node("m:a//b/").path == "a/b"
    assert sm.node().exists() is False


def test_memory_store_survives_reconfigure() -> None:
    sm = StorageManager()
    sm.add_mount({"name": "scratch", "type": "memory"})
    sm.node("scratch:keep.txt").write_text("kept")
    sm.add_mount({"name": "scratch", "type": "memory"})
    assert sm.node("scratch:keep.txt").read_text() == "kept"
    sm.add_mount({"name": "other", "type": "memory"})
    assert not sm.node("other:keep.txt").exists()


def test_callable_base_paths(tmp_path: Path) -> None:
    users = {"ana": tmp_path / "ana", "bo": tmp_path / "bo"}
    for p in users.values():
        p.mkdir()
    current = {"user": "ana"}
    packages = {"sys": tmp_path / "pkg-sys"}
    packages["sys"].mkdir()

    def resolver(prefix: str) -> str:
        if prefix not in packages:
            raise ValueError(f"Unknown package: {prefix}")
        return str(packages[prefix])

    sm = StorageManager()
    sm.configure(
        [
            {"name": "me", "type": "local", "base_path": lambda: str(users[current["user"]])},
            {"name": "pkg", "type": "local", "base_path": resolver},
        ]
    )
    sm.node("me:notes.txt").write_text("ana's")
    current["user"] = "bo"
    assert not sm.node("me:notes.txt").exists()
    assert (users["ana"] / "notes.txt").read_text() == "ana's"
    sm.node("pkg:sys/folder/f.txt").write_text("switched")
    assert (packages["sys"] / "folder" / "f.txt").read_text() == "switched"
    with pytest.raises(ValueError, match="Unknown package"):
        sm.node("pkg:other/f.txt").read_text()


def test_relative_mount_permissions_and_nesting(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure(
        [
            {"name": "home", "type": "local", "base_path": str(tmp_path)},
            {"name": "pub", "path": "home:public", "permissions": "readwrite"},
            {"name": "deep", "path": "pub:a/b"},
        ]
    )
    sm.node("deep:f.txt").write_text("nested")
    assert (tmp_path / "public" / "a" / "b" / "f.txt").read_text() == "nested"
    assert sm.node("deep:f.txt").resolved_path == str(tmp_path.resolve() / "public/a/b/f.txt")
    with pytest.raises(PermissionError, match="delete permission"):
        sm.node("pub:a/b/f.txt").delete()
    assert not sm.node("pub:").capabilities.delete
    assert sm.node("home:").capabilities.delete


def test_error_tree_leaves_are_builtins() -> None:
    pairs = {
        "StorageNotFoundError": FileNotFoundError,
        "MountNotFoundError": KeyError,
        "StorageAlreadyExistsError": FileExistsError,
        "StoragePermissionError": PermissionError,
        "PathEscapeError": ValueError,
        "UnsupportedOperation": PermissionError,
        "StorageConfigError": ValueError,
        "InvalidPathError": ValueError,
        "IsADirectoryStorageError": IsADirectoryError,
        "NotADirectoryStorageError": NotADirectoryError,
        "DirectoryNotEmptyError": OSError,
        "PreconditionFailedError": OSError,
        "TransientStorageError": ConnectionError,
        "StorageIOError": OSError,
        "BinaryContentError": ValueError,
        "InvalidContentError": ValueError,
        "MissingDependencyError": ModuleNotFoundError,
    }
    for name, builtin in pairs.items():
        cls = getattr(storied, name)
        assert issubclass(cls, StorageError) and issubclass(cls, builtin), name
        assert str(cls("message")) == "message"


def test_public_names_are_sorted_and_complete() -> None:
    assert storied.__all__ == sorted(storied.__all__)
    for name in storied.__all__:
        assert hasattr(storied, name)
