"""serve(): download names cannot inject headers (RFC 6266/5987); pinned nodes serve their
version."""

from __future__ import annotations

import hashlib
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from storied import StorageManager
from storied.core.node import StorageNode
from storied.core.web import content_disposition
from storied.errors import InvalidArgumentError

EVIL = "report.txt\r\nSet-Cookie: session=stolen\r\n\r\n<script>"


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageManager:
    sm = StorageManager()
    if request.param == "memory":
        sm.configure([{"name": "v", "type": "memory", "versioning": True,
                       "store": f"serve-{id(tmp_path)}"}])
    else:
        sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                       "versioning": True}])
    return sm


def call(node: StorageNode, environ: dict[str, Any] | None = None,
         **kw: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=headers)

    body = node.serve({"REQUEST_METHOD": "GET", **(environ or {})}, start_response, **kw)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return seen["status"], seen["headers"], data


def assert_clean(headers: list[tuple[str, str]]) -> None:
    for key, value in headers:
        assert all(0x20 <= ord(ch) < 0x7F for ch in key + value), (key, value)


def test_crlf_in_download_name_is_not_a_header(storage: StorageManager) -> None:
    node = storage.node("v:a.txt")
    node.write_text("hello")
    status, headers, body = call(node, download_name=EVIL)
    assert status == "200 OK" and body == b"hello"
    assert_clean(headers)
    assert [k for k, _ in headers].count("Set-Cookie") == 0
    (disposition,) = [v for k, v in headers if k == "Content-Disposition"]
    assert disposition == (
        'attachment; filename="report.txtSet-Cookie: session=stolen<script>"; '
        "filename*=UTF-8''report.txtSet-Cookie%3A%20session%3Dstolen%3Cscript%3E"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("résumé.pdf",
         "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
        ('a "quoted" \\ 100%.txt', "attachment; filename=\"a _quoted_ _ 100_.txt\"; "
                                   "filename*=UTF-8''a%20%22quoted%22%20%5C%20100%25.txt"),
        ("中文.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E4%B8%AD%E6%96%87.txt"),
        ("\r\n\x00\x7f\x85\u2028", "attachment; filename=\"download\"; filename*=UTF-8''download"),
        ("plain-name_1.txt", "attachment; filename=\"plain-name_1.txt\"; "
                             "filename*=UTF-8''plain-name_1.txt"),
    ],
)
def test_content_disposition_encoding(name: str, expected: str) -> None:
    assert content_disposition(name) == expected


def test_name_from_the_path_is_encoded_too(storage: StorageManager) -> None:
    node = storage.node('v:dir/a "b" 100%.txt')
    node.write_text("x")
    _, headers, _ = call(node, download=True)
    assert_clean(headers)
    assert dict(headers)["Content-Disposition"] == (
        "attachment; filename=\"a _b_ 100_.txt\"; filename*=UTF-8''a%20%22b%22%20100%25.txt"
    )


def test_bad_arguments_are_storied_errors(storage: StorageManager) -> None:
    node = storage.node("v:a.txt")
    node.write_text("x")
    with pytest.raises(InvalidArgumentError):
        call(node, download_name=b"bytes-name")
    with pytest.raises(InvalidArgumentError):
        call(node, cache_max_age="60\r\nX-Evil: 1")


def test_a_pinned_node_serves_its_version(storage: StorageManager) -> None:
    live = storage.node("v:a.txt")
    live.write_text("first version")
    live.write_text("the second, longer version")
    pinned = storage.node("v:a.txt", version=0)
    status, headers, body = call(pinned)
    assert status == "200 OK" and body == b"first version"
    assert dict(headers)["Content-Length"] == str(len(b"first version"))
    assert dict(headers)["ETag"] == '"' + hashlib.md5(b"first version").hexdigest() + '"'
    status, headers, body = call(pinned, {"HTTP_RANGE": "bytes=6-12"})
    assert status == "206 Partial Content" and body == b"version"
    assert dict(headers)["Content-Range"] == "bytes 6-12/13"
    assert call(live)[2] == b"the second, longer version"


# ------------------------------------------------------------------ over a real HTTP server
class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(storage: StorageManager) -> Iterator[tuple[WSGIServer, StorageManager]]:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        node = storage.node("v:" + environ["PATH_INFO"].lstrip("/"))
        return node.serve(environ, start_response, download_name=EVIL)

    httpd = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, storage
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_no_injected_header_over_http(server: tuple[WSGIServer, StorageManager]) -> None:
    httpd, storage = server
    storage.node("v:a.txt").write_text("hello")
    conn = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=30)
    try:
        conn.request("GET", "/a.txt")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200 and body == b"hello"
    assert response.getheader("Set-Cookie") is None
    assert "stolen" in (response.getheader("Content-Disposition") or "")


# ------------------------------------------------------------------ fill_from_url errors
@pytest.fixture
def http_status() -> Iterator[str]:
    """A local HTTP server answering /<code> with that status (and /ok with a body)."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        code = environ["PATH_INFO"].strip("/")
        if code == "ok":
            start_response("200 OK", [("Content-Length", "4")])
            return [b"body"]
        start_response(f"{code} Status", [("Content-Length", "0")])
        return [b""]

    httpd = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_fill_from_url_errors_are_storied_errors(
    storage: StorageManager, http_status: str
) -> None:
    from storied.errors import StorageIOError, StorageNotFoundError, TransientStorageError

    node = storage.node("v:dl.bin")
    node.fill_from_url(f"{http_status}/ok")
    assert node.read_bytes() == b"body"
    for code, error in ((404, StorageNotFoundError), (403, StorageIOError),
                        (503, TransientStorageError), (429, TransientStorageError)):
        with pytest.raises(error, match=str(code)):
            node.fill_from_url(f"{http_status}/{code}")
    with pytest.raises(InvalidArgumentError):
        node.fill_from_url("file:///etc/passwd")
    with pytest.raises(InvalidArgumentError):
        node.fill_from_url("http://127.0.0.1:notaport/x")
    assert node.read_bytes() == b"body"  # nothing half-written by the failures
