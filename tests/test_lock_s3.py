"""S3 specifics of object lock and storage classes, on moto: the locks are the server's own
(with the integrity header S3 requires), a bucket's default retention protects without a request
per version, storage class round trips (metadata, tags, history kept; part copies above the
CopyObject limit), archived objects refuse reads until restored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storied import StorageManager
from storied.backends import _s3_objectlock
from storied.errors import (
    ArchivedObjectError,
    InvalidArgumentError,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, s3_client

MiB = 1024 * 1024


@pytest.fixture
def client(moto: MotoHandle) -> Iterator[Any]:
    c = s3_client(moto.endpoint_url)
    yield c
    c.close()


def _lock_bucket(client: Any, default_days: int = 0) -> str:
    name = f"lk-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    if default_days:
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": default_days}}})
    return name


def _manager(endpoint: str, bucket: str, **extra: Any) -> StorageManager:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
                   "key": "k", "secret": "s", **extra}])
    return sm


def test_locks_are_the_servers_own_and_carry_content_md5(moto: MotoHandle, client: Any) -> None:
    bucket = _lock_bucket(client)
    sm = _manager(moto.endpoint_url, bucket)
    node = sm.node("v:doc.txt")
    node.write_text("one")
    node.write_text("two")
    vid = node.versions[0]["version_id"]
    seen: list[tuple[str, bool]] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append((request.method, "Content-MD5" in request.headers))

    inner = sm.get_backend("v").unwrap()
    inner._client.meta.events.register("before-send.s3.PutObjectLegalHold", capture)
    inner._client.meta.events.register("before-send.s3.PutObjectRetention", capture)
    node.set_legal_hold(True, version=0)
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    node.set_retention("GOVERNANCE", until, version=0)
    assert seen == [("PUT", True), ("PUT", True)]
    hold = client.get_object_legal_hold(Bucket=bucket, Key="doc.txt", VersionId=vid)
    assert hold["LegalHold"]["Status"] == "ON"
    head = client.head_object(Bucket=bucket, Key="doc.txt", VersionId=vid)
    assert head["ObjectLockMode"] == "GOVERNANCE"  # (moto's GetObjectRetention fails: 500)
    assert head["ObjectLockRetainUntilDate"] == until
    with pytest.raises(Exception, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key="doc.txt", VersionId=vid)
    # set outside storied: storied reads the server's state
    client.put_object_legal_hold(Bucket=bucket, Key="doc.txt", VersionId=vid,
                                 LegalHold={"Status": "OFF"})
    assert node.get_legal_hold(vid) is False
    assert node.get_retention(vid) == {"mode": "GOVERNANCE", "until": until}


def test_default_retention_protects_from_the_listing_alone(moto: MotoHandle, client: Any,
                                                           proxy: CountingProxy) -> None:
    bucket = _lock_bucket(client, default_days=1)
    sm = _manager(proxy.endpoint_url, bucket)
    node = sm.node("v:d.txt")
    for i in range(5):
        node.write_text(f"v{i}")
    node.cleanup_versions(keep_last=1, dry_run=True)  # first run: the lock config is cached
    proxy.reset()
    plan = node.cleanup_versions(keep_last=1, dry_run=True)
    assert all(row["keep"] for row in plan)
    assert all(r.startswith("retention:GOVERNANCE until") for r in plan[0]["reasons"])
    assert proxy.total <= 4, proxy.counts  # listing, refs, snapshots, locks: nothing per version
    with pytest.raises(StoragePermissionError, match="retention:GOVERNANCE"):
        node.delete_version(0)
    assert node.cleanup_versions(keep_last=1) == [] and node.version_count == 5


def test_unversioned_mounts_refuse_locks(moto: MotoHandle, client: Any) -> None:
    bucket = make_bucket(moto.endpoint_url, f"lu-{uuid.uuid4().hex[:12]}")
    sm = _manager(moto.endpoint_url, bucket)
    sm.configure([{"name": "m", "type": "memory"}])
    for path in ("v:a.txt", "m:a.txt"):
        node = sm.node(path)
        node.write_text("x")
        until = datetime.now(UTC) + timedelta(days=1)
        for attempt in (node.set_legal_hold, node.get_legal_hold, node.get_retention,
                        node.set_retention):
            args: tuple[Any, ...] = {node.set_legal_hold: (True,),
                                     node.set_retention: ("GOVERNANCE", until)}.get(attempt, ())
            with pytest.raises(UnsupportedOperation):
                attempt(*args)
    with pytest.raises(UnsupportedOperation):
        sm.node("m:a.txt").set_storage_class("GLACIER")
    with pytest.raises(UnsupportedOperation):
        sm.node("m:a.txt").storage_class()


# ---------------------------------------------------------------------- storage classes
def test_storage_class_round_trip_keeps_metadata_tags_and_history(moto: MotoHandle,
                                                                   client: Any) -> None:
    bucket = make_bucket(moto.endpoint_url, f"sc-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = _manager(moto.endpoint_url, bucket)
    node = sm.node("v:r/a.txt")
    node.write_text("hello")
    node.set_metadata({"owner": "ana"})
    client.put_object_tagging(Bucket=bucket, Key="r/a.txt",
                              Tagging={"TagSet": [{"Key": "team", "Value": "x"}]})
    before = node.version_count
    assert node.storage_class() == "STANDARD"
    node.set_storage_class("STANDARD_IA")
    assert node.storage_class() == "STANDARD_IA"
    assert node.version_count == before + 1  # a new version, in the history
    assert node.read_text() == "hello" and node.get_metadata() == {"owner": "ana"}
    tags = client.get_object_tagging(Bucket=bucket, Key="r/a.txt")["TagSet"]
    assert tags == [{"Key": "team", "Value": "x"}]
    with pytest.raises(InvalidArgumentError, match="storage class"):
        node.set_storage_class("COLD")
    ro = StorageManager()
    ro.configure([{"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                   "key": "k", "secret": "s", "readonly": True}])
    with pytest.raises(StoragePermissionError):
        ro.node("v:r/a.txt").set_storage_class("STANDARD")
    assert node.storage_class() == "STANDARD_IA"


def test_part_copy_above_the_threshold(moto: MotoHandle, client: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = make_bucket(moto.endpoint_url, f"sp-{uuid.uuid4().hex[:12]}")
    sm = _manager(moto.endpoint_url, bucket)
    node = sm.node("v:big.bin")
    data = bytes(range(256)) * (11 * MiB // 256 + 3)
    node.write_bytes(data)
    node.set_metadata({"k": "v"})
    client.put_object_tagging(Bucket=bucket, Key="big.bin",
                              Tagging={"TagSet": [{"Key": "a", "Value": "b c"}]})
    calls: list[str] = []
    inner = sm.get_backend("v").unwrap()
    inner._client.meta.events.register(
        "before-send.s3.*", lambda request, **kw: calls.append(kw["event_name"].split(".")[-1]))
    monkeypatch.setattr(_s3_objectlock, "PART_COPY_LIMIT", 1 * MiB)
    monkeypatch.setattr(_s3_objectlock, "_PART", 5 * MiB)
    node.set_storage_class("STANDARD_IA")
    assert calls.count("UploadPartCopy") == 3 and "CopyObject" not in calls
    assert node.storage_class() == "STANDARD_IA"
    assert node.read_bytes() == data and node.get_metadata() == {"k": "v"}
    tags = client.get_object_tagging(Bucket=bucket, Key="big.bin")["TagSet"]
    assert tags == [{"Key": "a", "Value": "b c"}]


def test_archived_objects_refuse_reads_until_restored(moto: MotoHandle, client: Any) -> None:
    bucket = make_bucket(moto.endpoint_url, f"sg-{uuid.uuid4().hex[:12]}")
    sm = _manager(moto.endpoint_url, bucket)
    node = sm.node("v:cold.txt")
    node.write_text("frozen")
    node.set_storage_class("GLACIER")
    assert node.storage_class() == "GLACIER"
    with pytest.raises(ArchivedObjectError, match="restore_archived"):
        node.read_text()
    with pytest.raises(ArchivedObjectError, match="restore"):
        node.set_storage_class("STANDARD")  # an unrestored archive is not copied
    with pytest.raises(InvalidArgumentError):
        node.restore_archived(days=0)
    assert node.restore_archived(days=1) is True  # moto finishes restores at once
    assert node.read_text() == "frozen"
    node.set_storage_class("STANDARD")
    assert node.storage_class() == "STANDARD" and node.read_text() == "frozen"
    with pytest.raises(InvalidArgumentError, match="not archived"):
        node.restore_archived()


def test_portable_history_mounts_refuse_storage_classes(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"sq-{uuid.uuid4().hex[:12]}")
    sm = _manager(moto.endpoint_url, bucket, versioning=True)
    node = sm.node("v:p.txt")
    node.write_text("x")
    with pytest.raises(UnsupportedOperation, match="portable"):
        node.set_storage_class("GLACIER")
    assert node.storage_class() == "STANDARD"  # reading it is fine


def test_a_lock_set_outside_storied_is_named_and_skipped(moto: MotoHandle, client: Any) -> None:
    bucket = _lock_bucket(client)
    sm = _manager(moto.endpoint_url, bucket)
    node = sm.node("v:o.txt")
    for i in range(4):
        node.write_text(f"v{i}")
    ids = [v["version_id"] for v in node.versions]
    client.put_object_legal_hold(Bucket=bucket, Key="o.txt", VersionId=ids[1],
                                 LegalHold={"Status": "ON"})  # storied never heard of it
    with pytest.raises(StoragePermissionError, match=f"{ids[1]}.*on the server.*legal-hold"):
        node.delete_version(ids[1])
    removed = {row["version_id"] for row in node.cleanup_versions(keep_last=1)}
    assert removed == {ids[0], ids[2]}  # the server kept its locked version; the rest went
    assert [v["version_id"] for v in node.versions] == [ids[1], ids[3]]


def test_relative_mounts_and_base_paths_lock_the_right_key(moto: MotoHandle,
                                                           client: Any) -> None:
    bucket = _lock_bucket(client)
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                   "key": "k", "secret": "s", "base_path": "root"},
                  {"name": "sub", "path": "v:dir"}])
    node = sm.node("sub:f.txt")
    node.write_text("a")
    node.write_text("b")
    node.set_legal_hold(True, version=0)
    vid = node.versions[0]["version_id"]
    hold = client.get_object_legal_hold(Bucket=bucket, Key="root/dir/f.txt", VersionId=vid)
    assert hold["LegalHold"]["Status"] == "ON"
    assert sm.node("v:dir/f.txt").get_legal_hold(vid) is True
    with pytest.raises(StoragePermissionError, match="legal-hold"):
        sm.node("v:dir/f.txt").delete_version(vid)
    with pytest.raises(StoragePermissionError):
        sm.node("sub:f.txt", version=vid).set_storage_class("STANDARD_IA")  # pinned: read-only


def test_storage_class_from_a_listing_costs_no_request(moto: MotoHandle, client: Any,
                                                       proxy: CountingProxy) -> None:
    bucket = make_bucket(moto.endpoint_url, f"sl-{uuid.uuid4().hex[:12]}")
    client.put_object(Bucket=bucket, Key="d/cold.txt", Body=b"x", StorageClass="GLACIER")
    client.put_object(Bucket=bucket, Key="d/warm.txt", Body=b"y")
    sm = _manager(proxy.endpoint_url, bucket)
    assert sm.get_backend("v").capabilities.storage_classes
    children = {c.basename: c for c in sm.node("v:d").children()}
    proxy.reset()
    assert children["cold.txt"].storage_class() == "GLACIER"
    assert children["warm.txt"].storage_class() == "STANDARD"
    assert proxy.total == 0
    assert sm.node("v:d/cold.txt").storage_class() == "GLACIER" and proxy.total == 1  # a HEAD


def test_lock_configuration_not_readable_falls_back_to_storieds_records(
        moto: MotoHandle, client: Any, proxy: CountingProxy) -> None:
    bucket = _lock_bucket(client)
    sm = _manager(proxy.endpoint_url, bucket)
    node = sm.node("v:p.txt")
    node.write_text("a")
    node.write_text("b")
    proxy.fail(1, status=403, query="object-lock", code="AccessDenied")
    node.set_legal_hold(True, version=0)  # recorded by storied, enforced by storied
    proxy.reset()
    vid = node.versions[0]["version_id"]
    head = client.head_object(Bucket=bucket, Key="p.txt", VersionId=vid)
    assert head.get("ObjectLockLegalHoldStatus") != "ON"  # not sent to the server
    assert node.get_legal_hold(0) is True
    with pytest.raises(StoragePermissionError, match="legal-hold"):
        node.delete_version(0)
    assert node.cleanup_versions(keep_last=1) == []
