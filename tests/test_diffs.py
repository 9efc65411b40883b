"""Diffs between versions: text (unified, context, HTML), JSON, XML, CSV and images, on a memory
and a local versioned mount (the text diff also on native S3 versions), plus ``storied diff``."""

from __future__ import annotations

import difflib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storied import StorageManager
from storied.core.node import StorageNode
from storied.diff import BinaryContentError, InvalidContentError, diff_json, diff_text
from storied.errors import MissingDependencyError, StorageError, UnsupportedOperation
from storied.testing.s3server import MotoHandle, make_bucket

PIL = pytest.importorskip("PIL")
pytest.importorskip("imagehash")
pytest.importorskip("xmldiff")
from PIL import Image, ImageDraw  # noqa: E402

CONFIG_V1 = """\
[server]
host = 0.0.0.0
port = 80
workers = 4

[database]
url = postgres://db/app
pool = 5
timeout = 30

[logging]
level = info
"""
CONFIG_V2 = (
    CONFIG_V1.replace("port = 80", "port = 8080")
    .replace("pool = 5\n", "")
    .replace("level = info\n", "level = debug\nformat = json\n")
)


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    sm = StorageManager()
    if request.param == "memory":
        sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    else:
        sm.configure(
            [{"name": "v", "type": "local", "base_path": str(tmp_path), "versioning": True}]
        )
    yield sm


def versions(storage: StorageManager, path: str, *contents: str | bytes) -> StorageNode:
    node = storage.node(path)
    for content in contents:
        if isinstance(content, str):
            node.write_text(content)
        else:
            node.write_bytes(content)
    return node


def labels(node: StorageNode) -> tuple[str, str]:
    old, new = node.versions[-2], node.versions[-1]
    return f"{node.fullpath}@{old['version_id']}", f"{node.fullpath}@{new['version_id']}"


# ---------------------------------------------------------------- text
def test_unified_is_difflib_with_version_headers(storage: StorageManager) -> None:
    node = versions(storage, "v:etc/app.ini", CONFIG_V1, CONFIG_V2)
    out = node.diff_versions_text()
    old_label, new_label = labels(node)
    header, body = out.splitlines(keepends=True)[:2], out.splitlines(keepends=True)[2:]
    assert header[0].startswith(f"--- {old_label}\t") and header[1].startswith(f"+++ {new_label}\t")
    assert node.versions[-1]["last_modified"].isoformat(timespec="seconds") in header[1]
    expected = list(difflib.unified_diff(CONFIG_V1.splitlines(True), CONFIG_V2.splitlines(True)))
    assert body == expected[2:]
    assert "-port = 80\n" in body and "+port = 8080\n" in body and "-pool = 5\n" in body
    assert "+format = json\n" in body


def test_context_is_difflib(storage: StorageManager) -> None:
    node = versions(storage, "v:app.ini", CONFIG_V1, CONFIG_V2)
    out = node.diff_versions_text(format="context", context_lines=1)
    expected = difflib.context_diff(CONFIG_V1.splitlines(True), CONFIG_V2.splitlines(True), n=1)
    assert out.splitlines(True)[2:] == list(expected)[2:]
    assert out.startswith(f"*** {labels(node)[0]}\t")


def test_order_ids_and_indexes(storage: StorageManager) -> None:
    node = versions(storage, "v:a.txt", "one\n", "two\n", "three\n")
    ids = [v["version_id"] for v in node.versions]
    assert node.diff_versions_text(-2, -1) == node.diff_versions_text(-1, -2)
    assert node.diff_versions_text(ids[0], 2) == node.diff_versions_text(-1, 0)
    assert "-one\n+three\n" in node.diff_versions_text(0, -1)
    assert node.diff_versions_text(-1, -1) == ""
    assert node.diff_versions_text(-1, -1, format="context") == ""
    node.tag_version(0, "release-1")
    tagged = node.diff_versions_text("release-1", -1)
    assert tagged == node.diff_versions_text(0, -1)
    assert tagged.startswith(f"--- {node.fullpath}@{ids[0]} [release-1]\t")


def test_identical_versions(storage: StorageManager) -> None:
    node = versions(storage, "v:same.txt", CONFIG_V1, CONFIG_V1)
    assert node.version_count == 2
    assert node.diff_versions_text() == ""
    page = node.diff_versions_text(format="html")
    assert "No differences" in page and page.rstrip().endswith("</html>")


