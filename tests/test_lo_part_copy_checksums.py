"""The storage-class change's own multipart path (UploadPartCopy ranges, ``_s3_objectlock``)
asks for a CRC32 per part as ``_s3_upload`` does (tests/test_s3x_checksums.py): the upload is
created with ``ChecksumAlgorithm=CRC32`` and the complete request lists each copied part's
CRC32, so the server keeps a composite checksum of the parts (moto server); a client that
computes checksums only when required asks for none."""

from __future__ import annotations

import base64
import os
import uuid
import zlib
from typing import Any

import pytest

from storied import StorageManager
from storied.backends import _s3_objectlock, _s3_upload
from storied.testing.s3server import MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024


class Requests:
    """The parameters of the multipart requests the mount's real client sends."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {}
        for name in ("CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload"):
            client.meta.events.register(f"provide-client-params.s3.{name}", self._seen(name))

    def _seen(self, name: str) -> Any:
        def seen(params: dict[str, Any], **_: object) -> None:
            self.calls.setdefault(name, []).append(dict(params))

        return seen


def _inner(moto: MotoHandle, **extra: object) -> Any:
    bucket = make_bucket(moto.endpoint_url, f"lo-pc-{uuid.uuid4().hex[:10]}")
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s", **extra}])
    return sm.get_backend("s3").unwrap()


def test_a_part_copy_lists_the_crc32_of_every_part(moto: MotoHandle,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3_objectlock, "_PART", 5 * MiB)  # 3 parts: 5 + 5 + 2 MiB
    inner = _inner(moto)
    data = os.urandom(12 * MiB)
    inner._client.put_object(Bucket=inner.bucket, Key="big.bin", Body=data)
    sent = Requests(inner._client)
    inner.change_storage_class("big.bin", "STANDARD_IA", part_copy_threshold=1)
    assert sent.calls["CreateMultipartUpload"][0]["ChecksumAlgorithm"] == "CRC32"
    assert len(sent.calls["UploadPartCopy"]) == 3
    listed = sent.calls["CompleteMultipartUpload"][0]["MultipartUpload"]["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2, 3]
    pieces = [data[:5 * MiB], data[5 * MiB:10 * MiB], data[10 * MiB:]]
    expected = [zlib.crc32(piece).to_bytes(4, "big") for piece in pieces]
    client = s3_client(moto.endpoint_url)
    try:
        head = client.head_object(Bucket=inner.bucket, Key="big.bin", ChecksumMode="ENABLED")
        body = client.get_object(Bucket=inner.bucket, Key="big.bin")["Body"].read()
    finally:
        client.close()
    assert body == data and head.get("StorageClass") == "STANDARD_IA"
    composite = base64.b64encode(zlib.crc32(b"".join(expected)).to_bytes(4, "big")).decode()
    # the parts carry their CRC32 on the server, which keeps the composite of them (not a
    # full-object CRC64NVME computed at the complete step)
    assert head.get("ChecksumCRC32") == composite
    assert "ChecksumCRC64NVME" not in head


def test_a_copied_part_s_checksum_is_listed_when_the_server_answers_one() -> None:
    # AWS answers each UploadPartCopy's CRC32 in CopyPartResult (moto 5.2 answers none, and
    # builds the composite itself): it is listed in the complete request, as for UploadPart
    crc = base64.b64encode(zlib.crc32(b"part").to_bytes(4, "big")).decode()
    result = {"ETag": '"e"', "ChecksumCRC32": crc}
    assert _s3_upload.part_entry(2, result, "CRC32") == {
        "PartNumber": 2, "ETag": '"e"', "ChecksumCRC32": crc}
    assert _s3_upload.part_entry(2, {"ETag": '"e"'}, "CRC32") == {
        "PartNumber": 2, "ETag": '"e"'}
    assert _s3_upload.part_entry(2, result, None) == {"PartNumber": 2, "ETag": '"e"'}


def test_a_client_computing_checksums_only_when_required_asks_for_none(
        moto: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3_objectlock, "_PART", 5 * MiB)
    inner = _inner(moto, client_kwargs={"config": {"request_checksum_calculation":
                                                   "when_required"}})
    inner._client.put_object(Bucket=inner.bucket, Key="big.bin", Body=os.urandom(11 * MiB))
    sent = Requests(inner._client)
    inner.change_storage_class("big.bin", "STANDARD_IA", part_copy_threshold=1)
    assert "ChecksumAlgorithm" not in sent.calls["CreateMultipartUpload"][0]
    listed = sent.calls["CompleteMultipartUpload"][0]["MultipartUpload"]["Parts"]
    assert all(set(p) == {"ETag", "PartNumber"} for p in listed)
