"""Native versions (S3 bucket versioning) against a real moto server: the S3 adapter's version
methods, the native engine over it (bare and prefixed), and their request counts.

Moto stamps versions to the second, so the writes of one test mostly share a timestamp: the
order asserted here cannot come from sorting on time.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from storied.backends.base import Backend
from storied.backends.s3 import S3Backend, from_config
from storied.errors import StorageNotFoundError
from storied.info import ObjectVersion
from storied.testing.s3server import CountingProxy, MotoHandle, make_bucket, request_label
from storied.versioning.engine import Version
from storied.versioning.native import NativeEngine

_SEQ = itertools.count()
_HAS_WALK_VERSIONS = hasattr(Backend, "walk_versions")


def _name(kind: str = "nv") -> str:
    return f"{kind}-{next(_SEQ)}-{uuid.uuid4().hex[:10]}"


def _backend(endpoint_url: str, bucket: str) -> S3Backend:
    return S3Backend(bucket, key="testing", secret="testing", endpoint_url=endpoint_url)


@pytest.fixture
def vbucket(moto: MotoHandle) -> str:
    """A fresh bucket with versioning enabled."""
    return make_bucket(moto.endpoint_url, _name(), versioned=True)


@pytest.fixture
def s3(proxy: CountingProxy, vbucket: str) -> Iterator[S3Backend]:
    """The adapter on the versioned bucket, through the counting proxy."""
    backend = _backend(proxy.endpoint_url, vbucket)
    yield backend
    backend.close()


@pytest.fixture
def engine(s3: S3Backend) -> NativeEngine:
    return NativeEngine(s3)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _counts(proxy: CountingProxy, action: Callable[[], Any]) -> dict[str, int]:
    """The requests ``action`` sent, by label."""
    proxy.reset()
    action()
    return dict(proxy.counts)


def _read(engine: NativeEngine, path: str, version: Version, *span: int) -> bytes:
    with engine.open_version(path, version, *span) as stream:
        data: bytes = stream.read()
    return data


def _write_all(backend: Backend, path: str, bodies: list[bytes]) -> list[str]:
    ids = []
    for body in bodies:
        version_id = backend.write(path, body).version_id
        assert version_id
        ids.append(version_id)
    return ids


# ------------------------------------------------------------------------- the adapter
def test_write_and_info_carry_the_version_id(s3: S3Backend, proxy: CountingProxy) -> None:
    written: list[str | None] = []
    assert _counts(proxy, lambda: written.append(s3.write("a.txt", b"x").version_id)) == {"PUT": 1}
    infos = []
    assert _counts(proxy, lambda: infos.append(s3.info("a.txt"))) == {"HEAD": 1}
    assert written[0] and infos[0].version_id == written[0]
    assert [v.version_id for v in s3.list_versions("a.txt")] == written


def test_listing_is_exact_to_the_key(s3: S3Backend) -> None:
    own = _write_all(s3, "f.txt", [b"1", b"2"])
    bak = _write_all(s3, "f.txt.bak", [b"b"])
    child = _write_all(s3, "f.txt/x", [b"c"])
    _write_all(s3, "f.tx", [b"short"])
    assert [v.version_id for v in s3.list_versions("f.txt")] == own
    assert [v.version_id for v in s3.list_versions("f.txt.bak")] == bak
    assert [v.version_id for v in s3.list_versions("f.txt/x")] == child
    assert {v.path for v in s3.list_versions("f.txt")} == {"f.txt"}
    assert s3.list_versions("f.txt/") == [] and s3.list_versions("nothing") == []


def test_records_describe_each_version(s3: S3Backend) -> None:
    s3.write("r.txt", b"hello")
    s3.delete("r.txt")
    first, marker = s3.list_versions("r.txt")
    assert first.path == "r.txt" and first.size == 5 and not first.is_delete_marker
    assert first.etag == first.md5 == _md5(b"hello")
    assert marker.is_delete_marker and marker.is_latest and not first.is_latest
    assert (marker.size, marker.etag, marker.md5) == (0, "", None)


def test_same_second_writes_keep_their_order(s3: S3Backend, engine: NativeEngine) -> None:
    bodies = [f"version {n}".encode() for n in range(5)]
    ids = _write_all(s3, "tie.txt", bodies)
    listed = s3.list_versions("tie.txt")
    assert [v.version_id for v in listed] == ids
    assert [v.is_latest for v in listed] == [False] * 4 + [True]
    versions = engine.versions("tie.txt")
    assert [v.version_id for v in versions] == ids
    assert [_read(engine, "tie.txt", v) for v in versions] == bodies
    assert [v.is_latest for v in versions] == [False] * 4 + [True]


def test_delete_keeps_the_history_and_writing_continues_it(
    s3: S3Backend, engine: NativeEngine
) -> None:
    ids = _write_all(s3, "d.txt", [b"one", b"two"])
    engine.delete("d.txt")
    assert not s3.exists("d.txt")
    listed = s3.list_versions("d.txt")
    assert [v.version_id for v in listed if not v.is_delete_marker] == ids
    assert listed[-1].is_delete_marker and listed[-1].is_latest
    after_delete = engine.versions("d.txt")
    assert [v.version_id for v in after_delete] == ids
    assert not any(v.is_latest for v in after_delete)
    with pytest.raises(StorageNotFoundError):
        engine.delete("d.txt")  # already deleted: no second marker
    new = engine.write("d.txt", b"three")
    assert new.is_latest and new.etag == _md5(b"three") and new.size == 5
    again = engine.versions("d.txt")
    assert [v.version_id for v in again] == [*ids, new.version_id]
    assert [v.is_latest for v in again] == [False, False, True]
    assert again[-1].last_modified.tzinfo is not None
    markers = [v for v in s3.list_versions("d.txt") if v.is_delete_marker]
    assert len(markers) == 1 and not markers[0].is_latest


def test_delete_version_of_a_middle_version(
    s3: S3Backend, engine: NativeEngine, proxy: CountingProxy
) -> None:
    ids = _write_all(s3, "m.txt", [b"a", b"b", b"c"])
    middle = engine.versions("m.txt")[1]
    assert _counts(proxy, lambda: engine.delete_version("m.txt", middle)) == {"DELETE": 1}
    left = engine.versions("m.txt")
    assert [v.version_id for v in left] == [ids[0], ids[2]] and left[-1].is_latest
    assert s3.read_bytes("m.txt") == b"c"
    with pytest.raises(StorageNotFoundError):
        _read(engine, "m.txt", middle)


def test_deleting_the_delete_marker_undeletes(s3: S3Backend, engine: NativeEngine) -> None:
    (first,) = _write_all(s3, "u.txt", [b"kept"])
    engine.delete("u.txt")
    marker = s3.list_versions("u.txt")[-1]
    assert marker.is_delete_marker and not s3.exists("u.txt")
    s3.delete_version("u.txt", marker.version_id)
    assert s3.read_bytes("u.txt") == b"kept"
    (only,) = engine.versions("u.txt")
    assert only.version_id == first and only.is_latest
    assert [v.is_delete_marker for v in s3.list_versions("u.txt")] == [False]


def test_open_version_reads_each_version_and_ranges(
    s3: S3Backend, engine: NativeEngine, proxy: CountingProxy
) -> None:
    bodies = [b"0123456789", b"abcdefghij", b"KLMNOPQRST"]
    _write_all(s3, "o.bin", bodies)
    versions = engine.versions("o.bin")
    assert [_read(engine, "o.bin", v) for v in versions] == bodies
    assert _counts(proxy, lambda: _read(engine, "o.bin", versions[0], 2, 5)) == {"GET": 1}
    assert _read(engine, "o.bin", versions[1], 7) == b"hij"
    assert _read(engine, "o.bin", versions[2], 8, 100) == b"ST"
    assert _read(engine, "o.bin", versions[2], 50) == b""
    assert _read(engine, "o.bin", versions[2], 4, 4) == b""
    with s3.open_version("o.bin", versions[1].version_id, 0, 3) as stream:
        assert stream.read() == b"abc"


def test_open_version_of_a_marker_or_unknown_id_is_not_found(
    s3: S3Backend, engine: NativeEngine
) -> None:
    _write_all(s3, "n.txt", [b"x"])
    engine.delete("n.txt")
    marker = s3.list_versions("n.txt")[-1]
    for version_id in (marker.version_id, "no-such-version"):
        with pytest.raises(StorageNotFoundError):
            s3.open_version("n.txt", version_id).read()
    with pytest.raises(StorageNotFoundError):
        s3.open_version("n.txt", marker.version_id, 3, 3)


def test_missing_bucket_is_named(proxy: CountingProxy) -> None:
    backend = _backend(proxy.endpoint_url, "no-such-bucket-here")
    with pytest.raises(StorageNotFoundError, match="no-such-bucket-here"):
        backend.list_versions("a.txt")
    with pytest.raises(StorageNotFoundError, match="no-such-bucket-here"):
        list(backend.walk_versions(""))


def test_unversioned_bucket_lists_one_null_version(moto: MotoHandle, proxy: CountingProxy) -> None:
    backend = _backend(proxy.endpoint_url, make_bucket(moto.endpoint_url, _name("plain")))
    backend.write("p.txt", b"1")
    backend.write("p.txt", b"2")
    (only,) = backend.list_versions("p.txt")
    assert only.version_id == "null" and only.is_latest and only.size == 1
    assert not backend.capabilities.native_versions


# ------------------------------------------------------------------------- prefixes
def _tree(s3: S3Backend) -> None:
    _write_all(s3, "a.txt", [b"1", b"2"])
    _write_all(s3, "d/b.txt", [b"b"])
    s3.delete("d/b.txt")
    _write_all(s3, "d/c.txt.bak", [b"c"])
    _write_all(s3, "dd.txt", [b"dd"])
    _write_all(s3, ".storied/x", [b"hidden"])


def test_walk_versions_verify_and_history_paths(
    s3: S3Backend, engine: NativeEngine, proxy: CountingProxy
) -> None:
    _tree(s3)
    walked: list[ObjectVersion] = []
    assert _counts(proxy, lambda: walked.extend(s3.walk_versions("d"))) == {"LISTVERSIONS": 1}
    assert [(v.path, v.is_delete_marker) for v in walked] == [
        ("d/b.txt", False),
        ("d/b.txt", True),
        ("d/c.txt.bak", False),
    ]
    assert list(s3.walk_versions("nothing")) == []
    assert list(engine.history_paths()) == ["a.txt", "d/b.txt", "d/c.txt.bak", "dd.txt"]
    assert list(engine.history_paths("d")) == ["d/b.txt", "d/c.txt.bak"]
    report = engine.verify()
    assert report.ok and report.checked == 5 and not report.problems
    assert engine.verify("d").checked == 2


def _prefixed(endpoint_url: str, bucket: str) -> Backend:
    config = {"name": "pre", "bucket": bucket, "base_path": "base/dir"}
    return from_config({**config, "endpoint_url": endpoint_url, "key": "t", "secret": "t"})


def test_engine_over_a_prefixed_mount(proxy: CountingProxy, vbucket: str, s3: S3Backend) -> None:
    engine = NativeEngine(_prefixed(proxy.endpoint_url, vbucket))
    first = engine.write("f.txt", b"first")
    second = engine.write("f.txt", b"second")
    _write_all(s3, "f.txt", [b"outside the mount"])
    versions = engine.versions("f.txt")
    assert [v.version_id for v in versions] == [first.version_id, second.version_id]
    assert [_read(engine, "f.txt", v) for v in versions] == [b"first", b"second"]
    assert [v.path for v in s3.list_versions("base/dir/f.txt")] == ["base/dir/f.txt"] * 2
    engine.delete("f.txt")
    assert not any(v.is_latest for v in engine.versions("f.txt"))
    engine.delete_version("f.txt", versions[0])
    assert [v.version_id for v in engine.versions("f.txt")] == [second.version_id]
    assert _counts(proxy, lambda: engine.write("g.txt", b"g")) == {"PUT": 1}


@pytest.mark.skipif(not _HAS_WALK_VERSIONS, reason="walk_versions is not in the contract yet")
def test_history_over_a_prefixed_mount(proxy: CountingProxy, vbucket: str, s3: S3Backend) -> None:
    engine = NativeEngine(_prefixed(proxy.endpoint_url, vbucket))
    engine.write("f.txt", b"1")
    engine.write("sub/g.txt", b"2")
    _write_all(s3, "base/dir/.storied/x", [b"hidden"])
    _write_all(s3, "elsewhere.txt", [b"outside"])
    assert list(engine.history_paths()) == ["f.txt", "sub/g.txt"]
    assert list(engine.history_paths("sub")) == ["sub/g.txt"]
    assert engine.verify().checked == 2


# ------------------------------------------------------------------------- request economy
@pytest.fixture(scope="module")
def long_history(moto: MotoHandle) -> tuple[str, list[str]]:
    """A bucket where ``big.txt`` has 1,200 versions (written one by one: moto loses versions
    of a key written concurrently) and ``big.tx`` one."""
    bucket = make_bucket(moto.endpoint_url, _name("long"), versioned=True)
    backend = _backend(moto.endpoint_url, bucket)
    ids = _write_all(backend, "big.txt", [b"%d" % n for n in range(1200)])
    _write_all(backend, "big.tx", [b"short"])
    backend.close()
    return bucket, ids


def test_long_history_costs_one_listing_per_1000(
    proxy: CountingProxy, long_history: tuple[str, list[str]]
) -> None:
    bucket, ids = long_history
    engine = NativeEngine(_backend(proxy.endpoint_url, bucket))
    found: list[Version] = []
    assert _counts(proxy, lambda: found.extend(engine.versions("big.txt"))) == {"LISTVERSIONS": 2}
    assert [v.version_id for v in found] == ids
    assert [v.is_latest for v in found].count(True) == 1 and found[-1].is_latest
    previous: list[bytes] = []

    def read_previous() -> None:
        previous.append(_read(engine, "big.txt", engine.versions("big.txt")[-2]))

    assert _counts(proxy, read_previous) == {"LISTVERSIONS": 2, "GET": 1}
    assert previous == [b"1198"]
    short: list[Version] = []
    assert _counts(proxy, lambda: short.extend(engine.versions("big.tx"))) == {"LISTVERSIONS": 1}
    assert len(short) == 1


def test_short_history_read_costs_two_requests(engine: NativeEngine, proxy: CountingProxy) -> None:
    for n in range(3):
        engine.write("h.txt", b"v%d" % n)
    got: list[bytes] = []
    action = lambda: got.append(_read(engine, "h.txt", engine.versions("h.txt")[-2]))  # noqa: E731
    assert _counts(proxy, action) == {"LISTVERSIONS": 1, "GET": 1}
    assert got == [b"v1"]
    assert _counts(proxy, lambda: engine.write("h.txt", b"v3")) == {"PUT": 1}


def test_walk_versions_over_pages(
    proxy: CountingProxy, long_history: tuple[str, list[str]]
) -> None:
    bucket, ids = long_history
    backend = _backend(proxy.endpoint_url, bucket)
    walked: list[ObjectVersion] = []
    assert _counts(proxy, lambda: walked.extend(backend.walk_versions(""))) == {"LISTVERSIONS": 2}
    assert [v.path for v in walked] == ["big.tx"] + ["big.txt"] * 1200
    assert [v.version_id for v in walked[1:]] == ids
    report = NativeEngine(backend).verify()
    assert report.checked == 1201 and report.ok


def test_request_label_names_version_listings() -> None:
    assert request_label("GET", "/b", "versions&prefix=f.txt&max-keys=1000") == "LISTVERSIONS"
    assert request_label("GET", "/b", "versions&key-marker=a&version-id-marker=x") == (
        "LISTVERSIONS"
    )
    assert request_label("GET", "/b", "versioning") == "GET"
    assert request_label("GET", "/b/k", "versionId=x") == "GET"
    assert request_label("GET", "/b", "list-type=2&prefix=x") == "LIST"


# ------------------------------------------------------------------------- S3's own order
_ENTRY = (
    "<{tag}><Key>{key}</Key><VersionId>{vid}</VersionId><IsLatest>{latest}</IsLatest>"
    "<LastModified>2025-01-02T03:04:05.000Z</LastModified>{extra}</{tag}>"
)


def _aws_listing(entries: list[tuple[str, str, str, bool]]) -> bytes:
    """A ListObjectVersions body as AWS sends it: one list, versions and markers interleaved."""
    body = []
    for tag, key, vid, latest in entries:
        extra = '<ETag>"0cc175b9c0f1b6a831c399e269772661"</ETag><Size>1</Size>'
        body.append(
            _ENTRY.format(
                tag=tag, key=key, vid=vid, latest=str(latest).lower(),
                extra=extra if tag == "Version" else "",
            )
        )  # fmt: skip
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Name>b</Name><Prefix>f.txt</Prefix><KeyMarker></KeyMarker>"
        "<VersionIdMarker></VersionIdMarker><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>false</IsTruncated>" + "".join(body) + "</ListVersionsResult>"
    ).encode()


class _Replay(BaseHTTPRequestHandler):
    """Answers every GET with the server's canned body (an S3 endpoint that only lists)."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_interleaved_listing_keeps_the_servers_order() -> None:
    """Same-second entries, newest first, as AWS interleaves them: write 1, write 2, delete,
    write 3, delete. boto3 splits the lists; the adapter restores the order."""
    listing = [
        ("DeleteMarker", "f.txt", "d2", True),
        ("Version", "f.txt", "v3", False),
        ("DeleteMarker", "f.txt", "d1", False),
        ("Version", "f.txt", "v2", False),
        ("Version", "f.txt", "v1", False),
        ("Version", "f.txt.bak", "b1", True),
    ]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    server.body = _aws_listing(listing)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        backend = _backend(f"http://{host}:{port}", "b")
        listed = backend.list_versions("f.txt")
        engine_view = NativeEngine(backend).versions("f.txt")
        backend.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [v.version_id for v in listed] == ["v1", "v2", "d1", "v3", "d2"]
    assert Counter(v.is_delete_marker for v in listed) == {False: 3, True: 2}
    assert [(v.version_id, v.is_latest) for v in engine_view] == [
        ("v1", False),
        ("v2", False),
        ("v3", False),
    ]