def test_html_is_a_self_contained_side_by_side_page(storage: StorageManager) -> None:
    node = versions(storage, "v:app.ini", CONFIG_V1, CONFIG_V2 + "note = <b>&amp;</b>\n")
    page = node.diff_versions_text(format="html")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    for forbidden in ("<script", "<link", "src=", "http://", "https://", "url("):
        assert forbidden not in page
    old_label, new_label = labels(node)
    assert old_label in page and new_label in page
    assert 'class="del"' in page and 'class="add"' in page and "port = 80<ins>80</ins>" in page
    assert "note = &lt;b&gt;&amp;amp;&lt;/b&gt;" in page
    assert "\u2212" not in page and "&minus;3 removed" in page


def test_no_newline_at_end(storage: StorageManager) -> None:
    node = versions(storage, "v:n.txt", "a\nb", "a\nc")
    assert node.diff_versions_text().endswith(
        "-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
    )


def test_binary_and_encodings(storage: StorageManager) -> None:
    node = versions(storage, "v:blob.bin", "text\n", b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(BinaryContentError, match="NUL") as caught:
        node.diff_versions_text()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, StorageError)
    assert node.versions[-1]["version_id"] in str(caught.value)
    latin = versions(storage, "v:latin.txt", "caf\xe9\n".encode("latin-1"), b"cafe\n")
    with pytest.raises(BinaryContentError, match=latin.versions[0]["version_id"]):
        latin.diff_versions_text()
    assert "-caf\xe9\n+cafe\n" in latin.diff_versions_text(encoding="latin-1")
    wide = versions(storage, "v:w.txt", "x\ny\n".encode("utf-16"), "x\nz\n".encode("utf-16"))
    assert "-y\n+z\n" in wide.diff_versions_text(encoding="utf-16")


def test_bad_arguments_and_unversioned(storage: StorageManager) -> None:
    node = versions(storage, "v:a.txt", "1\n", "2\n")
    with pytest.raises(ValueError, match="format"):
        node.diff_versions_text(format="word")
    with pytest.raises(ValueError, match="context_lines"):
        node.diff_versions_text(context_lines=-1)
    with pytest.raises(IndexError):
        node.diff_versions_text(-1, -5)
    plain = StorageManager()
    plain.configure([{"name": "p", "type": "memory"}])
    plain.node("p:a.txt").write_text("x")
    with pytest.raises(UnsupportedOperation):
        plain.node("p:a.txt").diff_versions_text()
    assert node.diff_versions() == (b"2\n", b"1\n")  # raw bytes stay available


def test_text_diff_on_native_s3_versions(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"df-{uuid.uuid4().hex[:12]}", versioned=True)
    sm = StorageManager()
    sm.configure(
        [
            {
                "name": "s",
                "type": "s3",
                "bucket": bucket,
                "endpoint_url": moto.endpoint_url,
                "key": "k",
                "secret": "s",
            }
        ]
    )
    try:
        node = versions(sm, "s:app.ini", CONFIG_V1, CONFIG_V2)
        assert "+port = 8080\n" in node.diff_versions_text()
        table = versions(sm, "s:hosts.csv", CSV_V1, CSV_V2)  # both versions streamed from S3
        assert table.diff_csv_versions(key="id")["columns_added"] == ["tls"]
    finally:
        sm.close()


LINES = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "x y\n"]), max_size=30)


@settings(max_examples=150, deadline=None)
@given(LINES, LINES, st.integers(min_value=0, max_value=4))
def test_text_renderers_match_difflib(a: list[str], b: list[str], n: int) -> None:
    old, new = "".join(a), "".join(b)
    unified = diff_text(old, new, "unified", context_lines=n)
    context = diff_text(old, new, "context", context_lines=n)
    assert unified == "".join(difflib.unified_diff(a, b, "old", "new", n=n))
    assert context == "".join(difflib.context_diff(a, b, "old", "new", n=n))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text("ab", max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("xyz", max_size=1), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES, JSON_VALUES)
def test_json_diff_is_empty_exactly_for_equal_documents(a: object, b: object) -> None:
    assert diff_json(a, a) == []
    same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (diff_json(a, b) == []) == same


# ---------------------------------------------------------------- JSON
JSON_V1 = {
    "name": "edge",
    "servers": [{"host": "a", "port": 80}, {"host": "b", "port": 81}, {"host": "c", "port": 82}],
    "limits": {"cpu": 2, "memory": "1Gi", "burst": True},
    "retired": {"since": 2020},
    "odd key's": 1,
}


