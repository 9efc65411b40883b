"""A node that came from a listing answers its new storage class after set_storage_class."""

from __future__ import annotations

import uuid

from storied import StorageManager
from storied.testing.s3server import MotoHandle, make_bucket


def test_listed_node_sees_its_new_class(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"cl-{uuid.uuid4().hex[:12]}")
    sm = StorageManager()
    sm.configure([{"name": "s", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "testing", "secret": "testing"}])
    sm.node("s:d/a.txt").write_text("hello")
    (listed,) = sm.node("s:d").children()
    assert listed.storage_class() == "STANDARD"  # from the listing
    listed.set_storage_class("STANDARD_IA")
    assert listed.storage_class() == "STANDARD_IA"
    assert sm.node("s:d/a.txt").storage_class() == "STANDARD_IA"
    assert sm.node("s:d/a.txt").read_text() == "hello"
