"""Multipart uploads carry per-part CRC32 checksums, as boto3's ``upload_file`` does
(issue 10): the upload is created with ``ChecksumAlgorithm=CRC32``, every part is sent with its
CRC32 and the complete request lists them, so the server keeps a composite checksum of the parts
instead of hashing the whole object again at the complete step (moto then copies the object
twice in memory and hashes it in one thread: storied's large uploads were up to 2x slower than
``upload_file``). A client that computes checksums only when required asks for none."""

from __future__ import annotations

import base64
import os
import uuid
import zlib
from typing import Any

import pytest

from storied import StorageManager
from storied.backends._s3_upload import checksum_algorithm
from storied.testing.s3server import MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024


def _mount(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "multipart_threshold": 5 * MiB,
            "multipart_chunksize": 5 * MiB, "max_concurrency": 3, **extra}  # fmt: skip


def _client_of(sm: StorageManager) -> Any:
    backend: Any = sm.get_backend("s3")
    while not hasattr(backend, "_client"):
        backend = backend.inner
    return backend._client


class Requests:
    """The parameters of each CreateMultipartUpload / UploadPart / CompleteMultipartUpload the
    real client of a mount sends (botocore's provide-client-params hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {}
        for name in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            client.meta.events.register(f"provide-client-params.s3.{name}", self._seen(name))

    def _seen(self, name: str) -> Any:
        def seen(params: dict[str, Any], **_: object) -> None:
            self.calls.setdefault(name, []).append(dict(params))

        return seen


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"s3x-ck-{uuid.uuid4().hex[:10]}")


def test_a_multipart_upload_has_a_composite_crc32_of_its_parts(
    moto: MotoHandle, bucket: str
) -> None:
    sm = StorageManager()
    sm.configure([_mount(moto.endpoint_url, bucket)])
    sent = Requests(_client_of(sm))
    data = os.urandom(12 * MiB + 3)  # 3 parts: 5 + 5 + 2 MiB
    sm.node("s3:ck/big.bin").stream_upload(iter([data]))
    assert sm.node("s3:ck/big.bin").read_bytes() == data
    assert sent.calls["CreateMultipartUpload"][0]["ChecksumAlgorithm"] == "CRC32"
    assert [c["ChecksumAlgorithm"] for c in sent.calls["UploadPart"]] == ["CRC32"] * 3
    listed = sent.calls["CompleteMultipartUpload"][0]["MultipartUpload"]["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2, 3]
    pieces = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
    expected = [zlib.crc32(piece).to_bytes(4, "big") for piece in pieces]
    assert [base64.b64decode(p["ChecksumCRC32"]) for p in listed] == expected
    client = s3_client(moto.endpoint_url)
    try:
        head = client.head_object(Bucket=bucket, Key="ck/big.bin", ChecksumMode="ENABLED")
    finally:
        client.close()
    # the server keeps the CRC32 of the parts' CRC32s (composite), not a full-object checksum
    composite = base64.b64encode(zlib.crc32(b"".join(expected)).to_bytes(4, "big")).decode()
    assert head.get("ChecksumCRC32") == composite
    assert "ChecksumCRC64NVME" not in head


def test_a_client_computing_checksums_only_when_required_asks_for_none(
    moto: MotoHandle, bucket: str
) -> None:
    sm = StorageManager()
    config = {"request_checksum_calculation": "when_required"}
    sm.configure([_mount(moto.endpoint_url, bucket, client_kwargs={"config": config})])
    sent = Requests(_client_of(sm))
    data = os.urandom(11 * MiB)
    sm.node("s3:plain.bin").stream_upload(iter([data]))
    assert sm.node("s3:plain.bin").read_bytes() == data
    assert "ChecksumAlgorithm" not in sent.calls["CreateMultipartUpload"][0]
    assert all("ChecksumAlgorithm" not in c for c in sent.calls["UploadPart"])
    listed = sent.calls["CompleteMultipartUpload"][0]["MultipartUpload"]["Parts"]
    assert all(set(p) == {"ETag", "PartNumber"} for p in listed)


def test_the_algorithm_follows_the_caller_then_the_client_config(moto: MotoHandle) -> None:
    default = s3_client(moto.endpoint_url)
    required = s3_client(moto.endpoint_url, request_checksum_calculation="when_required")
    try:
        assert checksum_algorithm(default, {}) == "CRC32"
        assert checksum_algorithm(default, {"ChecksumAlgorithm": "sha256"}) == "SHA256"
        assert checksum_algorithm(required, {}) is None
        assert checksum_algorithm(required, {"ChecksumAlgorithm": "CRC32C"}) == "CRC32C"
    finally:
        default.close()
        required.close()
