"""A missing optional dependency is a MissingDependencyError naming the extra, at first use.

Each case runs in a fresh interpreter where the dependency is really absent for the import
system (``sys.modules[name] = None`` makes every ``import name`` fail with
``ModuleNotFoundError``, as an uninstalled package does); storied itself is not touched.
``configure()`` accepts the mount with its config fully checked, the other mounts of the same
config keep working, and the mount's first operation raises the error (also a
``ModuleNotFoundError``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

CHILD = textwrap.dedent(
    """
    import json, sys
    spec = json.loads(sys.argv[1])
    for name in spec["block"]:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        sys.modules[name] = None
    from storied import StorageManager
    from storied.errors import MissingDependencyError, StorageConfigError
    out = {}
    storage = StorageManager()
    try:
        storage.configure([{"name": "ok", "type": "memory"}, {"name": "bad", **spec["mount"]}])
    except Exception as exc:
        out["configure"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out)); raise SystemExit(0)
    storage.node("ok:a.txt").write_text("fine")
    out["ok"] = storage.node("ok:a.txt").read_text()
    for op in ("exists", "read_text", "list"):
        try:
            node = storage.node("bad:x/y.txt")
            getattr(node, op)() if op != "list" else storage.node("bad:").children()
            out[op] = "no error"
        except Exception as exc:
            out[op] = [type(exc).__name__, isinstance(exc, MissingDependencyError),
                       isinstance(exc, ModuleNotFoundError), str(exc)]
    out["ok_after"] = storage.node("ok:a.txt").read_text()
    print(json.dumps(out))
    """
)


def _run(block: list[str], mount: dict[str, Any]) -> dict[str, Any]:
    spec = json.dumps({"block": block, "mount": mount})
    done = subprocess.run([sys.executable, "-c", CHILD, spec], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


CASES = [
    ("gcs", {"type": "gcs", "bucket": "b"}, ["gcsfs"]),
    ("azure", {"type": "azure", "container": "c", "account_name": "a"}, ["adlfs"]),
    ("sftp", {"type": "sftp", "host": "h", "username": "u"}, ["paramiko"]),
    ("webdav", {"type": "webdav", "url": "http://127.0.0.1:9/"}, ["webdav4"]),
    ("http", {"type": "http", "base_path": "http://127.0.0.1:9/"}, ["aiohttp"]),
    ("webdav", {"type": "webdav", "url": "http://127.0.0.1:9/"}, ["fsspec"]),
    ("smb", {"type": "smb", "host": "h", "share": "s"}, ["smbclient", "smbprotocol"]),
    ("s3", {"type": "s3", "bucket": "b"}, ["boto3", "botocore"]),
    ("git", {"type": "git", "base_path": "."}, ["pygit2"]),
]


@pytest.mark.parametrize(("extra", "mount", "block"), CASES,
                         ids=[f"{c[0]}-{c[2][0]}" for c in CASES])
def test_a_mount_without_its_extra_fails_at_first_use(extra: str, mount: dict[str, Any],
                                                      block: list[str]) -> None:
    out = _run(block, mount)
    assert "configure" not in out, out
    assert out["ok"] == out["ok_after"] == "fine"  # the other mount is not affected
    for op in ("exists", "read_text", "list"):
        name, is_missing, is_module_error, message = out[op]
        assert (name, is_missing, is_module_error) == ("MissingDependencyError", True, True), out
        assert f"pip install 'storied[{extra}]'" in message and "'bad'" in message, message


def test_libarchive_without_its_package(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    import zipfile

    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/y.txt", "y")
    out = _run(["libarchive"], {"type": "libarchive", "file": str(archive)})
    assert out["ok"] == "fine"
    assert out["read_text"][:3] == ["MissingDependencyError", True, True], out
    assert "storied[libarchive]" in out["read_text"][3] or "libarchive" in out["read_text"][3]


@pytest.mark.parametrize("mount", [
    {"type": "gcs", "bucket": 5},
    {"type": "gcs", "bucket": "b", "read_timeout": "soon"},
    {"type": "gcs", "bucket": "b", "no_such_key": 1},
    {"type": "smb", "host": "h"},
])
def test_an_unavailable_mount_still_has_its_config_checked(mount: dict[str, Any]) -> None:
    out = _run(["gcsfs", "smbclient", "smbprotocol"], mount)
    assert out["configure"].startswith("StorageConfigError"), out
    assert "'bad'" in out["configure"]


def test_the_cli_keeps_working_on_other_mounts(tmp_path: Path) -> None:
    config = tmp_path / "storied.yaml"
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "hello.txt").write_text("hi")
    config.write_text(
        f"- name: home\n  type: local\n  base_path: {tmp_path / 'files'}\n"
        "- name: cloud\n  type: gcs\n  bucket: b\n"
    )
    script = textwrap.dedent(
        """
        import sys
        sys.modules["gcsfs"] = None
        from storied.cli.main import cli
        cli.main(sys.argv[1:], prog_name="storied")
        """
    )
    ok = subprocess.run([sys.executable, "-c", script, "-c", str(config), "ls", "home:"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "hello.txt" in ok.stdout
    bad = subprocess.run([sys.executable, "-c", script, "-c", str(config), "ls", "cloud:"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "pip install 'storied[gcs]'" in bad.stderr
    assert "Traceback" not in bad.stderr


FEATURES = [
    ("cryptography", "encryption",
     "from storied import StorageManager\nStorageManager().set_encryption_keys('k')"),
    ("xmldiff", "diff",
     "from storied import StorageManager\ns = StorageManager()\n"
     "s.configure([{'name': 'm', 'type': 'memory', 'versioning': True}])\n"
     "n = s.node('m:a.xml')\nn.write_text('<a/>')\nn.write_text('<b/>')\n"
     "n.diff_xml_versions()"),
]


@pytest.mark.parametrize(("module", "extra", "code"), FEATURES, ids=[f[1] for f in FEATURES])
def test_a_feature_without_its_extra_names_it(module: str, extra: str, code: str) -> None:
    script = f"import sys\nsys.modules[{module!r}] = None\n{code}\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("storied.errors.MissingDependencyError"), last
    assert f"pip install 'storied[{extra}]'" in last
