"""Native async I/O for :mod:`storied.aio`: the calls of S3 nodes that run on the event loop
through aiobotocore (:mod:`storied.backends._s3_async`) instead of a worker thread.

A mount gets a *route* when its layers are all known: ``Permissions``, ``Prefixed`` (relative
mounts, ``base_path``), ``HideReserved``, ``Referencing`` (dedup references: a reference reads
as its content copy), ``Retrying`` above an ``S3Backend``. The route replays
those layers' rules itself (permission checks, the reserved area refused and hidden, path
prefixes, retries with the same backoff and logging), and the node-level rules are the sync
node's own checks, called on the loop (they are pure CPU once the mount's probes are cached:
the route is built in a worker thread, which warms them). Anything else (a compression,
recording or mock layer, another backend) has no route: every call takes the thread path.

Native, on a routed mount (see :data:`NATIVE`): ``info``, ``exists``, ``is_file``,
``is_dir``, ``size``, ``read_bytes``, ``read_text``, ``children``, ``iterdir``,
``open('rb')`` (an async seekable stream), ``iter_bytes`` on the current content (not a
version-pinned node); ``write_bytes``/``write_text`` of bytes below the multipart threshold
on a mount without history, without encryption, conditions or ``skip_if_unchanged``, with no
event subscriber and no lock held in the process, and whose config has only keys this module
knows (``sse``, ``sse_kms_key_id`` and ``storage_class`` are sent as the sync adapter's own
``_new_object`` says; a key added later sends writes to the thread path); ``delete()`` (not
recursive) on a mount without a portable history, with no event to emit and no lock held.
Every other call, and every call a rule above refuses, runs the sync API in a thread: same
results, same errors.
"""

from __future__ import annotations

import asyncio
import inspect
import mimetypes
import random
from collections.abc import Awaitable, Callable
from typing import Any

from storied.backends._s3_async import AsyncS3, AsyncS3Reader, async_s3
from storied.backends.base import Backend
from storied.backends.referencing import MAGIC, REF_SIZE, Referencing
from storied.backends.s3 import S3Backend
from storied.backends.wrappers import HideReserved, Permissions, Prefixed, Retrying
from storied.core import locking
from storied.core.eventing import needs_events
from storied.core.node import StorageNode
from storied.core.sealed import opened
from storied.core.streams import decode_error, encode_error
from storied.core.writing import check_encoding, check_mode, check_text_options
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.info import Info

__all__ = ["NATIVE", "THREAD", "Route", "Router"]

#: Returned by a native handler that declines a call (before any I/O): the thread path runs it.
THREAD: Any = object()
#: Mount config keys whose meaning the native write path keeps (any other key set: threads).
_WRITE_KEYS = frozenset({
    "name", "type", "protocol", "bucket", "region", "key", "secret", "token", "endpoint_url",
    "anon", "client_kwargs", "base_path", "prefix", "multipart_threshold", "multipart_chunksize",
    "max_concurrency", "retries", "connect_timeout", "read_timeout", "permissions",
    "readonly", "versioning", "profile", "path",
})
#: Keys the native write keeps only through the sync adapter's own write options.
_OPTION_KEYS = frozenset({"sse", "sse_kms_key_id", "storage_class"})
_ENVELOPES = (b"#GNRE1:", b"#STRE1:")


