"""Review R1: CLI commands that delete, overwrite or move touch only what they mean to, also
when two names (two mounts of one directory, a local path and a mount) reach one place."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from storied import StorageManager
from storied.cli.main import cli
from storied.testing.s3server import MotoHandle, make_bucket


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("data", "plain"):
        (tmp_path / name).mkdir()
    mounts = [
        {"name": "home", "type": "local", "base_path": str(tmp_path / "data"), "versioning": True},
        {"name": "plain", "type": "local", "base_path": str(tmp_path / "plain")},
        {"name": "alias", "type": "local", "base_path": str(tmp_path / "plain")},
        {"name": "outer", "type": "local", "base_path": str(tmp_path)},
    ]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    src = tmp_path / "plain" / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    return tmp_path


def run(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), *args])
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize(("source", "dest"), [
    ("plain:src/sub", "plain:src"),            # the source inside the destination
    ("plain:src", "alias:src"),                # the same place through another mount
    ("alias:src/sub", "plain:src"),            # inside, through another mount
    ("outer:plain/src/sub", "plain:src"),      # inside, through a mount of the parent
    ("{local}/plain/src/sub", "plain:src"),    # a local path of the same directory
    ("plain:src/sub", "{local}/plain/src"),
])
def test_cp_delete_refuses_overlapping_source_and_destination(
        project: Path, source: str, dest: str) -> None:
    before = tree(project / "plain")
    code, out = run(project, "cp", "-r", "--delete", source.format(local=project),
                    dest.format(local=project))
    assert code == 1, out
    assert "--delete" in out and out.count("\n") == 1
    assert tree(project / "plain") == before  # nothing deleted


def test_cp_delete_between_distinct_directories_still_syncs(project: Path) -> None:
    (project / "plain" / "dst").mkdir()
    (project / "plain" / "dst" / "stale.txt").write_text("old")
    code, out = run(project, "cp", "-r", "--delete", "plain:src", "alias:dst")
    assert code == 0, out
    assert tree(project / "plain" / "dst") == ["a.txt", "sub/b.txt"]


def test_mv_onto_itself_through_an_alias_keeps_the_file(project: Path) -> None:
    code, out = run(project, "mv", "plain:src/a.txt", "alias:src/a.txt")
    assert code == 0, out
    assert "nothing moved: plain:src/a.txt -> alias:src/a.txt" in out  # one location
    assert (project / "plain" / "src" / "a.txt").read_text() == "A"


def test_rm_r_never_removes_a_mount_history(project: Path) -> None:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    storage.node("home:f.txt").write_text("1")
    storage.node("home:f.txt").write_text("2")
    for word in (str(project / "data"), "outer:data", "outer:"):
        code, out = run(project, "rm", "-r", word)
        assert code == 1 and "history" in out, (word, out)
    assert (project / "data" / "f.txt").read_text() == "2"
    code, out = run(project, "rm", "-r", "home:")  # through its own mount: history stays
    assert code == 0, out
    assert not (project / "data" / "f.txt").exists()
    assert [v["size"] for v in storage.node("home:f.txt").versions] == [1, 1]


def test_cp_stdin_into_the_reserved_area_is_refused(project: Path) -> None:
    for dest in ("home:.storied/x", "plain:a/.storied/x", "plain:.storied-tmp-x",
                 f"{project}/data/.storied/x"):
        result = CliRunner().invoke(cli, ["-c", str(project / "storied.yaml"), "cp", "-", dest],
                                    input=b"evil")
        assert result.exit_code == 1, (dest, result.output)
    assert not (project / "plain" / "a").exists()
    assert not list((project / "data").rglob("x"))


def test_mv_and_cp_delete_never_split_files_from_their_history(project: Path) -> None:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    storage.node("home:f.txt").write_text("1")
    (project / "elsewhere").mkdir()
    code, out = run(project, "mv", str(project / "data"), str(project / "moved"))
    assert code == 1 and "history" in out, out
    code, out = run(project, "cp", "-r", "--delete", "plain:src", str(project / "data"))
    assert code == 1 and "history" in out, out
    assert (project / "data" / "f.txt").read_text() == "1" and not (project / "moved").exists()
    assert storage.verify("home:").stale == []


def test_cp_of_a_tree_with_history_counts_no_skips(project: Path) -> None:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    storage.node("home:f.txt").write_text("1")
    storage.node("home:f.txt").write_text("2")
    code, out = run(project, "cp", "-r", str(project / "data"), str(project / "copy"))
    assert code == 0, out
    assert "1 copied, 0 skipped" in out and "history left out" in out
    assert tree(project / "copy") == ["f.txt"]


def test_slash_and_the_empty_path_are_refused(project: Path) -> None:
    for args in (("rm", "-r", "-n", "/"), ("rm", "-r", "-n", "//"), ("mv", "-n", "/", "plain:x"),
                 ("cp", "-r", "--delete", "-n", "plain:src", "/.")):
        code, out = run(project, *args)
        assert code == 1 and "refusing" in out and out.count("\n") == 1, (args, out)
    code, out = run(project, "rm", "-r", "-n", "")
    assert code == 2 and "empty" in out, out


def test_rm_r_of_a_plain_tree_whose_mount_used_locks(project: Path) -> None:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    with storage.node("plain:src/a.txt").lock():
        pass
    assert (project / "plain" / ".storied").is_dir()
    code, out = run(project, "rm", "-r", str(project / "plain"))
    assert code == 0, out
    assert not (project / "plain" / "src").exists()


def test_cp_delete_refuses_overlap_through_two_s3_mounts_of_one_bucket(
        tmp_path: Path, moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"r1-cli-{uuid.uuid4().hex[:10]}")
    common = {"type": "s3", "bucket": bucket, "key": "testing", "secret": "testing",
              "endpoint_url": moto.endpoint_url}
    mounts = [{"name": "s3", **common},
              {"name": "sub", **common, "base_path": "data/src"},
              {"name": "loop", **common, "endpoint_url": moto.endpoint_url.replace(
                  "127.0.0.1", "localhost")}]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    storage = StorageManager()
    storage.configure(str(tmp_path / "storied.yaml"))
    storage.node("s3:data/src/a.txt").write_text("A")
    storage.node("s3:data/keep.txt").write_text("K")
    for source, dest in (("sub:", "s3:data"), ("s3:data", "loop:data"),
                         ("s3:data/src", "sub:")):
        code, out = run(tmp_path, "cp", "-r", "--delete", source, dest)
        assert code == 1 and "--delete" in out, (source, dest, out)
    assert storage.node("s3:data/src/a.txt").read_text() == "A"
    assert storage.node("s3:data/keep.txt").read_text() == "K"


def test_rm_r_refuses_a_portable_history_reached_through_another_s3_mount(
        tmp_path: Path, moto: MotoHandle) -> None:
    bucket = make_bucket(moto.endpoint_url, f"r1-hist-{uuid.uuid4().hex[:10]}")
    common = {"type": "s3", "bucket": bucket, "key": "testing", "secret": "testing",
              "endpoint_url": moto.endpoint_url}
    mounts = [{"name": "raw", **common},
              {"name": "docs", **common, "base_path": "docs", "versioning": True}]
    (tmp_path / "storied.yaml").write_text(json.dumps(mounts))
    storage = StorageManager()
    storage.configure(str(tmp_path / "storied.yaml"))
    storage.node("docs:a.txt").write_text("1")
    storage.node("raw:other/b.txt").write_text("b")
    for word in ("raw:docs", "raw:"):
        code, out = run(tmp_path, "rm", "-r", word)
        assert code == 1 and "'docs'" in out, (word, out)
    assert storage.node("docs:a.txt").read_text() == "1"
    code, out = run(tmp_path, "rm", "-r", "raw:other")
    assert code == 0, out
    code, out = run(tmp_path, "rm", "-r", "docs:")  # through its own mount: recorded
    assert code == 0, out
    assert storage.verify("docs:").stale == []


def test_dupes_and_dedup_take_a_local_directory_without_configuration(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("a.bin", "b.bin"):
        (tmp_path / "d" / name).write_bytes(b"dup!" * 64)
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):  # no storied.yaml here
        result = runner.invoke(cli, ["dupes", str(tmp_path / "d"), "--json"])
        assert result.exit_code == 0, result.output
        (group,) = json.loads(result.stdout)
        assert group["paths"] == [str(tmp_path / "d" / "a.bin"), str(tmp_path / "d" / "b.bin")]
        result = runner.invoke(cli, ["dedup", str(tmp_path / "d"), "--strategy", "hardlink"])
        assert result.exit_code == 0, result.output
        assert f"hardlink {tmp_path / 'd' / 'b.bin'}" in result.stdout
    assert os.stat(tmp_path / "d" / "a.bin").st_ino == os.stat(tmp_path / "d" / "b.bin").st_ino


def test_counts_agree_with_their_nouns(project: Path) -> None:
    storage = StorageManager()
    storage.configure(str(project / "storied.yaml"))
    storage.node("home:one/a.txt").write_text("a")
    code, out = run(project, "mv", "home:one", "home:two")
    assert code == 0 and "(1 file)" in out, out  # it printed "(1 files)"
    code, out = run(project, "du", "home:two")
    assert code == 0 and "  1 file  " in out, out
    code, out = run(project, "mv", "home:two/a.txt", "home:two/a.txt")
    assert code == 0 and "nothing moved" in out, out
    assert storage.node("home:two/a.txt").read_text() == "a"
