"""Differential tests: one public-API scenario, run through genro-storage 0.8.4 and storied.

Each case runs the same calls on ``genro_storage.StorageManager`` and ``storied.StorageManager``
(each on its own local directory, and on a memory mount) and compares what a caller can see:
return values and their types, node properties, file contents, and the builtin classes every
raised exception is an instance of. A genro-storage exception class must be among storied's
(storied raises subclasses that are also the builtins genro raised: ``except ValueError`` keeps
working), and ``message`` cases compare the text too.

Where genro-storage is wrong (loses data or answers wrongly; see
/work/shared/reference/genro-storage-api.md, section 8) storied differs on purpose: those cases
are in ``EXPECTED``, with the reason, and assert each side's own answer, so they fail as soon as
either side changes.
"""

from __future__ import annotations

import functools
import http.server
import io
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import storied
from storied.testing.s3server import MotoHandle, make_bucket

genro = pytest.importorskip("genro_storage")

#: The builtin classes an exception is compared by (its storied/genro class is not compared).
BUILTINS: tuple[type[BaseException], ...] = (
    FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
    ValueError, TypeError, KeyError, IndexError, LookupError, UnicodeError, OSError,
    RuntimeError, NotImplementedError, AttributeError,
)


@dataclass(frozen=True)
class Raised:
    """What a call raised: the builtin classes it is an instance of, and its message."""

    kinds: frozenset[str]
    message: str


def outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or a :class:`Raised` describing what it raised."""
    try:
        return fn()
    except Exception as exc:
        kinds = frozenset(c.__name__ for c in BUILTINS if isinstance(exc, c))
        return Raised(kinds, str(exc))


@dataclass
class Side:
    """One library's manager, its mount name for this case, and the directory of its local
    mount."""

    lib: ModuleType
    sm: Any
    m: str
    root: Path

    def n(self, path: str = "") -> Any:
        """The node ``path`` on this case's mount."""
        return self.sm.node(f"{self.m}:{path}")


def _memory_reset() -> None:
    """Empty fsspec's process-global memory filesystem (genro's memory mounts use it)."""
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]


@pytest.fixture(autouse=True)
def _fresh_fsspec_memory() -> Iterator[None]:
    _memory_reset()
    yield
    _memory_reset()


def seed(side: Side) -> None:
    """The same small tree on every side: a text file, a binary file in a directory tree, and
    an empty directory."""
    side.n("a.txt").write_text("hello\nworld\n")
    side.n("dir/b.bin").write_bytes(b"\x00\x01\x02")
    side.n("dir/sub/c.txt").write_text("c")
    side.n("dir/z.txt").write_text("zz")
    side.n("empty").mkdir()
    side.n("dir/void").mkdir()


def make_side(lib: ModuleType, root: Path, mount: str) -> Side:
    root.mkdir()
    sm = lib.StorageManager()
    sm.configure([
        {"name": "loc", "protocol": "local", "base_path": str(root), "base_url": "/static/"},
        {"name": "mem", "protocol": "memory"},
        {"name": "bare", "protocol": "local", "base_path": str(root)},
    ])  # fmt: skip
    side = Side(lib, sm, mount, root)
    seed(side)
    return side


def sides(tmp_path: Path, mount: str) -> tuple[Side, Side]:
    return (make_side(genro, tmp_path / "genro", mount),
            make_side(storied, tmp_path / "storied", mount))  # fmt: skip


def node_view(lib: ModuleType, node: Any) -> tuple[str, bool]:
    """What a caller sees of a returned node: its full path, and that it is a StorageNode."""
    return node.fullpath, isinstance(node, lib.StorageNode)


def tree(side: Side, path: str = "") -> list[tuple[str, str]]:
    """Every file below ``path`` with its content, sorted (directories by their files)."""
    found = []
    for child in side.n(path).children():
        if child.is_dir():
            found.append((child.path + "/", ""))
            found.extend(tree(side, child.path))
        else:
            found.append((child.path, child.read_bytes().decode("latin-1")))
    return sorted(found)


# ------------------------------------------------------------------------------- scenarios
def _after(action: Callable[[], Any], *checks: Callable[[], Any]) -> tuple[Any, ...]:
    """``action()``'s outcome, then each check's outcome (checks run whatever happened)."""
    return (outcome(action), *(outcome(c) for c in checks))


def _delete(node: Any) -> str:
    """Delete, ignoring the return value (storied's bool; see the ``delete_*`` cases)."""
    node.delete()
    return "deleted"


def _open_read(s: Side, path: str, mode: str) -> Any:
    with s.n(path).open(mode) as f:
        data = f.read()
    return type(data).__name__, data


def _open_write(s: Side, path: str, mode: str, data: Any) -> Any:
    with s.n(path).open(mode) as f:
        f.write(data)
    return s.n(path).read_bytes()


