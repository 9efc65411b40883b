"""Issue 8, 1.3 (S3) and section 2 (S3): keys listings hide are never deleted; bad keys refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from storied import StorageManager
from storied.backends.s3 import S3Backend
from storied.testing.s3server import MotoHandle, make_bucket, s3_client

#: Keys no storied path can name (or that listings hide): they must survive every delete.
HIDDEN = ["a//b", "a/./b", "a/x/../y", "a/sub//deep", "a/.storied-tmp-1/z"]
UNNAMEABLE = HIDDEN[:4]
VISIBLE = ["a/ok.txt", "a/sub/two.txt"]


@pytest.fixture
def bucket(moto: MotoHandle) -> str:
    return make_bucket(moto.endpoint_url, f"hide-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def client(moto: MotoHandle, bucket: str) -> Iterator[object]:
    c = s3_client(moto.endpoint_url)
    for key in [*HIDDEN, *VISIBLE]:
        c.put_object(Bucket=bucket, Key=key, Body=key.encode())
    yield c
    c.close()


def _keys(client: object, bucket: str) -> set[str]:
    page = client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return {o["Key"] for o in page.get("Contents") or ()}


def _storage(moto: MotoHandle, bucket: str) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket, "key": "testing",
                   "secret": "testing", "endpoint_url": moto.endpoint_url}])  # fmt: skip
    return sm


def test_backend_recursive_delete_spares_unnameable_keys(
    moto: MotoHandle, bucket: str, client: object
) -> None:
    client.put_object(Bucket=bucket, Key="a/", Body=b"")  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key="a/sub/", Body=b"")  # type: ignore[attr-defined]
    backend = S3Backend(bucket, key="testing", secret="testing", endpoint_url=moto.endpoint_url)
    walked = {e.path for e in backend.walk("a")}
    backend.delete("a", recursive=True)
    left = _keys(client, bucket)
    assert left == set(HIDDEN) - walked  # what walk yields (and the markers) is gone, not more
    assert set(UNNAMEABLE) <= left
    backend.close()


def test_node_delete_keeps_hidden_keys(moto: MotoHandle, bucket: str, client: object) -> None:
    sm = _storage(moto, bucket)
    sm.node("s3:a").delete(recursive=True)
    assert _keys(client, bucket) == set(HIDDEN)
    sm.close()


def test_node_move_keeps_hidden_keys_where_they_were(
    moto: MotoHandle, bucket: str, client: object
) -> None:
    sm = _storage(moto, bucket)
    sm.node("s3:a").move_to("s3:moved")
    left = _keys(client, bucket)
    assert {"moved/ok.txt", "moved/sub/two.txt"} <= left
    assert set(UNNAMEABLE) <= left  # never listed nor copied, so never deleted
    assert not {"a/ok.txt", "a/sub/two.txt"} & left
    # a temporary name is moved intact by the server-side move (copied, then deleted), or kept
    tmp = HIDDEN[4]
    moved = "moved/" + tmp[2:]
    assert (tmp in left) != (moved in left)
    body = client.get_object(Bucket=bucket, Key=moved if moved in left else tmp)  # type: ignore[attr-defined]
    assert body["Body"].read() == tmp.encode()
    sm.close()


def test_backend_move_removes_the_source_markers(moto: MotoHandle, bucket: str) -> None:
    c = s3_client(moto.endpoint_url)
    for key in ("d/", "d/sub/", "d/sub/f.txt", "d//odd"):
        c.put_object(Bucket=bucket, Key=key, Body=b"1")
    backend = S3Backend(bucket, key="testing", secret="testing", endpoint_url=moto.endpoint_url)
    backend.move("d", "e")
    assert _keys(c, bucket) == {"e/sub/f.txt", "d//odd"}
    c.close()
    backend.close()


def test_two_mounts_on_one_bucket_are_one_storage(moto: MotoHandle, bucket: str) -> None:
    """A move between two mounts of one bucket onto the same key must not delete the data."""
    sm = StorageManager()
    base = {"type": "s3", "bucket": bucket, "key": "testing", "secret": "testing",
            "endpoint_url": moto.endpoint_url}  # fmt: skip
    sm.configure([{"name": "one", **base}, {"name": "two", **base},
                  {"name": "sub", **base, "base_path": "docs"}])  # fmt: skip
    sm.node("one:docs/f.txt").write_text("keep me")
    sm.node("one:docs/f.txt").move_to("two:docs/f.txt")
    assert sm.node("two:docs/f.txt").read_text() == "keep me"
    sm.node("sub:f.txt").move_to("one:docs/f.txt")
    assert sm.node("one:docs/f.txt").read_text() == "keep me"
    other = make_bucket(moto.endpoint_url, f"other-{uuid.uuid4().hex[:12]}")
    a = S3Backend(bucket, endpoint_url=moto.endpoint_url)
    assert a.storage_key() == S3Backend(bucket, endpoint_url=moto.endpoint_url + "/").storage_key()
    assert a.storage_key() != S3Backend(other, endpoint_url=moto.endpoint_url).storage_key()
    sm.close()
