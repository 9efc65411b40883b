"""Issue 8, item 1.13 (manager part): a failed versioning probe is not cached by the manager, and
storied never switches engines on a bucket that has history (moto on 127.0.0.1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from storied import StorageConfigError, StorageManager
from storied.errors import TransientStorageError
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

_ONE_TRY = {"config": {"retries": {"max_attempts": 1, "mode": "standard"}}}


def _mount(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", "client_kwargs": _ONE_TRY, **extra}  # fmt: skip


def _set_versioning(endpoint: str, bucket: str, status: str) -> None:
    client = s3_client(endpoint)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    client.close()


def _object(endpoint: str, bucket: str, key: str) -> bytes:
    client = s3_client(endpoint)
    try:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    finally:
        client.close()


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"eng-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def clean_proxy(proxy: CountingProxy) -> Iterator[CountingProxy]:
    proxy.reset()
    yield proxy
    proxy.reset()


def test_portable_history_then_bucket_versioning_is_refused(moto: MotoHandle, bucket: str) -> None:
    endpoint = moto.endpoint_url
    sm = StorageManager()
    sm.configure([_mount(endpoint, bucket, versioning=True)])
    sm.node("v:a.txt").write_text("1")
    sm.node("v:a.txt").write_text("2")
    assert sm.history("v").name == "portable"  # type: ignore[union-attr]
    sm.close()
    _set_versioning(endpoint, bucket, "Enabled")
    for versioning in (True, None):  # said or not, the portable history is not ignored
        later = StorageManager()
        extra = {"versioning": versioning} if versioning else {}
        later.configure([_mount(endpoint, bucket, **extra)])
        with pytest.raises(StorageConfigError, match="never switches engines") as caught:
            later.history("v")
        assert "'v'" in str(caught.value) and "portable history" in str(caught.value)
        with pytest.raises(StorageConfigError):
            later.node("v:a.txt").write_text("3")
        with pytest.raises(StorageConfigError):  # not cached as "no history" either
            later.history("v")
        report = later.verify()  # verify reports it instead of raising
        assert not report.ok and "never switches engines" in report.problems[0]
        later.close()
    assert _object(endpoint, bucket, "a.txt") == b"2"
    _set_versioning(endpoint, bucket, "Suspended")  # the documented way back
    back = StorageManager()
    back.configure([_mount(endpoint, bucket, versioning=True)])
    assert back.node("v:a.txt").version_count == 2
    back.close()


def test_native_history_then_suspended_versioning_is_refused(
    moto: MotoHandle, bucket: str
) -> None:
    endpoint = moto.endpoint_url
    _set_versioning(endpoint, bucket, "Enabled")
    sm = StorageManager()
    sm.configure([_mount(endpoint, bucket, versioning=True)])
    sm.node("v:a.txt").write_text("1")
    sm.node("v:a.txt").write_text("2")
    assert sm.history("v").name == "native"  # type: ignore[union-attr]
    sm.close()
    _set_versioning(endpoint, bucket, "Suspended")
    later = StorageManager()
    later.configure([_mount(endpoint, bucket, versioning=True)])
    with pytest.raises(StorageConfigError, match="suspended"):
        later.node("v:a.txt").write_text("3")
    client = s3_client(endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])
            if not o["Key"].startswith(".storied/journal/")]  # the event journal is no history
    client.close()
    assert keys == ["a.txt"]  # no portable history was started
    later.close()
    plain = StorageManager()  # without 'versioning: true' the mount simply keeps none
    plain.configure([_mount(endpoint, bucket)])
    assert plain.history("v") is None
    plain.close()


def test_failed_probe_is_not_cached_by_the_manager(
    moto: MotoHandle, clean_proxy: CountingProxy
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"eng-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([_mount(clean_proxy.endpoint_url, bucket, retries=1)])
    clean_proxy.fail(1000, query="versioning")
    for _ in range(2):
        with pytest.raises(TransientStorageError):
            sm.history("v")
    clean_proxy.reset()  # the server answers again
    history = sm.history("v")  # probed again, not a cached None
    assert history is not None and history.name == "native"
    sm.close()
