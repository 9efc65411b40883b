"""The public node API on S3 mounts (moto server on loopback), and S3-specific mount behaviour."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from storied import StorageManager
from storied.testing.node_suite import NodeConformance
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket


def _s3_mount(name: str, endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", **extra}


class TestS3Nodes(NodeConformance):
    @pytest.fixture
    def storage(self, moto: MotoHandle) -> Iterator[StorageManager]:
        bucket = make_bucket(moto.endpoint_url, f"nodes-{uuid.uuid4().hex[:12]}")
        sm = StorageManager()
        sm.configure([_s3_mount("base", moto.endpoint_url, bucket)])
        yield sm
        sm.close()


class TestS3PrefixedNodes(NodeConformance):
    @pytest.fixture
    def storage(self, moto: MotoHandle) -> Iterator[StorageManager]:
        bucket = make_bucket(moto.endpoint_url, f"nodes-{uuid.uuid4().hex[:12]}")
        sm = StorageManager()
        sm.configure([_s3_mount("base", moto.endpoint_url, bucket, prefix="tenant/a")])
        yield sm
        sm.close()


def test_readonly_mount_never_writes_a_probe(moto: MotoHandle, proxy: CountingProxy) -> None:
    bucket = make_bucket(moto.endpoint_url, f"ro-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([_s3_mount("ro", proxy.endpoint_url, bucket, permissions="readonly")])
    proxy.reset()
    node = sm.node("ro:a.txt")
    assert node.capabilities.readonly and not node.capabilities.write
    with pytest.raises(PermissionError):
        node.write_text("x")
    assert node.exists() is False
    assert proxy.counts.get("PUT", 0) == 0 and proxy.counts.get("DELETE", 0) == 0


def test_cross_backend_copy_s3_to_local_keeps_content(moto: MotoHandle, tmp_path) -> None:
    bucket = make_bucket(moto.endpoint_url, f"x-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([_s3_mount("s3", moto.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path)}])
    payload = bytes(range(256)) * 40_000  # ~10 MiB: a multipart upload on the way in
    sm.node("s3:reports/2026/q3.pdf").write_bytes(payload)
    done: list[tuple[int, int]] = []
    sm.node("s3:reports").copy_to(sm.node("home:cache"), skip="hash",
                                  progress=lambda i, n: done.append((i, n)))
    assert (tmp_path / "cache/2026/q3.pdf").read_bytes() == payload
    assert done == [(1, 1)]
    skipped: list[str] = []
    sm.node("s3:reports").copy_to("home:cache", skip="hash",
                                  on_skip=lambda n, r: skipped.append(r))
    assert skipped and skipped[0].startswith("same content")


def test_node_request_economy(moto: MotoHandle, proxy: CountingProxy, tmp_path) -> None:
    bucket = make_bucket(moto.endpoint_url, f"econ-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([_s3_mount("s3", proxy.endpoint_url, bucket),
                  {"name": "home", "type": "local", "base_path": str(tmp_path)}])
    for i in range(12):
        sm.node(f"s3:tree/sub/f{i:02d}.txt").write_bytes(b"x" * (i + 1))
    node = sm.node("s3:tree/sub/f03.txt")

    def count(action) -> dict[str, int]:
        proxy.reset()
        action()
        return dict(proxy.counts)

    assert count(node.read_bytes) == {"GET": 1}
    assert count(node.md5hash) == {"HEAD": 1}
    assert count(node.exists) == {"HEAD": 1}
    assert count(lambda: [c.md5hash() for c in sm.node("s3:tree/sub").children()]) == {"LIST": 1}
    assert count(lambda: sm.node("s3:tree").copy_to("home:copy")) == {"LIST": 1, "GET": 12}
    assert count(lambda: sm.node("s3:tree").copy_to("home:copy", skip="hash")) == {"LIST": 1}
