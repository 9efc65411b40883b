"""Two spellings of one remote storage are one storage (issue 8, 1.2): a move between two mounts
of one bucket named through different endpoint spellings must not copy objects onto themselves
and then delete them."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import boto3
import pytest

from storied import StorageManager
from storied.backends._location import host_key, url_key
from storied.testing.s3server import MotoHandle


def test_endpoint_spellings_share_one_key() -> None:
    same = ["http://127.0.0.1:9000", "HTTP://LOCALHOST:9000/", "http://localhost.:9000",
            "http://[::1]:9000"]
    assert len({url_key(u) for u in same}) == 1
    assert url_key("https://minio.example:443/") == url_key("https://MINIO.example")
    assert url_key("http://a:9000") != url_key("http://a:9001")
    assert url_key("https://s3.eu-west-1.amazonaws.com", aws_is_global=True) is None
    assert host_key("LocalHost") == host_key("127.0.0.2") == "loopback"


@pytest.fixture
def two_spellings(moto: MotoHandle) -> Iterator[StorageManager]:
    port = urlsplit(moto.endpoint_url).port
    creds = {"key": "testing", "secret": "testing", "region": "us-east-1"}
    boto3.client("s3", endpoint_url=moto.endpoint_url, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1"
                 ).create_bucket(Bucket="aliased")
    sm = StorageManager()
    sm.configure([
        {"name": "a", "type": "s3", "bucket": "aliased",
         "endpoint_url": f"http://127.0.0.1:{port}", **creds},
        {"name": "b", "type": "s3", "bucket": "aliased",
         "endpoint_url": f"http://localhost:{port}/", **creds},
    ])
    yield sm
    sm.close()


def test_move_between_two_spellings_of_one_bucket_keeps_the_data(
    two_spellings: StorageManager,
) -> None:
    sm = two_spellings
    sm.node("a:dir/x.txt").write_text("precious")
    sm.node("a:dir").move_to("b:dir")  # the same objects: a no-op, never copy-then-delete
    assert sm.node("a:dir/x.txt").read_text() == "precious"
    sm.node("a:f.txt").write_text("kept")
    sm.node("a:f.txt").move_to("b:f.txt")
    assert sm.node("b:f.txt").read_text() == "kept"
