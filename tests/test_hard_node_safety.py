"""Issue 8, items 1.1, 1.2, 1.3, 1.6: deletes, moves and copies never lose data or touch the
reserved history area. Run on the portable engine over memory, local disk and unversioned S3."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from storied import StorageError, StorageManager, StoragePermissionError
from storied.errors import InvalidPathError
from storied.testing.s3server import MotoHandle, make_bucket, s3_client


def _mount(kind: str, name: str, tmp_path: Path, moto: MotoHandle | None, **extra: object
           ) -> dict[str, object]:
    if kind == "memory":
        return {"name": name, "type": "memory", "store": f"{name}-{uuid.uuid4().hex}", **extra}
    if kind == "local":
        root = tmp_path / name
        root.mkdir()
        return {"name": name, "type": "local", "base_path": str(root), **extra}
    assert moto is not None
    bucket = make_bucket(moto.endpoint_url, f"{name}-{uuid.uuid4().hex[:12]}")
    return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
            "key": "k", "secret": "s", **extra}


@pytest.fixture(params=["memory", "local", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sm(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StorageManager]:
    moto = request.getfixturevalue("moto") if kind == "s3" else None
    storage = StorageManager()
    storage.configure([
        _mount(kind, "docs", tmp_path, moto, versioning=True),
        {"name": "pub", "path": "docs:public"},
        {"name": "alias", "path": "docs:"},
        _mount(kind, "plain", tmp_path, moto),
        {"name": "plainpub", "path": "plain:public"},
    ])
    yield storage
    storage.close()


def _history_intact(sm: StorageManager, path: str, writes: int) -> None:
    node = sm.node(path)
    assert node.version_count == writes, node.versions
    report = sm.verify("docs:")
    assert report.ok, report.problems


# ---------------------------------------------------------------------- 1.1 recursive delete
@pytest.mark.parametrize("root", ["docs:", "alias:"])
def test_recursive_delete_of_mount_root_keeps_history(sm: StorageManager, root: str) -> None:
    a = sm.node("docs:a.txt")
    a.write_text("one")
    a.write_text("two")
    a.tag_version(-2, "release")
    sm.node("docs:sub/b.txt").write_text("b")
    sm.create_snapshot("docs:", tag="before")
    assert sm.node(root).delete(recursive=True) is True
    assert not a.exists() and not sm.node("docs:sub/b.txt").exists()
    _history_intact(sm, "docs:a.txt", 2)
    assert a.get_version_tags() == {"release": a.versions[0]["version_id"]}
    assert [s["tag"] for s in sm.list_snapshots()] == ["before"]
    assert sm.node("docs:a.txt", version=-1).read_text() == "two"
    a.write_text("three")  # writing again continues the history
    assert a.version_count == 3 and a.read_text() == "three"


def test_recursive_delete_of_relative_mount_root_keeps_parent_history(sm: StorageManager) -> None:
    sm.node("pub:x.txt").write_text("1")
    sm.node("pub:x.txt").write_text("2")
    sm.node("docs:keep.txt").write_text("keep")
    sm.node("pub:").delete(recursive=True)
    assert not sm.node("pub:x.txt").exists()
    assert sm.node("docs:keep.txt").read_text() == "keep"
    _history_intact(sm, "docs:public/x.txt", 2)


def test_move_of_mount_root_content_keeps_history(sm: StorageManager) -> None:
    sm.node("docs:m/a.txt").write_text("1")
    sm.node("docs:m/a.txt").write_text("2")
    sm.node("docs:m").move_to("plain:moved")
    assert sm.node("plain:moved/a.txt").read_text() == "2"
    _history_intact(sm, "docs:m/a.txt", 2)


# ---------------------------------------------------------------------- 1.2 move onto itself
@pytest.mark.parametrize("mount", ["docs", "plain"])
def test_move_onto_same_location_is_a_noop(sm: StorageManager, mount: str) -> None:
    sub = "pub" if mount == "docs" else "plainpub"
    node = sm.node(f"{mount}:public/a.txt")
    node.write_text("precious")
    for target in (f"{mount}:public/a.txt", f"{sub}:a.txt", f"{mount}:/public//a.txt"):
        moved = sm.node(f"{mount}:public/a.txt").move_to(target)
        assert moved.read_text() == "precious"
        assert sm.node(f"{mount}:public/a.txt").read_text() == "precious"
    folder = sm.node(f"{mount}:public")
    assert folder.move_to(f"{sub}:").is_dir()
    assert sm.node(f"{mount}:public/a.txt").read_text() == "precious"


@pytest.mark.parametrize("mount", ["docs", "plain"])
def test_move_or_copy_into_own_subfolder_is_refused(sm: StorageManager, mount: str) -> None:
    sub = "pub" if mount == "docs" else "plainpub"
    sm.node(f"{mount}:public/d/a.txt").write_text("a")
    sm.node(f"{mount}:public/d/e/b.txt").write_text("b")
    attempts = [
        lambda: sm.node(f"{mount}:public/d").move_to(f"{mount}:public/d/inner"),
        lambda: sm.node(f"{mount}:public/d").move_to(f"{sub}:d/e/x"),
        lambda: sm.node(f"{mount}:public").move_to(f"{sub}:inner"),
        lambda: sm.node(f"{mount}:public/d").copy_to(f"{mount}:public/d/copy"),
        lambda: sm.node(f"{sub}:d").copy_to(f"{mount}:public/d/e/copy"),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError) as caught:
            attempt()
        assert isinstance(caught.value, StorageError)
    assert sm.node(f"{mount}:public/d/a.txt").read_text() == "a"
    assert sm.node(f"{mount}:public/d/e/b.txt").read_text() == "b"
    assert not sm.node(f"{mount}:public/d/inner").exists()
    assert not sm.node(f"{mount}:public/d/copy").exists()


def test_copy_onto_itself_keeps_content(sm: StorageManager) -> None:
    node = sm.node("docs:public/c.txt")
    node.write_text("same")
    node.copy_to("pub:c.txt")
    node.copy_to("docs:public/c.txt")
    assert node.read_text() == "same"
    assert node.version_count == 1


# ---------------------------------------------------------------------- 1.3 hidden names
@pytest.mark.parametrize("name", ["x.storied-tmp-1", ".a.storied-tmp-99", "d/.storied-tmp-/f"])
def test_temp_names_are_refused_at_write_time(sm: StorageManager, name: str) -> None:
    for attempt in (lambda: sm.node("plain:" + name).write_text("x"),
                    lambda: sm.node("plain:ok").child(name).write_text("x"),
                    lambda: sm.node("docs:" + name).write_text("x")):
        with pytest.raises(InvalidPathError):
            attempt()


def test_move_deletes_only_what_it_copied_local(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    sm = StorageManager()
    sm.configure([{"name": "home", "type": "local", "base_path": str(root)},
                  {"name": "mem", "type": "memory"}])
    sm.node("home:d/a.txt").write_text("a")
    (root / "d" / "b.txt.storied-tmp-1-2").write_bytes(b"hidden user file")
    sm.node("home:d").move_to("mem:d")
    assert sm.node("mem:d/a.txt").read_text() == "a"
    assert (root / "d" / "b.txt.storied-tmp-1-2").read_bytes() == b"hidden user file"
    assert not (root / "d" / "a.txt").exists()
    sm.node("home:e/a.txt").write_text("a")
    (root / "e" / "c.storied-tmp-3").write_bytes(b"hidden")
    sm.node("home:e").delete(recursive=True)
    assert (root / "e" / "c.storied-tmp-3").read_bytes() == b"hidden"


def test_move_deletes_only_what_it_copied_s3(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"hid-{uuid.uuid4().hex[:12]}")
    client = s3_client(moto.endpoint_url)
    hidden = ["d//b", "d/./c", "d/x/../y"]
    for key in ["d/a.txt", *hidden]:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s",
                   "versioning": True},
                  {"name": "mem", "type": "memory"}])
    sm.node("s3:d").move_to("mem:d")
    assert sm.node("mem:d/a.txt").read_text() == "d/a.txt"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert set(hidden) <= keys and "d/a.txt" not in keys
    client.close()
    sm.close()


# ---------------------------------------------------------------------- 1.6 reserved names
@pytest.mark.parametrize("path", ["a/.storied", "a/.storied/x", "a/b/.storied/refs/x.json"])
def test_reserved_segment_is_refused_at_any_depth(sm: StorageManager, path: str) -> None:
    for attempt in (lambda: sm.node("docs:" + path).write_text("x"),
                    lambda: sm.node("plain:" + path).write_text("x"),
                    lambda: sm.node("docs:ok").child(path).write_text("x"),
                    lambda: sm.node("docs:ok.txt").copy_to("docs:" + path)):
        sm.node("docs:ok.txt").write_text("ok")
        with pytest.raises(StoragePermissionError):
            attempt()


def _forged_zip(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "from the zip")
        zf.writestr(".storied/format.json",
                    '{"format": "storied-history", "schema_version": 999}')
        zf.writestr(".storied/refs/a.txt/refs.json", '{"tags": {"forged": "1.x"}}')
        zf.writestr(".storied/snapshots/evil.json", "{}")
        zf.writestr("sub/.storied/format.json", "{}")
        zf.writestr("sub/b.txt", "b")
    path = tmp_path / "forged.zip"
    path.write_bytes(buf.getvalue())
    return path


def test_copy_of_folder_with_reserved_area_skips_it(sm: StorageManager, tmp_path: Path) -> None:
    sm.node("docs:a.txt").write_text("mine")
    sm.configure([{"name": "zip", "type": "zip", "file": str(_forged_zip(tmp_path))}])
    assert {c.basename for c in sm.node("zip:").children()} == {"a.txt", "sub"}
    assert {c.basename for c in sm.node("zip:sub").children()} == {"b.txt"}
    skipped: list[tuple[str, str]] = []
    sm.node("zip:").copy_to("docs:", on_skip=lambda n, r: skipped.append((n.path, r)))
    assert sorted(skipped) == [(p, "reserved") for p in (
        ".storied/format.json", ".storied/refs/a.txt/refs.json", ".storied/snapshots/evil.json",
        "sub/.storied/format.json")]
    sm.node("zip:").copy_to("pub:")
    sm.node("zip:").copy_to("alias:")
    a = sm.node("docs:a.txt")
    assert a.read_text() == "from the zip"
    assert a.get_version_tags() == {}
    assert sm.list_snapshots() == []
    a.write_text("still writable")  # the format marker was not replaced
    assert a.version_count == 4
    assert sm.node("docs:sub/b.txt").read_text() == "b"
    assert {c.basename for c in sm.node("docs:sub").children()} == {"b.txt"}
    assert sm.verify("docs:").ok


def test_history_elsewhere_still_works(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    sm = StorageManager()
    sm.configure([
        {"name": "archive", "type": "memory"},
        {"name": "docs", "type": "local", "base_path": str(tmp_path / "data"),
         "versioning": True, "history": "archive:histories/docs"},
    ])
    node = sm.node("docs:d/a.txt")
    node.write_text("1")
    node.write_text("2")
    sm.node("docs:").delete(recursive=True)
    assert not node.exists() and node.version_count == 2
    assert sm.node("docs:a.txt", version=None).exists() is False
    assert sm.verify("docs:").ok


@pytest.mark.parametrize("versioning", [False, True])
def test_recursive_delete_keeps_unaddressable_s3_keys(moto: MotoHandle, versioning: bool) -> None:
    bucket = make_bucket(moto.endpoint_url, f"hdel-{uuid.uuid4().hex[:12]}")
    client = s3_client(moto.endpoint_url)
    hidden = ["d//b", "d/./c", "d/x/../y", "d/e/z.storied-tmp-1", "d/.storied/refs.json"]
    for key in ["d/a.txt", "d/e/f.txt", *hidden]:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket,
                   "endpoint_url": moto.endpoint_url, "key": "k", "secret": "s",
                   "versioning": versioning}])
    assert {c.basename for c in sm.node("s3:d/e").children()} == {"f.txt"}
    assert sm.node("s3:d").delete(recursive=True) is True
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert set(hidden) <= keys
    assert not keys & {"d/a.txt", "d/e/f.txt"}
    client.close()
    sm.close()


def test_hidden_prefix_protects_a_history_kept_in_another_mount() -> None:
    from storied.backends.memory import MemoryBackend
    from storied.backends.wrappers import HideReserved

    sm = StorageManager()
    sm.configure([{"name": "archive", "type": "memory"}])
    raw = MemoryBackend("archive")
    raw.write("histories/docs/blobs/ab/abc", b"blob")
    raw.write("histories/other.txt", b"user file")
    hider = sm.get_backend("archive")
    assert isinstance(hider, HideReserved)  # the wrapper every plain mount has (no branching)
    hider.hide("histories/docs")
    assert {c.path for c in sm.node("archive:histories").children()} == {"histories/other.txt"}
    for refuse in (lambda: sm.node("archive:histories/docs/x").write_text("forged"),
                   lambda: sm.node("archive:histories/docs/blobs/ab/abc").delete(),
                   lambda: sm.node("archive:histories/docs").mkdir(exist_ok=True)):
        with pytest.raises(StoragePermissionError):
            refuse()
    sm.node("archive:histories").move_to("archive:moved")
    sm.node("archive:").delete(recursive=True)
    assert raw.read_bytes("histories/docs/blobs/ab/abc") == b"blob"
    assert not raw.exists("histories/other.txt")


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_renames_that_would_replace_other_things_are_refused(kind: str, tmp_path: Path) -> None:
    sm = StorageManager()
    sm.configure([_mount(kind, "m", tmp_path, None)])
    for path, text in (("a.txt", "A"), ("d/x.txt", "X"), ("e/y.txt", "Y"), ("f.txt", "F")):
        sm.node("m:" + path).write_text(text)
    for src, dst in (("a.txt", "d"), ("d", "f.txt"), ("d", "e"), ("a.txt", "f.txt/q/z")):
        with pytest.raises(StorageError):
            sm.node("m:" + src).move_to("m:" + dst)
    assert sorted(e.path for e in sm.node("m:")._be.walk("")) == [
        "a.txt", "d/x.txt", "e/y.txt", "f.txt"]
    with pytest.raises(StorageError):
        sm.node("m:f.txt/q/z").write_text("under a file")
    assert sm.node("m:f.txt").read_text() == "F"
    assert {c.path for c in sm.node("m:").children()} == {"a.txt", "d", "e", "f.txt"}


@pytest.mark.parametrize("versioning", [False, True])
def test_recursive_delete_unlinks_links_never_their_targets(tmp_path: Path, versioning: bool
                                                             ) -> None:
    import os

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "t").mkdir(parents=True)
    outside.mkdir()
    (root / "t" / "keep.txt").write_text("inside target")
    (outside / "secret.txt").write_text("outside target")
    sm = StorageManager()
    sm.configure([{"name": "h", "type": "local", "base_path": str(root),
                   "versioning": versioning}])
    sm.node("h:d/a.txt").write_text("a")
    sm.node("h:d/sub/b.txt").write_text("b")
    os.symlink("../t", root / "d" / "inlink")
    os.symlink(str(outside), root / "d" / "sub" / "outlink")
    os.symlink("../../t/keep.txt", root / "d" / "sub" / "filelink")
    assert sm.node("h:d").delete(recursive=True) is True
    assert not (root / "d").exists() and not os.path.lexists(root / "d")
    assert (root / "t" / "keep.txt").read_text() == "inside target"
    assert (outside / "secret.txt").read_text() == "outside target"
    if versioning:
        assert sm.node("h:d/a.txt").version_count == 1


def test_two_mounts_of_one_storage_are_aliases(moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"alias-{uuid.uuid4().hex[:12]}")
    s3 = {"type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url, "key": "k",
          "secret": "s"}
    sm = StorageManager()
    sm.configure([{"name": "a", **s3}, {"name": "b", **s3, "base_path": "sub"},
                  {"name": "m1", "type": "memory", "store": "shared"},
                  {"name": "m2", "type": "memory", "store": "shared", "base_path": "x"}])
    sm.node("a:sub/f.txt").write_text("one copy")
    assert sm.node("a:sub/f.txt").move_to("b:f.txt").read_text() == "one copy"
    assert sm.node("a:sub/f.txt").read_text() == "one copy"
    with pytest.raises(ValueError):
        sm.node("a:sub").move_to("b:inner")
    sm.node("m1:x/g.txt").write_text("shared")
    sm.node("m2:g.txt").move_to("m1:x/g.txt")
    assert sm.node("m1:x/g.txt").read_text() == "shared"
    sm.close()
