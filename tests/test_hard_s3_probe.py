"""Issue 8, 1.13: a transient failure of an S3 probe is retried and never cached as "no"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from storied import StorageManager
from storied.backends.s3 import S3Backend, from_config
from storied.errors import TransientStorageError
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

#: botocore retries nothing itself here, so each probe attempt is one request (and fast).
_ONE_TRY = {"config": {"retries": {"total_max_attempts": 1, "mode": "standard"}}}


def _backend(endpoint: str, bucket: str, **options: object) -> S3Backend:
    return S3Backend(bucket, key="testing", secret="testing", endpoint_url=endpoint,
                     probe_delay=0.01, client_kwargs=_ONE_TRY, **options)  # fmt: skip


def _mount(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "client_kwargs": _ONE_TRY, **extra}  # fmt: skip


def _probes(proxy: CountingProxy) -> int:
    return sum(1 for m, _, q in proxy.requests if m == "GET" and q.startswith("versioning"))


@pytest.fixture
def vbucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"probe-{uuid.uuid4().hex[:12]}", versioned=True)


@pytest.fixture
def clean_proxy(proxy: CountingProxy) -> Iterator[CountingProxy]:
    proxy.reset()
    yield proxy
    proxy.reset()  # drops faults left over


def test_transient_503s_on_the_versioning_probe_are_retried(
    clean_proxy: CountingProxy, vbucket: str
) -> None:
    backend = _backend(clean_proxy.endpoint_url, vbucket)
    clean_proxy.fail(3, query="versioning")
    assert backend.versioning_enabled() is True
    assert _probes(clean_proxy) == 4  # three 503s, then the answer (4 attempts by default)
    assert backend.capabilities.native_versions  # cached now: no further probe
    assert _probes(clean_proxy) == 4
    backend.close()


def test_a_failed_versioning_probe_raises_and_is_not_cached(
    clean_proxy: CountingProxy, vbucket: str
) -> None:
    backend = _backend(clean_proxy.endpoint_url, vbucket, probe_attempts=2)
    clean_proxy.fail(1000, query="versioning")
    with pytest.raises(TransientStorageError):
        backend.has_native_versions()
    with pytest.raises(TransientStorageError):
        _ = backend.capabilities
    clean_proxy.reset()  # the server recovers
    assert backend.versioning_enabled() is True
    assert _probes(clean_proxy) == 1
    backend.close()


def test_a_failed_conditional_probe_raises_and_is_not_cached(
    clean_proxy: CountingProxy, vbucket: str
) -> None:
    backend = _backend(clean_proxy.endpoint_url, vbucket, probe_attempts=2)
    clean_proxy.fail(1000, label="PUT")
    with pytest.raises(TransientStorageError):
        backend.conditional_write_supported()
    clean_proxy.reset()
    assert backend.conditional_write_supported() is True
    backend.close()


def test_versioning_status_reports_suspended(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"susp-{uuid.uuid4().hex[:12]}", versioned=True)
    client = s3_client(moto.endpoint_url)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    client.close()
    plain = make_bucket(moto.endpoint_url, f"plain-{uuid.uuid4().hex[:12]}")
    suspended = _backend(moto.endpoint_url, bucket)
    assert suspended.versioning_status() == "Suspended"
    assert not suspended.versioning_enabled()
    assert _backend(moto.endpoint_url, plain).versioning_status() == ""


def test_manager_keeps_native_versions_through_probe_503s(
    moto: MotoHandle, clean_proxy: CountingProxy, vbucket: str
) -> None:
    """Before the fix a 503 made the manager start a portable history inside a versioned
    bucket (``.storied/`` objects next to the bucket's own versions)."""
    sm = StorageManager()
    sm.configure([_mount(clean_proxy.endpoint_url, vbucket, versioning=True)])
    clean_proxy.fail(3, query="versioning")
    history = sm.history("s3")  # the engine is chosen here: native, 503s notwithstanding
    assert history is not None
    assert _probes(clean_proxy) == 4
    node = sm.node("s3:doc.txt")
    node.write_text("one")
    node.write_text("two")
    assert [v["size"] for v in node.versions] == [3, 3]
    client = s3_client(moto.endpoint_url)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=vbucket).get("Contents", [])
            if not o["Key"].startswith(".storied/journal/")]  # the event journal is no history
    versions = client.list_object_versions(Bucket=vbucket, Prefix="doc.txt")["Versions"]
    client.close()
    assert keys == ["doc.txt"]  # no portable history written
    assert len(versions) == 2
    sm.close()


def test_manager_write_fails_cleanly_while_the_probe_keeps_failing(
    moto: MotoHandle, clean_proxy: CountingProxy, vbucket: str
) -> None:
    sm = StorageManager()
    sm.configure([_mount(clean_proxy.endpoint_url, vbucket, versioning=True, retries=2)])
    clean_proxy.fail(1000, query="versioning")
    with pytest.raises(TransientStorageError):
        sm.node("s3:doc.txt").write_text("one")
    client = s3_client(moto.endpoint_url)
    assert not client.list_objects_v2(Bucket=vbucket).get("Contents")  # nothing written
    clean_proxy.reset()
    sm.node("s3:doc.txt").write_text("one")  # probed again, now native
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=vbucket).get("Contents", [])
            if not o["Key"].startswith(".storied/journal/")]  # the event journal is no history
    client.close()
    assert keys == ["doc.txt"]
    assert len(sm.node("s3:doc.txt").versions) == 1
    sm.close()


def test_the_probe_takes_the_mounts_retries(clean_proxy: CountingProxy, vbucket: str) -> None:
    config = {**_mount(clean_proxy.endpoint_url, vbucket), "retries": 2}
    backend = from_config(config).unwrap()
    assert isinstance(backend, S3Backend)
    clean_proxy.fail(2, query="versioning")
    with pytest.raises(TransientStorageError):
        backend.versioning_status()  # two attempts, both 503
    assert _probes(clean_proxy) == 2
    assert backend.versioning_status() == "Enabled"  # asked again
    assert _probes(clean_proxy) == 3
    backend.close()
