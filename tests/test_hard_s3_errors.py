"""Issue 8, section 2 (S3): keys S3 cannot carry are refused before sending; every botocore
failure arrives as a storied error."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.s3 import S3Backend
from storied.errors import (
    InvalidContentError,
    InvalidPathError,
    StorageConfigError,
    StorageIOError,
)
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

BAD = "dir/caf\udce9.txt"  # what os.listdir gives for the bytes name b"caf\xe9.txt"


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"err-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def counted(proxy: CountingProxy, bucket: str) -> Iterator[S3Backend]:
    backend = S3Backend(bucket, key="testing", secret="testing", endpoint_url=proxy.endpoint_url)
    backend.write("dir/good.txt", b"good")
    proxy.reset()
    yield backend
    proxy.reset()
    backend.close()


def test_non_utf8_keys_are_refused_before_any_request(
    counted: S3Backend, proxy: CountingProxy
) -> None:
    for call in (
        lambda: counted.write(BAD, b"data"),
        lambda: counted.info(BAD),
        lambda: counted.read_bytes(BAD),
        lambda: counted.delete(BAD),
        lambda: counted.copy("dir/good.txt", BAD),
        lambda: counted.delete_many([(BAD, None)]),
        lambda: counted.url(BAD),
    ):
        with pytest.raises(InvalidPathError, match="not UTF-8") as caught:
            call()
        assert isinstance(caught.value, ValueError)
        assert not isinstance(caught.value, UnicodeError)
    assert proxy.total == 0


def test_copying_a_non_utf8_local_name_to_s3_is_a_clear_error(
    moto: MotoHandle, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    with open(os.fsencode(tmp_path / "src") + b"/caf\xe9.txt", "wb") as f:
        f.write(b"latin-1 name")
    sm = StorageManager()
    sm.configure([
        {"name": "home", "type": "local", "base_path": str(tmp_path)},
        {"name": "s3", "type": "s3", "bucket": bucket, "key": "testing", "secret": "testing",
         "endpoint_url": moto.endpoint_url},
    ])  # fmt: skip
    with pytest.raises(InvalidPathError):
        sm.node("home:src").copy_to("s3:copied")
    with pytest.raises(InvalidPathError):
        sm.node("home:src").copy_to("s3:")
    client = s3_client(moto.endpoint_url)
    assert not client.list_objects_v2(Bucket=bucket).get("Contents")  # nothing half-written
    client.close()
    sm.close()


def test_unknown_s3_error_codes_are_storage_io_errors(
    counted: S3Backend, proxy: CountingProxy
) -> None:
    proxy.fail(1, status=400, code="SomethingNewFromAWS", label="GET")
    with pytest.raises(StorageIOError, match="SomethingNewFromAWS") as caught:
        counted.read_bytes("dir/good.txt")
    assert isinstance(caught.value, OSError) and caught.value.__cause__ is not None
    assert counted.read_bytes("dir/good.txt") == b"good"


def test_parameter_validation_errors_are_mapped(moto: MotoHandle, counted: S3Backend) -> None:
    with pytest.raises(StorageConfigError, match="bucket name"):
        S3Backend("Not A Bucket!", endpoint_url=moto.endpoint_url).info("x")
    with pytest.raises(InvalidContentError, match="ASCII"):
        counted.write("dir/meta.txt", b"1", metadata={"k": "caf\u00e9"})
