"""The S3 adapter against a real moto server on loopback: conformance, request counts, errors."""

from __future__ import annotations

import hashlib
import io
import itertools
import socket
import uuid
from collections.abc import Iterator

import pytest
import requests

from storied.backends.base import Backend
from storied.backends.s3 import S3Backend, from_config
from storied.backends.wrappers import Prefixed
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.info import WriteMode
from storied.testing.conformance import BackendConformance
from storied.testing.s3server import (
    CountingProxy,
    MotoHandle,
    make_bucket,
    request_label,
    s3_client,
)

_SEQ = itertools.count()
MiB = 1024 * 1024


def _bucket_name() -> str:
    return f"t-{next(_SEQ)}-{uuid.uuid4().hex[:12]}"


def _backend(endpoint_url: str, bucket: str, **options: object) -> S3Backend:
    return S3Backend(bucket, key="testing", secret="testing", endpoint_url=endpoint_url, **options)


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, _bucket_name())


@pytest.fixture
def counted(proxy: CountingProxy, bucket: str) -> Iterator[S3Backend]:
    """A backend whose requests go through the counting proxy (counters zeroed)."""
    backend = _backend(proxy.endpoint_url, bucket)
    proxy.reset()
    yield backend
    backend.close()


# ------------------------------------------------------------------------- conformance
class TestS3(BackendConformance):
    @pytest.fixture
    def backend(self, moto: MotoHandle, bucket: str) -> Iterator[Backend]:
        backend = _backend(moto.endpoint_url, bucket)
        yield backend
        backend.close()


class TestS3Prefixed(BackendConformance):
    @pytest.fixture
    def backend(self, moto: MotoHandle, bucket: str) -> Iterator[Backend]:
        config = {
            "name": "pref",
            "bucket": bucket,
            "base_path": "some/prefix",
            "endpoint_url": moto.endpoint_url,
            "key": "testing",
            "secret": "testing",
        }
        backend = from_config(config)
        assert isinstance(backend, Prefixed)
        yield backend
        backend.close()

    def test_keys_land_under_the_prefix(self, backend: Backend, moto: MotoHandle) -> None:
        backend.write("x/y.txt", b"1")
        inner = backend.unwrap()
        assert isinstance(inner, S3Backend)
        assert inner.read_bytes("some/prefix/x/y.txt") == b"1"
        assert {e.path for e in backend.walk("")} == {"x/y.txt"}