def test_json_semantic_diff(storage: StorageManager) -> None:
    new = {
        "odd key's": 2,
        "limits": {"memory": "2Gi", "cpu": 2.0, "burst": 1},
        "servers": [
            {"port": 80, "host": "a"},
            {"host": "b", "port": 81},
            {"host": "c", "port": 8443},
            {"host": "d", "port": 83},
        ],
        "name": "edge",
        "tags": ["blue"],
    }
    node = versions(storage, "v:cfg.json", json.dumps(JSON_V1, indent=2), json.dumps(new))
    assert node.diff_json_versions(-1, -2) == {
        "added": [
            {"path": "$.servers[3]", "value": {"host": "d", "port": 83}},
            {"path": "$.tags", "value": ["blue"]},
        ],
        "removed": [{"path": "$.retired", "value": {"since": 2020}}],
        "changed": [
            {"path": "$.servers[2].port", "old": 82, "new": 8443},
            {"path": "$.limits.memory", "old": "1Gi", "new": "2Gi"},
            {"path": "$.limits.burst", "old": True, "new": 1},
            {"path": "$['odd key\\'s']", "old": 1, "new": 2},
        ],
    }


def test_json_equal_arrays_and_types(storage: StorageManager) -> None:
    node = versions(
        storage,
        "v:a.json",
        '{"a": [1, 2, 3], "b": {"x": 1, "y": 2}}',
        '{"b": {"y": 2, "x": 1}, "a": [1, 2, 3]}',
    )
    assert node.diff_json_versions() == {"added": [], "removed": [], "changed": []}
    node.write_text('{"a": [1], "b": [{"x": 1}]}')
    assert node.diff_json_versions() == {
        "added": [],
        "removed": [{"path": "$.a[1]", "value": 2}, {"path": "$.a[2]", "value": 3}],
        "changed": [{"path": "$.b", "old": {"x": 1, "y": 2}, "new": [{"x": 1}]}],
    }


def test_invalid_json_names_the_version(storage: StorageManager) -> None:
    node = versions(storage, "v:bad.json", '{"a": 1}', '{"a": 1,,}')
    with pytest.raises(InvalidContentError, match="not valid JSON") as caught:
        node.diff_json_versions()
    assert node.versions[-1]["version_id"] in str(caught.value)
    assert isinstance(caught.value, ValueError)


# ---------------------------------------------------------------- XML
XML_V1 = b"""<?xml version="1.0"?>
<config>
  <server name="web" port="80"><host>alpha</host></server>
  <server name="api" port="81"><host>beta</host></server>
  <legacy/>
</config>"""
XML_V2 = b"""<?xml version="1.0"?>
<config>
  <server name="web" port="8080"><host>alpha</host></server>
  <server name="api" port="81" tls="on"><host>gamma</host></server>
  <cache size="64"/>
</config>"""


def test_xml_edit_list(storage: StorageManager) -> None:
    node = versions(storage, "v:cfg.xml", XML_V1, XML_V2)
    edits = node.diff_xml_versions()
    assert {
        "kind": "changed",
        "action": "update-attribute",
        "path": "/config/server[1]/@port",
        "old": "80",
        "new": "8080",
    } in edits
    assert {
        "kind": "added",
        "action": "insert-attribute",
        "path": "/config/server[2]/@tls",
        "old": None,
        "new": "on",
    } in edits
    assert {
        "kind": "changed",
        "action": "update-text",
        "path": "/config/server[2]/host[1]/text()",
        "old": "beta",
        "new": "gamma",
    } in edits
    assert any(e["kind"] == "removed" and e["path"] == "/config/legacy[1]" for e in edits)
    added = [e for e in edits if e["action"] == "insert-node"]
    assert added and added[0]["path"] == "/config/cache[1]" and added[0]["new"] == "cache"
    node.write_bytes(XML_V2.replace(b"\n  ", b"\n    "))
    assert node.diff_xml_versions() == []


