"""Encryption through nodes, as genro-storage 0.8.4 does it: write_*(encrypted=), the mount's
default_encrypted, self-describing reads; files move between the two libraries both ways;
history, snapshots and diffs stay encrypted at rest and decrypt with the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from storied import StorageManager
from storied.crypto import DecryptionError, MissingKeyError
from storied.errors import StorageConfigError

K1, K2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def manager(tmp_path: Path, **mount: object) -> StorageManager:
    storage = StorageManager()
    storage.configure([{"name": "sec", "type": "local", "base_path": str(tmp_path),
                        "versioning": True, **mount}], storage_key=f"{K1},acme:{K2}")
    return storage


def test_write_encrypted_read_plain_and_stored_as_envelope(tmp_path: Path) -> None:
    storage = manager(tmp_path)
    node = storage.node("sec:token.json")
    node.write_text('{"t": 1}', encrypted=True)
    assert (tmp_path / "token.json").read_bytes().startswith(b"#GNRE1:\n")
    assert b'"t"' not in (tmp_path / "token.json").read_bytes()
    assert node.read_text() == '{"t": 1}' and node.read("r") == '{"t": 1}'
    node.write_bytes(b"partner data", encrypted="acme")
    assert (tmp_path / "token.json").read_bytes().startswith(b"#GNRE1:acme\n")
    assert node.read_bytes() == b"partner data"
    node.write_bytes(b"plain again", encrypted=False)
    assert (tmp_path / "token.json").read_bytes() == b"plain again"
    # history blobs keep the envelope; reading an old version decrypts it
    assert storage.node("sec:token.json", version=0).read_text() == '{"t": 1}'
    blobs = list((tmp_path / ".storied" / "blobs").rglob("*"))
    assert not any(b'"t"' in p.read_bytes() for p in blobs if p.is_file())


def test_mount_default_and_explicit_override(tmp_path: Path) -> None:
    storage = manager(tmp_path, default_encrypted=True)
    assert storage.mount_default_encrypted("sec") is True
    storage.node("sec:a").write_text("secret")
    assert (tmp_path / "a").read_bytes().startswith(b"#GNRE1:")
    storage.node("sec:b").write_text("plain", encrypted=False)
    assert (tmp_path / "b").read_bytes() == b"plain"
    with pytest.raises(StorageConfigError):
        manager(tmp_path, default_encrypted="Bad Domain")


def test_genro_reads_storied_files_and_storied_reads_genro_files(tmp_path: Path) -> None:
    genro = pytest.importorskip("genro_storage")
    ours = manager(tmp_path)
    ours.node("sec:from-storied.txt").write_text("hello genro", encrypted=True)
    theirs = genro.StorageManager()
    theirs.configure([{"name": "sec", "type": "local", "path": str(tmp_path)}],
                     storage_key=f"{K1},acme:{K2}")
    assert theirs.node("sec:from-storied.txt").read_text() == "hello genro"
    theirs.node("sec:from-genro.txt").write_text("hello storied", encrypted="acme")
    assert ours.node("sec:from-genro.txt").read_text() == "hello storied"


def test_wrong_or_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    manager(tmp_path).node("sec:x").write_text("s", encrypted="acme")
    keyless = StorageManager()
    keyless.configure([{"name": "sec", "type": "local", "base_path": str(tmp_path)}])
    with pytest.raises(MissingKeyError, match="'acme'"):
        keyless.node("sec:x").read_text()
    other = StorageManager()
    other.configure([{"name": "sec", "type": "local", "base_path": str(tmp_path)}],
                    storage_key=f"acme:{Fernet.generate_key().decode()}")
    with pytest.raises(DecryptionError, match="'acme'") as caught:
        other.node("sec:x").read_bytes()
    assert K2 not in str(caught.value)
    with pytest.raises(MissingKeyError):
        keyless.node("sec:y").write_text("z", encrypted=True)
    assert not (tmp_path / "y").exists()  # nothing written


def test_diffs_decrypt_with_the_key(tmp_path: Path) -> None:
    storage = manager(tmp_path)
    node = storage.node("sec:conf.json")
    node.write_text(json.dumps({"a": 1, "b": 2}), encrypted=True)
    node.write_text(json.dumps({"a": 1, "b": 3}), encrypted=True)
    text = node.diff_versions_text(-2, -1)
    assert '-{"a": 1, "b": 2}' in text and '+{"a": 1, "b": 3}' in text
    assert node.diff_json_versions(-2, -1)["changed"] == [{"path": "$.b", "old": 2, "new": 3}]
    csv = storage.node("sec:t.csv")
    csv.write_text("id,v\n1,a\n", encrypted=True)
    csv.write_text("id,v\n1,b\n", encrypted=True)
    assert csv.diff_csv_versions(-2, -1, key="id")["changed"] == [
        {"key": {"id": "1"}, "changes": {"v": {"old": "a", "new": "b"}}}]


def test_recursive_delete_never_removes_another_mounts_files(tmp_path: Path) -> None:
    from storied.errors import StoragePermissionError

    (tmp_path / "data").mkdir()
    storage = StorageManager()
    storage.configure([
        {"name": "outer", "type": "local", "base_path": str(tmp_path)},
        {"name": "v", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "sub", "path": "v:dir"},
    ])
    storage.node("v:dir/a.txt").write_text("kept")
    with pytest.raises(StoragePermissionError, match="versioned mount"):
        storage.node("outer:data").delete(recursive=True)
    assert storage.node("v:dir/a.txt").read_text() == "kept"
    assert storage.verify("v:").ok
    storage.node("v:dir").delete(recursive=True)  # through the mount itself: recorded
    assert not storage.node("v:dir/a.txt").exists()
    assert storage.node("v:dir/a.txt").versions  # the history keeps it
    storage.node("v:x/b.txt").write_text("b")
    storage.node("v:").delete(recursive=True)  # a relative mount of v shares its history
    assert storage.verify("v:").ok
