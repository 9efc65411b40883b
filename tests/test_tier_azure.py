"""Access tiers on Azure Blob (issue 11 §2), against a real Azurite (``azurite-blob``, in memory)
on 127.0.0.1. Azurite is an npm package (``npm install -g azurite``); without it this module
is skipped. Azurite rehydrates an Archive blob at once (Azure takes hours)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import ArchivedObjectError, InvalidArgumentError, StorageNotFoundError
from storied.testing.servers import free_port

_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        "KBHBeksoGMGw==")  # Azurite's published development key
_LOG = "storied.backends.azure"


@pytest.fixture(scope="module")
def azurite() -> Iterator[str]:
    binary = shutil.which("azurite-blob")
    if binary is None:
        pytest.skip("azurite-blob not installed (npm install -g azurite)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--silent", "--loose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("Azurite did not start") from None
                time.sleep(0.1)
        yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def container(azurite: str) -> Iterator[Any]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite)
    client = service.create_container(f"c{uuid.uuid4().hex[:12]}")
    yield client
    service.close()


@pytest.fixture
def sm(azurite: str, container: Any) -> Iterator[StorageManager]:
    storage = StorageManager()
    storage.configure([{"name": "a", "type": "azure", "connection_string": azurite,
                        "container": container.container_name}])
    yield storage
    storage.close()


def _tier(container: Any, name: str) -> str:
    return str(container.get_blob_client(name).get_blob_properties().blob_tier)


def test_tier_round_trip_keeps_content_and_metadata(container: Any,
                                                    sm: StorageManager) -> None:
    container.upload_blob("d/x.txt", b"payload", metadata={"owner": "ann"})
    node = sm.node("a:d/x.txt")
    assert node.capabilities.storage_classes
    assert node.storage_class() == "Hot"
    etag = container.get_blob_client("d/x.txt").get_blob_properties().etag
    for name, expected in (("COOL", "Cool"), ("cold", "Cold"), ("Hot", "Hot")):
        node.set_storage_class(name)  # case-insensitive, answered in Azure's spelling
        assert node.storage_class() == expected == _tier(container, "d/x.txt")
    props = container.get_blob_client("d/x.txt").get_blob_properties()
    assert props.metadata == {"owner": "ann"} and props.etag == etag  # changed in place
    assert node.read_bytes() == b"payload"
    listed = {c.basename: c for c in sm.node("a:d").children()}
    assert listed["x.txt"].storage_class() == "Hot"


def test_archive_refuses_reads_until_rehydrated(container: Any, sm: StorageManager) -> None:
    node = sm.node("a:cold.txt")
    node.write_text("frozen")
    with pytest.raises(InvalidArgumentError, match="not archived"):
        node.restore_archived()
    node.set_storage_class("Archive")
    assert _tier(container, "cold.txt") == "Archive"
    with pytest.raises(ArchivedObjectError, match="restore_archived"):
        node.read_text()
    with pytest.raises(InvalidArgumentError):
        node.restore_archived(days=0)
    assert node.restore_archived(days=1) is True
    assert node.storage_class() == "Hot"  # Azurite rehydrates at once
    assert node.read_text() == "frozen"


def test_unknown_and_s3_names_are_refused_before_any_request(
        container: Any, sm: StorageManager, caplog: pytest.LogCaptureFixture) -> None:
    node = sm.node("a:f.txt")
    node.write_text("keep")
    caplog.set_level(logging.DEBUG, logger=_LOG)
    caplog.clear()
    with pytest.raises(InvalidArgumentError, match="'Archive'"):
        node.set_storage_class("GLACIER")
    with pytest.raises(InvalidArgumentError, match="one of: Hot, Cool, Cold, Archive"):
        node.set_storage_class("NEARLINE")
    assert [r for r in caplog.records if r.name == _LOG] == []
    assert _tier(container, "f.txt") == "Hot" and node.read_text() == "keep"


def test_missing_blob(sm: StorageManager) -> None:
    with pytest.raises(StorageNotFoundError):
        sm.node("a:nope.txt").storage_class()
    with pytest.raises(StorageNotFoundError):
        sm.node("a:nope.txt").set_storage_class("Cool")
