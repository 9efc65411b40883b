"""A real S3 server for tests and benchmarks, and a proxy that counts the requests sent to it.

Everything binds 127.0.0.1 on a free port. :func:`start_moto` runs moto's server in a thread of
this process (moto keeps its state per process, so two servers started here share buckets).
:class:`CountingProxy` sits between a client and any HTTP server, forwards every request unchanged
(method, path, query, headers, body) and counts them by kind, which is how request economy is
measured::

    moto = start_moto()
    make_bucket(moto.endpoint_url, "my-bucket")
    proxy = CountingProxy(moto.endpoint_url)
    ...  # point the client at proxy.endpoint_url
    assert proxy.counts["GET"] == 1
    proxy.stop(); moto.stop()

Only the standard library is used for the proxy; moto and boto3 (test extras) for the rest.
"""

from __future__ import annotations

import collections
import http.client
import logging
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["CountingProxy", "MotoHandle", "make_bucket", "s3_client", "start_moto"]

#: Fake credentials moto accepts (it checks none).
TEST_KEY = "testing"
TEST_SECRET = "testing"

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
#: Query keys of a bucket-level GET that is still a listing (ListObjects v1/v2, versions).
_LIST_KEYS = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "marker",
        "max-keys",
        "encoding-type",
        "continuation-token",
        "start-after",
        "fetch-owner",
        "versions",
        "key-marker",
        "version-id-marker",
    }
)
_COPY = 64 * 1024


@dataclass
class MotoHandle:
    """A running in-process moto server.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
    """

    endpoint_url: str
    _server: Any = field(repr=False)

    def reset(self) -> None:
        """Forget every bucket and object (``POST /moto-api/reset``)."""
        parts = urllib.parse.urlsplit(self.endpoint_url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"moto reset failed: HTTP {response.status}")
        finally:
            conn.close()

    def stop(self) -> None:
        """Shut the server down and join its thread."""
        self._server.stop()


def start_moto(quiet: bool = True) -> MotoHandle:
    """Start moto's S3 server on 127.0.0.1 at a free port and return its handle.

    Args:
        quiet: Silence werkzeug's one-line-per-request log (it sets the ``werkzeug`` logger to
            WARNING for the process).
    """
    from moto.server import ThreadedMotoServer

    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return MotoHandle(f"http://{host}:{port}", server)


def s3_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 S3 client for a test server (fake credentials, us-east-1, path-style)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=TEST_KEY,
        aws_secret_access_key=TEST_SECRET,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, **config),
    )


def make_bucket(endpoint_url: str, name: str, versioned: bool = False) -> str:
    """Create bucket ``name`` on the server (versioning enabled if asked) and return its name."""
    client = s3_client(endpoint_url)
    try:
        client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    finally:
        client.close()
    return name


# --------------------------------------------------------------------- counting proxy
def request_label(method: str, path: str, query: str) -> str:
    """The counter label of one S3 request: its method, ``LIST`` or ``LISTVERSIONS``.

    A GET is a listing when its query has ``list-type`` or when it targets a bucket root
    (path-style ``/bucket``) with only listing parameters (so ``?versioning`` stays ``GET``);
    a listing with ``versions`` in its query (ListObjectVersions) is ``LISTVERSIONS``.
    """
    if method != "GET":
        return method
    keys = set(urllib.parse.parse_qs(query, keep_blank_values=True))
    if "list-type" in keys:
        return "LIST"
    bucket_root = path.strip("/").count("/") == 0 and path.strip("/") != ""
    if not (bucket_root and keys <= _LIST_KEYS):
        return "GET"
    return "LISTVERSIONS" if "versions" in keys else "LIST"


