"""storied web over S3 with native versions (a real moto server behind a request-counting
proxy): the folder page is one listing request, the history page one version listing, and a
restore from the page is a new native version with the old content."""

from __future__ import annotations

import re
import uuid
import warnings

import pytest

from storied import StorageManager
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket
from storied.web import create_app

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "s3-token"


@pytest.fixture
def storage(moto: MotoHandle, proxy: CountingProxy) -> StorageManager:
    bucket = make_bucket(moto.endpoint_url, f"hg-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket, "key": "testing",
                   "secret": "testing", "endpoint_url": proxy.endpoint_url}])
    node = sm.node("s3:reports/q3.txt")
    node.write_text("draft\n")
    node.write_text("final\n")
    for i in range(5):
        sm.node(f"s3:reports/other{i}.txt").write_text(str(i))
    return sm


def test_pages_and_restore_on_native_versions(storage: StorageManager,
                                              proxy: CountingProxy) -> None:
    client = TestClient(create_app(storage, token=TOKEN))
    client.get(f"/?token={TOKEN}")
    assert "native" in client.get("/").text
    proxy.reset()
    folder = client.get("/browse", params={"path": "s3:reports"})
    assert folder.status_code == 200 and "q3.txt" in folder.text
    assert proxy.counts.get("LIST", 0) == 1 and sum(proxy.counts.values()) == 1, proxy.counts
    proxy.reset()
    page = client.get("/file", params={"path": "s3:reports/q3.txt"}).text
    assert proxy.counts.get("LISTVERSIONS", 0) == 1, proxy.counts
    node = storage.node("s3:reports/q3.txt")
    first = node.versions[0]["version_id"]
    assert first in page
    diff = client.get("/diff", params={"path": "s3:reports/q3.txt", "a": "0", "b": "-1"}).text
    assert '<td class="del">draft</td>' in diff or "<del>draft</del>" in diff
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    done = client.post("/act/restore", data={"csrf": csrf.group(1),
                                              "path": "s3:reports/q3.txt", "v": first})
    assert done.status_code == 200 and "as a new version" in done.text
    assert len(node.versions) == 3 and node.read_text() == "draft\n"