def test_xml_errors_and_no_entity_expansion(
    storage: StorageManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = versions(storage, "v:bad.xml", XML_V1, b"<config><open></config>")
    with pytest.raises(InvalidContentError, match=node.versions[-1]["version_id"]):
        node.diff_xml_versions()
    node.write_bytes(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]><x>&e;</x>')
    with pytest.raises(InvalidContentError, match="Entity 'e' not defined"):
        node.diff_xml_versions(-1, -1)  # external entities are never loaded
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    node.write_text(f"<!DOCTYPE x [{laughs}]><x>&i;</x>")
    with pytest.raises(InvalidContentError, match="amplification"):
        node.diff_xml_versions(-1, -1)
    node.write_bytes(b'<!DOCTYPE x [<!ENTITY i "inner">]><x>a &i; <?pi x?>b</x>')
    node.write_bytes(b"<x>a inner c</x>")
    assert node.diff_xml_versions() == [
        {
            "kind": "changed",
            "action": "update-text",
            "path": "/x[1]/text()",
            "old": "a inner b",
            "new": "a inner c",
        }
    ]
    monkeypatch.setitem(sys.modules, "xmldiff", None)
    with pytest.raises(MissingDependencyError, match=r"storied\[diff\]"):
        node.diff_xml_versions()


# ---------------------------------------------------------------- CSV
CSV_V1 = "id;name;port;zone\n1;web;80;eu\n2;api;81;eu\n3;db;5432;us\n4;cache;6379;us\n"
CSV_V2 = (
    "id;name;port;zone;tls\n1;web;80;eu;y\n2;api;8081;us;n\n4;cache;6379;us;\n5;queue;5672;eu;y\n"
)


def test_csv_keyed(storage: StorageManager) -> None:
    node = versions(storage, "v:hosts.csv", CSV_V1, CSV_V2)
    assert node.diff_csv_versions(key="id") == {
        "added": [{"id": "5", "name": "queue", "port": "5672", "zone": "eu", "tls": "y"}],
        "removed": [{"id": "3", "name": "db", "port": "5432", "zone": "us"}],
        "changed": [
            {
                "key": {"id": "2"},
                "changes": {
                    "port": {"old": "81", "new": "8081"},
                    "zone": {"old": "eu", "new": "us"},
                },
            }
        ],
        "columns_added": ["tls"],
        "columns_removed": [],
    }
    composite = node.diff_csv_versions(key=["name", "zone"])
    assert [c["key"] for c in composite["changed"]] == []
    assert {"name": "api", "zone": "us"} in [
        {k: r[k] for k in ("name", "zone")} for r in composite["added"]
    ]


def test_csv_by_content_and_dialects(storage: StorageManager) -> None:
    node = versions(storage, "v:t.tsv", "a\tb\n1\t2\n3\t4\n3\t4\n", "a\tb\n3\t4\n1\t2\n5\t6\n")
    assert node.diff_csv_versions() == {
        "added": [{"a": "5", "b": "6"}],
        "removed": [{"a": "3", "b": "4"}],
        "changed": [],
        "columns_added": [],
        "columns_removed": [],
    }
    quoted = versions(
        storage,
        "v:q.csv",
        'id,text\r\n1,"a, b"\r\n2,"multi\r\nline"\r\n',
        'id,text\r\n1,"a, b"\r\n2,"multi\r\nline!"\r\n',
    )
    assert quoted.diff_csv_versions(key="id")["changed"] == [
        {"key": {"id": "2"}, "changes": {"text": {"old": "multi\r\nline", "new": "multi\r\nline!"}}}
    ]


def test_csv_streams_across_the_sniff_sample(storage: StorageManager) -> None:
    rows = [f'{i},"note {i}\nsecond line, with comma",{i * 3}\n' for i in range(3000)]
    old = "id,note,value\n" + "".join(rows)
    rows[2500] = rows[2500].replace(f",{2500 * 3}\n", ",-1\n")
    node = versions(storage, "v:big.csv", old, "id,note,value\n" + "".join(rows))
    assert len(old) > 64 * 1024
    assert node.diff_csv_versions(key="id")["changed"] == [
        {"key": {"id": "2500"}, "changes": {"value": {"old": "7500", "new": "-1"}}}
    ]


def test_csv_errors(storage: StorageManager) -> None:
    node = versions(storage, "v:e.csv", CSV_V1, CSV_V2)
    with pytest.raises(InvalidContentError, match="'nope' not in the header"):
        node.diff_csv_versions(key="nope")
    node.write_text(CSV_V2 + "5;again;1;eu;y\n")
    with pytest.raises(InvalidContentError, match="appears twice") as caught:
        node.diff_csv_versions(key="id")
    assert node.versions[-1]["version_id"] in str(caught.value)
    node.write_bytes(b"id,x\n1,\xff\xfe\n")
    with pytest.raises(InvalidContentError, match="not CSV text"):
        node.diff_csv_versions()


# ---------------------------------------------------------------- images
def png(
    size: tuple[int, int] = (64, 48),
    box: tuple[int, int, int, int] | None = None,
    mode: str = "RGB",
) -> bytes:
    img = Image.new("RGB", size, (30, 120, 200))
    if box:
        ImageDraw.Draw(img).rectangle(box, fill=(250, 220, 0))
    out = io.BytesIO()
    palette = Image.Palette.ADAPTIVE if mode == "P" else Image.Palette.WEB
    img.convert(mode, palette=palette).save(out, "PNG")
    return out.getvalue()


def test_image_changed_region(storage: StorageManager) -> None:
    node = versions(storage, "v:logo.png", png(), png(box=(10, 8, 19, 17)))
    found = node.diff_image_versions()
    assert found.changed_pixels == 100 and found.bbox == (10, 8, 20, 18)
    assert 0.9 < found.similarity < 1.0 and found.hash_distance > 0
    assert found.image.size == (64, 48)
    assert found.image.getpixel((15, 12)) == (255, 0, 64)
    assert found.image.getpixel((40, 30)) != (255, 0, 64)
    same = node.diff_image_versions(-1, -1)
    assert same.similarity == 1.0 and same.hash_distance == 0 and same.identical


def test_image_sizes_and_modes(storage: StorageManager) -> None:
    node = versions(storage, "v:p.png", png(mode="P"), png(size=(80, 48), mode="RGBA"))
    found = node.diff_image_versions()
    assert found.old_size == (64, 48) and found.new_size == (80, 48)
    assert found.changed_pixels == 16 * 48 and found.bbox == (64, 0, 80, 48)
    assert 0.0 <= found.similarity < 1.0 and not found.identical


def test_image_errors(storage: StorageManager, monkeypatch: pytest.MonkeyPatch) -> None:
    node = versions(storage, "v:x.png", png(), b"not an image")
    with pytest.raises(InvalidContentError, match=node.versions[-1]["version_id"]):
        node.diff_image_versions()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'storied\[image\]'"):
        node.diff_image_versions()


# ---------------------------------------------------------------- CLI
STORIED = [
    sys.executable,
    "-c",
    "from storied.cli.main import cli, main; "
    "from storied.cli.diff_command import register; register(cli); main()",
]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **env}
    return subprocess.run(
        [*STORIED, *args], cwd=cwd, capture_output=True, text=True, env=environ, timeout=120
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    mounts = [
        {"name": "v", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True}
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    sm = StorageManager()
    sm.configure(str(tmp_path / "storied.yaml"))
    versions(sm, "v:app.ini", CONFIG_V1, CONFIG_V2)
    versions(sm, "v:cfg.json", json.dumps(JSON_V1), json.dumps({**JSON_V1, "name": "core"}))
    versions(sm, "v:hosts.csv", CSV_V1, CSV_V2)
    versions(sm, "v:logo.png", png(), png(box=(0, 0, 9, 9)))
    return tmp_path


def test_cli_text_formats(project: Path) -> None:
    plain = run(["diff", "v:app.ini"], project)
    assert plain.returncode == 0, plain.stderr
    assert "+port = 8080\n" in plain.stdout and plain.stdout.startswith("--- v:app.ini@")
    assert run(["diff", "v:app.ini", "-1", "-2"], project).stdout == plain.stdout
    assert run(["diff", "v:app.ini", "0", "1", "-U", "0"], project).stdout.count("\n@@ -") == 3
    assert run(["diff", "v:app.ini", "-1", "-1"], project).stdout == ""
    coloured = run(["diff", "v:app.ini"], project, FORCE_COLOR="1", NO_COLOR="")
    assert "\x1b[" in coloured.stdout and "port = 8080" in coloured.stdout
    html = run(["diff", "v:app.ini", "--format", "html", "-o", "d.html"], project)
    assert html.returncode == 0 and "port = 80<ins>80</ins>" in (project / "d.html").read_text()
    hunks = json.loads(run(["diff", "v:app.ini", "--format", "json"], project).stdout)
    assert "+port = 8080\n" in hunks["hunks"][0]["lines"]


def test_cli_semantic(project: Path) -> None:
    out = run(["diff", "v:cfg.json", "--semantic", "--format", "json"], project)
    assert json.loads(out.stdout)["changed"] == [{"path": "$.name", "old": "edge", "new": "core"}]
    assert '! $.name: "edge" -> "core"' in run(["diff", "v:cfg.json", "--semantic"], project).stdout
    csv_out = run(["diff", "v:hosts.csv", "--semantic", "--key", "id"], project).stdout
    assert "+ columns tls" in csv_out and '! {"id": "2"}' in csv_out
    img = run(["diff", "v:logo.png", "--semantic", "-o", "hl.png"], project)
    assert "100 changed pixels" in img.stdout and (project / "hl.png").stat().st_size > 0
    bad = run(["diff", "v:logo.png"], project)
    assert bad.returncode == 1 and "binary" in bad.stderr and "Traceback" not in bad.stderr
