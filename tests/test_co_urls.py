"""URL-style addresses open implicit mounts: s3:// (boto3's credential chain, here the
environment pointing at moto), file:///, memory://; configured mounts are never replaced."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import InvalidPathError, StorageConfigError
from storied.testing.s3server import MotoHandle, make_bucket


def test_s3_url_uses_the_environment_chain(moto: MotoHandle,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = make_bucket(moto.endpoint_url, f"urls-{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    storage = StorageManager()
    node = storage.node(f"s3://{bucket}/reports/q3.csv")
    node.write_text("a,b\n")
    assert node.fullpath == f"s3.{bucket}:reports/q3.csv"
    again = storage.node(f"s3://{bucket}/reports/q3.csv")
    assert again.read_text() == "a,b\n"
    assert storage.get_mount_names() == [f"s3.{bucket}"]  # made once, reused


def test_file_url_is_every_local_path(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("local")
    storage = StorageManager()
    node = storage.node(f"file://{tmp_path}/x.txt")
    assert node.read_text() == "local"
    storage.node(f"file://{tmp_path}/y.txt").write_text("new")
    assert (tmp_path / "y.txt").read_text() == "new"
    with pytest.raises(InvalidPathError):
        storage.node("file://relative/path")
    # ".." is resolved like a local path (a file:// mount is the whole file system)
    assert storage.node(f"file://{tmp_path}/sub/../x.txt").read_text() == "local"


def test_memory_url_and_name_clashes() -> None:
    storage = StorageManager()
    storage.node("memory://scratch/a.txt").write_text("m")
    assert StorageManager().node("memory://scratch/a.txt").read_text() == "m"  # one store
    configured = StorageManager()
    configured.configure([{"name": "s3.mybucket", "type": "memory"}])
    with pytest.raises(StorageConfigError):
        configured.node("s3://mybucket/key")
    with pytest.raises(InvalidPathError):
        storage.node("s3://bad bucket/key")
