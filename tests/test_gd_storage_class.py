"""set_storage_class against unlucky timing and bad input, on moto: a write that lands between
the class change's HEAD and its copy stays the current content (the copy onto itself used to
pin the version the HEAD saw, bringing the old bytes back on top of the new write); on a
folder (it said "no such file"), a missing file, a bad class name: clear errors, nothing
changed; on a held version of an Object Lock bucket the hold stays on that version."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import (
    InvalidArgumentError,
    IsADirectoryStorageError,
    PreconditionFailedError,
    StorageNotFoundError,
)
from storied.testing.s3server import MotoHandle, s3_client


@pytest.fixture
def client(moto: MotoHandle) -> Iterator[Any]:
    c = s3_client(moto.endpoint_url)
    yield c
    c.close()


def _manager(moto: MotoHandle, client: Any, lock: bool = False) -> tuple[StorageManager, str]:
    bucket = f"gc-{uuid.uuid4().hex[:12]}"
    if lock:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket,
                                     VersioningConfiguration={"Status": "Enabled"})
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    return sm, bucket


def _write_before(sm: StorageManager, client: Any, bucket: str, operation: str,
                  key: str, body: bytes) -> None:
    """Another client writes ``key`` right before this manager's next ``operation``."""
    inner = sm.get_backend("v").unwrap()
    done: list[bool] = []

    def race(**_: Any) -> None:
        if not done:
            done.append(True)
            client.put_object(Bucket=bucket, Key=key, Body=body)

    inner._client.meta.events.register(f"before-call.s3.{operation}", race)


def test_a_write_racing_the_class_change_stays_current(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _manager(moto, client)
    node = sm.node("v:doc.txt")
    node.write_text("old")
    _write_before(sm, client, bucket, "CopyObject", "doc.txt", b"new")
    node.set_storage_class("STANDARD_IA")
    assert node.read_text() == "new"  # the racing write is not undone
    assert node.storage_class() == "STANDARD_IA"
    assert sorted(v.read() for v in (node.open("rb", version=i)
                                     for i in range(node.version_count))) == [b"new", b"new",
                                                                              b"old"]


def test_a_write_racing_a_part_copy_aborts_it(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _manager(moto, client)
    node = sm.node("v:big.bin")
    node.write_bytes(b"a" * 1000)
    inner = sm.get_backend("v").unwrap()
    _write_before(sm, client, bucket, "UploadPartCopy", "big.bin", b"b" * 1000)
    with pytest.raises(PreconditionFailedError, match="changed"):
        inner.change_storage_class("big.bin", "STANDARD_IA", part_copy_threshold=1)
    assert node.read_bytes() == b"b" * 1000
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads") is None


def test_bad_targets_and_names(moto: MotoHandle, client: Any) -> None:
    sm, _ = _manager(moto, client)
    sm.node("v:dir/f.txt").write_text("x")
    for folder in ("v:dir", "v:"):
        with pytest.raises(IsADirectoryStorageError, match="is a folder"):
            sm.node(folder).set_storage_class("GLACIER")
        with pytest.raises(IsADirectoryStorageError, match="is a folder"):
            sm.node(folder).storage_class()
    with pytest.raises(StorageNotFoundError):
        sm.node("v:missing.txt").set_storage_class("GLACIER")
    for bad in ("glacierr", "", "Hot"):
        with pytest.raises(InvalidArgumentError, match="storage class"):
            sm.node("v:dir/f.txt").set_storage_class(bad)
    assert sm.node("v:dir/f.txt").version_count == 1


def test_the_class_change_of_a_held_version_keeps_the_hold(moto: MotoHandle,
                                                           client: Any) -> None:
    sm, bucket = _manager(moto, client, lock=True)
    node = sm.node("v:h.txt")
    node.write_text("x")
    vid = node.versions[-1]["version_id"]
    node.set_legal_hold(True)
    node.set_storage_class("STANDARD_IA")
    assert node.get_legal_hold(vid) is True and node.get_legal_hold() is False
    assert node.version_count == 2 and node.read_text() == "x"
    assert client.get_object_legal_hold(Bucket=bucket, Key="h.txt",
                                        VersionId=vid)["LegalHold"]["Status"] == "ON"
