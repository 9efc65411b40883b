"""Issue 12 §5 (S3 half): every S3 config key is used: profile, SSE (PUT, multipart, copy),
storage_class for new objects (never storied's own), multipart sizes, concurrency, timeouts (a
hung endpoint fails in seconds), requests logged at DEBUG without secrets; an archived (Glacier)
object is ArchivedObjectError saying how to restore it (issue 10 §4 / LOCK's restore)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import (
    ArchivedObjectError,
    StorageConfigError,
    StorageError,
    StorageTimeoutError,
    TransientStorageError,
)
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024
KEY_ID, SECRET = "AKIDSTORIEDCFGTEST", "SeCrEtStOrIeDcFgTeSt/0123456789"


def _mount(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": KEY_ID, "secret": SECRET, **extra}  # fmt: skip


def _s3(sm: StorageManager, mount: str = "s3") -> Any:
    backend: Any = sm.get_backend(mount)
    while not hasattr(backend, "_client"):
        backend = backend.inner
    return backend


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"str-cfg-{uuid.uuid4().hex[:10]}")


def test_every_s3_key_reaches_the_backend(moto: MotoHandle, bucket: str) -> None:
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket, multipart_threshold=6 * MiB,
                         multipart_chunksize=7 * MiB, max_concurrency=3, connect_timeout=2,
                         read_timeout=9, sse="AES256", storage_class="STANDARD_IA")])  # fmt: skip
    backend = _s3(sm)
    assert (backend.multipart_threshold, backend.multipart_chunksize) == (6 * MiB, 7 * MiB)
    assert backend.max_concurrency == 3
    config = backend._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 9)
    assert config.max_pool_connections >= 3


def test_default_timeouts_are_seconds_not_minutes(bucket: str, moto: MotoHandle) -> None:
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket)])
    config = _s3(sm)._client.meta.config
    assert config.connect_timeout == 5 and config.read_timeout == 60


@pytest.fixture
def hung() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_hung_endpoint_raises_storage_timeout_within_the_timeout(hung: str) -> None:
    sm = StorageManager()
    sm.configure([_mount(hung, "any-bucket", read_timeout=1, connect_timeout=1, retries=1)])
    started = time.monotonic()
    with pytest.raises(StorageTimeoutError) as caught:
        sm.node("s3:a.txt").read_bytes()
    took = time.monotonic() - started
    assert isinstance(caught.value, TransientStorageError) and isinstance(caught.value,
                                                                           TimeoutError)
    assert took < 8, took  # botocore's one retry: about 2 s


def test_sse_and_storage_class_on_put_multipart_and_copy(moto: MotoHandle, bucket: str) -> None:
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket, sse="AES256", storage_class="STANDARD_IA",
                         multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)])  # fmt: skip
    sm.node("s3:small.txt").write_text("hello")
    sm.node("s3:big.bin").stream_upload(iter([os.urandom(11 * MiB)]))
    sm.node("s3:small.txt").copy_to(sm.node("s3:copied.txt"))
    sm.node("s3:small.txt").set_metadata({"a": "b"})
    client = s3_client(moto.endpoint_url)
    for key in ("small.txt", "big.bin", "copied.txt"):
        head = client.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
        if key != "small.txt":  # set_metadata copies onto itself: the class is S3's to keep
            assert head.get("StorageClass") == "STANDARD_IA", key


def test_kms_key_is_sent_and_kms_etags_are_not_md5s(moto: MotoHandle, bucket: str) -> None:
    arn = "arn:aws:kms:us-east-1:123456789012:key/storied-test"
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket, sse="aws:kms", sse_kms_key_id=arn)])
    sm.node("s3:k.txt").write_text("secret-ish")
    head = s3_client(moto.endpoint_url).head_object(Bucket=bucket, Key="k.txt")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == arn
    assert [child.info().md5 for child in sm.node("s3:").children()] == [None]
    listed = list(_s3(sm).walk(""))
    assert [entry.md5 for entry in listed if entry.path == "k.txt"] == [None]
    assert sm.node("s3:k.txt").md5hash()  # still computed from the content when asked


def test_storied_own_objects_never_take_the_storage_class(moto: MotoHandle, bucket: str) -> None:
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket, versioning=True, storage_class="GLACIER")])
    node = sm.node("s3:doc.txt")
    node.write_text("one")
    with pytest.raises(ArchivedObjectError, match=r"restore_archived\(days=1\)") as caught:
        node.read_text()
    assert isinstance(caught.value, PermissionError)
    client = s3_client(moto.endpoint_url)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents") or []]
    own = [k for k in keys if k.startswith(".storied/")]
    assert own and "doc.txt" in keys
    for key in own:
        assert client.head_object(Bucket=bucket, Key=key).get("StorageClass") in (None, "STANDARD")
    assert client.head_object(Bucket=bucket, Key="doc.txt")["StorageClass"] == "GLACIER"
    assert len(node.versions) == 1  # the history is readable


def test_profile_supplies_the_credentials(
    moto: MotoHandle, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[storied-test]\naws_access_key_id = AKIDFROMPROFILE\n"
                           "aws_secret_access_key = fromprofile\n")  # fmt: skip
    config = tmp_path / "config"
    config.write_text("[profile storied-test]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "profile": "storied-test"}])  # fmt: skip
    sm.node("s3:p.txt").write_text("via profile")
    assert sm.node("s3:p.txt").read_text() == "via profile"
    signer = _s3(sm)._client._request_signer
    assert signer._credentials.access_key == "AKIDFROMPROFILE"
    bad = StorageManager()
    with pytest.raises(StorageConfigError, match="no-such-profile"):
        bad.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                        "endpoint_url": moto.endpoint_url, "profile": "no-such-profile"}])
        bad.node("s3:p.txt").read_text()


def test_requests_are_logged_at_debug_without_secrets(
    proxy: CountingProxy, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    sm = StorageManager()
    sm.configure([_mount(proxy.endpoint_url, bucket)])
    with caplog.at_level(logging.DEBUG, logger="storied.s3"):
        sm.node("s3:log/me.txt").write_text("logged")
        sm.node("s3:log/me.txt").read_text()
        url = sm.node("s3:log/me.txt").url()
        with pytest.raises(StorageError):
            sm.node("s3:log/missing.txt").read_text()
    lines = [r.getMessage() for r in caplog.records if r.name == "storied.s3"]
    text = "\n".join(lines)
    assert any(line.startswith("S3 PUT ") and "log/me.txt" in line for line in lines)
    assert any(line.startswith("S3 GET ") and "log/missing.txt" in line for line in lines)
    assert "HTTP 404" in text and "HTTP 200" in text
    assert url and "Signature" in url
    for secret in (SECRET, KEY_ID, "Signature", "Credential", "Authorization"):
        assert secret not in text
