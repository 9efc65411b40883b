"""Web helpers for nodes: WSGI serving (streamed, Range-aware), URL download, base64."""

from __future__ import annotations

import base64
import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from storied.core.streams import iter_chunks
from storied.errors import (
    InvalidArgumentError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["CHUNK", "content_disposition", "fill_from_url", "serve", "to_base64"]

#: Size of the chunks ``serve`` yields.
CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NOT_TOKEN = re.compile(r'[^\x21\x23-\x7e]')  # visible ASCII but '"' (an etag's inside)
_NOT_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\%]')  # plain ASCII filename, no quoting tricks
# RFC 5987 attr-char, besides letters and digits (which quote() never escapes).
_ATTR_CHARS = "!#$&+-.^_`|~"


class _Body:
    """A WSGI body: yields chunks from an open stream and closes it when the server is done."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        return iter_chunks(self._stream, CHUNK)

    def close(self) -> None:
        self._stream.close()


def _etag(info: Info) -> str:
    token = info.md5 or info.etag or f"{info.mtime}-{info.size}"
    return '"' + _NOT_TOKEN.sub("", str(token)) + '"'


def content_disposition(name: str) -> str:
    """``attachment; filename="<ascii fallback>"; filename*=UTF-8''<percent-encoded name>``.

    The header value of a download named ``name`` (RFC 6266, with the RFC 5987 ``filename*``
    form for non-ASCII names). Control characters (CR, LF, NUL, DEL, C1, Unicode line
    separators) are dropped from the name first, so the value can never end the header or
    start another one; the fallback keeps printable ASCII only (``_`` for anything else, no
    ``"``, ``\\`` or ``%``). A name with nothing left is ``download``.

    Raises:
        InvalidArgumentError: ``name`` is not a string (also a ``ValueError``).
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(f"download_name must be a str, not {type(name).__name__}")
    clean = _CONTROL.sub("", name).strip() or "download"
    fallback = _NOT_FALLBACK.sub("_", clean)
    encoded = quote(clean, safe=_ATTR_CHARS, encoding="utf-8", errors="replace")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _header_safe(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every value as printable ASCII: control and non-ASCII characters are dropped (a last
    guard; each header is built clean)."""
    return [(key, re.sub(r"[^\x20-\x7e]", "", value)) for key, value in headers]


def _parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """``(start, end_exclusive)``, None for no/ignored range, False when unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multi-range or malformed: serve the whole file
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    else:
        start, end = max(0, size - int(last)), size
    if start >= size or start >= end:
        return False
    return start, end


def serve(
    node: StorageNode,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    download: bool = False,
    download_name: str | None = None,
    cache_max_age: int | None = None,
) -> Any:
    """Answer a WSGI request with the node's content, streamed in 64 KiB chunks.

    One metadata request (``node.info()``), then one (ranged) read through the node, so a
    version-pinned node serves its version. Answers ``404`` when missing, ``304`` when
    ``If-None-Match`` matches, ``206`` with ``Content-Range`` for a single ``Range: bytes=``
    request, ``416`` when the range is unsatisfiable, and no body for ``HEAD``.

    ``download`` / ``download_name`` add ``Content-Disposition: attachment`` (see
    :func:`content_disposition`: the name, from the argument or the path, is encoded per RFC
    6266/5987). No header value ever holds a control character.

    Raises:
        InvalidArgumentError: ``download_name`` is not a string, ``cache_max_age`` not an int
            >= 0.
    """
    disposition = None
    if download or download_name:
        disposition = content_disposition(download_name or node.basename)
    if cache_max_age is not None and (
        isinstance(cache_max_age, bool) or not isinstance(cache_max_age, int) or cache_max_age < 0
    ):
        raise InvalidArgumentError(f"cache_max_age must be an int >= 0, not {cache_max_age!r}")
    try:
        info = node.info()
    except StorageNotFoundError:
        info = None
    if info is None or info.is_dir:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found"]
    etag = _etag(info)
    headers = [("ETag", etag), ("Content-Type", node.mimetype), ("Accept-Ranges", "bytes")]
    if cache_max_age is not None:
        headers.append(("Cache-Control", f"max-age={cache_max_age}"))
    if disposition is not None:
        headers.append(("Content-Disposition", disposition))
    if environ.get("HTTP_IF_NONE_MATCH") in (etag, "*"):
        start_response("304 Not Modified", _header_safe(headers))
        return [b""]
    wanted = _parse_range(environ.get("HTTP_RANGE"), info.size)
    if wanted is False:
        start_response("416 Range Not Satisfiable", [("Content-Range", f"bytes */{info.size}")])
        return [b""]
    start, end = wanted if isinstance(wanted, tuple) else (0, info.size)
    headers.append(("Content-Length", str(end - start)))
    if isinstance(wanted, tuple):
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{info.size}"))
        start_response("206 Partial Content", _header_safe(headers))
    else:
        start_response("200 OK", _header_safe(headers))
    if environ.get("REQUEST_METHOD") == "HEAD":
        return [b""]
    from storied.core import pinned

    stream = pinned.open_range(node, start, end if isinstance(wanted, tuple) else None)
    return _Body(stream)


def fill_from_url(node: StorageNode, url: str, timeout: float = 30) -> None:
    """Download ``url`` into ``node``, streamed (nothing is held whole in memory).

    Only ``http://`` and ``https://`` URLs are accepted. The file is replaced only when the whole
    body arrived. Note: fetching user-supplied URLs from a server can reach internal hosts
    (SSRF); validate URLs before passing them here.

    Raises:
        InvalidArgumentError: Not an http(s) URL (also a ``ValueError``).
        StorageNotFoundError: The server answered 404 or 410.
        StorageIOError: The server refused the request (another 4xx answer).
        TransientStorageError: The download failed otherwise: no connection, timeout, reset,
            5xx or 429 (also a ``ConnectionError``/``OSError``).
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"Invalid URL (only http/https are accepted): {url!r}")
    node.require_writable()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            node._store(response)
    except StorageError:
        raise
    except urllib.error.HTTPError as exc:
        message = f"Failed to download from {url}: HTTP {exc.code} {exc.reason}"
        if exc.code in (404, 410):
            raise StorageNotFoundError(message) from exc
        if 400 <= exc.code < 500 and exc.code != 429:
            raise StorageIOError(message) from exc
        raise TransientStorageError(message) from exc
    except (http.client.InvalidURL, ValueError) as exc:  # a malformed URL (port, characters)
        raise InvalidArgumentError(f"Invalid URL {url!r}: {exc}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise TransientStorageError(f"Failed to download from {url}: {exc}") from exc


def to_base64(node: StorageNode, mime: str | None = None, include_uri: bool = True) -> str:
    """The content base64-encoded, as ``data:<mime>;base64,...`` unless ``include_uri`` is false.

    Raises:
        StorageNotFoundError: The file does not exist.
        IsADirectoryStorageError: The node is a directory (also a ``ValueError``).
    """
    node.size()  # raises the documented errors for missing paths and directories
    encoded = base64.b64encode(node.read_bytes()).decode("ascii")
    if not include_uri:
        return encoded
    return f"data:{mime or node.mimetype};base64,{encoded}"
