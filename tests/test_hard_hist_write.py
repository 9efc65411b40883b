"""Write integrity of the portable engine: exclusive writes, failed writes leave no version."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from storied import StorageManager
from storied.backends.local import LocalBackend
from storied.backends.memory import MemoryBackend
from storied.errors import StorageAlreadyExistsError, StorageError, TransientStorageError
from storied.testing.doubles import FaultyBackend
from storied.testing.s3server import MotoHandle, make_bucket, s3_client
from storied.versioning.portable import PortableEngine


def test_exclusive_writers_racing_make_one_version(tmp_path: Path) -> None:
    engine = PortableEngine(LocalBackend(tmp_path), LocalBackend(tmp_path))
    won: list[bytes] = []
    refused: list[bytes] = []
    barrier = threading.Barrier(8)

    def attempt(k: int) -> None:
        body = f"writer {k}".encode()
        barrier.wait()
        try:
            engine.write("race.txt", body, exclusive=True)
            won.append(body)
        except StorageAlreadyExistsError:
            refused.append(body)

    threads = [threading.Thread(target=attempt, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 7
    assert (tmp_path / "race.txt").read_bytes() == won[0]
    assert [v.size for v in engine.versions("race.txt")] == [len(won[0])]
    assert engine.verify().ok


def test_failing_working_copy_write_leaves_no_version(tmp_path: Path) -> None:
    store = LocalBackend(tmp_path)
    faulty = FaultyBackend(store, fail_times=10**6, operations=frozenset({"write"}))
    engine = PortableEngine(faulty, store)
    engine_ok = PortableEngine(store, store)
    engine_ok.write("doc.txt", b"acknowledged")
    with pytest.raises(TransientStorageError):
        engine.write("doc.txt", b"never acknowledged")
    assert [v.size for v in engine.versions("doc.txt")] == [len(b"acknowledged")]
    assert engine.versions("doc.txt")[-1].is_latest
    assert (tmp_path / "doc.txt").read_bytes() == b"acknowledged"
    report = engine.verify()
    assert report.ok and report.stale == [], (report.problems, report.stale)


def test_failing_exclusive_write_frees_its_claim() -> None:
    store = MemoryBackend(f"hh-{uuid.uuid4().hex[:8]}")
    faulty_meta = FaultyBackend(store, fail_times=1, operations=frozenset({"write"}))
    engine = PortableEngine(store, faulty_meta)
    engine._format_checked = True  # the format marker would take the one injected failure
    with pytest.raises(TransientStorageError):
        engine.write("claimed.txt", b"x", exclusive=True)  # the blob write fails
    assert not store.exists("claimed.txt") and engine.versions("claimed.txt") == []
    engine.write("claimed.txt", b"second try", exclusive=True)
    assert store.read_bytes("claimed.txt") == b"second try"


def test_s3_working_copy_put_failing_leaves_no_version(moto: MotoHandle) -> None:
    """Real S3 refusing the working-copy PUT: the history lives in another bucket, the data
    bucket is gone."""
    history_bucket = make_bucket(moto.endpoint_url, f"hh-{uuid.uuid4().hex[:10]}")
    data_bucket = make_bucket(moto.endpoint_url, f"hd-{uuid.uuid4().hex[:10]}")
    common = {"type": "s3", "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s",
              "retries": 1}
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "bucket": history_bucket, **common},
        {"name": "v", "bucket": data_bucket, "versioning": True, "history": "archive:h",
         **common},
    ])
    try:
        node = sm.node("v:report.txt")
        node.write_text("kept")
        client = s3_client(moto.endpoint_url)
        try:
            client.delete_object(Bucket=data_bucket, Key="report.txt")
            client.delete_bucket(Bucket=data_bucket)
        finally:
            client.close()
        with pytest.raises(StorageError):
            node.write_text("refused by S3")
        history = sm.history("v")
        assert history is not None
        assert [v.size for v in history.versions("report.txt")] == [4]
        assert sm.node("archive:h").exists()
    finally:
        sm.close()


def test_path_that_became_a_directory_since_the_last_write(tmp_path: Path) -> None:
    """The engine skips its pre-check for a path it just wrote; the undo still holds."""
    engine = PortableEngine(LocalBackend(tmp_path), LocalBackend(tmp_path))
    first = engine.write("x.txt", b"a file")
    (tmp_path / "x.txt").unlink()
    (tmp_path / "x.txt").mkdir()
    (tmp_path / "x.txt" / "inner").write_bytes(b"inside")
    with pytest.raises(StorageError):
        engine.write("x.txt", b"refused")
    assert engine.versions("x.txt") == [first]
    assert (tmp_path / "x.txt" / "inner").read_bytes() == b"inside"
    announced = [p for p in (tmp_path / ".storied" / "recent").rglob("*") if p.is_file()]
    assert [p.name for p in announced] == [f"{first.version_id}.w.{first.size}.{first.etag}."
                                           f"{first.sha256}"]


def test_failing_delete_leaves_no_tombstone(tmp_path: Path) -> None:
    store = LocalBackend(tmp_path)
    engine = PortableEngine(store, store)
    kept = engine.write("keep.txt", b"still here")
    faulty = FaultyBackend(store, fail_times=10**6, operations=frozenset({"delete"}))
    with pytest.raises(TransientStorageError):
        PortableEngine(faulty, store).delete("keep.txt")
    assert engine.versions("keep.txt") == [kept] and kept.is_latest
    assert (tmp_path / "keep.txt").read_bytes() == b"still here"
    report = engine.verify()
    assert report.ok and report.stale == [], (report.problems, report.stale)
