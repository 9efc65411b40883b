"""Where a path's lock object lives, whether a mount can lock safely, and reading the lock
object with its etag (:mod:`storied.core.locking` builds the lease on these)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.backends.base import Backend, WrappedBackend
from storied.backends.wrappers import Prefixed, Retrying
from storied.errors import StorageNotFoundError, StoragePermissionError, UnsupportedOperation

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["MAX_TTL", "check_lockable", "parse", "read_tagged", "where"]

MAX_TTL = 86400.0  # a day: the longest lease (and what an unreadable ttl counts as)


def where(node: StorageNode) -> tuple[Backend, str, str]:
    """``(raw backend, lock object key, path from the storage mount's root)`` of ``node``."""
    manager: Any = node._manager
    mount = node.mount_name
    if mount is None:
        raise UnsupportedOperation("A virtual node (no mount) cannot be locked")
    root = mount
    while root in manager._parents:
        root = manager._parents[root][0]
    backend, base = manager._history_place(root)
    prefix = manager._prefix_of(mount)
    full = paths.join(prefix, node.path) if prefix and node.path else prefix or node.path
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()
    return backend, paths.join(base, "locks", "paths", digest), full


def check_lockable(node: StorageNode, backend: Backend) -> None:
    """Refuse a mount on which a lock would not be safe (or would write where it may not)."""
    mount = node.mount_name
    if backend.static_capabilities.readonly:
        raise UnsupportedOperation(
            f"Mount {mount!r} cannot be locked: its storage is read-only (a lock writes a lock "
            "object)"
        )
    node_backend = node._backend
    if node_backend is not None and node_backend.capabilities.readonly:
        raise StoragePermissionError(
            f"Mount {mount!r} is read-only: a lock writes a lock object to the storage"
        )
    if backend.capabilities.process_local_writes:
        raise UnsupportedOperation(
            f"Mount {mount!r} cannot be locked safely: its writes stay in this process until "
            "they are flushed (a writable archive), so another process opening the same file "
            "would not see the lock"
        )
    if not backend.capabilities.conditional_write:
        raise UnsupportedOperation(
            f"Mount {mount!r} cannot be locked safely: its storage ({backend.protocol}) does not "
            "honour conditional writes (create-only / if-match; probed on S3-compatible "
            "servers), so two processes could both be granted the lock"
        )


def _passes_reserved(backend: Backend) -> bool:
    """True for a layer that passes paths under ``.storied/`` through untouched."""
    return isinstance(backend, WrappedBackend) and bool(
        getattr(backend, "reserved_passthrough", False))


def read_tagged(backend: Backend, key: str) -> tuple[bytes, str | None] | None:
    """The lock object's bytes and etag, or None when absent: one GET where the adapter
    offers ``read_tagged`` (S3, memory), else a HEAD then a GET (in that order: a body newer
    than the etag only makes the next ``IF_MATCH`` fail, never succeed wrongly)."""
    inner, path = backend, key
    while True:
        tagged = getattr(inner, "read_tagged", None)
        if tagged is not None:
            try:
                data, etag = tagged(path)
            except StorageNotFoundError:
                return None
            return data, etag
        if isinstance(inner, Prefixed):
            path, inner = paths.join(inner.prefix, path) if inner.prefix else path, inner.inner
        elif isinstance(inner, Retrying) or _passes_reserved(inner):
            assert isinstance(inner, WrappedBackend)
            inner = inner.inner  # a layer that passes `.storied/` paths through untouched
        else:
            break
    try:
        etag = backend.info(key).etag
        return backend.read_bytes(key), etag
    except StorageNotFoundError:
        return None


def parse(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("state") not in ("held", "released"):
            return None
        doc["token"] = int(doc.get("token", 0))
        ttl = float(doc.get("ttl", MAX_TTL))
        doc["ttl"] = ttl if math.isfinite(ttl) and 0 < ttl <= MAX_TTL else MAX_TTL
        return doc
    except (ValueError, TypeError, OverflowError):
        return None