class Route:
    """How one mount's calls run natively: its layers top-down, then the async S3 twin."""

    def __init__(self, layers: list[tuple[str, Backend]], s3: AsyncS3, engine: str | None,
                 writes: bool, threshold: int) -> None:
        self.layers, self.s3, self.engine = layers, s3, engine
        self.writes, self.threshold = writes, threshold

    async def run(self, op: str, path: str, **kw: Any) -> Any:
        return await self._down(0, op, path, kw)

    async def _down(self, i: int, op: str, path: str, kw: dict[str, Any]) -> Any:
        if i == len(self.layers):
            return await self._terminal(op, path, kw)
        kind, layer = self.layers[i]
        if kind == "perm":
            if op == "write":
                layer._need_write()  # type: ignore[attr-defined]
            elif op == "delete":
                layer._need_delete()  # type: ignore[attr-defined]
            return await self._down(i + 1, op, path, kw)
        if kind == "prefix":
            return await self._prefixed(i, layer, op, path, kw)
        if kind == "ref":
            return await self._referenced(i, layer, op, path, kw)
        if kind == "hide":
            if op in ("write", "delete"):
                layer._guard(path)  # type: ignore[attr-defined]
            result = await self._down(i + 1, op, path, kw)
            if op == "list":
                result = [e for e in result if not layer._hidden(e.path)]  # type: ignore[attr-defined]
            return result
        return await self._retried(i, layer, op, path, kw)

    async def _prefixed(self, i: int, layer: Any, op: str, path: str, kw: dict[str, Any]) -> Any:
        try:
            result = await self._down(i + 1, op, layer._in(path), kw)
        except StorageNotFoundError:
            if path or op not in ("info", "list"):
                raise
            return Info("", is_dir=True) if op == "info" else []  # a mount root always exists
        if isinstance(result, Info):
            return layer._out(result)
        if isinstance(result, list):
            return [layer._out(e) for e in result]
        return result

    async def _referenced(self, i: int, layer: Any, op: str, path: str,
                          kw: dict[str, Any]) -> Any:
        """The dedup layer's reading rules (``Referencing``): a file that is a reference reads
        as its content copy, and lists with its logical size and MD5. Parsing a reference and
        the logical view of a reference-sized entry may read key files: in a thread."""
        result = await self._down(i + 1, op, path, kw)
        if op in ("info", "list"):
            entries = result if isinstance(result, list) else [result]
            if any(not e.is_dir and e.size == REF_SIZE for e in entries):
                entries = await asyncio.to_thread(lambda: [layer.logical(e) for e in entries])
            return entries if isinstance(result, list) else entries[0]
        if op == "read_bytes" and len(result) == REF_SIZE and result.startswith(MAGIC):
            ref = await asyncio.to_thread(layer.parse, result)
            if ref is not None:
                return await self._blob(i, layer, ref, path, op, kw)
        if op == "open" and result._size == REF_SIZE:
            head = await result.read()
            ref = await asyncio.to_thread(layer.parse, head) if head.startswith(MAGIC) else None
            if ref is None:
                result.rewind(head)
                return result
            await result.close()
            return await self._blob(i, layer, ref, path, op, kw)
        return result

    async def _blob(self, i: int, layer: Any, ref: Any, path: str, op: str,
                    kw: dict[str, Any]) -> Any:
        try:
            return await self._down(i + 1, op, ref.blob, kw)
        except StorageNotFoundError as exc:
            raise StorageIOError(
                f"{path!r} is a reference whose content copy {ref.blob} is missing "
                "(removed outside storied?)") from exc

    async def _retried(self, i: int, layer: Any, op: str, path: str, kw: dict[str, Any]) -> Any:
        """``Retrying``'s loop: transient errors retried with its backoff and log records; a
        delete whose retry finds nothing was done by an earlier attempt."""
        attempts = layer.attempts
        for attempt in range(attempts):
            try:
                return await self._down(i + 1, op, path, kw)
            except TransientStorageError as exc:
                if attempt == attempts - 1:
                    layer._give_up(op, path, exc)
                    raise
                delay = min(layer.max_delay, layer.base_delay * 2**attempt)
                delay *= 0.5 + random.random() / 2
                layer._log.info("%s %r: attempt %d/%d failed: %s; retrying in %.2f s", op, path,
                                attempt + 1, attempts, type(exc).__name__, delay)
                await asyncio.sleep(delay)
            except StorageNotFoundError:
                if attempt == 0 or op != "delete":
                    raise
                return None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _terminal(self, op: str, path: str, kw: dict[str, Any]) -> Any:
        s3 = self.s3
        if op == "write":
            return await s3.write(path, kw["data"], s3.put_extra(path, kw.get("metadata")))
        method: Callable[[str], Awaitable[Any]] = getattr(s3, {"open": "open_read"}.get(op, op))
        return await method(path)


