"""The read-only ``git`` mount type on a local repository made by the git CLI (issue 8 §6)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pygit2", reason="the git extra (pygit2) is not installed")
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is not installed")

from storied import StorageManager  # noqa: E402
from storied.backends.git import GitBackend, git_from_config  # noqa: E402
from storied.errors import (  # noqa: E402
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
)

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
       "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, env=ENV,
                          capture_output=True, text=True).stdout.strip()


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "docs").mkdir()
    os.symlink("../README.md", root / "docs" / "link.md")
    _commit(root, {"README.md": "v1\n", "docs/guide.txt": "guide", "src/a/b/c.py": "x = 1\n"},
            "first")
    _git(root, "tag", "v1")
    _commit(root, {"README.md": "v2\n", "new.txt": "new"}, "second")
    return root


def test_reads_the_tree_of_head_by_default(repo: Path) -> None:
    be = GitBackend(repo)
    assert be.read_bytes("README.md") == b"v2\n"
    assert {i.path for i in be.list("")} == {"README.md", "docs", "src", "new.txt"}
    assert {i.path for i in be.walk("src")} == {"src/a/b/c.py"}
    info = be.info("docs/guide.txt")
    assert (info.size, info.is_dir) == (5, False)
    assert info.etag == _git(repo, "rev-parse", "HEAD:docs/guide.txt")
    assert be.info("src/a").is_dir
    assert be.read_bytes("docs/link.md") == b"../README.md"  # a link is its target text
    with be.open_read("docs/guide.txt", 1, 3) as stream:
        assert stream.read() == b"ui"


def test_ref_tag_commit_and_expressions(repo: Path) -> None:
    first = _git(repo, "rev-parse", "v1")
    for ref in ("v1", first, first[:10], "main~1"):
        be = git_from_config({"name": "g", "base_path": str(repo), "ref": ref})
        assert be.read_bytes("README.md") == b"v1\n"
        assert not be.exists("new.txt")


def test_branch_mount_follows_new_commits_commit_mount_does_not(repo: Path) -> None:
    branch = GitBackend(repo, "main")
    pinned = GitBackend(repo, _git(repo, "rev-parse", "HEAD"))
    _commit(repo, {"README.md": "v3\n"}, "third")
    assert branch.read_bytes("README.md") == b"v3\n"
    assert pinned.read_bytes("README.md") == b"v2\n"


def test_errors(repo: Path, tmp_path: Path) -> None:
    be = GitBackend(repo)
    with pytest.raises(StorageNotFoundError):
        be.info("nope/x")
    with pytest.raises(StorageNotFoundError):
        be.read_bytes("nope")
    with pytest.raises(IsADirectoryStorageError):
        be.read_bytes("docs")
    with pytest.raises(NotADirectoryStorageError):
        list(be.list("README.md"))
    for action in (lambda: be.write("x", b"1"), lambda: be.delete("README.md"),
                   lambda: be.mkdir("d"), lambda: be.move("README.md", "y")):
        with pytest.raises(StoragePermissionError):
            action()
    with pytest.raises(StorageConfigError, match="ref"):
        GitBackend(repo, "no-such-branch")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StorageConfigError, match="Not a git repository"):
        GitBackend(tmp_path / "plain")
    with pytest.raises(StorageConfigError):
        GitBackend(repo / "docs")  # a folder inside a repository is not the repository


def test_bare_repository(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True, env=ENV)
    assert GitBackend(bare, "v1").read_bytes("docs/guide.txt") == b"guide"


def test_git_mount_through_the_manager(repo: Path) -> None:
    sm = StorageManager()
    sm.configure([{"name": "g", "type": "git", "path": str(repo), "ref": "v1"},
                  {"name": "mem", "type": "memory"}])
    assert sm.node("g:README.md").read_text() == "v1\n"
    assert sm.get_backend("g").capabilities.readonly
    with pytest.raises(StoragePermissionError):
        sm.node("g:README.md").write_text("no")
    sm.node("g:src").copy_to(sm.node("mem:copy"))
    assert sm.node("mem:copy/a/b/c.py").read_text() == "x = 1\n"
    with pytest.raises(StorageConfigError, match="base_path"):
        sm.configure([{"name": "g2", "type": "git", "ref": "main"}])


def test_versions_are_the_commits_that_changed_the_file(repo: Path) -> None:
    first, second = _git(repo, "rev-parse", "v1"), _git(repo, "rev-parse", "HEAD")
    _commit(repo, {"docs/guide.txt": "guide 2"}, "third")
    third = _git(repo, "rev-parse", "HEAD")
    _git(repo, "rm", "-q", "new.txt")
    _git(repo, "commit", "-q", "-m", "drop new")
    be = GitBackend(repo, "main")
    readme = be.list_versions("README.md")
    assert [v.version_id for v in readme] == [first, second]
    assert [v.is_latest for v in readme] == [False, True]
    assert readme[0].etag == _git(repo, "rev-parse", "v1:README.md")
    assert [v.version_id for v in be.list_versions("docs/guide.txt")] == [first, third]
    dropped = be.list_versions("new.txt")
    assert [v.is_delete_marker for v in dropped] == [False, True]
    assert be.open_version("README.md", first).read() == b"v1\n"
    assert {v.path for v in be.walk_versions("docs")} == {"docs/guide.txt", "docs/link.md"}
    with pytest.raises(StorageNotFoundError):
        be.open_version("README.md", "0" * 40)
    with pytest.raises(StoragePermissionError):
        be.delete_version("README.md", first)

    sm = StorageManager()
    sm.configure([{"name": "g", "type": "git", "path": str(repo), "ref": "main"}])
    node = sm.node("g:README.md")
    assert len(node.versions) == 2
    assert sm.node("g:README.md", version=-2).read_text() == "v1\n"
    assert sm.node("g:docs/guide.txt", version=-1).read_text() == "guide 2"
    assert not sm.node("g:new.txt").exists()
