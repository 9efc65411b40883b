"""Differential tests against genro-storage 0.8.4, manager side: configure sources and
files, mounts and their permissions, fill_from_url against an HTTP server on 127.0.0.1, and
S3 versions on moto (genro's versions API works on S3 only). How outcomes are compared:
tests/genro_compare.py; node scenarios: tests/test_genro_differential.py."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import storied

#: The builtin classes an exception is compared by (its storied/genro class is not compared).
from genro_compare import (
    BUILTINS,
    Side,
    agrees,
    assert_same,
    deleted,
    fresh_memory,
    genro,
    outcome,
    scrub,
    sides,
    xfail_unless_fixed,
)
from storied.testing.s3server import MotoHandle, make_bucket


@pytest.fixture(autouse=True)
def _fresh_fsspec_memory() -> Iterator[None]:
    yield from fresh_memory()


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
            outcome(lambda: deleted(pub)), pub.exists(),
            outcome(lambda: pub.copy_to("root:copy.txt").fullpath))


def _permissions(lib: ModuleType, tmp: Path) -> Any:
    sm = lib.StorageManager()
    sm.configure([_local("ro", tmp / "ro", permissions="readonly")])
    (tmp / "ro" / "f.txt").write_text("f")
    node = sm.node("ro:f.txt")
    return (node.read_text(), outcome(lambda: node.write_text("x")),
            outcome(lambda: deleted(node)), outcome(lambda: sm.node("ro:d").mkdir()),
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
    "delete_keeps_versions": lambda s: (deleted(s.n("del.txt")), s.n("del.txt").exists(),
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