def _layers(node: StorageNode) -> tuple[list[tuple[str, Backend]], S3Backend] | None:
    """The known layers of ``node``'s mount above its S3 adapter, or None (no I/O)."""
    layers: list[tuple[str, Backend]] = []
    backend = node._backend
    kinds = {Permissions: "perm", Prefixed: "prefix", HideReserved: "hide", Retrying: "retry",
             Referencing: "ref"}
    while backend is not None and not isinstance(backend, S3Backend):
        kind = kinds.get(type(backend))
        if kind is None:
            return None
        layers.append((kind, backend))
        backend = getattr(backend, "inner", None)
    return None if backend is None else (layers, backend)


def _build(node: StorageNode, pool: int = 64) -> Route | None:
    """The route of ``node``'s mount, or None (runs in a worker thread: it may probe)."""
    found = _layers(node)
    if found is None:
        return None
    layers, backend = found
    assert node._backend is not None
    node._backend.capabilities  # noqa: B018  the probes the sync checks read, cached now
    if not mimetypes.inited:
        mimetypes.init()  # reads /etc/mime.types: the first write's content type needs it
    history = node._history
    engine = None if history is None else history.name
    s3 = async_s3(backend, pool)
    known = _WRITE_KEYS | _OPTION_KEYS if s3.keeps_write_options else _WRITE_KEYS
    return Route(layers, s3, engine, _writes_allowed(node, known), backend.multipart_threshold)


def _writes_allowed(node: StorageNode, known: frozenset[str]) -> bool:
    """Whether every key of the mount's config (and its root's) is one the native write keeps."""
    manager: Any = node._manager
    configs, parents = getattr(manager, "_configs", None), getattr(manager, "_parents", {})
    if not isinstance(configs, dict):
        return False
    name, seen = node.mount_name, 0
    while name is not None and seen < 100:
        config = configs.get(name) or {}
        if any(value not in (None, False, "") for key, value in config.items()
               if key not in known):
            return False
        name = parents[name][0] if name in parents else None
        seen += 1
    return True


class Router:
    """Routes per mount, built once (in a worker thread) and kept while the mount's backend
    object is the same (a reconfigured mount gets a new one)."""

    def __init__(self, pool: int = 64) -> None:
        self.pool = pool  # connections per async client: the manager's max_concurrency
        self._routes: dict[str | None, tuple[Backend, Route | None]] = {}

    async def route(self, node: StorageNode) -> Route | None:
        backend = node._backend
        if backend is None or node.version is not None:
            return None
        found = self._routes.get(node.mount_name)
        if found is not None and found[0] is backend:
            return found[1]
        try:
            route = await asyncio.to_thread(_build, node, self.pool) if _layers(node) else None
        except StorageError:
            return None  # (a probe failed) the thread path raises what the sync API raises
        self._routes[node.mount_name] = (backend, route)
        return route

    async def aclose(self) -> None:
        """Close this loop's async S3 clients of every route."""
        for _, route in list(self._routes.values()):
            if route is not None:
                await route.s3.aclose()


# ------------------------------------------------------------------------------ node calls
async def _info(route: Route, node: StorageNode) -> Info:
    return await route.run("info", node.path)  # type: ignore[no-any-return]


async def _info_or_none(route: Route, node: StorageNode) -> Info | None:
    try:
        return await _info(route, node)
    except StorageNotFoundError:
        return None


async def info(route: Route, node: StorageNode) -> Info:
    return await _info(route, node)


async def exists(route: Route, node: StorageNode) -> bool:
    return bool(await route.run("exists", node.path))


async def is_file(route: Route, node: StorageNode) -> bool:
    found = await _info_or_none(route, node)
    return found is not None and not found.is_dir


async def is_dir(route: Route, node: StorageNode) -> bool:
    found = await _info_or_none(route, node)
    return found is not None and found.is_dir


async def size(route: Route, node: StorageNode) -> int:
    found = await _info(route, node)
    if found.is_dir:
        raise IsADirectoryStorageError(f"{node.fullpath} is a directory")
    return found.size


