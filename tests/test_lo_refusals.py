"""Deletes an S3 Object Lock bucket refuses, as storied reports them (moto server, real
requests): a batch DeleteObjects reports *every* refused key, not only the first (and sends
every batch), so a bulk cleanup sends again only the versions the server named.
A single file's ``cleanup_versions`` / ``compact_versions`` there: a version the server keeps
locked (a legal hold set outside storied) is skipped, logged and reported in
``kept_by_server``; any other refusal (a bucket policy denying deletes) raises, instead of
being skipped as if it were a lock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.backends._s3_support import refusals_of
from storied.errors import StoragePermissionError
from storied.testing.s3server import MotoHandle, s3_client


@pytest.fixture
def client(moto: MotoHandle) -> Iterator[Any]:
    c = s3_client(moto.endpoint_url)
    yield c
    c.close()


def _lock_mount(moto: MotoHandle, client: Any) -> tuple[StorageManager, str]:
    bucket = f"lo-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    return sm, bucket


def _versions(sm: StorageManager, path: str, count: int) -> list[str]:
    node = sm.node(path)
    for i in range(count):
        node.write_text(f"{path}-{i}")
    return [v["version_id"] for v in node.versions]


def _hold(client: Any, bucket: str, key: str, vid: str) -> None:
    client.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=vid,
                                 LegalHold={"Status": "ON"})


def _deny_deletes(client: Any, bucket: str, key: str) -> None:
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
                       "Resource": f"arn:aws:s3:::{bucket}/{key}"}]}))


def _inner(sm: StorageManager) -> Any:
    return sm.get_backend("v").unwrap()


def _count(client: Any, operation: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    client.meta.events.register(f"provide-client-params.s3.{operation}",
                                lambda params, **_: seen.append(dict(params)))
    return seen


def test_a_batch_delete_reports_every_refused_key(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _lock_mount(moto, client)
    a = _versions(sm, "v:a.txt", 3)
    b = _versions(sm, "v:b.txt", 2)
    c = _versions(sm, "v:c.txt", 2)
    _hold(client, bucket, "a.txt", a[0])
    _hold(client, bucket, "c.txt", c[1])
    items = [("a.txt", v) for v in a[:2]] + [("b.txt", b[0]), ("c.txt", c[0]), ("c.txt", c[1])]
    with pytest.raises(StoragePermissionError) as caught:
        _inner(sm).delete_many(items)
    refused = refusals_of(caught.value)
    assert sorted(r.key for r in refused) == ["a.txt", "c.txt"]  # both, not only the first
    assert all(r.code == "AccessDenied" for r in refused)
    left = {(v.path, v.version_id) for v in _inner(sm).walk_versions("")}
    assert ("a.txt", a[0]) in left and ("c.txt", c[1]) in left
    assert not left & {("a.txt", a[1]), ("b.txt", b[0]), ("c.txt", c[0])}  # the rest went


def test_refusals_in_later_batches_are_reported_too(moto: MotoHandle, client: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from storied.backends import _s3_support

    monkeypatch.setattr(_s3_support, "_BATCH", 2)  # three DeleteObjects requests
    sm, bucket = _lock_mount(moto, client)
    ids = _versions(sm, "v:f.txt", 6)
    _hold(client, bucket, "f.txt", ids[0])
    _hold(client, bucket, "f.txt", ids[4])
    with pytest.raises(StoragePermissionError) as caught:
        _inner(sm).delete_many([("f.txt", v) for v in ids[:5]])
    assert len(refusals_of(caught.value)) == 2
    left = [v.version_id for v in _inner(sm).walk_versions("") if v.path == "f.txt"]
    assert sorted(left) == sorted([ids[0], ids[4], ids[5]])


def test_bulk_cleanup_resends_only_the_refused_versions(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _lock_mount(moto, client)
    ids = {f"v:d/f{n}.txt": _versions(sm, f"v:d/f{n}.txt", 4) for n in range(3)}
    _hold(client, bucket, "d/f1.txt", ids["v:d/f1.txt"][0])
    _hold(client, bucket, "d/f2.txt", ids["v:d/f2.txt"][2])
    singles = _count(_inner(sm)._client, "DeleteObjects")
    result = sm.bulk_cleanup_versions("v:d", keep_last=1)
    assert result.kept_by_server == {"v:d/f1.txt": [ids["v:d/f1.txt"][0]],  # type: ignore[attr-defined]
                                     "v:d/f2.txt": [ids["v:d/f2.txt"][2]]}
    # one batch of 9, then one request per version of the keys the server named (moto
    # names keys, not versions: f1's and f2's three each), f0's not sent again (before:
    # only the first refusal was reported, and all 9 were sent again one by one)
    assert [len(p["Delete"]["Objects"]) for p in singles] == [9] + [1] * 6
    again = {o["Key"] for p in singles[1:] for o in p["Delete"]["Objects"]}
    assert again == {"d/f1.txt", "d/f2.txt"}


def test_single_file_cleanup_skips_and_reports_a_lock(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _lock_mount(moto, client)
    ids = _versions(sm, "v:held.txt", 4)
    _hold(client, bucket, "held.txt", ids[1])
    removed: Any = sm.node("v:held.txt").cleanup_versions(keep_last=1)
    assert [v["version_id"] for v in removed] == [ids[0], ids[2]]
    assert removed.kept_by_server == [ids[1]]
    assert [v["version_id"] for v in sm.node("v:held.txt").versions] == [ids[1], ids[3]]
    again: Any = sm.node("v:held.txt").cleanup_versions(keep_last=1)
    assert again == [] and again.kept_by_server == [ids[1]]


def test_single_file_cleanup_raises_a_refusal_that_is_no_lock(moto: MotoHandle,
                                                              client: Any) -> None:
    sm, bucket = _lock_mount(moto, client)
    ids = _versions(sm, "v:denied.txt", 3)
    _deny_deletes(client, bucket, "denied.txt")  # a policy, not a lock
    deleted: list[str] = []
    sm.on("version_deleted", lambda node, info: deleted.append(info["version_id"]))
    with pytest.raises(StoragePermissionError):
        sm.node("v:denied.txt").cleanup_versions(keep_last=1)
    assert [v["version_id"] for v in sm.node("v:denied.txt").versions] == ids
    assert deleted == []
    same = sm.node("v:same.txt")
    for _ in range(3):
        same.write_text("same")
    _deny_deletes(client, bucket, "same.txt")
    with pytest.raises(StoragePermissionError):
        same.compact_versions()  # the same check on compaction
    assert same.version_count == 3


def test_single_file_compaction_keeps_a_locked_duplicate(moto: MotoHandle, client: Any) -> None:
    sm, bucket = _lock_mount(moto, client)
    node = sm.node("v:same.txt")
    for _ in range(3):
        node.write_text("same")
    ids = [v["version_id"] for v in node.versions]
    _hold(client, bucket, "same.txt", ids[0])
    assert node.compact_versions() == 1
    assert [v["version_id"] for v in node.versions] == [ids[0], ids[2]]
