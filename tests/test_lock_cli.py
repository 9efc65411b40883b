"""``storied hold``, ``storied retention`` and ``storied class``: set and print, ``--json``,
one-line errors with exit status 1."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from storied import StorageManager
from storied.cli.main import cli
from storied.testing.s3server import MotoHandle, make_bucket


@pytest.fixture
def project(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    mounts = [{"name": "home", "type": "local", "base_path": str(data), "versioning": True},
              {"name": "plain", "type": "local", "base_path": str(data / "p")}]
    (data / "p").mkdir()
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    storage = StorageManager()
    storage.configure(str(tmp_path / "storied.yaml"))
    node = storage.node("home:a.txt")
    for text in ("one", "two", "three"):
        node.write_text(text)
    storage.node("plain:b.txt").write_text("x")
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_hold_on_off_and_print(project: Path) -> None:
    assert invoke(project, "hold", "home:a.txt", "--version", "0", "on")[0] == 0
    code, out, _ = invoke(project, "hold", "home:a.txt", "--version", "0")
    assert code == 0 and out.strip() == "home:a.txt version 0: legal hold on"
    code, out, _ = invoke(project, "hold", "home:a.txt", "--json")
    assert json.loads(out) == {"path": "home:a.txt", "version": -1, "legal_hold": False}
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    assert storage.node("home:a.txt").get_legal_hold(0) is True
    assert invoke(project, "hold", "home:a.txt", "--version", "0", "off")[0] == 0
    assert storage.node("home:a.txt").get_legal_hold(0) is False


def test_retention_set_print_and_rules(project: Path) -> None:
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    code, out, err = invoke(project, "retention", "home:a.txt", "--version", "-2",
                            "--mode", "governance", "--until", until.isoformat())
    assert code == 0, err
    assert out.strip() == f"home:a.txt version -2: GOVERNANCE until {until.isoformat()}"
    code, out, _ = invoke(project, "retention", "home:a.txt", "--version", "-2", "--json")
    assert json.loads(out)["retention"] == {"mode": "GOVERNANCE", "until": until.isoformat(),
                                            "expired": False}
    shorter = (until - timedelta(days=1)).isoformat()
    code, out, err = invoke(project, "retention", "home:a.txt", "--version", "-2",
                            "--mode", "GOVERNANCE", "--until", shorter)
    assert code == 1 and "bypass_governance" in err and len(err.strip().splitlines()) == 1
    code, _, err = invoke(project, "retention", "home:a.txt", "--version", "-2",
                          "--remove", "--bypass-governance")
    assert code == 0, err
    code, out, _ = invoke(project, "retention", "home:a.txt", "--version", "-2")
    assert out.strip() == "home:a.txt version -2: no retention"


def test_errors_are_one_line(project: Path) -> None:
    for args in (("retention", "home:a.txt", "--mode", "GOVERNANCE"),
                 ("retention", "home:a.txt", "--mode", "GOVERNANCE", "--until", "tomorrow"),
                 ("retention", "home:a.txt", "--mode", "GOVERNANCE", "--until", "2001-01-01"),
                 ("hold", "home:a.txt", "--version", "99", "on"),
                 ("hold", "plain:b.txt", "on"),
                 ("class", "home:a.txt")):
        code, out, err = invoke(project, *args)
        assert code == 1 and out == "", (args, code)
        assert len(err.strip().splitlines()) == 1, (args, err)


def test_class_on_s3(moto: MotoHandle, tmp_path: Path) -> None:
    bucket = make_bucket(moto.endpoint_url, f"cl-{uuid.uuid4().hex[:12]}")
    mounts = [{"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": moto.endpoint_url,
               "key": "k", "secret": "s"}]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    storage = StorageManager()
    storage.configure(str(tmp_path / "storied.yaml"))
    storage.node("s3:f.txt").write_text("x")
    code, out, err = invoke(tmp_path, "class", "s3:f.txt")
    assert code == 0 and out.strip() == "s3:f.txt: STANDARD", err
    code, out, err = invoke(tmp_path, "class", "s3:f.txt", "standard_ia", "--json")
    assert code == 0, err
    assert json.loads(out) == {"path": "s3:f.txt", "storage_class": "STANDARD_IA"}
    code, _, err = invoke(tmp_path, "class", "s3:f.txt", "COLD")
    assert code == 1 and "storage class" in err
