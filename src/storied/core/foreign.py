"""Histories reached by another name: a versioned mount's files inside a tree that is deleted
or moved through a different mount (a mount of a parent folder, a second mount of the same base,
``file:///``, two S3 mounts of one bucket). Deleting them there would record nothing in that
history (``verify`` would then call every file stale), so such deletes are refused
(docs/adr/0019)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["history_below", "is_history", "portable_roots", "versioned_below"]


def portable_roots(storage: Any, mount: str | None) -> list[tuple[Any, str, str]]:
    """``(storage key, path, name)`` of each configured mount that keeps a portable history,
    except ``mount`` and the mounts sharing its history (relative mounts of one root). A
    delete by another name records nothing in such a history; a native history keeps the
    storage's own versions whatever name deleted. A broken mount is skipped."""
    from storied.errors import StorageError

    own = storage._chain(mount)[-1] if mount else None
    found = []
    for name in storage.get_mount_names():
        if name in (mount, "_cli_local") or storage._chain(name)[-1] == own:
            continue
        try:
            history = storage.history(name)
            if history is None or history.name != "portable":
                continue
            key, path = storage.node(f"{name}:")._be.location("")
        except StorageError:
            continue
        found.append((key, path, name))
    return found


def is_history(reserved: str) -> bool:
    """True when the local ``.storied`` directory ``reserved`` holds a mount's version
    history (not only, say, the locks of a plain mount)."""
    return any(os.path.exists(os.path.join(reserved, name)) for name in ("format.json",
                                                                         "versions"))


def versioned_below(storage: Any, node: Any) -> str | None:
    """Where a versioned mount's history lies at or below ``node`` when reached by another
    name: a ``.storied`` history found on disk (local trees), or a configured mount with a
    portable history (any storage: two S3 mounts of one bucket) whose root is at or below
    ``node``'s location. None when there is none (a native history records deletes made
    through any name: the storage keeps the versions)."""
    found = history_below(node)
    if found is not None:
        return found
    from storied.paths import is_under

    key, path = node._be.location(node.path)
    for mkey, mpath, name in portable_roots(storage, node.mount_name):
        if mkey == key and is_under(mpath, path):
            return f"mount {name!r}"
    return None


def history_below(node: Any) -> str | None:
    """The first ``.storied`` directory (a versioned mount's history) below a local ``node``,
    or None. Deleting that tree by another name (a local path, a mount of a parent) removes
    the mount's files behind its history: no delete is recorded and verify reports every
    file stale. Through the mount itself (``rm -r home:``) the delete is recorded, so a
    mount root's own ``.storied`` does not count."""
    where = node._be.local_path(node.path) if node.is_dir() else None
    if where is None:
        return None
    top = not str(node.path).strip("/")
    for root, dirs, _ in os.walk(where):  # never enters linked directories
        found = os.path.join(root, ".storied")
        if ".storied" in dirs and not (top and root == where) and is_history(found):
            return found
        dirs[:] = [d for d in dirs if d != ".storied"]
    return None
