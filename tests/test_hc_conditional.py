"""Conditional writes in the node API (issue 9 §5): ``write_bytes``/``write_text`` with
``if_match=`` and ``create_only=`` on memory, local, S3 (portable and native) and plain mounts;
a refused write writes, records and announces nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.base import WrappedBackend
from storied.backends.memory import MemoryBackend
from storied.capabilities import Capabilities
from storied.errors import (
    InvalidArgumentError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.testing.s3server import MotoHandle, make_bucket

KINDS = ["memory", "memory-plain", "local", "local-plain", "s3-portable", "s3-native",
         "s3-plain"]


def _mount(kind: str, tmp_path: Path, moto: MotoHandle | None) -> dict[str, object]:
    versioned = not kind.endswith("-plain")
    if kind.startswith("memory"):
        return {"name": "m", "type": "memory", "versioning": versioned}
    if kind.startswith("local"):
        return {"name": "m", "type": "local", "base_path": str(tmp_path),
                "versioning": versioned}
    assert moto is not None
    bucket = make_bucket(moto.endpoint_url, f"cw-{uuid.uuid4().hex[:12]}",
                         versioned=kind == "s3-native")
    return {"name": "m", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
            "key": "testing", "secret": "testing", "versioning": kind != "s3-plain"}


@pytest.fixture(params=KINDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    moto = request.getfixturevalue("moto") if request.param.startswith("s3") else None
    sm = StorageManager()
    sm.configure([_mount(request.param, tmp_path, moto)])
    yield sm
    sm.close()


def _events(sm: StorageManager) -> list[str]:
    seen: list[str] = []
    sm.on("*", lambda node, info: seen.append(f"{info['event']} {node.path}"))
    return seen


def test_create_only_and_if_match(storage: StorageManager) -> None:
    seen = _events(storage)
    node = storage.node("m:dir/a.txt")
    assert node.write_text("one", create_only=True) is True
    before = (node.read_text(), len(node.versions), len(seen))
    with pytest.raises(StorageAlreadyExistsError):
        node.write_text("two", create_only=True)
    with pytest.raises(FileExistsError):  # also the builtin
        node.write_bytes(b"two", create_only=True)
    assert (node.read_text(), len(node.versions), len(seen)) == before
    etag = node.info().etag
    assert etag
    assert node.write_bytes(b"three", if_match=etag) is True
    assert node.read_text() == "three"
    before = (node.read_text(), len(node.versions), len(seen))
    with pytest.raises(PreconditionFailedError):
        node.write_text("four", if_match=etag)  # stale etag: someone (we) wrote meanwhile
    assert (node.read_text(), len(node.versions), len(seen)) == before
    with pytest.raises(StorageNotFoundError):
        storage.node("m:missing.txt").write_text("x", if_match=etag)
    assert not storage.node("m:missing.txt").exists()
    versions = node.versions
    if versions:  # a versioned mount: exactly the two acknowledged writes were recorded
        assert len(versions) == 2
        assert storage.verify("m:").ok


def test_existing_keywords_still_work(storage: StorageManager) -> None:
    node = storage.node("m:k.txt")
    assert node.write_bytes(b"abc", True) is True  # positional skip_if_unchanged
    assert node.write_bytes(b"abc", skip_if_unchanged=True) is False
    assert node.write_text("abc", "utf-8", True) is False
    assert node.write_text("abd", encoding="ascii", skip_if_unchanged=True) is True
    assert node.write("abe", "w") is True and node.write(b"abf", "wb") is True
    node.write_bytes(b"m", metadata={"x": "y"})
    assert node.read_bytes() == b"m"
    etag = node.info().etag
    assert etag is not None
    # unchanged content is skipped before the condition is looked at
    assert node.write_bytes(b"m", skip_if_unchanged=True, if_match="stale") is False


def test_bad_condition_arguments(storage: StorageManager) -> None:
    node = storage.node("m:b.txt")
    with pytest.raises(InvalidArgumentError):
        node.write_text("x", if_match="e", create_only=True)
    with pytest.raises(InvalidArgumentError):
        node.write_text("x", if_match=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        node.write_text("x", if_match="")
    assert not node.exists()


class _NoConditionalWrites(WrappedBackend):
    """A memory store whose capabilities say it has no conditional writes (like SMB)."""

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities.replace(conditional_write=False)


def test_mount_without_conditional_writes_refuses_naming_it() -> None:
    sm = StorageManager()
    inner: Any = MemoryBackend()
    sm.configure([{"name": "plainfs", "backend": _NoConditionalWrites(inner)}])
    node = sm.node("plainfs:a.txt")
    node.write_text("1")
    for kwargs in ({"if_match": node.info().etag or "x"}, {"create_only": True}):
        with pytest.raises(UnsupportedOperation, match="plainfs"):
            node.write_text("2", **kwargs)
    assert node.read_text() == "1"


def test_sftp_a_real_storage_without_conditional_writes(tmp_path: Path) -> None:
    """SFTP has no conditional writes: conditional calls are refused naming the mount; a
    versioned SFTP mount still emits and journals its events (one writer process)."""
    from storied.testing import servers

    handle = servers.start_sftp(tmp_path)
    try:
        sm = StorageManager()
        sm.configure([{"name": "plain", "type": "sftp", **handle.config},
                      {"name": "hist", "type": "sftp", **handle.config, "path": "h",
                       "versioning": True}])
        seen = _events(sm)
        for mount in ("plain", "hist"):
            node = sm.node(f"{mount}:a.txt")
            node.write_text("1")
            for kwargs in ({"if_match": node.info().etag or "x"}, {"create_only": True}):
                with pytest.raises(UnsupportedOperation, match=repr(mount)):
                    node.write_text("2", **kwargs)
            assert node.read_text() == "1"
            node.delete()
        assert seen == ["file_written a.txt", "file_deleted a.txt", "version_created a.txt",
                        "file_written a.txt", "file_deleted a.txt"]
        assert [(e.type, e.path) for e in sm.events("hist:")] == [
            ("version_created", "a.txt"), ("file_deleted", "a.txt")]
        sm.close()
    finally:
        handle.stop()
