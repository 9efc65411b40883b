"""storied web through Starlette's test client: every page and every action, on a local mount
with portable history (real components, no mocks)."""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.web import create_app

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "test-token-123"


@pytest.fixture
def storage(tmp_path: Path) -> StorageManager:
    sm = StorageManager()
    (tmp_path / "data").mkdir()
    (tmp_path / "plain").mkdir()
    sm.configure([
        {"name": "docs", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "plain", "type": "local", "base_path": str(tmp_path / "plain")},
        {"name": "ro", "path": "docs:", "permissions": "readonly"},
    ])
    cfg = sm.node("docs:config/app.json")
    cfg.write_text('{"port": 80, "hosts": ["a"]}')
    cfg.write_text('{"port": 8080, "hosts": ["a", "b"]}', )
    cfg.write_text('{"port": 8081, "hosts": ["a", "b"]}')
    notes = sm.node("docs:notes.txt")
    notes.write_text("line one\nline two\n")
    notes.write_text("line one\nline 2\nline three\n")
    sm.node("plain:readme.txt").write_text("not versioned")
    return sm


def client_for(storage: StorageManager, **options: Any) -> TestClient:
    client = TestClient(create_app(storage, token=TOKEN, **options))
    client.get(f"/?token={TOKEN}")  # the cookie from now on
    return client


@pytest.fixture
def client(storage: StorageManager) -> TestClient:
    return client_for(storage)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_mounts_page_lists_type_engine_capabilities(client: TestClient) -> None:
    page = client.get("/").text
    assert "docs" in page and "portable" in page and "plain" in page
    assert "local" in page and "version_listing" in page
    assert page.count("read-only") >= 1  # the relative read-only mount


def test_folder_page_one_listing_and_counts(client: TestClient) -> None:
    page = client.get("/browse", params={"path": "docs:"}).text
    assert "config/" in page and "notes.txt" in page
    assert 'data-counts="/counts?path=docs%3A' in page
    counts = client.get("/counts", params={"path": "docs:"}).json()
    assert counts == {"notes.txt": {"count": 2, "tags": []}}
    inline = client.get("/browse", params={"path": "docs:", "counts": "1"}).text
    assert re.search(r'<td class="num count">2</td>', inline)


def test_folder_pages_large_folder(storage: StorageManager, tmp_path: Path) -> None:
    for i in range(450):
        (tmp_path / "data" / "many").mkdir(exist_ok=True)
        (tmp_path / "data" / "many" / f"f{i:04d}.txt").write_text("x")
    client = client_for(storage)
    first = client.get("/browse", params={"path": "docs:many"}).text
    assert "page 1 of 3" in first and first.count('class="file"') == 200
    last = client.get("/browse", params={"path": "docs:many", "page": "3"}).text
    assert last.count('class="file"') == 50 and "f0449.txt" in last


def test_file_page_history_table_and_timeline(client: TestClient, storage: StorageManager) -> None:
    node = storage.node("docs:config/app.json")
    node.tag_version(0, "first")
    node.annotate_version(-1, {"author": "ana@example.com", "reason": "port bump"})
    page = client.get("/file", params={"path": "docs:config/app.json"}).text
    for v in node.versions:
        assert v["version_id"] in page
    assert "<svg" in page and 'class="tagged"' in page and ">first</text>" in page
    assert "ana@example.com" in page and "port bump" in page
    assert "3 versions" in page


def test_file_page_of_unversioned_mount(client: TestClient) -> None:
    page = client.get("/file", params={"path": "plain:readme.txt"}).text
    assert "keeps no history" in page
    assert client.get("/view", params={"path": "plain:readme.txt"}).text.count("not versioned")


def test_view_text_json_binary_and_image(client: TestClient, storage: StorageManager) -> None:
    text = client.get("/view", params={"path": "docs:notes.txt", "v": "0"}).text
    assert '<td class="n">2</td><td class="l">line two</td>' in text
    pretty = client.get("/view", params={"path": "docs:config/app.json", "v": "-1"}).text
    assert "pretty-printed" in pretty and "&#34;port&#34;: 8081," in pretty
    storage.node("docs:blob.bin").write_bytes(bytes(range(256)) * 40)
    binary = client.get("/view", params={"path": "docs:blob.bin", "v": "-1"}).text
    assert "00000000  00 01 02 03" in binary and "4096 bytes" in binary
    png = _png((10, 10), (255, 0, 0))
    storage.node("docs:pic.png").write_bytes(png)
    shown = client.get("/view", params={"path": "docs:pic.png", "v": "-1"}).text
    assert '<img class="shown" src="/image?path=docs%3Apic.png&amp;v=' in shown
    image = client.get("/image", params={"path": "docs:pic.png", "v": "-1"})
    assert image.headers["content-type"] == "image/png" and image.content == png