def _read_chunked(rfile: Any) -> bytes:
    """Decode an HTTP/1.1 chunked body (trailers are read and dropped)."""
    body = bytearray()
    while True:
        size_line = rfile.readline(65537)
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += rfile.read(size)
        rfile.readline(65537)  # the CRLF after each chunk


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body writes meet delayed ACKs (40 ms)
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent (the counters are the record)."""

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        body = self._body()
        split = urllib.parse.urlsplit(self.path)
        self.server.record(self.command, split.path, split.query, self.headers.get("Range"))
        fault = self.server.take_fault(self.command, split.path, split.query)
        if fault is not None and fault.cut is None:
            self._refuse(fault.status, fault.code)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        shift = self.server.range_shift
        if shift and self.command == "GET" and "Range" in headers:
            first, _, last = headers["Range"].removeprefix("bytes=").partition("-")
            if first.isdigit():  # answer an earlier start than asked (a misbehaving server)
                headers["Range"] = f"bytes={max(0, int(first) - shift)}-{last}"
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        target = self.server.target
        upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                              timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            self._relay(upstream.getresponse(), None if fault is None else fault.cut)
        finally:
            upstream.close()

    def _refuse(self, status: int, code: str | None) -> None:
        """Answer an injected fault: ``status`` with an S3-style XML error body."""
        code = code or _FAULT_CODES.get(status, "InternalError")
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by CountingProxy</Message></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _relay(self, response: http.client.HTTPResponse, cut: int | None = None) -> None:
        """Send ``response`` back; with ``cut``, only that many body bytes, then hang up."""
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        strip = self.command == "GET" and self.server.chunk_gets
        if strip:
            length = None
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP and not (strip and key.lower() == "content-length"):
                self.send_header(key, value)
        chunked = length is None and not no_body
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        try:
            while block := response.read(_COPY):
                if cut is not None:
                    block, cut = block[:cut], cut - len(block[:cut])
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                self.server.add_sent(len(block))
                if cut == 0:
                    self.close_connection = True  # the client sees the body end early
                    return
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client dropped the body: fine
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _forward


_FAULT_CODES = {500: "InternalError", 503: "ServiceUnavailable", 429: "SlowDown"}


@dataclass
class _Fault:
    """Answer ``status`` to the next ``left`` requests of ``label`` whose query has ``query``."""

    left: int
    status: int
    label: str | None
    query: str | None
    code: str | None = None
    cut: int | None = None

    def matches(self, label: str, keys: set[str]) -> bool:
        return (self.label is None or self.label == label) and (
            self.query is None or self.query in keys
        )


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: urllib.parse.SplitResult) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.target = target
        self.counts: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, str, str]] = []
        self.ranges: list[str | None] = []
        self.sent = 0
        self.faults: list[_Fault] = []
        self.chunk_gets = False
        self.range_shift = 0
        self.lock = threading.Lock()

    def record(self, method: str, path: str, query: str, range_header: str | None) -> None:
        with self.lock:
            self.counts[request_label(method, path, query)] += 1
            self.requests.append((method, path, query))
            self.ranges.append(range_header)

    def add_sent(self, count: int) -> None:
        with self.lock:
            self.sent += count

    def take_fault(self, method: str, path: str, query: str) -> _Fault | None:
        """The status to answer instead of forwarding, consuming one use of the first match."""
        label = request_label(method, path, query)
        keys = set(urllib.parse.parse_qs(query, keep_blank_values=True))
        with self.lock:
            for fault in self.faults:
                if fault.left > 0 and fault.matches(label, keys):
                    fault.left -= 1
                    return fault
        return None


class CountingProxy:
    """A threaded HTTP proxy on 127.0.0.1 that forwards to ``target_url`` and counts requests.

    Request bodies sent with ``Transfer-Encoding: chunked`` are de-chunked and forwarded with a
    ``Content-Length`` (the payload, aws-chunked or not, is passed through as is); responses are
    streamed back. ``Expect: 100-continue`` is answered by the proxy itself.

    Attributes:
        counts: Requests seen per label (``GET``, ``HEAD``, ``PUT``, ``POST``, ``DELETE``,
            ``LIST``, ``LISTVERSIONS``; see :func:`request_label`).
        requests: Every request as ``(method, path, query)``, in arrival order.
        ranges: The ``Range`` header of each of those requests (None when absent).
        bytes_sent: Response body bytes relayed back to clients.
        endpoint_url: Where clients should connect.
    """

    endpoint_url: str

    def __init__(self, target_url: str) -> None:
        target = urllib.parse.urlsplit(target_url)
        if target.scheme != "http":
            raise ValueError(f"CountingProxy forwards to plain http only: {target_url!r}")
        self._server = _ProxyServer(target)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def counts(self) -> collections.Counter[str]:
        """A snapshot of the counters."""
        with self._server.lock:
            return collections.Counter(self._server.counts)

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        """A snapshot of the request log."""
        with self._server.lock:
            return list(self._server.requests)

    @property
    def ranges(self) -> list[str | None]:
        """The ``Range`` header of each request of :attr:`requests` (None when absent)."""
        with self._server.lock:
            return list(self._server.ranges)

    @property
    def bytes_sent(self) -> int:
        """Response body bytes relayed to clients since the last reset."""
        with self._server.lock:
            return self._server.sent

    def fail(
        self,
        times: int,
        *,
        status: int = 503,
        label: str | None = None,
        query: str | None = None,
        code: str | None = None,
        cut: int | None = None,
    ) -> None:
        """Answer ``status`` (an S3 XML error, nothing forwarded) to the next ``times`` requests
        whose label (see :func:`request_label`) is ``label`` and whose query has the key
        ``query`` (None: any). ``proxy.fail(3, query="versioning")`` fails three
        GetBucketVersioning calls. ``code`` is the S3 error code sent (default: one that fits
        the status). With ``cut``, the request is forwarded instead and the connection closed
        after ``cut`` bytes of the response body (a connection lost mid-download). Faults are
        cleared by :meth:`reset`; the failed requests are counted like the others."""
        with self._server.lock:
            self._server.faults.append(_Fault(times, status, label, query, code, cut))

    def chunk_gets(self, on: bool = True) -> None:
        """Relay GET responses chunked, without ``Content-Length`` (as some S3-compatible
        servers and compressing front proxies do). Cleared by :meth:`reset`."""
        with self._server.lock:
            self._server.chunk_gets = on

    def shift_ranges(self, by: int) -> None:
        """Forward each ranged GET as starting ``by`` bytes earlier than the client asked (the
        answer's ``Content-Range`` says so honestly): a server that does not answer the range
        it was asked. Cleared by :meth:`reset`."""
        with self._server.lock:
            self._server.range_shift = by

    @property
    def total(self) -> int:
        """How many requests were forwarded since the last reset."""
        return sum(self.counts.values())

    def reset(self) -> None:
        """Zero the counters and the log."""
        with self._server.lock:
            self._server.counts.clear()
            self._server.requests.clear()
            self._server.ranges.clear()
            self._server.sent = 0
            self._server.faults.clear()
            self._server.chunk_gets = False
            self._server.range_shift = 0

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def format_counts(counts: collections.Counter[str] | str) -> str:
    """``'  3  (GET=1 LIST=2)'`` for request counts; an error text is returned as it is."""
    if isinstance(counts, str):
        return counts
    total = sum(counts.values())
    detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    return f"{total:>3}  ({detail})" if total else "  0"


def measure_requests(
    proxy: CountingProxy, action: Callable[[], Any]
) -> collections.Counter[str] | str:
    """The requests ``action`` sent through ``proxy``, or the error it raised (reported)."""
    proxy.reset()
    try:
        action()
    except Exception as exc:
        return f"fails: {type(exc).__name__}: {str(exc)[:40]}"
    return collections.Counter(proxy.counts)
