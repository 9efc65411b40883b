"""storied web's security: the token and its cookie, CSRF, read-only refusal, path confinement
through the URL, escaping of hostile names/tags/annotations/contents, and the headers of every
response."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from storied import StorageManager
from storied.web import create_app
from storied.web.security import cookie_name

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "s3cret-token"
XSS = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


@pytest.fixture
def storage(tmp_path: Path) -> StorageManager:
    (tmp_path / "data").mkdir()
    (tmp_path / "outside.txt").write_text("OUTSIDE-SECRET")
    sm = StorageManager()
    sm.configure([
        {"name": "docs", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "ro", "path": "docs:", "permissions": "readonly"},
    ])
    node = sm.node("docs:a.txt")
    node.write_text("first\n")
    node.write_text("second\n")
    return sm


def authed(storage: StorageManager, **options: object) -> TestClient:
    client = TestClient(create_app(storage, token=TOKEN, **options))  # type: ignore[arg-type]
    client.get(f"/?token={TOKEN}")
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found
    return found.group(1)


# ---------------------------------------------------------------- token
def test_no_token_or_wrong_token_is_refused(storage: StorageManager) -> None:
    client = TestClient(create_app(storage, token=TOKEN))
    for url in ("/", "/file?path=docs:a.txt", "/raw?path=docs:a.txt&v=0", "/static/app.css",
                "/counts?path=docs:"):
        response = client.get(url)
        assert response.status_code == 403 and "no token" in response.text
        assert "second" not in response.text and "first" not in response.text
    wrong = client.get("/raw?path=docs:a.txt&v=0&token=nope")
    assert wrong.status_code == 403 and "wrong token" in wrong.text
    client.cookies.set(cookie_name(TOKEN), "nope")
    assert client.get("/").status_code == 403
    posted = client.post("/act/restore", data={"path": "docs:a.txt", "v": "0"})
    assert posted.status_code == 403 and len(storage.node("docs:a.txt").versions) == 2


def test_token_once_then_httponly_strict_cookie(storage: StorageManager) -> None:
    client = TestClient(create_app(storage, token=TOKEN))
    first = client.get(f"/file?path=docs:a.txt&token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/file?path=docs:a.txt"  # the token leaves the URL
    cookie = first.headers["set-cookie"]
    assert f"{cookie_name(TOKEN)}={TOKEN}" in cookie and "HttpOnly" in cookie
    assert cookie_name(TOKEN) != cookie_name("another") and cookie_name(TOKEN).startswith(
        "storied_token_")
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert client.get("/file?path=docs:a.txt").status_code == 200  # the cookie now


def test_token_redirect_stays_on_the_app(storage: StorageManager) -> None:
    client = TestClient(create_app(storage, token=TOKEN))
    for url in (f"http://testserver//evil.example/?token={TOKEN}",
                f"http://testserver/%2F%2Fevil.example/?token={TOKEN}",
                f"http://testserver/\\evil.example/?token={TOKEN}",
                f"http://testserver///evil.example?x=1&token={TOKEN}"):
        response = client.get(url, follow_redirects=False)
        location = response.headers.get("location", "")
        assert location.startswith("/") and not location.startswith("//"), location
        assert "token" not in location


def test_authorization_header_works(storage: StorageManager) -> None:
    client = TestClient(create_app(storage, token=TOKEN))
    assert client.get("/", headers={"Authorization": f"token {TOKEN}"}).status_code == 200


def test_random_token_when_none_given(storage: StorageManager) -> None:
    app = create_app(storage)
    assert len(app.state.token) >= 24
    assert TestClient(app).get("/").status_code == 403


# ---------------------------------------------------------------- CSRF
def test_actions_need_the_csrf_token(storage: StorageManager) -> None:
    client = authed(storage)
    node = storage.node("docs:a.txt")
    for data in ({"path": "docs:a.txt", "v": "0"},
                 {"path": "docs:a.txt", "v": "0", "csrf": "0" * 64}):
        response = client.post("/act/restore", data=data)
        assert response.status_code == 403 and "CSRF" in response.text
    assert len(node.versions) == 2
    csrf = csrf_of(client.get("/file?path=docs:a.txt").text)
    foreign = client.post("/act/restore", data={"path": "docs:a.txt", "v": "0", "csrf": csrf},
                          headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and len(node.versions) == 2
    cross = client.post("/act/restore", data={"path": "docs:a.txt", "v": "0", "csrf": csrf},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and len(node.versions) == 2
    ok = client.post("/act/restore", data={"path": "docs:a.txt", "v": "0", "csrf": csrf},
                     headers={"Origin": "http://testserver"})
    assert ok.status_code == 200 and len(node.versions) == 3


def test_get_never_changes_anything(storage: StorageManager) -> None:
    client = authed(storage)
    assert client.get("/act/restore?path=docs:a.txt&v=0").status_code == 405
    assert len(storage.node("docs:a.txt").versions) == 2


# ---------------------------------------------------------------- read-only
def test_read_only_app_hides_and_refuses_actions(storage: StorageManager) -> None:
    client = authed(storage, read_only=True)
    for url in ("/file?path=docs:a.txt", "/browse?path=docs:", "/snapshots",
                "/snapshot/new?prefix=docs:", "/diff?path=docs:a.txt"):
        page = client.get(url).text
        assert "/act/" not in page and "read-only" in page, url
    csrf = csrf_of(authed(storage).get("/file?path=docs:a.txt").text)  # same token, same csrf
    for url, data in (("/act/restore", {"v": "0"}), ("/act/tag", {"v": "0", "tag": "t"}),
                      ("/act/annotate", {"v": "0", "key": "k", "value": "v"})):
        response = client.post(url, data={"csrf": csrf, "path": "docs:a.txt", **data})
        assert response.status_code == 403 and "read-only" in response.text
    made = client.post("/act/snapshot-create", data={"csrf": csrf, "prefix": "docs:",
                                                      "tag": "s"})
    assert made.status_code == 403 and storage.list_snapshots() == []
    node = storage.node("docs:a.txt")
    assert len(node.versions) == 2 and node.get_version_tags() == {}


def test_read_only_mount_hides_and_refuses_actions(storage: StorageManager) -> None:
    client = authed(storage)
    page = client.get("/file?path=ro:a.txt").text
    assert "/act/" not in page.replace('action="/act/snapshot', "")
    csrf = csrf_of(client.get("/file?path=docs:a.txt").text)
    refused = client.post("/act/restore", data={"csrf": csrf, "path": "ro:a.txt", "v": "0"})
    assert refused.status_code == 403 and len(storage.node("docs:a.txt").versions) == 2


# ---------------------------------------------------------------- traversal
@pytest.mark.parametrize("path", [
    "docs:../outside.txt",
    "docs:%2e%2e/outside.txt",
    "docs:a/../../outside.txt",
    "docs:..%2foutside.txt",
    "docs:%252e%252e/outside.txt",
    "docs:\uff0e\uff0e/outside.txt",
    "docs:.storied",
    "docs:.STORIED/versions",
    "docs:sub/.storied/refs",
    "docs:a\\..\\..\\outside.txt",
])
def test_traversal_is_refused_by_the_api(storage: StorageManager, path: str) -> None:
    client = authed(storage)
    for route in ("/browse", "/file", "/view", "/raw", "/counts"):
        response = client.get(route, params={"path": path})
        assert response.status_code in (400, 403, 404), (route, path, response.status_code)
        assert "OUTSIDE-SECRET" not in response.text and "Traceback" not in response.text
    csrf = csrf_of(client.get("/file?path=docs:a.txt").text)
    posted = client.post("/act/restore", data={"csrf": csrf, "path": path, "v": "0"})
    assert posted.status_code in (400, 403, 404)


def test_raw_url_traversal(storage: StorageManager) -> None:
    client = authed(storage)
    for url in ("/browse/../../outside.txt", "/static/../app.py", "/static/%2e%2e/app.py",
                "/static/..%2fapp.py", "/raw?path=docs%3A%2e%2e%2Foutside.txt"):
        response = client.get(url)
        assert response.status_code in (400, 403, 404), url
        assert "OUTSIDE-SECRET" not in response.text and "import" not in response.text


def test_reserved_area_is_not_listed(storage: StorageManager) -> None:
    page = authed(storage).get("/browse?path=docs:").text
    assert ".storied" not in page


# ---------------------------------------------------------------- XSS
def test_hostile_names_tags_annotations_and_contents_are_escaped(
    storage: StorageManager,
) -> None:
    name = f"{IMG}.txt"
    node = storage.node("docs:", name)
    node.write_text(f"{XSS}\n")
    node.write_text(f"{XSS}\n{IMG}\n")
    node.tag_version(0, XSS)
    node.annotate_version(-1, {XSS: IMG, "author": XSS})
    client = authed(storage)
    csrf = csrf_of(client.get("/file?path=docs:a.txt").text)
    pages = [
        client.get("/browse", params={"path": "docs:"}),
        client.get("/file", params={"path": node.fullpath}),
        client.get("/view", params={"path": node.fullpath, "v": "-1"}),
        client.get("/diff", params={"path": node.fullpath, "a": "0", "b": "-1"}),
        client.get("/events", params={"path": "docs:"}),
        client.post("/act/tag", data={"csrf": csrf, "path": node.fullpath, "v": "-1",
                                      "tag": IMG}),
    ]
    for response in pages:
        assert response.status_code == 200, response.text[-500:]
        body = response.text
        assert XSS not in body and IMG not in body and "<img src=x" not in body
        assert "&lt;script&gt;" in body or "&lt;img" in body
    assert "<script>" not in pages[3].text.replace('<script src="/static/app.js" defer>', "")


def test_error_messages_are_escaped(storage: StorageManager) -> None:
    client = authed(storage)
    response = client.get("/file", params={"path": f"nomount{XSS}:x"})
    assert response.status_code == 404 and XSS not in response.text
    assert "&lt;script&gt;" in response.text


def test_stored_html_is_never_served_active(storage: StorageManager) -> None:
    storage.node("docs:page.html").write_text(f"<html>{XSS}</html>")
    storage.node("docs:pic.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg">{XSS}</svg>')
    client = authed(storage)
    for path in ("docs:page.html", "docs:pic.svg"):
        raw = client.get("/raw", params={"path": path, "v": "-1"})
        assert raw.headers["content-type"] == "application/octet-stream"
        assert raw.headers["content-disposition"].startswith("attachment;")
        assert raw.headers["x-content-type-options"] == "nosniff"
        shown = client.get("/view", params={"path": path, "v": "-1"}).text
        assert XSS not in shown and "&lt;script&gt;" in shown
        assert client.get("/image", params={"path": path, "v": "-1"}).status_code == 400


def test_every_response_has_the_security_headers(storage: StorageManager) -> None:
    client = authed(storage)
    anonymous = TestClient(create_app(storage, token=TOKEN))
    responses = [
        client.get("/"), client.get("/static/app.css"), client.get("/static/app.js"),
        client.get("/raw?path=docs:a.txt&v=0"), client.get("/nowhere"),
        client.get("/file?path=docs:missing"), anonymous.get("/"),
        anonymous.get(f"/?token={TOKEN}", follow_redirects=False),
        client.post("/act/restore", data={}),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(storage: StorageManager) -> None:
    client = authed(storage)
    for url in ("/", "/browse?path=docs:", "/file?path=docs:a.txt", "/diff?path=docs:a.txt",
                "/view?path=docs:a.txt&v=0", "/snapshots"):
        body = client.get(url).text
        assert re.findall(r"<script(?![^>]*\bsrc=)", body) == []
        assert "<style" not in body and " style=" not in body and "onclick" not in body


def test_websockets_are_refused(storage: StorageManager) -> None:
    from starlette.websockets import WebSocketDisconnect

    client = authed(storage)
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/"):
        pass


def test_malformed_form_bodies_are_400_pages(storage: StorageManager) -> None:
    client = authed(storage)
    for body, kind in ((b"a" * 10, "multipart/form-data"),
                       (b"--xx\r\nbroken", "multipart/form-data; boundary=xx")):
        response = client.post("/act/restore", content=body, headers={"content-type": kind})
        assert response.status_code in (400, 403) and "Traceback" not in response.text
    assert len(storage.node("docs:a.txt").versions) == 2