def test_image_endpoint_refuses_svg_and_html(client: TestClient, storage: StorageManager) -> None:
    storage.node("docs:evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg">'
                                             "<script>alert(1)</script></svg>")
    response = client.get("/image", params={"path": "docs:evil.svg", "v": "-1"})
    assert response.status_code == 400 and "image/svg" not in response.headers["content-type"]


def test_download_any_version_is_an_attachment(client: TestClient) -> None:
    response = client.get("/raw", params={"path": "docs:notes.txt", "v": "0"})
    assert response.content == b"line one\nline two\n"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "notes.v0.txt" in response.headers["content-disposition"]


def test_text_diff_between_two_chosen_versions(client: TestClient) -> None:
    page = client.get("/diff", params={"path": "docs:notes.txt", "a": "0", "b": "-1"}).text
    assert '<table class="diff">' in page
    assert "line <del>two</del>" in page and "line <ins>2</ins>" in page
    assert '<td class="add">line three</td>' in page
    same = client.get("/diff", params={"path": "docs:notes.txt", "a": "0", "b": "0"}).text
    assert "No differences" in same


def test_semantic_json_csv_xml_diffs(client: TestClient, storage: StorageManager) -> None:
    page = client.get("/diff", params={"path": "docs:config/app.json", "a": "0", "b": "1"}).text
    assert "$.port" in page and "$.hosts[1]" in page and "8080" in page
    table = storage.node("docs:t.csv")
    table.write_text("id,name\n1,ana\n2,bo\n")
    table.write_text("id,name\n1,anna\n3,cy\n")
    csv_page = client.get("/diff", params={"path": "docs:t.csv", "key": "id"}).text
    assert "anna" in csv_page and "cy" in csv_page and "removed" in csv_page
    doc = storage.node("docs:d.xml")
    doc.write_text("<config><port>80</port></config>")
    doc.write_text("<config><port>81</port></config>")
    xml_page = client.get("/diff", params={"path": "docs:d.xml"}).text
    assert "81" in xml_page and "/config/port" in xml_page


def test_image_diff(client: TestClient, storage: StorageManager) -> None:
    pic = storage.node("docs:pic.png")
    pic.write_bytes(_png((20, 20), (255, 0, 0)))
    pic.write_bytes(_png((20, 20), (0, 0, 255)))
    page = client.get("/diff", params={"path": "docs:pic.png"}).text
    assert "similarity" in page and "400 changed pixel(s)" in page
    src = re.search(r'src="(/diffimage[^"]+)"', page)
    assert src
    image = client.get(src.group(1).replace("&amp;", "&"))
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"


def test_restore_writes_a_new_version(client: TestClient, storage: StorageManager) -> None:
    node = storage.node("docs:notes.txt")
    old = node.versions[0]["version_id"]
    page = client.get("/file", params={"path": "docs:notes.txt"}).text
    response = client.post("/act/restore", data={"csrf": csrf_of(page),
                                                  "path": "docs:notes.txt", "v": old})
    assert response.status_code == 200 and "as a new version" in response.text
    assert len(node.versions) == 3
    assert node.read_text() == "line one\nline two\n"


def test_tag_untag_annotate(client: TestClient, storage: StorageManager) -> None:
    node = storage.node("docs:notes.txt")
    csrf = csrf_of(client.get("/file", params={"path": "docs:notes.txt"}).text)
    client.post("/act/tag", data={"csrf": csrf, "path": "docs:notes.txt", "v": "0",
                                  "tag": "v1"})
    assert node.get_version_tags() == {"v1": node.versions[0]["version_id"]}
    moved = client.post("/act/tag", data={"csrf": csrf, "path": "docs:notes.txt", "v": "-1",
                                          "tag": "v1"})
    assert moved.status_code == 409  # tag names are unique per file
    client.post("/act/tag", data={"csrf": csrf, "path": "docs:notes.txt", "v": "-1",
                                  "tag": "v1", "move": "1"})
    assert node.get_version_tags() == {"v1": node.versions[-1]["version_id"]}
    client.post("/act/annotate", data={"csrf": csrf, "path": "docs:notes.txt", "v": "v1",
                                       "key": "reason", "value": "release"})
    assert node.versions[-1]["metadata"]["reason"] == "release"
    client.post("/act/untag", data={"csrf": csrf, "path": "docs:notes.txt", "tag": "v1"})
    assert node.get_version_tags() == {}


