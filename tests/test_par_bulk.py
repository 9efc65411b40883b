"""Bulk version operations on a bounded pool: snapshots, restores, cleanup, compaction."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.base import Backend, WrappedBackend
from storied.errors import InvalidArgumentError, StorageIOError
from storied.info import Data, Info, WriteMode
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket


def _s3(name: str, endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
            "key": "testing", "secret": "testing", **extra}


def _three_versions(sm: StorageManager, mount: str, count: int) -> dict[str, bytes]:
    first = {}
    for i in range(count):
        node = sm.node(f"{mount}:docs/f{i:02d}.txt")
        for n in range(3):
            node.write_bytes(b"file %d version %d\n" % (i, n))
        first[f"docs/f{i:02d}.txt"] = b"file %d version 2\n" % i
    return first


@pytest.mark.parametrize("versioned_bucket", [True, False])
def test_snapshot_and_restore_with_workers_match_sequential_requests(
    moto: MotoHandle, proxy: CountingProxy, versioned_bucket: bool,
) -> None:
    bucket = make_bucket(moto.endpoint_url, f"pbulk-{uuid.uuid4().hex[:12]}",
                         versioned=versioned_bucket)
    sm = StorageManager()
    sm.configure([_s3("v", proxy.endpoint_url, bucket, versioning=True)])
    snap = _three_versions(sm, "v", 12)
    counts = []
    for workers in (1, 8):
        proxy.reset()
        made = sm.create_snapshot("v:docs", f"s{workers}", workers=workers)
        counts.append(dict(proxy.counts))
        assert len(made["files"]) == 12
    assert counts[0] == counts[1]
    assert sm.get_snapshot("s1")["files"] == sm.get_snapshot("s8")["files"]
    for i in range(12):
        sm.node(f"v:docs/f{i:02d}.txt").write_bytes(b"changed")
    done: list[tuple[int, int]] = []
    main, threads = threading.get_ident(), set()

    def progress(d: int, t: int) -> None:
        threads.add(threading.get_ident())
        done.append((d, t))

    report = sm.restore_snapshot("s8", workers=8, progress=progress)
    assert report["restored"] == sorted(snap) and threads == {main}
    assert done == [(i, 12) for i in range(1, 13)]
    assert {p: sm.node(f"v:{p}").read_bytes() for p in snap} == snap


def test_bulk_cleanup_and_compact_with_workers_remove_the_same(tmp_path: Path) -> None:
    results = []
    for workers in (1, 4):
        sm = StorageManager()
        sm.configure([{"name": "v", "type": "memory", "store": f"pb-{workers}-{tmp_path.name}",
                       "versioning": True}])
        _three_versions(sm, "v", 20)
        plan = sm.bulk_cleanup_versions("v:docs", keep_last=1, dry_run=True, workers=workers)
        removed = sm.bulk_cleanup_versions("v:docs", keep_last=1, workers=workers)
        assert {p: len(v) for p, v in removed.items()} == {p: len(v) for p, v in plan.items()}
        assert all(len(sm.node(f"v:{p}").versions) == 1 for p in _paths(removed))
        assert sm.bulk_compact_versions("v:docs", workers=workers) == {}
        results.append(sorted((p, len(v)) for p, v in removed.items()))
    assert results[0] == results[1] and len(results[0]) == 20


def _paths(found: dict[str, Any]) -> list[str]:
    return [p.split(":", 1)[1] for p in found]


class _FailOneWrite(WrappedBackend):
    def __init__(self, inner: Backend, marker: str) -> None:
        super().__init__(inner)
        self.marker = marker

    def write(self, path: str, data: Data, *, mode: WriteMode = WriteMode.OVERWRITE,
              etag: str | None = None, metadata: dict[str, str] | None = None) -> Info:
        if self.marker in path and not path.startswith(".storied"):
            raise StorageIOError(f"injected failure writing {path}")
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)


def test_restore_failure_is_reported_per_file_and_raised(tmp_path: Path) -> None:
    sm = StorageManager()
    (tmp_path / "v").mkdir()
    sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path / "v"),
                   "versioning": True}])
    snap = _three_versions(sm, "v", 8)
    sm.create_snapshot("v:docs", "base", workers=4)
    for i in range(8):
        sm.node(f"v:docs/f{i:02d}.txt").write_bytes(b"changed")
    history = sm.history("v")
    assert history is not None
    engine = history.engine
    engine.meta = _FailOneWrite(engine.meta, "f03")  # type: ignore[misc]
    sm._mounts["v"] = _FailOneWrite(sm._mounts["v"], "f03")
    sm._raw["v"] = _FailOneWrite(sm._raw["v"], "f03")
    sm._histories.clear()
    with pytest.raises(StorageIOError) as caught:
        sm.restore_snapshot("base", workers=1)
    report = caught.value.report  # type: ignore[attr-defined]
    assert list(report.failed) == ["docs/f03.txt"]
    assert report.done == [p for p in sorted(snap) if p < "docs/f03.txt"]
    assert report.not_started == [p for p in sorted(snap) if p > "docs/f03.txt"]


def test_bad_workers_are_refused(tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "store": f"pbw-{tmp_path.name}",
                   "versioning": True}])
    _three_versions(sm, "v", 2)
    with pytest.raises(InvalidArgumentError):
        sm.bulk_cleanup_versions("v:docs", keep_last=1, workers=0)
    with pytest.raises(InvalidArgumentError):
        sm.create_snapshot("v:docs", "x", workers=-1)
    assert len(sm.node("v:docs/f00.txt").versions) == 3 and not sm.list_snapshots()
