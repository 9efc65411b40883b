"""The node-level conformance suite: the public API on any writable mount.

Subclass :class:`NodeConformance` and provide a ``storage`` fixture: a
:class:`~storied.StorageManager` with a fresh, empty, writable mount named ``base``. The suite
adds ``m`` (``base:inner``, full permissions) and ``ro`` (``base:inner``, read-only) itself.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from storied import (
    DirectoryNotEmptyError,
    SkipStrategy,
    StorageError,
    StorageManager,
    StorageNode,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.testing.hostile import CONTAINED, ESCAPES, RESERVED_NAMES

__all__ = ["NodeConformance"]

SECRET = b"outside the mount"


def _wsgi(node: StorageNode, **environ: str) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = node.serve({"REQUEST_METHOD": "GET", **environ}, start_response)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return seen["status"], seen["headers"], data


class NodeConformance:
    """Behaviour every writable mount must show through the public API."""

    @pytest.fixture
    def sm(self, storage: StorageManager) -> Iterator[StorageManager]:
        storage.node("base:secret.txt").write_bytes(SECRET)
        storage.node("base:inner").mkdir(parents=True, exist_ok=True)
        storage.configure(
            [
                {"name": "m", "path": "base:inner"},
                {"name": "ro", "path": "base:inner", "permissions": "readonly"},
            ]
        )
        yield storage

    def _outside_untouched(self, sm: StorageManager) -> None:
        base = sm.node("base:")
        files = {n.path for n in _walk(base)}
        assert sm.node("base:secret.txt").read_bytes() == SECRET
        assert all(p == "secret.txt" or p.startswith("inner/") for p in files), files

    # ------------------------------------------------------------------ read / write
    def test_text_and_bytes_roundtrip(self, sm: StorageManager) -> None:
        node = sm.node("m:docs/readme.txt")
        assert node.write_text("héllo") is True
        assert node.read_text() == "héllo"
        assert node.read("rb") == "héllo".encode()
        assert node.write(b"bytes!", mode="wb")
        assert node.read_bytes() == b"bytes!"
        with pytest.raises(TypeError):
            node.write_text(b"not text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            node.read(mode="x")

    def test_open_modes(self, sm: StorageManager) -> None:
        node = sm.node("m:open/modes.txt")
        with node.open("w") as f:
            f.write("line1\n")
        with node.open("a") as f:
            f.write("line2\n")
        with node.open("r") as f:
            assert f.read() == "line1\nline2\n"
        with node.open("r+b") as f:
            f.seek(0)
            f.write(b"LINE")
        assert node.read_bytes() == b"LINE1\nline2\n"
        with pytest.raises(FileExistsError), node.open("xb") as f:
            f.write(b"never")
        fresh = sm.node("m:open/fresh.bin")
        with fresh.open("xb") as f:
            f.write(b"created")
        assert fresh.read_bytes() == b"created"

    def test_failed_write_keeps_old_content(self, sm: StorageManager) -> None:
        node = sm.node("m:atomic.txt")
        node.write_text("old")
        with pytest.raises(RuntimeError), node.open("w") as f:
            f.write("half of the new")
            raise RuntimeError("crash mid-write")
        assert node.read_text() == "old"

    def test_skip_if_unchanged(self, sm: StorageManager) -> None:
        node = sm.node("m:skip.txt")
        assert node.write_text("same", skip_if_unchanged=True) is True
        assert node.write_text("same", skip_if_unchanged=True) is False
        assert node.write_text("diff", skip_if_unchanged=True) is True
        assert node.read_text() == "diff"

    def test_status_methods(self, sm: StorageManager) -> None:
        node = sm.node("m:stat/file.bin")
        assert not node.exists() and not node.is_file() and not node.is_dir()
        node.write_bytes(b"12345")
        assert node.exists() and node.is_file() and not node.is_dir()
        assert node.parent.is_dir()
        assert node.size() == 5
        assert node.md5hash() == "827ccb0eea8a706c4c34a16891f84e7b"
        assert isinstance(node.mtime(), float)
        assert node.ext_attributes[1:] == (5, False)
        assert sm.node("m:nothing").ext_attributes == (None, None, False)
        with pytest.raises(ValueError):
            node.parent.size()
        with pytest.raises(ValueError):
            node.parent.md5hash()
        with pytest.raises(FileNotFoundError):
            sm.node("m:missing.bin").size()
        with pytest.raises(FileNotFoundError):
            sm.node("m:missing.bin").read_bytes()

    def test_path_properties(self, sm: StorageManager) -> None:
        node = sm.node("m", "a", "b/archive.tar.gz")
        assert node.fullpath == "m:a/b/archive.tar.gz"
        assert (node.basename, node.stem, node.suffix, node.ext) == (
            "archive.tar.gz",
            "archive.tar",
            ".gz",
            "gz",
        )
        assert node.parent.fullpath == "m:a/b" and node.dirname == "m:a/b"
        assert node.splitext() == ("a/b/archive.tar", ".gz")
        assert node.mimetype in ("application/gzip", "application/x-tar")
        assert sm.node("m:/x//y/./z").path == "x/y/z"

    # ------------------------------------------------------------------ directories
    def test_children_mkdir_delete(self, sm: StorageManager) -> None:
        for p in ("d/b.txt", "d/a.txt", "d/sub/c.txt"):
            sm.node("m:" + p).write_text(p)
        names = [c.basename for c in sm.node("m:d").children()]
        assert names == ["a.txt", "b.txt", "sub"]
        child = sm.node("m:d").child("sub", "c.txt")
        assert child.read_text() == "d/sub/c.txt"
        with pytest.raises(DirectoryNotEmptyError):
            sm.node("m:d").delete()
        assert sm.node("m:d/a.txt").exists()
        assert sm.node("m:d").delete(recursive=True) is True
        assert not sm.node("m:d/sub/c.txt").exists()
        assert sm.node("m:d").delete() is False
        sm.node("m:newdir/deep").mkdir(parents=True)
        sm.node("m:newdir/deep").mkdir(parents=True, exist_ok=True)

    def test_children_of_missing_dir(self, sm: StorageManager) -> None:
        with pytest.raises(FileNotFoundError):
            sm.node("m:nowhere").children()

    # ------------------------------------------------------------------ copy / move
    def test_copy_file_and_dir(self, sm: StorageManager) -> None:
        for p in ("src/a.py", "src/b.txt", "src/pkg/c.py", "src/pkg/d.log"):
            sm.node("m:" + p).write_text(p)
        sm.node("m:src/a.py").copy_to(sm.node("m:single/a.py"))
        assert sm.node("m:single/a.py").read_text() == "src/a.py"
        seen: list[tuple[int, int]] = []
        copied: list[str] = []
        skipped: list[tuple[str, str]] = []
        sm.node("m:src").copy_to(
            "m:dst",
            include="*.py",
            progress=lambda i, t: seen.append((i, t)),
            on_file=lambda n: copied.append(n.path),
            on_skip=lambda n, r: skipped.append((n.path, r)),
        )
        assert sorted(copied) == ["src/a.py", "src/pkg/c.py"]
        assert seen == [(1, 2), (2, 2)]  # the files the filters let through (genro-storage)
        assert ("src/b.txt", "not matching include patterns") in skipped
        assert sm.node("m:dst/pkg/c.py").read_text() == "src/pkg/c.py"
        assert not sm.node("m:dst/b.txt").exists()
        sm.node("m:src").copy_to("m:dst2", exclude=["*.log"], filter=lambda n, rel: "b" not in rel)
        assert {n.basename for n in sm.node("m:dst2").children()} == {"a.py", "pkg"}

    @pytest.mark.parametrize("strategy", ["exists", "size", "hash", SkipStrategy.CUSTOM])
    def test_copy_skip_strategies(self, sm: StorageManager, strategy: Any) -> None:
        sm.node("m:s/one.txt").write_text("one")
        sm.node("m:s/two.txt").write_text("two")
        sm.node("m:s").copy_to("m:t")
        sm.node("m:s/two.txt").write_text("TWO")  # same size, new content
        skipped: list[str] = []
        sm.node("m:s").copy_to(
            "m:t",
            skip=strategy,
            skip_fn=lambda s, d: True,
            on_skip=lambda n, r: skipped.append(n.basename),
        )
        expected = {"exists": 2, "size": 2, "hash": 1, SkipStrategy.CUSTOM: 2}[strategy]
        assert len(skipped) == expected
        two = sm.node("m:t/two.txt").read_text()
        assert two == ("TWO" if strategy == "hash" else "two")

    def test_copy_errors(self, sm: StorageManager) -> None:
        with pytest.raises(FileNotFoundError, match="Source not found"):
            sm.node("m:ghost").copy_to("m:x")
        sm.node("m:real.txt").write_text("r")
        with pytest.raises(ValueError, match="skip_fn"):
            sm.node("m:real.txt").copy_to("m:y", skip="custom")

    def test_move_within_and_across_mounts(self, sm: StorageManager) -> None:
        node = sm.node("m:mv/a.txt")
        node.write_text("moving")
        moved = node.move_to("m:mv2/a.txt")
        assert moved.fullpath == "m:mv2/a.txt" and moved.read_text() == "moving"
        assert not sm.node("m:mv/a.txt").exists()
        sm.configure([{"name": "other", "type": "memory", "store": f"other-{id(sm)}"}])
        moved.move_to("other:a.txt")
        assert sm.node("other:a.txt").read_text() == "moving"
        assert not sm.node("m:mv2/a.txt").exists()

    # ------------------------------------------------------------------ integration
    def test_local_path_modes(self, sm: StorageManager) -> None:
        node = sm.node("m:lp/data.csv")
        node.write_text("a,b\n")
        with node.local_path("r") as p, open(p) as f:
            assert f.read() == "a,b\n"
        with node.local_path("rw") as p, open(p, "a") as f:
            f.write("1,2\n")
        assert node.read_text() == "a,b\n1,2\n"
        new = sm.node("m:lp/new.txt")
        with new.local_path("w") as p, open(p, "w") as f:
            f.write("fresh")
        assert new.read_text() == "fresh"

    def test_serve_streams_ranges_and_etags(self, sm: StorageManager) -> None:
        node = sm.node("m:web/page.bin")
        payload = bytes(range(256)) * 4096  # 1 MiB
        node.write_bytes(payload)
        status, headers, body = _wsgi(node)
        assert status.startswith("200") and body == payload
        assert headers["Content-Length"] == str(len(payload))
        status, headers, body = _wsgi(node, HTTP_RANGE="bytes=10-19")
        assert status.startswith("206") and body == payload[10:20]
        assert headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
        status, _, body = _wsgi(node, HTTP_RANGE="bytes=-5")
        assert body == payload[-5:]
        status, _, _ = _wsgi(node, HTTP_IF_NONE_MATCH=headers["ETag"])
        assert status.startswith("304")
        status, _, _ = _wsgi(node, HTTP_RANGE=f"bytes={len(payload) + 5}-")
        assert status.startswith("416")
        status, _, body = _wsgi(sm.node("m:web/none"))
        assert status.startswith("404") and body == b"Not Found"
        status, headers, _ = _wsgi(node, HTTP_RANGE="bytes=0-0")
        disposition = _wsgi_headers(node, download_name='r"é.bin')["Content-Disposition"]
        assert "filename*=UTF-8''r%22%C3%A9.bin" in disposition

    def test_base64_and_fill_from_url(self, sm: StorageManager) -> None:
        node = sm.node("m:b64/x.txt")
        node.write_bytes(b"hi")
        assert node.to_base64() == "data:text/plain;base64,aGk="
        assert node.to_base64(include_uri=False) == "aGk="
        with _http_server(b"downloaded body") as url:
            target = sm.node("m:b64/dl.bin")
            target.fill_from_url(url)
            assert target.read_bytes() == b"downloaded body"
        with pytest.raises(ValueError):
            target.fill_from_url("file:///etc/passwd")

    def test_metadata(self, sm: StorageManager) -> None:
        node = sm.node("m:meta.txt")
        node.write_text("x")
        if not node.capabilities.metadata:
            assert node.get_metadata() == {}
            with pytest.raises(PermissionError):
                node.set_metadata({"a": "b"})
            return
        node.set_metadata({"owner": "ana"})
        assert node.get_metadata() == {"owner": "ana"}
        assert node.read_text() == "x"

    def test_nodes_are_hashable_values(self, sm: StorageManager) -> None:
        a, b = sm.node("m:h.txt"), sm.node("m", "h.txt")
        assert a == b and hash(a) == hash(b) and len({a, b}) == 1
        assert a != sm.node("ro:h.txt")
        assert (a == None) is False  # noqa: E711
        a.write_text("same")
        sm.node("m:h2.txt").write_text("same")
        assert a.same_content(sm.node("m:h2.txt"))

    def test_plain_mount_has_no_versions(self, sm: StorageManager) -> None:
        node = sm.node("m:v.txt")
        node.write_text("1")
        if node.capabilities.versioning:
            pytest.skip("mount keeps history")
        assert node.versions == [] and node.version_count == 0
        with pytest.raises(PermissionError):
            node.open(version=-1)
        with pytest.raises(ValueError):
            node.open(version=-1, as_of=object())  # type: ignore[arg-type]

    # ------------------------------------------------------------------ safety
    @pytest.mark.parametrize("hostile", ESCAPES)
    def test_escapes_are_refused_everywhere(self, sm: StorageManager, hostile: str) -> None:
        attempts: list[Callable[[], object]] = [
            lambda: sm.node("m:" + hostile).write_bytes(b"pwned"),
            lambda: sm.node("m", hostile).write_bytes(b"pwned"),
            lambda: sm.node("m:ok").child(hostile).write_bytes(b"pwned"),
            lambda: sm.add_mount({"name": "evil", "path": "m:" + hostile}),
            lambda: sm.node("m:secret-src.txt").copy_to("m:" + hostile),
        ]
        sm.node("m:secret-src.txt").write_text("s")
        for attempt in attempts:
            with pytest.raises((ValueError, PermissionError)) as caught:
                attempt()
            assert isinstance(caught.value, StorageError)
        self._outside_untouched(sm)

    @pytest.mark.parametrize("odd", CONTAINED)
    def test_odd_paths_stay_inside(self, sm: StorageManager, odd: str) -> None:
        try:
            node = sm.node("m:" + odd)
            node.write_bytes(b"contained")
        except (ValueError, PermissionError) as exc:
            assert isinstance(exc, StorageError)
        else:
            assert node.read_bytes() == b"contained"
        with pytest.raises((ValueError, PermissionError)) if odd.startswith("/") else _nothing():
            sm.node("m:ok").child(odd).write_bytes(b"contained")
        self._outside_untouched(sm)

    def test_symlink_out_of_mount_is_refused(self, sm: StorageManager, tmp_path: Any) -> None:
        import os

        root = sm.node("m:").resolved_path
        if not sm.node("m:").capabilities.symbolic_links or root is None:
            pytest.skip("no symbolic links on this mount")
        (tmp_path / "outside.txt").write_text("private")
        os.symlink(tmp_path, os.path.join(root, "link"))
        with pytest.raises(PermissionError):
            sm.node("m:link/outside.txt").read_text()
        with pytest.raises(PermissionError):
            sm.node("m:link/new.txt").write_text("x")
        assert not (tmp_path / "new.txt").exists()

    def test_readonly_mount_refuses_every_write_path(self, sm: StorageManager) -> None:
        sm.node("m:shared/file.txt").write_text("original")
        ro = sm.node("ro:shared/file.txt")
        assert ro.read_text() == "original"
        refusals: list[Callable[[], object]] = [
            lambda: ro.write_text("x"),
            lambda: ro.write_bytes(b"x"),
            lambda: ro.write("x"),
            lambda: ro.open("w"),
            lambda: ro.open("wb"),
            lambda: ro.open("a"),
            lambda: ro.open("x"),
            lambda: sm.node("ro:shared/new.txt").open("xb"),
            lambda: ro.open("r+b"),
            lambda: ro.open("r+"),
            lambda: ro.delete(),
            lambda: sm.node("ro:shared").delete(recursive=True),
            lambda: sm.node("ro:newdir").mkdir(),
            lambda: ro.move_to("m:elsewhere.txt"),
            lambda: sm.node("m:shared/file.txt").copy_to("ro:shared/copy.txt"),
            lambda: sm.node("m:shared").copy_to("ro:shared-copy"),
            lambda: ro.set_metadata({"a": "b"}),
            lambda: ro.local_path("w").__enter__(),
            lambda: ro.local_path("rw").__enter__(),
            lambda: ro.call("true", ro),
            lambda: ro.fill_from_url("http://127.0.0.1:9/never"),
            lambda: sm.node("ro:shared/new.txt").write_bytes(io.BytesIO(b"stream")),
        ]
        for refuse in refusals:
            with pytest.raises(StoragePermissionError) as caught:
                refuse()
            assert isinstance(caught.value, PermissionError)
        assert sm.node("m:shared/file.txt").read_text() == "original"
        assert {n.basename for n in sm.node("m:shared").children()} == {"file.txt"}
        assert not sm.node("m:elsewhere.txt").exists()

    def test_move_onto_itself_through_an_alias_keeps_data(self, sm: StorageManager) -> None:
        sm.node("m:al/a.txt").write_text("precious")
        for target in ("base:inner/al/a.txt", "m:al/a.txt", "m://al/./a.txt"):
            assert sm.node("base:inner/al/a.txt").move_to(target).read_text() == "precious"
            sm.node("base:inner/al/a.txt").copy_to(target)
        assert sm.node("base:inner/al").move_to("m:al").is_dir()
        assert sm.node("m:al/a.txt").read_text() == "precious"
        into: Callable[[], object]
        for into in (lambda: sm.node("base:inner/al").move_to("m:al/sub"),
                     lambda: sm.node("m:al").copy_to("base:inner/al/copy"),
                     lambda: sm.node("base:inner").move_to("m:x")):
            with pytest.raises(ValueError) as caught:
                into()
            assert isinstance(caught.value, StorageError)
        assert sm.node("m:al/a.txt").read_text() == "precious"
        assert not sm.node("m:al/sub").exists() and not sm.node("m:al/copy").exists()

    @pytest.mark.parametrize("name", RESERVED_NAMES)
    def test_reserved_names_are_refused_at_any_depth(self, sm: StorageManager, name: str) -> None:
        attempt: Callable[[], object]
        for attempt in (lambda: sm.node("m:" + name), lambda: sm.node("m:ok").child(name),
                        lambda: sm.node("m:ok.txt").copy_to("m:" + name)):
            sm.node("m:ok.txt").write_text("ok")
            with pytest.raises((ValueError, PermissionError)) as caught:
                attempt()
            assert isinstance(caught.value, StorageError)

    def test_version_pinned_node_on_plain_mount(self, sm: StorageManager) -> None:
        sm.node("m:pin.txt").write_text("live")
        pinned = sm.node("m:pin.txt", version=-1)
        if sm.node("m:pin.txt").capabilities.versioning:
            pytest.skip("mount keeps history")
        assert not pinned.exists() and pinned.url() is None
        for refuse in (lambda: pinned.write_text("x"), pinned.delete, lambda: pinned.open("w"),
                       lambda: pinned.move_to("m:elsewhere.txt")):
            with pytest.raises(StoragePermissionError):
                refuse()
        assert sm.node("m:pin.txt").read_text() == "live"

    def test_missing_is_not_found_error(self, sm: StorageManager) -> None:
        with pytest.raises(StorageNotFoundError) as caught:
            sm.node("m:absent/file").read_text()
        assert isinstance(caught.value, FileNotFoundError)


def _walk(node: StorageNode) -> list[StorageNode]:
    return [node._related(e.path, e) for e in node._be.walk(node.path)]


def _wsgi_headers(node: StorageNode, **kw: Any) -> dict[str, str]:
    seen: dict[str, Any] = {}
    body = node.serve({"REQUEST_METHOD": "HEAD"}, lambda s, h: seen.update(h=dict(h)), **kw)
    getattr(body, "close", lambda: None)()
    return dict(seen["h"])


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _http_server:
    """A one-file HTTP server on 127.0.0.1 (free port) for download tests."""

    def __init__(self, body: bytes) -> None:
        payload = body

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/file"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