def test_snapshot_create_list_show_diff_restore(client: TestClient,
                                                storage: StorageManager) -> None:
    plan = client.get("/snapshot/new", params={"prefix": "docs:", "tag": "before"}).text
    files = plan.split('id="plan-files"')[1].split("</table>")[0]
    notes = storage.node("docs:notes.txt")
    assert "config/app.json" in files and notes.versions[-1]["version_id"] in files
    assert storage.list_snapshots() == []  # the plan changed nothing
    csrf = csrf_of(plan)
    made = client.post("/act/snapshot-create", data={"csrf": csrf, "prefix": "docs:",
                                                      "tag": "before"})
    assert made.status_code == 200 and "Snapshot &#39;before&#39; created" in made.text
    assert "config/app.json" in made.text
    assert "before" in client.get("/snapshots").text
    notes.write_text("changed after the snapshot\n")
    storage.node("docs:new.txt").write_text("new")
    plan = client.get("/snapshot/diff", params={"tag": "before"}).text
    assert "notes.txt" in plan.split('id="plan-restored"')[1].split("</ul>")[0]
    assert "new.txt" in plan.split('id="plan-new"')[1].split("</ul>")[0]
    assert notes.read_text() == "changed after the snapshot\n"  # the plan changed nothing
    done = client.post("/act/snapshot-restore", data={"csrf": csrf, "tag": "before"})
    assert done.status_code == 200 and "1 restored" in done.text
    assert notes.read_text() == "line one\nline 2\nline three\n"
    assert storage.node("docs:new.txt").exists()


def test_errors_are_pages(client: TestClient) -> None:
    missing = client.get("/file", params={"path": "docs:nope.txt"})
    assert missing.status_code == 404 and "Error 404" in missing.text
    assert "Traceback" not in missing.text
    no_mount = client.get("/browse", params={"path": "nomount:x"})
    assert no_mount.status_code == 404 and "nomount" in no_mount.text
    bad_version = client.get("/view", params={"path": "docs:notes.txt", "v": "99"})
    assert bad_version.status_code == 404
    binary = client.get("/diff", params={"path": "docs:blob.bin"})
    assert binary.status_code == 404
    unknown = client.get("/nowhere")
    assert unknown.status_code == 404 and "Not found" in unknown.text
    wrong_method = client.post("/file")
    assert wrong_method.status_code == 405


def test_binary_diff_is_a_clear_error(client: TestClient, storage: StorageManager) -> None:
    blob = storage.node("docs:blob.bin")
    blob.write_bytes(b"\x00\x01")
    blob.write_bytes(b"\x00\x02")
    page = client.get("/diff", params={"path": "docs:blob.bin"})
    assert page.status_code == 400 and "binary" in page.text.lower()


def test_history_pages_of_a_long_history(storage: StorageManager) -> None:
    node = storage.node("docs:long.txt")
    for i in range(450):
        node.write_text(f"v{i}")
    client = client_for(storage)
    page = client.get("/file", params={"path": "docs:long.txt"}).text
    assert "page 1 of 3" in page and page.count("<tr data-version=") == 200
    assert json.dumps(node.versions[-1]["version_id"])[1:-1] in page
    last = client.get("/file", params={"path": "docs:long.txt", "page": "3"}).text
    assert last.count("<tr data-version=") == 50
    assert page.count("<circle") == 450


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    image_module = pytest.importorskip("PIL.Image")
    out = io.BytesIO()
    image_module.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_browse_of_a_file_and_file_of_a_folder_redirect(client: TestClient) -> None:
    to_file = client.get("/browse", params={"path": "docs:notes.txt"}, follow_redirects=False)
    assert to_file.status_code == 303 and to_file.headers["location"].startswith("/file?")
    to_folder = client.get("/file", params={"path": "docs:config"}, follow_redirects=False)
    assert to_folder.status_code == 303 and to_folder.headers["location"].startswith("/browse?")


def test_deleted_file_keeps_its_history_page_and_can_be_restored(
    client: TestClient, storage: StorageManager,
) -> None:
    node = storage.node("docs:notes.txt")
    node.delete()
    page = client.get("/file", params={"path": "docs:notes.txt"}).text
    assert "the file is deleted" in page and page.count("<tr data-version=") == 2
    first = node.versions[0]["version_id"]
    done = client.post("/act/restore", data={"csrf": csrf_of(page), "path": "docs:notes.txt",
                                              "v": first})
    assert done.status_code == 200 and node.read_text() == "line one\nline two\n"


def test_event_journal_page(client: TestClient, storage: StorageManager) -> None:
    node = storage.node("docs:notes.txt")
    node.tag_version(0, "v-one")
    page = client.get("/events", params={"path": "docs:"}).text
    assert "version_created" in page and "notes.txt" in page
    only = client.get("/events", params={"path": "docs:config"}).text
    assert "app.json" in only and "notes.txt" not in only
    assert client.get("/events", params={"path": "plain:"}).status_code == 403