# ------------------------------------------------------------------------- request economy
def test_read_bytes_is_one_get(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("f.txt", b"content")
    proxy.reset()
    assert counted.read_bytes("f.txt") == b"content"
    assert proxy.counts == {"GET": 1}


def test_range_read_is_one_get(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("r.bin", b"0123456789")
    proxy.reset()
    with counted.open_read("r.bin", 3, 6) as stream:
        assert stream.read() == b"345"
    assert proxy.counts == {"GET": 1}


def test_info_of_file_is_one_head(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("d/f.txt", b"abc", metadata={"k": "v"})
    proxy.reset()
    info = counted.info("d/f.txt")
    assert (info.size, info.is_dir, info.metadata) == (3, False, {"k": "v"})
    assert info.md5 == hashlib.md5(b"abc").hexdigest()
    assert proxy.counts == {"HEAD": 1}


def test_info_of_implied_dir_is_head_plus_one_list(
    counted: S3Backend, proxy: CountingProxy
) -> None:
    counted.write("d/f.txt", b"abc")
    proxy.reset()
    assert counted.info("d").is_dir
    assert proxy.counts == {"HEAD": 1, "LIST": 1}
    assert "max-keys=1" in proxy.requests[-1][2]


def test_exists_of_file_is_one_request(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("e.txt", b"1")
    proxy.reset()
    assert counted.exists("e.txt")
    assert proxy.total == 1


def test_small_write_is_one_put(counted: S3Backend, proxy: CountingProxy) -> None:
    info = counted.write("w.txt", io.BytesIO(b"x" * 1000))
    assert proxy.counts == {"PUT": 1}
    assert info.size == 1000 and info.md5 == hashlib.md5(b"x" * 1000).hexdigest()


def test_walk_of_30_files_is_one_list(counted: S3Backend, proxy: CountingProxy) -> None:
    for i in range(30):
        counted.write(f"tree/{i % 3}/sub/{i}.txt", b"%d" % i)
    counted.write("elsewhere.txt", b"1")
    proxy.reset()
    found = list(counted.walk("tree"))
    assert len(found) == 30
    assert proxy.counts == {"LIST": 1}


def test_walk_paginates_per_thousand_keys(counted: S3Backend, proxy: CountingProxy) -> None:
    client = s3_client(proxy.endpoint_url)
    for i in range(1001):
        client.put_object(Bucket=counted.bucket, Key=f"many/{i:04d}", Body=b"")
    client.close()
    proxy.reset()
    assert len(list(counted.walk("many"))) == 1001
    assert proxy.counts == {"LIST": 2}


def test_list_is_one_list_with_md5s(counted: S3Backend, proxy: CountingProxy) -> None:
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        counted.write(f"dir/{name}", name.encode())
    proxy.reset()
    entries = {e.path: e for e in counted.list("dir")}
    assert set(entries) == {"dir/a.txt", "dir/b.txt", "dir/sub"}
    assert entries["dir/a.txt"].md5 == hashlib.md5(b"a.txt").hexdigest()
    assert entries["dir/a.txt"].size == 5 and entries["dir/a.txt"].mtime
    assert entries["dir/sub"].is_dir
    assert proxy.counts == {"LIST": 1}


def test_set_metadata_is_one_request(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("m.txt", b"1", metadata={"a": "1", "b": "2"})
    proxy.reset()
    counted.set_metadata("m.txt", {"c": "3", "d": "4", "e": "5"})
    assert proxy.counts == {"PUT": 1}
    assert counted.get_metadata("m.txt") == {"c": "3", "d": "4", "e": "5"}


def test_copy_is_server_side(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("src.bin", b"z" * 5000, metadata={"owner": "ana"})
    proxy.reset()
    info = counted.copy("src.bin", "dst.bin")
    assert proxy.counts == {"HEAD": 1, "PUT": 1}
    assert info.size == 5000 and info.md5 == hashlib.md5(b"z" * 5000).hexdigest()
    assert counted.get_metadata("dst.bin") == {"owner": "ana"}


def test_recursive_delete_batches(counted: S3Backend, proxy: CountingProxy) -> None:
    client = s3_client(proxy.endpoint_url)
    for i in range(1005):
        client.put_object(Bucket=counted.bucket, Key=f"bulk/{i}", Body=b"")
    client.close()
    proxy.reset()
    counted.delete("bulk", recursive=True)
    assert proxy.counts == {"HEAD": 1, "LIST": 2, "POST": 2}
    assert not counted.exists("bulk")


def test_move_costs(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.write("mv/a.txt", b"a")
    counted.write("mv/sub/b.txt", b"b")
    proxy.reset()
    counted.move("mv/a.txt", "mv2/a.txt")
    assert proxy.counts == {"HEAD": 1, "PUT": 1, "DELETE": 1}
    proxy.reset()
    counted.move("mv", "mv3")
    assert proxy.counts == {"HEAD": 1, "LIST": 2, "PUT": 1, "POST": 1}
    assert {e.path for e in counted.walk("")} == {"mv2/a.txt", "mv3/sub/b.txt"}


class _Trickle(io.RawIOBase):
    """A raw stream returning at most 1000 bytes per read (like a socket)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# ------------------------------------------------------------------------- multipart
def test_multipart_write(moto: MotoHandle, bucket: str) -> None:
    backend = _backend(moto.endpoint_url, bucket, multipart_threshold=MiB)
    payload = bytes(range(256)) * (9 * 4096)  # 9 MiB
    info = backend.write("big.bin", io.BytesIO(payload), metadata={"m": "1"})
    assert info.size == len(payload)
    assert info.md5 is None and info.etag and info.etag.endswith("-2")
    assert backend.read_bytes("big.bin") == payload
    head = backend.info("big.bin")
    assert head.md5 is None and head.metadata == {"m": "1"}
    assert [e.md5 for e in backend.list("")] == [None]


def test_threshold_boundary_with_short_reads(counted: S3Backend, proxy: CountingProxy) -> None:
    counted.multipart_threshold = 5 * MiB
    payload = bytes(range(256)) * (5 * 4096)
    below = counted.write("below.bin", _Trickle(payload[:-1]))
    assert proxy.counts == {"PUT": 1} and below.md5 == hashlib.md5(payload[:-1]).hexdigest()
    proxy.reset()
    at = counted.write("at.bin", _Trickle(payload + payload + b"x"))
    assert proxy.counts == {"POST": 2, "PUT": 3}  # create, 3 parts, complete
    assert at.size == 2 * len(payload) + 1 and at.md5 is None
    assert counted.read_bytes("at.bin") == payload + payload + b"x"


def test_multipart_create_is_conditional(moto: MotoHandle, bucket: str) -> None:
    backend = _backend(moto.endpoint_url, bucket, multipart_threshold=MiB)
    backend.write("once.bin", b"first")
    with pytest.raises(StorageAlreadyExistsError):
        backend.write("once.bin", b"y" * (6 * MiB), mode=WriteMode.CREATE)
    assert backend.read_bytes("once.bin") == b"first"
    client = s3_client(moto.endpoint_url)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted
    client.close()


# ------------------------------------------------------------------------- probes
def test_conditional_probe_true_on_moto(counted: S3Backend, proxy: CountingProxy) -> None:
    assert counted.capabilities.conditional_write
    probe = proxy.counts
    assert probe["PUT"] == 2 and probe["DELETE"] == 1
    proxy.reset()
    assert counted.capabilities.conditional_write  # cached: no more requests
    assert proxy.total == 0
    assert list(counted.walk("")) == []  # the probe object was removed


def test_constructing_costs_nothing(proxy: CountingProxy, bucket: str) -> None:
    proxy.reset()
    _backend(proxy.endpoint_url, bucket).close()
    assert proxy.total == 0


def test_versioning_probe(moto: MotoHandle, bucket: str) -> None:
    plain = _backend(moto.endpoint_url, bucket)
    assert not plain.capabilities.native_versions
    versioned_bucket = make_bucket(moto.endpoint_url, _bucket_name(), versioned=True)
    versioned = _backend(moto.endpoint_url, versioned_bucket)
    caps = versioned.capabilities
    assert caps.native_versions and caps.conditional_write
    client = s3_client(moto.endpoint_url)
    leftovers = client.list_object_versions(Bucket=versioned_bucket)
    assert not leftovers.get("Versions") and not leftovers.get("DeleteMarkers")
    client.close()


def test_if_match_maps_errors(moto: MotoHandle, bucket: str) -> None:
    backend = _backend(moto.endpoint_url, bucket)
    first = backend.write("cas", b"1")
    backend.write("cas", b"2", mode=WriteMode.IF_MATCH, etag=first.etag)
    with pytest.raises(PreconditionFailedError) as caught:
        backend.write("cas", b"3", mode=WriteMode.IF_MATCH, etag=first.etag)
    assert caught.value.__cause__ is not None


# ------------------------------------------------------------------------- errors
def test_missing_bucket_names_the_bucket(moto: MotoHandle) -> None:
    backend = _backend(moto.endpoint_url, "no-such-bucket-here")
    for call in (
        lambda: backend.info("a.txt"),
        lambda: backend.read_bytes("a.txt"),
        lambda: list(backend.list("")),
    ):
        with pytest.raises(StorageNotFoundError, match="no-such-bucket-here"):
            call()


def test_server_down_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {"config": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    backend = _backend(f"http://127.0.0.1:{port}", "some-bucket", client_kwargs=options)
    with pytest.raises(TransientStorageError) as caught:
        backend.read_bytes("a.txt")
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.__cause__ is not None


def test_read_of_missing_key_is_one_request(proxy: CountingProxy, bucket: str) -> None:
    backend = _backend(proxy.endpoint_url, bucket)
    backend.write("d/x", b"1")
    proxy.reset()
    with pytest.raises(StorageNotFoundError):
        backend.read_bytes("d")  # a prefix is no readable object; no LIST to tell why
    with pytest.raises(StorageNotFoundError):
        backend.read_bytes("absent.json")
    assert proxy.counts == {"GET": 2}
    assert backend.info("d").is_dir


def test_presigned_url_reads(moto: MotoHandle, bucket: str) -> None:
    backend = _backend(moto.endpoint_url, bucket)
    backend.write("p/ü name.txt", b"signed")
    url = backend.url("p/ü name.txt", expires_in=60)
    assert url and "X-Amz-Signature" in url
    assert requests.get(url, timeout=10).content == b"signed"


# ------------------------------------------------------------------------- the proxy itself
def test_proxy_forwards_chunked_bodies(moto: MotoHandle, bucket: str) -> None:
    with CountingProxy(moto.endpoint_url) as counting:
        pieces = [b"alpha-", b"beta-", b"gamma" * 1000]
        response = requests.put(
            f"{counting.endpoint_url}/{bucket}/chunked.bin", data=iter(pieces), timeout=10
        )
        assert response.status_code == 200
        assert counting.counts == {"PUT": 1}
        client = s3_client(counting.endpoint_url)
        client.upload_fileobj(io.BytesIO(b"q" * 70_000), bucket, "via-boto.bin")
        body = client.get_object(Bucket=bucket, Key="chunked.bin")["Body"].read()
        assert body == b"".join(pieces)
        assert client.get_object(Bucket=bucket, Key="via-boto.bin")["Body"].read() == b"q" * 70_000
        client.close()
        assert counting.counts == {"PUT": 2, "GET": 2}


def test_request_labels() -> None:
    assert request_label("GET", "/b", "list-type=2&prefix=x") == "LIST"
    assert request_label("GET", "/b/", "") == "LIST"
    assert request_label("GET", "/b", "versioning") == "GET"
    assert request_label("GET", "/b/key", "") == "GET"
    assert request_label("HEAD", "/b/key", "") == "HEAD"
