"""Bulk cleanup and compaction on an S3 Object Lock bucket whose server refuses some deletes
(locks set outside storied, which storied's plan cannot see): every other version goes, the
refused ones are reported in ``kept_by_server`` with one ``version_deleted`` event per version
really removed, and a refusal that is not a lock still stops the work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from storied import StorageManager
from storied.testing.s3server import MotoHandle, s3_client


@pytest.fixture
def client(moto: MotoHandle) -> Iterator[Any]:
    c = s3_client(moto.endpoint_url)
    yield c
    c.close()


def _setup(moto: MotoHandle, client: Any, files: int = 3, versions: int = 4
           ) -> tuple[StorageManager, str, dict[str, list[str]]]:
    bucket = f"gd-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s"}])
    ids = {}
    for f in range(files):
        node = sm.node(f"v:d/f{f}.txt")
        for i in range(versions):
            node.write_text(f"{f}-{i}")
        ids[f"v:d/f{f}.txt"] = [v["version_id"] for v in node.versions]
    return sm, bucket, ids


def _outside_hold(client: Any, bucket: str, key: str, vid: str) -> None:
    client.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=vid,
                                 LegalHold={"Status": "ON"})


def test_bulk_cleanup_skips_and_reports_versions_the_server_keeps(moto: MotoHandle,
                                                                   client: Any) -> None:
    sm, bucket, ids = _setup(moto, client)
    _outside_hold(client, bucket, "d/f0.txt", ids["v:d/f0.txt"][1])
    _outside_hold(client, bucket, "d/f2.txt", ids["v:d/f2.txt"][0])
    deleted: list[tuple[str, str]] = []
    sm.on("version_deleted", lambda node, info: deleted.append((node.fullpath,
                                                                info["version_id"])))
    result = sm.bulk_cleanup_versions("v:d", keep_last=1)
    assert result.kept_by_server == {"v:d/f0.txt": [ids["v:d/f0.txt"][1]],
                                     "v:d/f2.txt": [ids["v:d/f2.txt"][0]]}
    assert result == {
        "v:d/f0.txt": [ids["v:d/f0.txt"][0], ids["v:d/f0.txt"][2]],
        "v:d/f1.txt": ids["v:d/f1.txt"][:3],
        "v:d/f2.txt": ids["v:d/f2.txt"][1:3],
    }
    assert sorted(deleted) == sorted((p, v) for p, gone in result.items() for v in gone)
    for path, found in ids.items():
        left = {v["version_id"] for v in sm.node(path).versions}
        assert left == {found[-1], *result.kept_by_server.get(path, [])}
    again = sm.bulk_cleanup_versions("v:d", keep_last=1)  # nothing left but what is locked
    assert again == {} and again.kept_by_server == result.kept_by_server


def test_bulk_compaction_reports_kept_versions(moto: MotoHandle, client: Any) -> None:
    sm, bucket, _ = _setup(moto, client, files=1, versions=0)
    node = sm.node("v:d/same.txt")
    for _ in range(3):
        node.write_text("same")
    vids = [v["version_id"] for v in node.versions]
    _outside_hold(client, bucket, "d/same.txt", vids[0])
    result = sm.bulk_compact_versions("v:d")
    assert result == {"v:d/same.txt": 1}
    assert result.kept_by_server == {"v:d/same.txt": [vids[0]]}
    assert sorted(v["version_id"] for v in node.versions) == sorted([vids[0], vids[2]])


def test_a_bucket_without_refusals_reports_nothing_kept(moto: MotoHandle, client: Any) -> None:
    sm, _, ids = _setup(moto, client, files=2, versions=2)
    result = sm.bulk_cleanup_versions("v:d", keep_last=1)
    assert result == {p: found[:1] for p, found in ids.items()}
    assert result.kept_by_server == {}
    assert sm.bulk_cleanup_versions("v:d", keep_last=1, dry_run=True).kept_by_server == {}


def test_refusals_across_several_batches_and_workers(moto: MotoHandle, client: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from storied.versioning import bulk

    monkeypatch.setattr(bulk, "_BATCH", 2)  # 9 doomed versions: five batches
    sm, bucket, ids = _setup(moto, client, files=3, versions=4)
    _outside_hold(client, bucket, "d/f1.txt", ids["v:d/f1.txt"][1])
    _outside_hold(client, bucket, "d/f1.txt", ids["v:d/f1.txt"][2])
    deleted: list[str] = []
    sm.on("version_deleted", lambda node, info: deleted.append(info["version_id"]))
    result = sm.bulk_cleanup_versions("v:d", keep_last=1, workers=3)
    assert result.kept_by_server == {"v:d/f1.txt": ids["v:d/f1.txt"][1:3]}
    assert result["v:d/f1.txt"] == ids["v:d/f1.txt"][:1]
    assert sorted(deleted) == sorted(v for gone in result.values() for v in gone)
    assert len(deleted) == 7
    for path, found in ids.items():
        left = {v["version_id"] for v in sm.node(path).versions}
        assert left == {found[-1], *result.kept_by_server.get(path, [])}
