"""A read-only view of a GitHub repository over the REST API (genro-storage's ``github`` type).

Mount keys (genro-storage's): ``org``, ``repo`` (required), ``sha`` (a branch, tag or commit;
default: the repository's default branch), ``username`` + ``token`` (basic auth, as fsspec's
``GithubFileSystem``) or ``token`` alone (a bearer token). storied adds ``base_path`` (a folder of
the repository), ``api_url`` (default ``https://api.github.com``; a GitHub Enterprise
``https://host/api/v3``), ``connect_timeout`` (TCP connect and TLS, 10 s), ``read_timeout`` (each
wait for the answer or the next bytes of a body, 60 s) and ``timeout`` (genro-storage's: both,
where the specific key is absent). The standard library's HTTP client is used: no extra to
install. Every request is logged at DEBUG on ``storied.backends.github`` (never its headers).

Requests: building the mount sends none. The first operation resolves the tree in at most two
requests (``GET /repos/{org}/{repo}`` only when ``sha`` is absent, then ``GET
/repos/{org}/{repo}/git/trees/{sha}?recursive=1``); every ``info``/``list``/``walk`` after that is
answered from that index, and each read is one ``GET .../git/blobs/{blob}`` (raw media type)
streamed in chunks. The index is kept for the backend's life (unauthenticated clients have 60
requests an hour), so a branch mount sees new commits only after :meth:`GitHubBackend.refresh`.
A tree too large for one recursive answer (``truncated``) is completed one directory at a time.

Errors (mapped in :meth:`GitHubBackend._request` only): 404 is
:class:`~storied.errors.StorageNotFoundError` (the message says whether the repository, the ref
or the path is missing); 401 and 403 are :class:`~storied.errors.StoragePermissionError`, except a
403/429 with an exhausted rate limit, which is :class:`~storied.errors.TransientStorageError`,
as are 5xx answers, timeouts and refused connections; anything else is
:class:`~storied.errors.StorageIOError`. Every change raises
:class:`~storied.errors.StoragePermissionError`.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import posixpath
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from storied import paths
from storied.backends._config_kinds import timeouts
from storied.backends._logging import backend_logger, logged_request
from storied.backends.base import CHUNK, Backend
from storied.backends.readonly import ReadOnlyBackend
from storied.capabilities import Capabilities
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    TransientStorageError,
)
from storied.info import Info

__all__ = ["GitHubBackend", "github_from_config"]

API = "https://api.github.com"
_CAPS = Capabilities(readonly=True, write=False, delete=False, mkdir=False, append_mode=False,
                     public_urls=True, range_reads=False, atomic_operations=True)


@dataclass(frozen=True)
class _Index:
    ref: str
    files: dict[str, Info]
    dirs: set[str]


class GitHubBackend(ReadOnlyBackend):
    """The tree of one ref of a GitHub repository, read-only (see the module doc).

    Args:
        org: Owner (user or organisation).
        repo: Repository name.
        sha: Branch, tag or commit (default: the default branch).
        username, token: Credentials (``token`` alone is sent as a bearer token).
        api_url: REST API root.
        timeout: Seconds per request (connect and read, unless given apart).
        connect_timeout: Seconds for the TCP connect and the TLS handshake.
        read_timeout: Seconds of each wait for the server's answer or the next bytes.
    """

    org: str
    repo: str
    sha: str | None
    api_url: str
    timeout: float
    connect_timeout: float
    read_timeout: float

    protocol = "github"
    capabilities = _CAPS

    def __init__(self, org: str, repo: str, sha: str | None = None, *,
                 username: str | None = None, token: str | None = None, api_url: str = API,
                 timeout: float = 30, connect_timeout: float | None = None,
                 read_timeout: float | None = None) -> None:
        self.org, self.repo, self.sha = org, repo, sha
        self.api_url, self.timeout = api_url.rstrip("/"), timeout
        self.connect_timeout = connect_timeout or timeout
        self.read_timeout = read_timeout or timeout
        self._opener = urllib.request.build_opener(
            _TimedHTTP(self.connect_timeout, self.read_timeout),
            _TimedHTTPS(self.connect_timeout, self.read_timeout),
        )
        self._log = backend_logger("github")
        self._headers = {"Accept": "application/vnd.github+json",
                         "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "storied"}
        if token and username:
            pair = base64.b64encode(f"{username}:{token}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._index: _Index | None = None
        self._lock = threading.Lock()

    def storage_key(self) -> Hashable:
        """The API host, the repository and the ref."""
        return ("github", self.api_url, self.org.lower(), self.repo.lower(), self.sha)

    # ------------------------------------------------------------------ HTTP
    def _url(self, tail: str) -> str:
        org, repo = (urllib.parse.quote(p, safe="") for p in (self.org, self.repo))
        return f"{self.api_url}/repos/{org}/{repo}{tail}"

    def _request(self, tail: str, what: str, raw: bool = False) -> Any:
        """GET ``tail``; the parsed JSON, or the open response with ``raw``. Maps errors."""
        headers = dict(self._headers)
        if raw:
            headers["Accept"] = "application/vnd.github.raw"
        request = urllib.request.Request(self._url(tail), headers=headers)
        try:
            with logged_request(self._log, "GET", tail):
                response = self._opener.open(request, timeout=self.connect_timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, what) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
                raise StorageTimeoutError(
                    f"GitHub API did not answer in time for {what}: {reason}"
                ) from exc
            raise TransientStorageError(f"GitHub API unreachable for {what}: {exc}") from exc
        if raw:
            return response
        with response:
            try:
                return json.loads(response.read())
            except (ValueError, OSError) as exc:
                raise StorageIOError(f"Unexpected GitHub answer for {what}: {exc}") from exc

    def _http_error(self, exc: urllib.error.HTTPError, what: str) -> StorageError:
        try:
            detail = json.loads(exc.read() or b"{}").get("message", "")
        except (ValueError, OSError, AttributeError):
            detail = ""
        finally:
            exc.close()
        text = f"GitHub {exc.code} for {what}: {detail or exc.reason}"
        if exc.code == 404:
            return StorageNotFoundError(text)
        if exc.code in (403, 429) and exc.headers.get("X-RateLimit-Remaining") == "0":
            return TransientStorageError(f"GitHub rate limit exhausted for {what}")
        if exc.code in (401, 403):
            return StoragePermissionError(text)
        if exc.code == 429 or exc.code >= 500:
            return TransientStorageError(text)
        return StorageIOError(text)

    # ------------------------------------------------------------------ index
    def refresh(self) -> None:
        """Forget the index: the next operation resolves the ref again."""
        with self._lock:
            self._index = None

    def _tree(self) -> _Index:
        with self._lock:
            if self._index is None:
                self._index = self._load()
            return self._index

    def _load(self) -> _Index:
        where = f"{self.org}/{self.repo}"
        ref = self.sha
        if not ref:
            ref = str(self._request("", f"repository {where!r}")["default_branch"])
        quoted = urllib.parse.quote(ref, safe="")
        try:
            tree = self._request(f"/git/trees/{quoted}?recursive=1", f"{where!r} at {ref!r}")
        except StorageNotFoundError as exc:
            raise StorageNotFoundError(
                f"GitHub repository {where!r} or its ref {ref!r} not found ({exc})"
            ) from exc
        files: dict[str, Info] = {}
        dirs: set[str] = {""}
        self._add(tree.get("tree", []), "", files, dirs)
        if tree.get("truncated"):
            self._complete(tree["sha"], "", files, dirs)
        return _Index(ref, files, dirs)

    def _complete(self, tree_sha: str, base: str, files: dict[str, Info], dirs: set[str]) -> None:
        """Fill the index one directory at a time (for trees GitHub truncates)."""
        quoted = urllib.parse.quote(tree_sha, safe="")
        answer = self._request(f"/git/trees/{quoted}", f"tree {base or '/'!r}")
        self._add(answer.get("tree", []), base, files, dirs)
        for entry in answer.get("tree", []):
            if entry.get("type") == "tree":
                self._complete(entry["sha"], posixpath.join(base, entry["path"]), files, dirs)

    @staticmethod
    def _add(entries: list[dict[str, Any]], base: str, files: dict[str, Info],
             dirs: set[str]) -> None:
        for entry in entries:
            path = posixpath.join(base, entry.get("path", "")) if base else entry.get("path", "")
            try:
                if paths.normalize(path) != path or not path:
                    continue
            except StorageError:
                continue  # a name storied cannot represent is left out
            if entry.get("type") == "tree":
                dirs.add(path)
            elif entry.get("type") == "blob":
                files[path] = Info(path, False, int(entry.get("size", 0)), None, entry["sha"])
            else:
                continue  # submodules
            parent = posixpath.dirname(path)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)

    # ------------------------------------------------------------------ reads
    def info(self, path: str) -> Info:
        index = self._tree()
        if path in index.files:
            return index.files[path]
        if path in index.dirs:
            return Info(path, is_dir=True)
        raise StorageNotFoundError(f"No such path in GitHub {self.org}/{self.repo}: {path!r}")

    def list(self, path: str) -> Iterator[Info]:
        index = self._tree()
        if path not in index.dirs:
            if path in index.files:
                raise NotADirectoryStorageError(f"Not a directory: {path!r}")
            raise StorageNotFoundError(f"No such directory in GitHub: {path!r}")
        out = [Info(d, is_dir=True) for d in index.dirs if d and posixpath.dirname(d) == path]
        out += [i for p, i in index.files.items() if posixpath.dirname(p) == path]
        return iter(out)

    def walk(self, path: str) -> Iterator[Info]:
        index = self._tree()
        if path not in index.dirs:
            self.list(path)  # raises the right error
        return iter([i for p, i in index.files.items() if paths.is_under(p, path)])

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        info = self.info(path)
        if info.is_dir:
            raise IsADirectoryStorageError(f"Is a directory: {path!r}")
        response = self._request(f"/git/blobs/{info.etag}", f"{path!r}", raw=True)
        stop = info.size if end is None else min(end, info.size)
        reader = _Body(response, path, start, max(0, stop - start))
        return io.BufferedReader(reader, CHUNK)

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        """The public raw URL of ``path`` on github.com (None for another API host)."""
        if self.api_url != API:
            return None
        index = self._tree()
        quoted = urllib.parse.quote(f"{self.org}/{self.repo}/{index.ref}/{path}")
        return f"https://raw.githubusercontent.com/{quoted}"

    # ------------------------------------------------------------------ refused
    def _refuse(self, action: str) -> StoragePermissionError:
        return StoragePermissionError(
            f"github mount {self.org}/{self.repo} is read-only: cannot {action}"
        )


class _TimedConnection(http.client.HTTPConnection):
    """Connects within ``connect_timeout``, then waits at most ``read_timeout`` per read."""

    read_timeout: float = 60

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TimedSConnection(http.client.HTTPSConnection):
    read_timeout: float = 60

    def connect(self) -> None:
        super().connect()  # TCP and TLS within the connect timeout
        self.sock.settimeout(self.read_timeout)


class _TimedHTTP(urllib.request.HTTPHandler):
    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        super().__init__()
        self._connect, self._read = connect_timeout, read_timeout

    def http_open(self, req: Any) -> Any:
        return self.do_open(self._make, req)

    def _make(self, host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = _TimedConnection(host, **{**kwargs, "timeout": self._connect})
        conn.read_timeout = self._read
        return conn


class _TimedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        super().__init__()
        self._connect, self._read = connect_timeout, read_timeout

    def https_open(self, req: Any) -> Any:
        context = getattr(self, "_context", None)  # HTTPSHandler's (None: the default)
        return self.do_open(self._make, req, context=context)

    def _make(self, host: str, **kwargs: Any) -> http.client.HTTPSConnection:
        conn = _TimedSConnection(host, **{**kwargs, "timeout": self._connect})
        conn.read_timeout = self._read
        return conn


class _Body(io.RawIOBase):
    """Bytes ``[start, start + length)`` of an HTTP body, read in chunks, errors mapped."""

    def __init__(self, response: Any, path: str, start: int, length: int) -> None:
        self._response, self._path, self._skip, self._left = response, path, start, length

    def readable(self) -> bool:
        return True

    def _read(self, size: int) -> bytes:
        try:
            return bytes(self._response.read(size))
        except TimeoutError as exc:
            raise StorageTimeoutError(f"GitHub read of {self._path!r} timed out") from exc
        except OSError as exc:
            raise TransientStorageError(f"GitHub read of {self._path!r} failed: {exc}") from exc

    def readinto(self, buffer: Any) -> int:
        while self._skip:
            skipped = self._read(min(self._skip, CHUNK))
            if not skipped:
                break
            self._skip -= len(skipped)
        if self._left <= 0:
            return 0
        chunk = self._read(min(len(buffer), self._left))
        if not chunk:
            raise StorageIOError(f"GitHub answer for {self._path!r} ended early")
        buffer[: len(chunk)] = chunk
        self._left -= len(chunk)
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def github_from_config(config: dict[str, Any]) -> Backend:
    """Build a GitHub mount from genro-storage's keys (see the module doc). No network I/O.

    Raises:
        StorageConfigError: A key has the wrong type.
    """
    name = config.get("name")
    for key in ("org", "repo", "sha", "username", "token", "base_path", "api_url"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise StorageConfigError(f"GitHub storage {name!r}: {key!r} must be a string")
    api_url = config.get("api_url") or API
    connect_s, read_s = timeouts(config)
    if urllib.parse.urlsplit(api_url).scheme not in ("http", "https"):
        raise StorageConfigError(f"GitHub storage {name!r}: 'api_url' must be an http(s) URL")
    backend: Backend = GitHubBackend(
        config["org"], config["repo"], config.get("sha"), username=config.get("username"),
        token=config.get("token"), api_url=api_url, timeout=connect_s,
        connect_timeout=connect_s, read_timeout=read_s,
    )
    prefix = str(config.get("base_path") or "").strip("/")
    if prefix:
        from storied.backends.wrappers import Prefixed

        backend = Prefixed(backend, prefix)
    return backend
