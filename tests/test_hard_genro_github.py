"""The read-only ``github`` mount type against a local HTTP server that answers the GitHub REST
routes the backend uses (a real HTTP component on 127.0.0.1, no network)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from storied import StorageManager
from storied.backends.github import GitHubBackend, github_from_config
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
    TransientStorageError,
)
from storied.testing.servers import free_port

FILES = {"README.md": b"# hello\n", "src/pkg/mod.py": b"x = 1\n" * 1000,
         "docs/guide.txt": b"guide"}
OLD = {"README.md": b"# old\n"}


def _sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeGitHub:
    """Answers /repos/{org}/{repo}, /git/trees/{ref}?recursive=1 and /git/blobs/{sha}."""

    refs: dict[str, dict[str, bytes]]
    token: str | None = None
    seen: list[str] = field(default_factory=list)
    truncate: bool = False

    def tree(self, files: dict[str, bytes]) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = []
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files
                       for i in range(1, p.count("/") + 1)})
        entries += [{"path": d, "type": "tree", "sha": "t" + d, "mode": "040000"} for d in dirs]
        entries += [{"path": p, "type": "blob", "sha": _sha(d), "size": len(d),
                     "mode": "100644"} for p, d in files.items()]
        entries.append({"path": "vendor", "type": "tree", "sha": "tvendor", "mode": "040000"})
        entries.append({"path": "vendor/sub", "type": "commit", "sha": "c" * 40})  # submodule
        return entries

    def level(self, tree_sha: str) -> tuple[int, bytes, str]:
        """One directory of the main tree (what GitHub answers without ``recursive``)."""
        base = "" if tree_sha == "root" else tree_sha[1:]
        entries = []
        for entry in self.tree(self.refs["main"]):
            path = str(entry["path"])
            parent = path.rpartition("/")[0]
            if parent == base:
                entries.append({**entry, "path": path.rpartition("/")[2]})
        return 200, json.dumps({"sha": tree_sha, "tree": entries}).encode(), "application/json"

    def answer(self, path: str, query: str, auth: str | None) -> tuple[int, bytes, str]:
        self.seen.append(path + ("?" + query if query else ""))
        if self.token and auth != f"Bearer {self.token}":
            return 401, json.dumps({"message": "Bad credentials"}).encode(), "application/json"
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:3] != ["repos", "acme", "widgets"]:
            return 404, b'{"message": "Not Found"}', "application/json"
        rest = parts[3:]
        if not rest:
            return 200, json.dumps({"default_branch": "main"}).encode(), "application/json"
        if rest[:2] == ["git", "trees"] and len(rest) == 3 and "recursive" not in query:
            return self.level(rest[2])
        if rest[:2] == ["git", "trees"] and len(rest) == 3:
            files = self.refs.get(rest[2])
            if files is None:
                return 404, b'{"message": "Not Found"}', "application/json"
            tree = self.tree(files)
            body = {"sha": "root", "tree": tree[:2] if self.truncate else tree,
                    "truncated": self.truncate}
            return 200, json.dumps(body).encode(), "application/json"
        if rest[:2] == ["git", "blobs"] and len(rest) == 3:
            for files in self.refs.values():
                for data in files.values():
                    if _sha(data) == rest[2]:
                        return 200, data, "application/octet-stream"
        return 404, b'{"message": "Not Found"}', "application/json"


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub({"main": FILES, "v0": OLD})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, body, kind = fake.answer(url.path, url.query, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_reads_the_default_branch_with_few_requests(github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    be = GitHubBackend("acme", "widgets", api_url=url)
    assert fake.seen == []  # building the mount sends nothing
    assert be.read_bytes("README.md") == b"# hello\n"
    assert {i.path for i in be.list("")} == {"README.md", "src", "docs", "vendor"}
    assert {i.path for i in be.walk("")} == set(FILES)
    assert be.info("src/pkg").is_dir
    assert be.info("docs/guide.txt").etag == _sha(b"guide")
    with be.open_read("src/pkg/mod.py", 6, 12) as stream:
        assert stream.read() == b"x = 1\n"
    assert fake.seen == ["/repos/acme/widgets", "/repos/acme/widgets/git/trees/main?recursive=1",
                         f"/repos/acme/widgets/git/blobs/{_sha(FILES['README.md'])}",
                         f"/repos/acme/widgets/git/blobs/{_sha(FILES['src/pkg/mod.py'])}"]


def test_sha_and_refresh(github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    be = GitHubBackend("acme", "widgets", "v0", api_url=url)
    assert be.read_bytes("README.md") == b"# old\n"
    assert not be.exists("docs")
    fake.refs["kept"] = OLD  # GitHub keeps old blobs readable
    fake.refs["v0"] = {"README.md": b"# moved\n"}
    assert be.read_bytes("README.md") == b"# old\n"  # the index is kept...
    be.refresh()
    assert be.read_bytes("README.md") == b"# moved\n"  # ...until refreshed


def test_errors_map_to_storied(github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    be = GitHubBackend("acme", "widgets", api_url=url)
    with pytest.raises(StorageNotFoundError):
        be.info("nope.txt")
    with pytest.raises(IsADirectoryStorageError):
        be.read_bytes("src")
    with pytest.raises(NotADirectoryStorageError):
        list(be.list("README.md"))
    with pytest.raises(StoragePermissionError):
        be.write("x", b"1")
    with pytest.raises(StorageNotFoundError, match="ref 'nope'"):
        GitHubBackend("acme", "widgets", "nope", api_url=url).info("README.md")
    with pytest.raises(StorageNotFoundError):
        GitHubBackend("acme", "gadgets", api_url=url).info("README.md")
    fake.token = "s3cret"
    with pytest.raises(StoragePermissionError, match="Bad credentials"):
        GitHubBackend("acme", "widgets", api_url=url, token="wrong").info("README.md")
    good = GitHubBackend("acme", "widgets", api_url=url, token="s3cret")
    assert good.read_bytes("docs/guide.txt") == b"guide"
    dead = GitHubBackend("acme", "widgets", api_url=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransientStorageError):
        dead.info("README.md")


def test_basic_auth_with_username_and_token() -> None:
    be = GitHubBackend("o", "r", username="ana", token="tok")
    assert be._headers["Authorization"] == "Basic " + base64.b64encode(b"ana:tok").decode()


def test_github_mount_through_the_manager(github: tuple[FakeGitHub, str]) -> None:
    _, url = github
    sm = StorageManager()
    sm.configure([{"name": "gh", "type": "github", "org": "acme", "repo": "widgets",
                   "api_url": url, "base_path": "src"}, {"name": "mem", "type": "memory"}])
    assert sm.node("gh:pkg/mod.py").read_bytes() == FILES["src/pkg/mod.py"]
    sm.node("gh:pkg").copy_to(sm.node("mem:copy"))
    assert sm.node("mem:copy/mod.py").read_bytes() == FILES["src/pkg/mod.py"]
    with pytest.raises(StorageConfigError, match="repo"):
        sm.configure([{"name": "g2", "type": "github", "org": "acme"}])
    with pytest.raises(StorageConfigError, match="api_url"):
        github_from_config({"name": "g", "org": "a", "repo": "b", "api_url": "file:///etc"})


def test_truncated_tree_is_completed_one_directory_at_a_time(
        github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    fake.truncate = True
    be = GitHubBackend("acme", "widgets", "main", api_url=url)
    assert {i.path for i in be.walk("")} == set(FILES)
    assert be.read_bytes("src/pkg/mod.py") == FILES["src/pkg/mod.py"]
    assert "/repos/acme/widgets/git/trees/tsrc%2Fpkg" in fake.seen


@pytest.mark.parametrize(("config", "message"), [
    ({"type": "smb", "share": "s"}, "SMB storage 'x' missing required field: 'host'"),
    ({"type": "smb", "host": "h"}, "SMB storage 'x' missing required field: 'share'"),
    ({"type": "git"}, "Git storage 'x' missing required field: 'base_path'"),
    ({"type": "github", "repo": "r"}, "GitHub storage 'x' missing required field: 'org'"),
    ({"type": "libarchive"}, "LibArchive storage 'x' missing required field: 'file'"),
    ({"type": "zip", "mode": "w"}, "ZIP storage 'x' missing required field: 'file'"),
])
def test_genro_wording_for_missing_keys(config: dict[str, str], message: str) -> None:
    with pytest.raises(StorageConfigError) as caught:
        StorageManager().configure([{"name": "x", **config}])
    assert message in str(caught.value)
