"""Issue 8 items 1.15 (open('x') exclusive on versioned mounts), 1.16 (skip_if_unchanged repairs
a stale working copy) and section 2 (unknown encodings are storied errors)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageError, StorageManager
from storied.errors import InvalidEncodingError
from storied.testing.s3server import MotoHandle, make_bucket


@pytest.fixture(params=["memory", "local", "s3-portable", "s3-native", "memory-plain"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    kind = str(request.param)
    storage = StorageManager()
    if kind.startswith("memory"):
        docs: dict[str, object] = {"type": "memory", "versioning": kind == "memory"}
    elif kind == "local":
        docs = {"type": "local", "base_path": str(tmp_path), "versioning": True}
    else:
        moto: MotoHandle = request.getfixturevalue("moto")
        native = kind == "s3-native"
        bucket = make_bucket(moto.endpoint_url, f"wr-{uuid.uuid4().hex[:12]}", versioned=native)
        docs = {"type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
                "key": "k", "secret": "s", **({} if native else {"versioning": True})}
    storage.configure([{"name": "docs", **docs}])
    yield storage
    storage.close()


# ---------------------------------------------------------------------- 1.15
def test_open_x_is_exclusive_between_two_creators(sm: StorageManager) -> None:
    node = sm.node("docs:x/new.txt")
    first, second = node.open("xb"), sm.node("docs:x/new.txt").open("xb")
    first.write(b"first creator")
    second.write(b"second creator")
    first.close()
    with pytest.raises(FileExistsError) as caught:
        second.close()
    assert isinstance(caught.value, StorageError)
    assert node.read_bytes() == b"first creator"
    assert len(node.versions) == (1 if node.capabilities.versioning else 0)


def test_open_x_concurrent_creators_one_wins(sm: StorageManager) -> None:
    results: list[str] = []
    barrier = threading.Barrier(4)

    def create(i: int) -> None:
        writer = sm.node("docs:race.txt").open("x")
        writer.write(f"writer {i}")
        barrier.wait()
        try:
            writer.close()
            results.append(f"writer {i}")
        except FileExistsError:
            pass

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1
    assert sm.node("docs:race.txt").read_text() == results[0]


# ---------------------------------------------------------------------- 1.16
def test_skip_if_unchanged_repairs_a_stale_working_copy(sm: StorageManager) -> None:
    node = sm.node("docs:cfg.json")
    node.write_text("v1")
    node.write_text("v2")
    sm._raw["docs"].write("cfg.json", b"v1")  # a crash left the working copy behind
    assert node.write_text("v2", skip_if_unchanged=True) is True
    assert node.read_text() == "v2"
    assert node.write_text("v2", skip_if_unchanged=True) is False
    sm._raw["docs"].write("cfg.json", b"XX")  # same size, other content
    assert node.write_text("v2", skip_if_unchanged=True) is True
    assert node.read_text() == "v2"
    sm._raw["docs"].delete("cfg.json")  # working copy lost entirely
    assert node.write_text("v2", skip_if_unchanged=True) is True
    assert node.read_text() == "v2"


# ---------------------------------------------------------------------- section 2
def test_unknown_encoding_is_a_storied_error(sm: StorageManager) -> None:
    node = sm.node("docs:enc.txt")
    node.write_text("héllo")
    attempts = [
        lambda: node.read_text(encoding="nope"),
        lambda: node.open("r", encoding="nope"),
        lambda: node.open("w", encoding="nope"),
        lambda: node.write_text("x", encoding="nope"),
        lambda: node.read(encoding="nope"),
        lambda: node.write("x", encoding="nope"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidEncodingError) as caught:
            attempt()
        assert isinstance(caught.value, LookupError) and isinstance(caught.value, ValueError)
    assert node.read_text() == "héllo"


def test_undecodable_and_unencodable_text_are_storied_errors(sm: StorageManager) -> None:
    from storied.errors import TextDecodeError, TextEncodeError

    node = sm.node("docs:latin1.txt")
    node.write_bytes("café\n".encode("latin-1") * 3)
    reads = [lambda: node.read_text(), lambda: node.open("r").read(),
             lambda: node.open("r").readline(), lambda: list(node.open("r")),
             lambda: node.open("r").readlines(), lambda: sm.iternode(node).read_text()]
    for i, read in enumerate(reads):
        with pytest.raises(UnicodeDecodeError) as caught:
            read()
        assert isinstance(caught.value, TextDecodeError)
        assert "latin1.txt" in str(caught.value) or i == len(reads) - 1
    assert node.read_text(encoding="latin-1") == "café\n" * 3
    writes = [lambda: node.write_text("€", encoding="ascii"),
              lambda: node.open("w", encoding="ascii").write("€")]
    for write in writes:
        with pytest.raises(UnicodeEncodeError) as caught_enc:
            write()
        assert isinstance(caught_enc.value, TextEncodeError)
    assert node.read_text(encoding="latin-1") == "café\n" * 3