def test_event_journal_pages_on(storage: StorageManager) -> None:
    node = storage.node("docs:many.txt")
    for i in range(205):
        node.write_text(str(i))
    client = client_for(storage)
    first = client.get("/events", params={"path": "docs:many.txt"}).text
    later = re.search(r'href="(/events\?[^"]+since=[^"]+)"', first)
    assert later and first.count("<tr><td>") == 200
    second = client.get(later.group(1).replace("&amp;", "&")).text
    assert second.count("<tr><td>") == 5


def test_a_non_utf8_name_does_not_break_the_folder(storage: StorageManager,
                                                   tmp_path: Path) -> None:
    (tmp_path / "data" / "odd").mkdir()
    (tmp_path / "data" / "odd" / "fine.txt").write_text("fine")
    with open(bytes(tmp_path / "data" / "odd") + b"/bad\xff.txt", "wb") as f:
        f.write(b"odd name")
    client = client_for(storage)
    page = client.get("/browse", params={"path": "docs:odd"})
    assert page.status_code == 200 and "fine.txt" in page.text and "bad\\udcff.txt" in page.text
    link = re.search(r'href="(/file\?path=docs%3Aodd%2Fbad%FF\.txt)"', page.text)
    assert link, page.text
    shown = client.get("/view?path=docs%3Aodd%2Fbad%FF.txt")
    assert shown.status_code == 200 and "odd name" in shown.text


def test_failing_storage_is_an_error_page(storage: StorageManager) -> None:
    from storied.backends.memory import MemoryBackend
    from storied.testing.doubles import FaultyBackend

    inner = MemoryBackend(store=f"hg-faulty-{id(storage)}")
    inner.write("f.txt", b"data")
    storage.add_mount({"name": "flaky", "backend": FaultyBackend(inner, fail_times=10_000),
                       "retries": 1})
    client = client_for(storage)
    for url in ("/browse?path=flaky:", "/file?path=flaky:f.txt", "/view?path=flaky:f.txt",
                "/raw?path=flaky:f.txt"):
        response = client.get(url)
        assert response.status_code == 503, (url, response.status_code)
        assert "injected failure" in response.text and "Traceback" not in response.text


def test_restore_through_the_web_is_in_the_journal(client: TestClient,
                                                   storage: StorageManager) -> None:
    node = storage.node("docs:notes.txt")
    cursor = list(storage.events("docs:"))[-1].cursor
    page = client.get("/file", params={"path": "docs:notes.txt"}).text
    client.post("/act/restore", data={"csrf": csrf_of(page), "path": "docs:notes.txt",
                                      "v": "0"})
    later = list(storage.events("docs:notes.txt", since=cursor))
    assert [e.type for e in later] == ["version_created"]
    assert later[0].version_id == node.versions[-1]["version_id"]


def test_snapshot_restore_can_delete_new_files(client: TestClient,
                                               storage: StorageManager) -> None:
    storage.create_snapshot("docs:", "base")
    storage.node("docs:late.txt").write_text("late")
    csrf = csrf_of(client.get("/snapshot/diff", params={"tag": "base"}).text)
    done = client.post("/act/snapshot-restore", data={"csrf": csrf, "tag": "base",
                                                      "delete_new": "1"})
    assert done.status_code == 200 and "1 deleted" in done.text
    assert not storage.node("docs:late.txt").exists()


def test_diff_of_huge_versions_is_refused_before_reading(client: TestClient,
                                                        storage: StorageManager,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from storied.web import pages

    monkeypatch.setattr(pages, "DIFF_BYTES", 10)  # the bound, made small for the test
    page = client.get("/diff", params={"path": "docs:notes.txt"})
    assert page.status_code == 400 and "too large to diff" in page.text


def test_single_version_file_page(client: TestClient, storage: StorageManager) -> None:
    storage.node("docs:one.txt").write_text("only")
    page = client.get("/file", params={"path": "docs:one.txt"}).text
    assert "1 version." in page and page.count("<circle") == 1
    assert 'id="diff"' not in page  # nothing to compare yet


def test_snapshot_contents_are_paginated(client: TestClient, storage: StorageManager,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from storied.web import mount_pages

    monkeypatch.setattr(mount_pages, "SNAPSHOT_PAGE", 1)  # 2 files: 2 pages
    storage.create_snapshot("docs:", "two")
    first = client.get("/snapshot", params={"tag": "two"}).text
    assert "2 file(s)" in first and "page 1 of 2" in first and "config/app.json" in first
    second = client.get("/snapshot", params={"tag": "two", "page": "2"}).text
    assert "notes.txt" in second and "config/app.json" not in second
