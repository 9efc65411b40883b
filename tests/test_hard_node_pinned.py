"""Issue 8 section 3: a version-pinned node is a read-only snapshot that reads its version.

Run on the portable engine (memory, local, unversioned S3) and on native S3 versions."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageManager, StoragePermissionError
from storied.testing.s3server import MotoHandle, make_bucket

OLD, NEW = b"old content, version one", b"NEW content -- version two!"


@pytest.fixture(params=["memory", "local", "s3-portable", "s3-native"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    kind = str(request.param)
    storage = StorageManager()
    if kind == "memory":
        docs: dict[str, object] = {"type": "memory", "versioning": True}
    elif kind == "local":
        docs = {"type": "local", "base_path": str(tmp_path), "versioning": True}
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        native = kind == "s3-native"
        bucket = make_bucket(moto.endpoint_url, f"pin-{uuid.uuid4().hex[:12]}", versioned=native)
        docs = {"type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                "key": "k", "secret": "s", **({} if native else {"versioning": True})}
    storage.configure([{"name": "docs", **docs}, {"name": "other", "type": "memory"}])
    node = storage.node("docs:dir/a.txt")
    node.write_bytes(OLD)
    node.write_bytes(NEW)
    yield storage
    storage.close()


def test_pinned_node_refuses_every_write_path(sm: StorageManager) -> None:
    old = sm.node("docs:dir/a.txt", version=-2)
    refusals = [
        lambda: old.write_bytes(b"x"),
        lambda: old.write_text("x"),
        lambda: old.write("x"),
        lambda: old.open("w"),
        lambda: old.open("wb"),
        lambda: old.open("a"),
        lambda: old.open("x"),
        lambda: old.open("r+"),
        lambda: old.open("r+b"),
        lambda: old.delete(),
        lambda: old.delete(recursive=True),
        lambda: old.move_to("docs:dir/moved.txt"),
        lambda: old.move_to("other:moved.txt"),
        lambda: old.mkdir(parents=True, exist_ok=True),
        lambda: old.set_metadata({"a": "b"}),
        lambda: old.local_path("w").__enter__(),
        lambda: old.local_path("rw").__enter__(),
        lambda: old.rollback(to_version=0),
        lambda: old.fill_from_url("http://127.0.0.1:9/never"),
        lambda: old.copy_to(sm.node("docs:dir/b.txt", version=-1)),
    ]
    for refuse in refusals:
        with pytest.raises(StoragePermissionError) as caught:
            refuse()
        assert isinstance(caught.value, (PermissionError, ValueError))
    live = sm.node("docs:dir/a.txt")
    assert live.read_bytes() == NEW and live.version_count == 2
    assert not sm.node("docs:dir/moved.txt").exists() and not sm.node("other:moved.txt").exists()
    assert old.capabilities.readonly and not old.capabilities.write


def test_pinned_node_reads_its_version_everywhere(sm: StorageManager) -> None:
    old = sm.node("docs:dir/a.txt", version=-2)
    assert old.exists() and old.is_file() and not old.is_dir()
    assert old.read_bytes() == OLD and old.read_text() == OLD.decode()
    with old.open("rb") as f:
        assert f.read() == OLD
    with old.open("r") as f:
        assert f.read() == OLD.decode()
    assert b"".join(old.iter_bytes(5)) == OLD
    assert old.size() == len(OLD)
    assert old.md5hash() == hashlib.md5(OLD).hexdigest()
    assert old.info().size == len(OLD) and not old.info().is_dir
    assert old.url() is None
    sm.node("other:old.txt").write_bytes(OLD)
    assert old.same_content(sm.node("other:old.txt"))
    assert not old.same_content(sm.node("docs:dir/a.txt"))
    with old.local_path("r") as path:
        assert Path(path).read_bytes() == OLD
    assert sm.node("docs:dir/a.txt").read_bytes() == NEW


def test_copying_a_pinned_node_restores_that_version(sm: StorageManager) -> None:
    old = sm.node("docs:dir/a.txt", version=0)
    old.copy_to("other:restored.txt")
    assert sm.node("other:restored.txt").read_bytes() == OLD
    old.copy_to("docs:dir/a.txt")  # onto its own live file: a restore, not a no-op
    live = sm.node("docs:dir/a.txt")
    assert live.read_bytes() == OLD and live.version_count == 3
    old.copy_to("docs:dir/copy.txt")
    assert sm.node("docs:dir/copy.txt").read_bytes() == OLD


def test_missing_version_does_not_exist(sm: StorageManager) -> None:
    assert not sm.node("docs:dir/a.txt", version=5).exists()
    assert not sm.node("docs:dir/none.txt", version=-1).exists()
    with pytest.raises(FileNotFoundError):
        sm.node("docs:dir/a.txt", version=5).size()


def test_pinned_node_survives_deleting_the_live_file(sm: StorageManager) -> None:
    sm.node("docs:dir/a.txt").delete()
    old = sm.node("docs:dir/a.txt", version=-1)
    assert old.exists() and old.read_bytes() == NEW and old.size() == len(NEW)
    old.copy_to("other:back.txt")
    assert sm.node("other:back.txt").read_bytes() == NEW


def test_pinned_node_is_read_only_for_tags_too(sm: StorageManager) -> None:
    old = sm.node("docs:dir/a.txt", version=-2)
    with pytest.raises(StoragePermissionError):
        old.tag_version(-2, "first")
    sm.node("docs:dir/a.txt").tag_version(-2, "first")
    assert sm.node("docs:dir/a.txt", version="first").read_bytes() == OLD
    assert sm.node("docs:dir/a.txt", version="first").size() == len(OLD)


def test_serve_of_pinned_node_serves_its_version(sm: StorageManager) -> None:
    from storied.core.pinned import open_range

    old = sm.node("docs:dir/a.txt", version=-2)
    with open_range(old, 4, 11) as stream:
        assert stream.read() == OLD[4:11]
    with open_range(old) as stream:
        assert io.BytesIO(stream.read()).getvalue() == OLD


def test_wsgi_serve_of_pinned_node(sm: StorageManager) -> None:
    old = sm.node("docs:dir/a.txt", version=-2)
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(old.serve({"REQUEST_METHOD": "GET", "HTTP_RANGE": "bytes=4-10"},
                              start_response))
    assert str(seen["status"]).startswith("206") and body == OLD[4:11]
    assert b"".join(old.serve({"REQUEST_METHOD": "GET"}, start_response)) == OLD