def _zip_names(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return sorted((name, archive.read(name)) for name in archive.namelist())


def _children(s: Side, path: str) -> Any:
    kids = s.n(path).children()
    return type(kids).__name__, sorted(node_view(s.lib, k) for k in kids)


def _copy(s: Side, src: str, dest: str, **options: Any) -> Any:
    skipped: list[tuple[str, str]] = []
    done: list[tuple[int, int]] = []
    copied: list[str] = []
    if options.pop("track", False):
        options.update(on_skip=lambda n, why: skipped.append((n.path, why)),
                       progress=lambda i, t: done.append((i, t)),
                       on_file=lambda n: copied.append(n.path))  # fmt: skip
    result = s.n(src).copy_to(s.n(dest) if options.pop("as_node", True) else f"{s.m}:{dest}",
                              **options)  # fmt: skip
    return (node_view(s.lib, result), tree(s, dest) if s.n(dest).is_dir() else
            s.n(dest).read_bytes(), s.n(src).exists(), sorted(skipped), done, sorted(copied))


def _move(s: Side, src: str, dest: str) -> Any:
    node = s.n(src)
    result = node.move_to(f"{s.m}:{dest}" if dest else s.n("moved"))
    return (result is node, node.fullpath, node.path, s.n(src).exists(),
            tree(s, node.path) if node.is_dir() else node.read_bytes())


def _serve(s: Side, path: str, **kwargs: Any) -> Any:
    seen: list[tuple[str, dict[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append((status, dict(headers)))

    body = b"".join(s.n(path).serve({"REQUEST_METHOD": "GET"}, start_response, **kwargs))
    status, headers = seen[0]
    keep = ("Content-Type", "Content-Length", "Content-Disposition", "Cache-Control")
    return status, {k: v for k, v in headers.items() if k in keep}, body


def _serve_not_modified(s: Side) -> Any:
    seen: list[tuple[str, dict[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append((status, dict(headers)))

    s.n("a.txt").serve({"REQUEST_METHOD": "GET"}, start_response)
    etag = seen[0][1]["ETag"]
    body = s.n("a.txt").serve({"REQUEST_METHOD": "GET", "HTTP_IF_NONE_MATCH": etag},
                              start_response)  # fmt: skip
    return seen[1][0], b"".join(body)


def _local_path(s: Side, path: str, mode: str, write: bytes | None = None) -> Any:
    with s.n(path).local_path(mode) as where:
        before = Path(where).read_bytes() if Path(where).exists() else None
        suffix = Path(where).suffix
        if write is not None:
            Path(where).write_bytes(write)
    return type(where).__name__, suffix, before, s.n(path).read_bytes()


def _metadata_roundtrip(s: Side) -> Any:
    return outcome(lambda: s.n("a.txt").set_metadata({"k": "v"})), s.n("a.txt").get_metadata()


CAPABILITY_FIELDS = (
    "read", "write", "delete", "mkdir", "list_dir", "versioning", "version_listing",
    "version_access", "metadata", "presigned_urls", "public_urls", "atomic_operations",
    "symbolic_links", "copy_optimization", "hash_on_metadata", "append_mode", "seek_support",
    "readonly", "temporary",
)


def _capabilities(node: Any) -> dict[str, bool]:
    caps = node.capabilities
    return {name: getattr(caps, name) for name in CAPABILITY_FIELDS}


def _iternode(s: Side) -> Any:
    joined = s.sm.iternode(s.n("a.txt"))
    joined.extend(s.n("dir/z.txt"), s.n("dir/sub/c.txt"))
    joined.append(s.n("a.txt"))
    return (joined.read_text(), joined.read_bytes(), joined.exists(), joined.fullpath,
            _zip_names(joined.zip()))  # fmt: skip


def _iternode_copy(s: Side) -> Any:
    joined = s.sm.iternode(s.n("a.txt"), s.n("dir/z.txt"))
    result = joined.copy_to(f"{s.m}:joined.txt")
    return node_view(s.lib, result), s.n("joined.txt").read_text()


def _call_callback(s: Side) -> Any:
    seen: list[int] = []
    return _call(s, "true", callback=lambda: seen.append(1)), seen


def _call(s: Side, *argv: str, **kwargs: Any) -> Any:
    args = [s.n(a[1:]) if a.startswith("@") else a for a in argv]
    return s.n("a.txt").call(*args, **kwargs)


SCENARIOS: dict[str, Callable[[Side], Any]] = {
    # ---- pure path properties
    "path_props": lambda s: [
        (n.fullpath, n.path, n.basename, n.stem, n.suffix, n.ext, n.splitext(), n.dirname,
         n.parent.fullpath, n.parent.path, n.mimetype, repr(n), str(n))
        for n in (s.n("dir/sub/c.tar.gz"), s.n("a.txt"), s.n("noext"), s.n(""), s.n("x.png"),
                  s.n(".hidden"), s.n("dir/"))
    ],
    "node_normalisation": lambda s: [
        s.sm.node(p).path for p in (f"{s.m}:/a//b/", f"{s.m}://x", f"{s.m}", f"{s.m}:")
    ] + [s.sm.node(s.m, "a", "b/c").fullpath, s.sm.node(f"{s.m}:a", "b").fullpath],
    "node_dot_segment": lambda s: s.sm.node(f"{s.m}:a/./b").path,
    "dot_segment_file": lambda s: (s.sm.node(f"{s.m}:d/./f").write_text("x"),
                                   s.n("d/f").exists(), _children(s, "d")),
    "node_dotdot": lambda s: s.sm.node(f"{s.m}:a/../b"),
    "node_unknown_mount": lambda s: s.sm.node("nomount:x"),
    "node_dummy": lambda s: (s.sm.node().fullpath, s.sm.node().exists()),
    "child": lambda s: [s.n("dir").child("x", "y/z").fullpath, s.n("").child("q").fullpath,
                        node_view(s.lib, s.n("dir").child("sub"))],
    "child_dotdot": lambda s: s.n("dir").child("..", "a.txt").fullpath,
    "parent_chain": lambda s: [node_view(s.lib, s.n("dir/sub/c.txt").parent.parent),
                               s.n("").parent.fullpath],
    # ---- status
    "exists": lambda s: [(s.n(p).exists(), s.n(p).is_file(), s.n(p).is_dir())
                         for p in ("a.txt", "dir", "empty", "missing", "", "dir/sub/c.txt")],
    "size_file": lambda s: (s.n("a.txt").size(), type(s.n("a.txt").size()).__name__,
                            s.n("dir/b.bin").size()),
    "size_dir": lambda s: s.n("dir").size(),
    "size_missing": lambda s: s.n("missing").size(),
    "mtime_file": lambda s: type(s.n("a.txt").mtime()).__name__,
    "mtime_missing": lambda s: s.n("missing").mtime(),
    "md5_file": lambda s: (s.n("a.txt").md5hash(), s.n("dir/b.bin").md5hash()),
    "md5_dir": lambda s: s.n("dir").md5hash(),
    "md5_missing": lambda s: s.n("missing").md5hash(),
    "ext_attributes_file": lambda s: [type(v).__name__ for v in s.n("a.txt").ext_attributes]
    + [s.n("a.txt").ext_attributes[1:]],
    "ext_attributes_missing": lambda s: s.n("missing").ext_attributes,
    "capabilities": lambda s: _capabilities(s.n("a.txt")),
    "get_metadata": lambda s: s.n("a.txt").get_metadata(),
    "get_metadata_missing": lambda s: s.n("missing").get_metadata(),
    "set_metadata": _metadata_roundtrip,
    "url": lambda s: (s.n("dir/z.txt").url(), s.n("a.txt").url(expires_in=10)),
    "url_no_base": lambda s: s.sm.node("bare:a.txt").url(),
    "internal_url": lambda s: (s.n("a.txt").internal_url(), s.n("a.txt").internal_url(True)),
    "resolved_path": lambda s: (lambda p: p if p is None else
                                (type(p).__name__, Path(p).relative_to(s.root).as_posix()))(
        s.n("dir/new.txt").resolved_path),
    # ---- reading
    "read_text": lambda s: (s.n("a.txt").read_text(), s.n("a.txt").read(),
                            s.n("a.txt").read("r", encoding="latin-1")),
    "read_bytes": lambda s: (s.n("dir/b.bin").read_bytes(), s.n("dir/b.bin").read(mode="rb")),
    "read_bad_mode": lambda s: s.n("a.txt").read("x"),
    "read_missing": lambda s: s.n("missing").read_text(),
    "read_bytes_missing": lambda s: s.n("missing").read_bytes(),
    "read_dir": lambda s: s.n("dir").read_bytes(),
    "read_not_utf8": lambda s: (s.n("dir/b.bin").write_bytes(b"\xff"),
                                s.n("dir/b.bin").read_text()),
    "read_latin1": lambda s: (s.n("dir/b.bin").write_bytes(b"\xe9"),
                              s.n("dir/b.bin").read_text("latin-1")),
    "open_r": lambda s: _open_read(s, "a.txt", "r"),
    "open_rb": lambda s: _open_read(s, "dir/b.bin", "rb"),
    "open_default_mode": lambda s: (lambda f: (type(f.read()).__name__, f.close()))(
        s.n("a.txt").open()),
    "open_missing": lambda s: s.n("missing").open("rb"),
    "open_w": lambda s: _open_write(s, "new/deep/w.txt", "w", "text"),
    "open_wb_replace": lambda s: _open_write(s, "a.txt", "wb", b"bytes"),
    "open_a": lambda s: _open_write(s, "a.txt", "a", "more\n"),
    "open_ab_new": lambda s: _open_write(s, "fresh.bin", "ab", b"x"),
    "open_x_existing": lambda s: _open_write(s, "a.txt", "x", "no"),
    "open_x_new": lambda s: _open_write(s, "xnew.txt", "x", "yes"),
    "open_rplus": lambda s: (lambda f: (f.write(b"J"), f.close()))(s.n("a.txt").open("r+b"))
    and s.n("a.txt").read_bytes(),
    "open_bad_mode": lambda s: s.n("a.txt").open("z"),
    # ---- writing
    "write_text": lambda s: (s.n("w.txt").write_text("é"), s.n("w.txt").read_bytes()),
    "write_text_encoding": lambda s: (s.n("w.txt").write_text("é", encoding="latin-1"),
                                      s.n("w.txt").read_bytes()),
    "write_text_unencodable": lambda s: s.n("w.txt").write_text("é", encoding="ascii"),
    "write_bytes": lambda s: (s.n("w.bin").write_bytes(b"\x00"), s.n("w.bin").read_bytes()),
    "write_bytearray": lambda s: (s.n("w.bin").write_bytes(bytearray(b"ab")),
                                  s.n("w.bin").read_bytes()),
    "write_modes": lambda s: (s.n("w1").write("t"), s.n("w2").write(b"b", mode="wb"),
                              s.n("w1").read_bytes(), s.n("w2").read_bytes()),
    "write_text_mode_bytes": lambda s: s.n("w").write(b"b", mode="w"),
    "write_binary_mode_str": lambda s: s.n("w").write("t", mode="wb"),
    "write_bad_mode": lambda s: s.n("w").write("t", mode="a"),
    "write_text_not_str": lambda s: s.n("w").write_text(b"x"),
    "write_bytes_not_bytes": lambda s: s.n("w").write_bytes("x"),
    "write_creates_parents": lambda s: (s.n("p/q/r.txt").write_text("r"), s.n("p/q").is_dir(),
                                        s.n("p").is_dir()),
    "write_onto_dir": lambda s: s.n("dir").write_text("x"),
    "write_under_file": lambda s: s.n("a.txt/x").write_text("x"),
    "write_onto_implicit_dir": lambda s: (s.n("p/q.txt").write_text("q"),
                                          s.n("p").write_text("x")),
    "skip_if_unchanged": lambda s: (
        s.n("a.txt").write_text("hello\nworld\n", skip_if_unchanged=True),
        s.n("a.txt").write_text("other", skip_if_unchanged=True),
        s.n("new.txt").write_bytes(b"n", skip_if_unchanged=True),
        s.n("a.txt").write("other", skip_if_unchanged=True),
        s.n("a.txt").read_text()),
    # ---- delete
    "delete_returns": lambda s: (s.n("a.txt").delete(), s.n("missing").delete(),
                                 s.n("empty").delete()),
    "delete_file": lambda s: _after(lambda: _delete(s.n("a.txt")), lambda: s.n("a.txt").exists()),
    "delete_missing": lambda s: _after(lambda: _delete(s.n("missing")),
                                       lambda: s.n("missing").exists()),
    "delete_empty_dir": lambda s: _after(lambda: _delete(s.n("empty")),
                                         lambda: s.n("empty").exists()),
    "delete_tree": lambda s: _after(lambda: s.n("dir").delete(), lambda: s.n("dir").exists(),
                                    lambda: s.n("dir/sub/c.txt").exists()),
    # ---- directories
    "children_root": lambda s: _children(s, ""),
    "children_dir": lambda s: _children(s, "dir"),
    "children_empty": lambda s: _children(s, "empty"),
    "children_missing": lambda s: _children(s, "missing"),
    "children_file": lambda s: _children(s, "a.txt"),
    "children_types": lambda s: sorted((c.basename, c.is_file(), c.is_dir(), c.exists())
                                       for c in s.n("dir").children()),
    "mkdir_new": lambda s: (s.n("nd").mkdir(), s.n("nd").is_dir(), _children(s, "nd")),
    "mkdir_existing": lambda s: s.n("empty").mkdir(),
    "mkdir_exist_ok": lambda s: (s.n("empty").mkdir(exist_ok=True), s.n("empty").is_dir()),
    "mkdir_no_parent": lambda s: s.n("x/y/z").mkdir(),
    "mkdir_parents": lambda s: (s.n("x/y/z").mkdir(parents=True), s.n("x/y").is_dir()),
    "mkdir_on_file": lambda s: s.n("a.txt").mkdir(),
    "mkdir_on_file_exist_ok": lambda s: s.n("a.txt").mkdir(exist_ok=True),
    "mkdir_under_file": lambda s: s.n("a.txt/sub").mkdir(parents=True),
    # ---- copy and move
    "copy_file": lambda s: _copy(s, "a.txt", "copy.txt"),
    "copy_file_str_dest": lambda s: _copy(s, "a.txt", "c/d/copy.txt", as_node=False),
    "copy_file_overwrite": lambda s: _copy(s, "a.txt", "dir/z.txt"),
    "copy_dir": lambda s: _copy(s, "dir", "dir2"),
    "copy_empty_dir": lambda s: _copy(s, "empty", "empty2", track=True),
    "copy_missing": lambda s: _copy(s, "missing", "x"),
    "copy_include": lambda s: _copy(s, "dir", "inc", include="*.txt", track=True),
    "copy_exclude": lambda s: _copy(s, "dir", "exc", exclude=["sub/*", "*.bin"], track=True),
    "copy_filter": lambda s: _copy(s, "dir", "flt", filter=lambda n, rel: rel != "z.txt",
                                   track=True),
    "copy_filter_raises": lambda s: _copy(s, "dir", "fr", filter=lambda n, rel: 1 / 0,
                                          track=True),
    "copy_skip_exists": lambda s: (_copy(s, "dir", "dir3"),
                                   _copy(s, "dir", "dir3", skip="exists", track=True)),
    "copy_skip_size": lambda s: (s.n("dir3/z.txt").write_text("yy"),
                                 _copy(s, "dir", "dir3", skip="size", track=True)),
    "copy_skip_hash": lambda s: (s.n("dir3/z.txt").write_text("zz"),
                                 s.n("dir3/sub/c.txt").write_text("d"),
                                 _copy(s, "dir", "dir3", skip="hash", track=True)),
    "copy_skip_custom": lambda s: (_copy(s, "dir", "dir3"),
                                   _copy(s, "dir", "dir3", skip="custom", track=True,
                                         skip_fn=lambda a, b: a.basename == "z.txt")),
    "copy_onto_itself": lambda s: _copy(s, "dir", "dir"),
    "copy_file_onto_itself": lambda s: _copy(s, "a.txt", "a.txt"),
    "copy_skip_custom_no_fn": lambda s: _copy(s, "dir", "dir4", skip="custom"),
    "copy_skip_enum": lambda s: _copy(s, "a.txt", "dir/z.txt", skip=s.lib.SkipStrategy.EXISTS,
                                      track=True),
    "copy_file_skip_hash_differs": lambda s: (s.n("t.txt").write_text("t"),
                                              _copy(s, "a.txt", "t.txt", skip="hash", track=True)),
    "copy_to_other_mount": lambda s: (node_view(s.lib, s.n("dir").copy_to(
        s.sm.node(f"{'mem' if s.m == 'loc' else 'loc'}:x"))),
        tree(Side(s.lib, s.sm, "mem" if s.m == "loc" else "loc", s.root), "x")),
    "move_file": lambda s: _move(s, "a.txt", "moved/a.txt"),
    "move_dir": lambda s: _move(s, "dir", "dir-moved"),
    "move_to_node": lambda s: _move(s, "a.txt", ""),
    "move_missing": lambda s: _move(s, "missing", "m2"),
    "move_onto_existing": lambda s: _move(s, "a.txt", "dir/z.txt"),
    # ---- virtual nodes
    "iternode": _iternode,
    "iternode_copy": _iternode_copy,
    "iternode_write": lambda s: s.sm.iternode(s.n("a.txt")).write_text("x"),
    "iternode_empty_zip": lambda s: _zip_names(s.sm.iternode().zip()),
    "append_on_file_node": lambda s: s.n("a.txt").append(s.n("dir/z.txt")),
    "diffnode": lambda s: (s.n("a2.txt").write_text("hello\nthere\n"),
                           s.sm.diffnode(s.n("a.txt"), s.n("a2.txt")).read_text(),
                           s.sm.diffnode(s.n("a.txt"), s.n("a.txt")).read_text(),
                           s.sm.diffnode(s.n("a.txt"), s.n("a2.txt")).exists()),
    "diffnode_binary": lambda s: s.sm.diffnode(s.n("a.txt"), s.n("dir/b.bin")).read_text(),
    "diffnode_write": lambda s: s.sm.diffnode(s.n("a.txt"), s.n("a.txt")).write_bytes(b"x"),
    "zip_file": lambda s: _zip_names(s.n("a.txt").zip()),
    "zip_dir": lambda s: _zip_names(s.n("dir").zip()),
    "zip_empty_dir": lambda s: _zip_names(s.n("empty").zip()),
    "zip_missing": lambda s: s.n("missing").zip(),
    # ---- integration helpers
    "to_base64": lambda s: (s.n("a.txt").to_base64(), s.n("dir/b.bin").to_base64(),
                            s.n("a.txt").to_base64(include_uri=False),
                            s.n("a.txt").to_base64(mime="x/y")),
    "to_base64_dir": lambda s: s.n("dir").to_base64(),
    "to_base64_missing": lambda s: s.n("missing").to_base64(),
    "serve": lambda s: _serve(s, "a.txt"),
    "serve_download": lambda s: _serve(s, "dir/z.txt", download=True, cache_max_age=60),
    "serve_download_name": lambda s: _serve(s, "a.txt", download_name="report.txt"),
    "serve_missing": lambda s: _serve(s, "missing"),
    "serve_not_modified": _serve_not_modified,
    "local_path_r": lambda s: _local_path(s, "a.txt", "r"),
    "local_path_rw": lambda s: _local_path(s, "a.txt", "rw", b"changed"),
    "local_path_w": lambda s: _local_path(s, "lp.txt", "w", b"new"),
    "call_output": lambda s: _call(s, "cat", "@a.txt", "@dir/z.txt", return_output=True),
    "call_modifies": lambda s: (_call(s, "sh", "-c", 'printf x > "$0"', "@a.txt"),
                                s.n("a.txt").read_bytes()),
    "call_fails": lambda s: _call(s, "false"),
    "call_callback": lambda s: _call_callback(s),
    "fill_from_url_invalid": lambda s: s.n("dl.txt").fill_from_url("ftp://example.com/x"),
    # ---- versions on a mount without versioning
    "versions_none": lambda s: (s.n("a.txt").versions, s.n("a.txt").version_count),
    "open_version": lambda s: s.n("a.txt").open("rb", version=-1),
    "open_version_and_as_of": lambda s: s.n("a.txt").open("rb", version=-1,
                                                          as_of=__import__("datetime").datetime.now()),
    "snapshot_read": lambda s: s.sm.node(f"{s.m}:a.txt", version=-1).read_text(),
    "snapshot_write": lambda s: s.sm.node(f"{s.m}:a.txt", version=-1).write_text("x"),
    "snapshot_capabilities": lambda s: _capabilities(s.sm.node(f"{s.m}:a.txt", version=-1)),
    "compact_versions": lambda s: s.n("a.txt").compact_versions(),
    # ---- equality
    "equality": lambda s: (s.n("a.txt") == s.n("a.txt"), s.n("a.txt") == None,  # noqa: E711
                           s.n("a.txt") != s.n("dir/z.txt"), s.n("a.txt") == "a.txt"),
    "equality_same_content": lambda s: (s.n("a2.txt").write_text("hello\nworld\n"),
                                        s.n("a.txt") == s.n("a2.txt")),
}

#: Cases whose message must match too (not only the exception classes).
MESSAGE = {"node_unknown_mount", "node_dotdot"}

def raised(*kinds: type[BaseException], message: str = "") -> Raised:
    """An expected exception: exactly these builtin classes (and their bases among
    ``BUILTINS``); ``message``, if given, must be part of the actual message."""
    names = {c.__name__ for c in BUILTINS for k in kinds if issubclass(k, c)}
    return Raised(frozenset(names), message)


def agrees(expected: Any, actual: Any) -> bool:
    """True when ``actual`` is ``expected`` (a :class:`Raised` matches by its exact builtin
    classes and, when it has one, a message contained in the actual one)."""
    if isinstance(expected, Raised):
        return (isinstance(actual, Raised) and expected.kinds == actual.kinds
                and expected.message in actual.message)  # fmt: skip
    if isinstance(expected, (list, tuple)):
        return (type(actual) is type(expected) and len(actual) == len(expected)
                and all(agrees(e, a) for e, a in zip(expected, actual, strict=True)))
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(agrees(v, actual[k]) for k, v in expected.items()))
    return bool(expected == actual) and type(expected) is type(actual)


def _caps(**changes: bool) -> dict[str, bool]:
    """genro's BackendCapabilities defaults (as a dict of ``CAPABILITY_FIELDS``), changed."""
    defaults = dict.fromkeys(CAPABILITY_FIELDS, True)
    for off in ("versioning", "version_listing", "version_access", "metadata", "presigned_urls",
                "public_urls", "symbolic_links", "hash_on_metadata", "readonly", "temporary"):
        defaults[off] = False
    return {**defaults, "copy_optimization": True, **changes}


_SNAPSHOT = {"write": False, "delete": False, "mkdir": False, "append_mode": False,
             "readonly": True}
_HELLO = b"hello\nworld\n"
_DIR_TREE = [("dir/b.bin", "\x00\x01\x02"), ("dir/sub/", ""), ("dir/sub/c.txt", "c"),
             ("dir/void/", ""), ("dir/z.txt", "zz")]
_NOT_A_DIR = raised(NotADirectoryError, ValueError)
_DISPOSITION = "attachment; filename=\"{0}\"; filename*=UTF-8''{0}"

#: (mount, case) -> (one-line reason, genro's outcome, storied's outcome): where genro-storage
#: is wrong (its defects, reference section 8) or storied deliberately gives more. ``None`` as
#: the mount: both mounts. Each side must give exactly its outcome (see :func:`agrees`).
EXPECTED: dict[tuple[str | None, str], tuple[str, Any, Any]] = {
    ("loc", "capabilities"): (
        "genro's LocalStorage says symbolic_links False (its own get_json_info says True on "
        "Unix); storied reports what the disk has", _caps(), _caps(symbolic_links=True)),
    ("mem", "capabilities"): (
        "storied's memory store keeps user metadata and MD5s (set_metadata works); fsspec's "
        "memory under genro has neither", _caps(temporary=True),
        _caps(temporary=True, metadata=True, hash_on_metadata=True)),
    ("loc", "snapshot_capabilities"): (
        "genro's snapshot node claims write/delete/mkdir though every write raises; storied "
        "reports it read-only", _caps(), _caps(symbolic_links=True, **_SNAPSHOT)),
    ("mem", "snapshot_capabilities"): (
        "as for loc (read-only snapshot), plus storied's memory metadata",
        _caps(temporary=True),
        _caps(temporary=True, metadata=True, hash_on_metadata=True, **_SNAPSHOT)),
    (None, "child_dotdot"): (
        "genro's child() joins '..' unchecked (reference 8.1: escapes the mount on memory/S3)",
        "{m}:dir/../a.txt", raised(PermissionError, ValueError, message="traversal")),
    ("loc", "copy_onto_itself"): (
        "genro's local copy of a directory onto itself crashes in shutil (SameFileError); "
        "storied documents a copy onto the same location as a no-op",
        raised(OSError, message="are the same file"),
        (("loc:dir", True), _DIR_TREE, True, [], [], [])),
    ("mem", "copy_onto_itself"): (
        "genro's memory copy of a directory onto itself nests a second copy inside it "
        "(dir/dir/...); storied: a no-op",
        (("mem:dir", True), sorted(_DIR_TREE + [("dir/dir/", "")] + [
            ("dir/dir/" + p[4:], c) for p, c in _DIR_TREE]), True, [], [], []),
        (("mem:dir", True), _DIR_TREE, True, [], [], [])),
    ("loc", "copy_file_onto_itself"): (
        "genro's local copy of a file onto itself crashes (SameFileError); storied: a no-op",
        raised(OSError, message="are the same file"),
        (("loc:a.txt", True), _HELLO, True, [], [], [])),
    (None, "copy_skip_enum"): (
        "genro never calls progress for a single-file copy; storied reports (1, 1)",
        (("{m}:dir/z.txt", True), b"zz", True, [("a.txt", "destination exists")], [], []),
        (("{m}:dir/z.txt", True), b"zz", True, [("a.txt", "destination exists")], [(1, 1)],
         [])),
    (None, "copy_file_skip_hash_differs"): (
        "genro never calls progress for a single-file copy; storied reports (1, 1)",
        (True, (("{m}:t.txt", True), _HELLO, True, [], [], ["a.txt"])),
        (True, (("{m}:t.txt", True), _HELLO, True, [], [(1, 1)], ["a.txt"]))),
    (None, "delete_returns"): (
        "storied says whether something was deleted (True/False) where genro returns None",
        (None, None, None), (True, False, True)),
    (None, "delete_tree"): (
        "genro's delete() is always recursive (reference 8.11); storied removes a non-empty "
        "directory only with delete(recursive=True)",
        (None, False, False), (raised(OSError, message="not empty"), True, True)),
    (None, "equality_same_content"): (
        "genro's == compares contents by MD5 (hidden I/O, unhashable nodes: reference 8.7, "
        "8.11); storied nodes are values (== by mount/path/version, same_content() for "
        "content)", (True, True), (True, False)),
    ("loc", "get_metadata_missing"): (
        "genro's local get_metadata answers {} for a missing file (its memory backend and its "
        "docstring raise FileNotFoundError); storied raises",
        {}, raised(FileNotFoundError)),
    (None, "node_dot_segment"): (
        "genro keeps '.' segments, so on memory 'd/./f' and 'd/f' are different files (see "
        "dot_segment_file); storied drops them as a filesystem does", "a/./b", "a/b"),
    ("mem", "dot_segment_file"): (
        "genro's memory stores 'd/./f' apart from 'd/f' (and lists a bogus 'd/.' entry); "
        "storied writes d/f", (True, False, ("list", [("mem:d", True)])),
        (True, True, ("list", [("mem:d/f", True)]))),
    (None, "node_dummy"): (
        "genro's node() with no argument crashes on exists() (AttributeError on None); storied "
        "answers False", raised(AttributeError), ("None:", False)),
    (None, "serve_download"): (
        "genro puts the name unescaped in Content-Disposition (reference 8.9); storied adds the "
        "RFC 6266/5987 filename*",
        ("200 OK", {"Content-Type": "text/plain", "Content-Length": "2",
                    "Content-Disposition": 'attachment; filename="z.txt"',
                    "Cache-Control": "max-age=60"}, b"zz"),
        ("200 OK", {"Content-Type": "text/plain", "Content-Length": "2",
                    "Content-Disposition": _DISPOSITION.format("z.txt"),
                    "Cache-Control": "max-age=60"}, b"zz")),
    (None, "serve_download_name"): (
        "as serve_download (RFC 6266/5987 filename*)",
        ("200 OK", {"Content-Type": "text/plain", "Content-Length": "12",
                    "Content-Disposition": 'attachment; filename="report.txt"'}, _HELLO),
        ("200 OK", {"Content-Type": "text/plain", "Content-Length": "12",
                    "Content-Disposition": _DISPOSITION.format("report.txt")}, _HELLO)),
    (None, "write_under_file"): (
        "writing 'a.txt/x' under a file: storied raises NotADirectoryError as open() does; "
        "genro's FileExistsError comes from its own mkdir of the parent",
        raised(FileExistsError), _NOT_A_DIR),
    ("mem", "children_file"): (
        "genro's memory children() of a file invents a child 'a.txt/a.txt' (reference 2.5); "
        "storied raises NotADirectoryError (genro's local raises ValueError: storied's is both)",
        ("list", [("mem:a.txt/a.txt", True)]), _NOT_A_DIR),
    ("mem", "mkdir_on_file_exist_ok"): (
        "genro's memory mkdir(exist_ok=True) over a file returns as if the directory were made "
        "(its local backend raises FileExistsError, as storied does)",
        None, raised(FileExistsError)),
    ("mem", "serve_not_modified"): (
        "genro's memory mtime is the current time (reference 8.11), so its ETag changes on "
        "every request and If-None-Match never gives 304",
        ("200 OK", _HELLO), ("304 Not Modified", b"")),
    ("mem", "set_metadata"): (
        "storied's memory store keeps user metadata; genro's memory refuses it",
        (raised(PermissionError, message="does not support metadata"), {}), (None, {"k": "v"})),
    ("mem", "write_onto_implicit_dir"): (
        "genro's memory writes a file over a directory that has files but no directory entry "
        "(the tree is then shadowed); storied refuses (IsADirectoryError)",
        (True, True), raised(IsADirectoryError, ValueError)),
}

#: (mount, case) -> why: storied differs from genro here and should not, but the fix is outside
#: the files this suite's author may change (reported). Strict xfails: they fail once fixed.
STORIED_OPEN: dict[tuple[str | None, str], str] = {}


def assert_same(theirs: Any, ours: Any, messages: bool = False, where: str = "result") -> None:
    """Assert storied's outcome ``ours`` is genro's ``theirs``, recursively through tuples,
    lists and dicts: equal values of the same type; for a :class:`Raised`, genro's builtin
    classes among storied's and (with ``messages``) genro's message part of storied's."""
    if isinstance(theirs, Raised):
        assert isinstance(ours, Raised), f"{where}: genro raised {theirs}, storied gave {ours!r}"
        assert theirs.kinds <= ours.kinds, f"{where}: genro {theirs}, storied {ours}"
        if messages:  # storied may add detail around genro's words
            assert theirs.message in ours.message, f"{where}: genro {theirs}, storied {ours}"
        return
    assert not isinstance(ours, Raised), f"{where}: genro gave {theirs!r}, storied raised {ours}"
    if isinstance(theirs, (list, tuple)) and type(ours) is type(theirs) and len(ours) == len(
        theirs
    ):
        for index, (a, b) in enumerate(zip(theirs, ours, strict=True)):
            assert_same(a, b, messages, f"{where}[{index}]")
        return
    if isinstance(theirs, dict) and isinstance(ours, dict) and theirs.keys() == ours.keys():
        for key in theirs:
            assert_same(theirs[key], ours[key], messages, f"{where}[{key!r}]")
        return
    assert ours == theirs, f"{where}: genro {theirs!r}, storied {ours!r}"
    assert type(ours) is type(theirs), f"{where}: genro {type(theirs)}, storied {type(ours)}"


def scrub(value: Any, root: Path) -> Any:
    """``value`` with ``root`` (a side's own directory) replaced by ``<root>`` in messages."""
    if isinstance(value, Raised):
        return Raised(value.kinds, value.message.replace(str(root), "<root>"))
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v, root) for v in value)
    return value


def run_case(tmp_path: Path, mount: str, case: str) -> tuple[Any, Any]:
    theirs, ours = sides(tmp_path, mount)
    return outcome(lambda: SCENARIOS[case](theirs)), outcome(lambda: SCENARIOS[case](ours))


@pytest.mark.parametrize("case", sorted(SCENARIOS))
@pytest.mark.parametrize("mount", ["loc", "mem"])
def test_same_as_genro(tmp_path: Path, mount: str, case: str) -> None:
    theirs, ours = run_case(tmp_path, mount, case)
    expected = EXPECTED.get((mount, case)) or EXPECTED.get((None, case))
    if expected is None:
        why = STORIED_OPEN.get((mount, case)) or STORIED_OPEN.get((None, case))
        if why is not None:
            xfail_unless_fixed(theirs, ours, case in MESSAGE, why)
        assert_same(theirs, ours, case in MESSAGE)
        return
    _reason, genro_said, storied_says = _for_mount(expected, mount)
    assert agrees(genro_said, theirs), f"genro now gives {theirs!r}"
    assert agrees(storied_says, ours), f"storied now gives {ours!r}"


def xfail_unless_fixed(theirs: Any, ours: Any, messages: bool, why: str) -> None:
    """xfail with ``why`` while storied still differs; fail once it agrees (a strict xfail
    that names the open difference)."""
    try:
        assert_same(theirs, ours, messages)
    except AssertionError:
        pytest.xfail(why)
    pytest.fail(f"storied now agrees with genro; drop the open entry: {why}")


def _for_mount(value: Any, mount: str) -> Any:
    """``value`` with ``{m}`` in its strings replaced by ``mount``."""
    if isinstance(value, str):
        return value.replace("{m}", mount)
    if isinstance(value, Raised):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_for_mount(v, mount) for v in value)
    if isinstance(value, dict):
        return {k: _for_mount(v, mount) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------- manager
def _local(name: str, where: Path, **extra: Any) -> dict[str, Any]:
    where.mkdir(parents=True, exist_ok=True)
    return {"name": name, "protocol": "local", "base_path": str(where), **extra}


def _names(lib: ModuleType, tmp: Path) -> Any:
    sm = lib.StorageManager()
    sm.configure([_local("b", tmp / "b"), _local("a", tmp / "a")])
    sm.add_mount({"name": "m", "protocol": "memory"})
    return sm.get_mount_names(), sm.has_mount("a"), sm.has_mount("zz"), repr(sm)


def _replace(lib: ModuleType, tmp: Path) -> Any:
    sm = lib.StorageManager()
    sm.configure([_local("x", tmp / "one")])
    sm.node("x:f.txt").write_text("one")
    kept = sm.node("x:f.txt")
    sm.configure([_local("x", tmp / "two")])
    return sm.get_mount_names(), sm.node("x:f.txt").exists(), kept.read_text()


def _delete_mount(lib: ModuleType, tmp: Path) -> Any:
    sm = lib.StorageManager()
    sm.configure([_local("x", tmp / "x")])
    kept = sm.node("x:f.txt")
    sm.delete_mount("x")
    return (sm.has_mount("x"), outcome(lambda: sm.node("x:f.txt")),
            outcome(lambda: kept.write_text("still")), outcome(lambda: sm.delete_mount("x")))


def _configure_file(lib: ModuleType, tmp: Path, name: str, text: str) -> Any:
    (tmp / "data").mkdir()
    (tmp / name).write_text(text.replace("DATA", str(tmp / "data")))
    sm = lib.StorageManager()
    sm.configure(str(tmp / name))
    return sm.get_mount_names()


def _relative(lib: ModuleType, tmp: Path, permissions: str) -> Any:
    sm = lib.StorageManager()
    sm.configure([_local("root", tmp / "root"),
                  {"name": "pub", "path": "root:sub/dir", "permissions": permissions}])
    sm.node("root:sub/dir/f.txt").write_text("f")
    pub = sm.node("pub:f.txt")
    return (pub.read_text(), pub.exists(), [c.path for c in sm.node("pub:").children()],
            outcome(lambda: sm.node("pub:new.txt").write_text("n")),
            outcome(lambda: sm.node("pub:d").mkdir()),
            outcome(lambda: _delete(pub)), pub.exists(),
            outcome(lambda: pub.copy_to("root:copy.txt").fullpath))


def _permissions(lib: ModuleType, tmp: Path) -> Any:
    sm = lib.StorageManager()
    sm.configure([_local("ro", tmp / "ro", permissions="readonly")])
    (tmp / "ro" / "f.txt").write_text("f")
    node = sm.node("ro:f.txt")
    return (node.read_text(), outcome(lambda: node.write_text("x")),
            outcome(lambda: _delete(node)), outcome(lambda: sm.node("ro:d").mkdir()),
            outcome(lambda: node.move_to("ro:g.txt")), node.read_text())


def _callable_base(lib: ModuleType, tmp: Path) -> Any:
    (tmp / "user").mkdir()
    (tmp / "pkgs" / "sys").mkdir(parents=True)

    def resolve(prefix: str) -> str:
        if prefix != "sys":
            raise ValueError(f"Unknown package: {prefix}")
        return str(tmp / "pkgs" / "sys")

    sm = lib.StorageManager()
    sm.configure([{"name": "u", "protocol": "local", "base_path": lambda: str(tmp / "user")},
                  {"name": "pkg", "protocol": "local", "base_path": resolve}])
    sm.node("u:a/f.txt").write_text("u")
    sm.node("pkg:sys/folder/f.txt").write_text("p")
    return ((tmp / "user" / "a" / "f.txt").read_text(),
            (tmp / "pkgs" / "sys" / "folder" / "f.txt").read_text(),
            sm.node("pkg:sys/folder/f.txt").read_text(),
            outcome(lambda: sm.node("pkg:nope/f.txt").read_text()))


def _symlink_escape(lib: ModuleType, tmp: Path) -> Any:
    (tmp / "outside.txt").write_text("secret")
    sm = lib.StorageManager()
    sm.configure([_local("x", tmp / "x")])
    (tmp / "x" / "link.txt").symlink_to(tmp / "outside.txt")
    return outcome(lambda: sm.node("x:link.txt").read_text())


def _encryption(lib: ModuleType, tmp: Path) -> Any:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    sm = lib.StorageManager()
    sm.configure([_local("x", tmp / "x"), _local("e", tmp / "e", default_encrypted=True)],
                 storage_key=f"acme:{key}")
    wrote = sm.node("x:s.txt").write_text("secret", encrypted=True)
    sm.node("e:d.txt").write_text("by default")
    return (sm.encryption_active, sm.encryption_domains, sm.mount_default_encrypted("e"),
            sm.mount_default_encrypted("x"), wrote, sm.node("x:s.txt").read_text(),
            (tmp / "x" / "s.txt").read_bytes()[:12], (tmp / "e" / "d.txt").read_bytes()[:12],
            sm.node("e:d.txt").read_text(), sm.decrypt(sm.encrypt(b"raw")),
            outcome(lambda: sm.node("x:t.txt").write_text("t", encrypted="other")))


def _config_error(config: Any) -> Callable[[ModuleType, Path], Any]:
    def run(lib: ModuleType, tmp: Path) -> Any:
        resolved = {k: (str(tmp / v[1:]) if isinstance(v, str) and v.startswith("@") else v)
                    for k, v in config.items()}  # fmt: skip
        (tmp / "file").write_text("x")
        lib.StorageManager().configure([resolved])

    return run


MANAGER: dict[str, Callable[[ModuleType, Path], Any]] = {
    "mount_names": _names,
    "reconfigure_replaces": _replace,
    "delete_mount": _delete_mount,
    "configure_bad_source": lambda lib, tmp: [
        outcome(functools.partial(lib.StorageManager().configure, x))
        for x in (42, {"name": "x"}, None, b"x")],
    "configure_missing_file": lambda lib, tmp: lib.StorageManager().configure(
        str(tmp / "no.yaml")),
    "configure_bad_suffix": lambda lib, tmp: _configure_file(lib, tmp, "m.ini", "[]"),
    "configure_yaml": lambda lib, tmp: _configure_file(
        lib, tmp, "m.yaml", "- name: y\n  protocol: local\n  base_path: DATA\n"),
    "configure_json": lambda lib, tmp: _configure_file(
        lib, tmp, "m.json", '[{"name": "j", "protocol": "local", "base_path": "DATA"}]'),
    "configure_json_not_list": lambda lib, tmp: _configure_file(lib, tmp, "m.json", "{}"),
    "configure_yaml_broken": lambda lib, tmp: _configure_file(lib, tmp, "m.yml", "- [a"),
    "configure_json_broken": lambda lib, tmp: _configure_file(lib, tmp, "m.json", "[{"),
    "config_no_name": _config_error({"protocol": "memory"}),
    "config_no_protocol": _config_error({"name": "x"}),
    "config_unknown_protocol": _config_error({"name": "x", "protocol": "nope"}),
    "config_local_no_base": _config_error({"name": "x", "protocol": "local"}),
    "config_local_relative_base": _config_error({"name": "x", "protocol": "local",
                                                 "base_path": "rel/dir"}),
    "config_local_missing_base": _config_error({"name": "x", "protocol": "local",
                                                "base_path": "@missing"}),
    "config_local_base_is_file": _config_error({"name": "x", "protocol": "local",
                                                "base_path": "@file"}),
    "config_bad_permissions": _config_error({"name": "x", "protocol": "memory",
                                             "permissions": "all"}),
    "config_relative_no_parent": _config_error({"name": "x", "path": "nope:sub"}),
    "config_type_key": lambda lib, tmp: (_config_error({"name": "x", "type": "memory"})(lib, tmp),
                                         "configured"),
    "relative_readonly": lambda lib, tmp: _relative(lib, tmp, "readonly"),
    "relative_readwrite": lambda lib, tmp: _relative(lib, tmp, "readwrite"),
    "relative_delete": lambda lib, tmp: _relative(lib, tmp, "delete"),
    "permissions_readonly": _permissions,
    "callable_base_path": _callable_base,
    "symlink_escape": _symlink_escape,
    "encryption": _encryption,
    "skip_strategy": lambda lib, tmp: [(m.name, m.value, isinstance(m, str))
                                       for m in lib.SkipStrategy],
    "exception_bases": lambda lib, tmp: {
        name: sorted(c.__name__ for c in BUILTINS if issubclass(getattr(lib, name), c))
        for name in ("StorageError", "StorageNotFoundError", "StoragePermissionError",
                     "StorageConfigError")},
}

#: Manager cases whose message must match too.
MANAGER_MESSAGE = {
    "configure_missing_file", "config_no_name", "config_no_protocol", "config_local_no_base",
    "config_bad_permissions", "config_relative_no_parent",
}

#: case -> (one-line reason, genro's outcome, storied's outcome), as ``EXPECTED``.
MANAGER_EXPECTED: dict[str, tuple[str, Any, Any]] = {}

#: case -> why, as ``STORIED_OPEN``.
MANAGER_OPEN: dict[str, str] = {}


@pytest.mark.parametrize("case", sorted(MANAGER))
def test_manager_same_as_genro(tmp_path: Path, case: str) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "s").mkdir()
    theirs = scrub(outcome(lambda: MANAGER[case](genro, tmp_path / "g")), tmp_path / "g")
    ours = scrub(outcome(lambda: MANAGER[case](storied, tmp_path / "s")), tmp_path / "s")
    if case in MANAGER_EXPECTED:
        _reason, genro_said, storied_says = MANAGER_EXPECTED[case]
        assert agrees(genro_said, theirs), f"genro now gives {theirs!r}"
        assert agrees(storied_says, ours), f"storied now gives {ours!r}"
        return
    open_why = MANAGER_OPEN.get(case)
    if open_why is not None:
        xfail_unless_fixed(theirs, ours, False, open_why)
    assert_same(theirs, ours, case in MANAGER_MESSAGE)


# ------------------------------------------------------------------------------- http download
class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/data.txt":
            self.send_error(404)
            return
        body = b"downloaded\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """A local HTTP server (127.0.0.1) serving /data.txt; other paths answer 404."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("mount", ["loc", "mem"])
@pytest.mark.parametrize("what", ["found", "missing", "refused"])
def test_fill_from_url_same_as_genro(tmp_path: Path, http_url: str, mount: str,
                                     what: str) -> None:  # fmt: skip
    url = {"found": f"{http_url}/data.txt", "missing": f"{http_url}/nope",
           "refused": f"http://127.0.0.1:{_closed_port()}/x"}[what]  # fmt: skip
    results = []
    for side in sides(tmp_path, mount):
        node = side.n("dl/got.txt")
        results.append((outcome(functools.partial(node.fill_from_url, url, timeout=5)),
                        outcome(node.read_bytes)))  # fmt: skip
    assert_same(results[0], results[1])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------- S3 versions
#: Per round (a second apart: moto's version times have one-second resolution, and genro sorts
#: versions by time only, reference 8.3), what each key is written to.
ROUNDS = [
    {"f.txt": "one", "p.txt": "p", "p.txt.bak": "bak", "dup.txt": "A", "del.txt": "x",
     "same.txt": "s"},
    {"f.txt": "two", "dup.txt": "A", "del.txt": "y"},
    {"f.txt": "three", "dup.txt": "B"},
]


@pytest.fixture(scope="module")
def s3_sides(moto: MotoHandle, tmp_path_factory: pytest.TempPathFactory) -> list[Side]:
    """genro and storied, each on its own versioned moto bucket, after ``ROUNDS``."""
    import os
    import time

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # genro's delete_version client
    made = []
    for lib in (genro, storied):
        bucket = make_bucket(moto.endpoint_url, f"diff-{lib.__name__.replace('_', '-')}",
                             versioned=True)  # fmt: skip
        sm = lib.StorageManager()
        sm.configure([{"name": "s3", "protocol": "s3", "bucket": bucket,
                       "endpoint_url": moto.endpoint_url, "access_key": "testing",
                       "secret_key": "testing", "region": "us-east-1"}])  # fmt: skip
        made.append(Side(lib, sm, "s3", tmp_path_factory.mktemp(lib.__name__)))
    for index, writes in enumerate(ROUNDS):
        if index:
            time.sleep(1.05)
        for side in made:
            for key, text in writes.items():
                side.n(key).write_text(text)
    return made


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def _version_view(s: Side, path: str) -> list[tuple[Any, ...]]:
    return [(type(v["version_id"]).__name__, v["is_latest"], type(v["last_modified"]).__name__,
             v["last_modified"].tzinfo is not None, v["size"], v["etag"])
            for v in s.n(path).versions]  # fmt: skip


def _far(days: int) -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)


S3_CASES: dict[str, Callable[[Side], Any]] = {
    "versions": lambda s: (_version_view(s, "f.txt"), s.n("f.txt").version_count),
    "version_etags": lambda s: [v["etag"] for v in s.n("f.txt").versions]
    == [_md5("one"), _md5("two"), _md5("three")],
    "snapshots": lambda s: [s.sm.node("s3:f.txt", version=i).read_text() for i in (-1, -2, 0, 1)],
    "snapshot_by_id": lambda s: s.sm.node(
        "s3:f.txt", version=s.n("f.txt").versions[0]["version_id"]).read_text(),
    "snapshot_write": lambda s: s.sm.node("s3:f.txt", version=-2).write_text("x"),
    "snapshot_versioning_caps": lambda s: (
        s.n("f.txt").capabilities.versioning,
        s.sm.node("s3:f.txt", version=-2).capabilities.versioning),
    "open_version": lambda s: [s.n("f.txt").open("rb", version=i).read() for i in (-1, -3)],
    "open_version_text": lambda s: s.n("f.txt").open("r", version=-2).read(),
    "open_version_by_id": lambda s: s.n("f.txt").open(
        "rb", version=s.n("f.txt").versions[1]["version_id"]).read(),
    "open_version_out_of_range": lambda s: s.n("f.txt").open("rb", version=7),
    "open_version_write": lambda s: s.n("f.txt").open("w", version=-1),
    "open_as_of_future": lambda s: s.n("f.txt").open("rb", as_of=_far(1)).read(),
    "open_as_of_past": lambda s: s.n("f.txt").open("rb", as_of=_far(-3650)),
    "open_version_and_as_of": lambda s: s.n("f.txt").open("rb", version=-1, as_of=_far(1)),
    "snapshot_on_snapshot": lambda s: s.sm.node("s3:f.txt", version=-1).open("rb", version=-2),
    "prefix_neighbour": lambda s: (s.n("p.txt").version_count,
                                   [v["size"] for v in s.n("p.txt").versions]),
    "md5hash": lambda s: (s.n("f.txt").md5hash(), s.n("f.txt").md5hash() == _md5("three")),
    "url": lambda s: (lambda u: (type(u).__name__, "f.txt" in u))(s.n("f.txt").url()),
    "get_metadata": lambda s: s.n("f.txt").get_metadata(),
    "skip_if_unchanged": lambda s: (s.n("same.txt").write_text("s", skip_if_unchanged=True),
                                    s.n("same.txt").version_count),
    "compact_dry_run": lambda s: (s.n("dup.txt").compact_versions(dry_run=True),
                                  s.n("dup.txt").version_count),
    "compact": lambda s: (s.n("dup.txt").compact_versions(),
                          [s.sm.node("s3:dup.txt", version=i).read_text() for i in (0, 1)],
                          s.n("dup.txt").version_count),
    "delete_keeps_versions": lambda s: (_delete(s.n("del.txt")), s.n("del.txt").exists(),
                                        s.n("del.txt").version_count),
}

#: case -> (one-line reason, genro's outcome, storied's outcome), as ``EXPECTED``.
S3_EXPECTED: dict[str, tuple[str, Any, Any]] = {
    "prefix_neighbour": (
        "genro lists S3 versions by key prefix, so p.txt also shows p.txt.bak's (reference "
        "8.3); storied lists the key's own", (2, [1, 3]), (1, [1])),
}


@pytest.mark.parametrize("case", list(S3_CASES))  # in order: compact and delete change state
def test_s3_versions_same_as_genro(s3_sides: list[Side], case: str) -> None:
    run = S3_CASES[case]
    theirs, ours = (outcome(functools.partial(run, side)) for side in s3_sides)
    if case in S3_EXPECTED:
        _reason, genro_said, storied_says = S3_EXPECTED[case]
        assert agrees(genro_said, theirs), f"genro now gives {theirs!r}"
        assert agrees(storied_says, ours), f"storied now gives {ours!r}"
        return
    assert_same(theirs, ours)