async def read_bytes(route: Route, node: StorageNode) -> bytes:
    data: bytes = await route.run("read_bytes", node.path)
    if data.startswith(_ENVELOPES):  # decrypting is CPU work: off the loop
        return await asyncio.to_thread(opened, node, data)
    return data


async def read_text(route: Route, node: StorageNode, encoding: str = "utf-8",
                    errors: str | None = None) -> str:
    codec = check_encoding(encoding)
    check_text_options(-1, errors, None)
    data = await read_bytes(route, node)
    try:
        return data.decode(codec, errors or "strict")
    except UnicodeDecodeError as exc:
        raise decode_error(exc, node.fullpath) from None


async def children(route: Route, node: StorageNode) -> list[StorageNode]:
    entries = sorted(await route.run("list", node.path), key=lambda e: e.path)
    return [node._related(e.path, e) for e in entries]


async def iterdir(route: Route, node: StorageNode) -> list[StorageNode]:
    if not await is_dir(route, node):
        raise NotADirectoryStorageError(f"Not a directory: {node.fullpath}")
    return await children(route, node)


def _may_write(route: Route, node: StorageNode, data: Any, encrypted: Any) -> bool:
    if not route.writes or route.engine is not None or locking._HELD:
        return False
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) >= route.threshold:
        return False
    wanted = (node._manager.mount_default_encrypted(node.mount_name)
              if encrypted is None else encrypted)
    return not wanted and not needs_events(node, "file_written")


async def write_bytes(route: Route, node: StorageNode, data: Any,
                      skip_if_unchanged: bool = False, encrypted: bool | str | None = None, *,
                      metadata: dict[str, str] | None = None, if_match: str | None = None,
                      create_only: bool = False) -> Any:
    if skip_if_unchanged or if_match is not None or create_only is not False:
        return THREAD
    if not _may_write(route, node, data, encrypted):
        return THREAD
    node.require_writable()
    locking.guard_write(node)
    await route.run("write", node.path, data=bytes(data), metadata=metadata)
    node._listed = None
    return True


async def write_text(route: Route, node: StorageNode, text: Any, encoding: str = "utf-8",
                     skip_if_unchanged: bool = False, encrypted: bool | str | None = None, *,
                     if_match: str | None = None, create_only: bool = False) -> Any:
    if not isinstance(text, str) or skip_if_unchanged or if_match is not None or create_only:
        return THREAD
    try:
        data = text.encode(check_encoding(encoding))
    except UnicodeEncodeError as exc:
        raise encode_error(exc, node.fullpath) from None
    return await write_bytes(route, node, data, False, encrypted)


async def delete(route: Route, node: StorageNode, recursive: bool = False) -> Any:
    if recursive is not False or route.engine == "portable" or locking._HELD:
        return THREAD
    if needs_events(node, "file_deleted"):
        return THREAD
    node.require_writable()
    locking.guard_write(node)
    node._need_delete()
    try:
        await route.run("delete", node.path)
    except StorageNotFoundError:
        return False
    return True


async def open_read(route: Route, node: StorageNode, mode: str = "r", version: Any = None,
                    as_of: Any = None, encoding: str | None = "utf-8", *, buffering: int = -1,
                    errors: str | None = None, newline: str | None = None) -> Any:
    """``open('rb')`` of the current content: an :class:`AsyncS3Reader`."""
    if mode != "rb" or version is not None or as_of is not None:
        return THREAD
    check_mode(mode)
    check_text_options(buffering, errors, newline)
    reader: AsyncS3Reader = await route.run("open", node.path)
    return reader


#: Node method name -> its native handler (``THREAD`` from one: run it in a thread).
NATIVE: dict[str, Callable[..., Awaitable[Any]]] = {
    "info": info, "exists": exists, "is_file": is_file, "is_dir": is_dir, "size": size,
    "read_bytes": read_bytes, "read_text": read_text, "children": children,
    "iterdir": iterdir, "write_bytes": write_bytes, "write_text": write_text,
    "delete": delete,
}
SIGNATURES = {name: inspect.signature(handler) for name, handler in NATIVE.items()}
