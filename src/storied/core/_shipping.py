"""Copies run on another process's (or machine's) executor: picklable work items.

A live node holds clients, locks and open connections, none of which cross a process. So each
item sent to a non-thread executor is a :class:`ShippedCopy`: the configs of the mounts the
copy needs (the two mounts, the mounts they are relative to, the mounts their history lives
on), two full paths and the listing's :class:`~storied.info.Info`. The worker rebuilds a
:class:`~storied.core.manager.StorageManager` from the configs once per distinct set (cached
per process) and copies the one file.

What does not travel: mounts changed in code after ``configure`` (a wrapped backend), keys set
with ``set_encryption_keys``, in-process event subscribers (the worker's writes are still
journaled on versioned mounts), and ``webhooks:`` (delivered by the caller's process from the
journal, never twice).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storied.errors import InvalidArgumentError
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.core.node import StorageNode

__all__ = ["ShippedCopy", "mount_configs", "run_shipped", "shipped_manager", "shipper"]

_MANAGERS: dict[bytes, StorageManager] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ShippedCopy:
    """One file's copy as data.

    Attributes:
        configs: The pickled list of mount configs (pickled once per transfer, not per file).
        src: The source's ``mount:path``; ``version``: its pinned version, if any.
        info: The source file's listing.
        dest: The destination's ``mount:path``; ``dinfo``: its listing when a skip strategy
            compares with it.
        skip: The skip strategy's value; ``skip_fn``: the custom predicate (must pickle).
    """

    configs: bytes
    src: str
    version: int | str | None
    info: Info
    dest: str
    dinfo: Info | None
    skip: str
    skip_fn: Any


def mount_configs(manager: StorageManager, mounts: list[str]) -> list[dict[str, Any]]:
    """The configs that rebuild ``mounts`` elsewhere, in the order they were added (parents
    and history mounts first where the caller added them first), without ``webhooks``."""
    needed: set[str] = set()
    pending = list(mounts)
    while pending:
        name = pending.pop()
        if name in needed or name not in manager._configs:
            continue
        needed.add(name)
        pending += manager._chain(name)[1:]
        spec = manager._configs[name].get("history")
        if isinstance(spec, str) and ":" in spec:
            pending.append(spec.split(":", 1)[0])
    return [{k: v for k, v in config.items() if k != "webhooks"}
            for name, config in manager._configs.items() if name in needed]


def shipper(src: StorageNode, dest: StorageNode, rule: tuple[Any, Any]
            ) -> Callable[[Any], tuple[Callable[[Any], Any], Any]]:
    """``item -> (run_shipped, ShippedCopy)`` for :class:`storied.core._parallel.Pool`; the
    configs are gathered and pickled at the first item.

    Raises:
        InvalidArgumentError: A config or the ``skip_fn`` cannot be pickled (the message names
            the mounts), a side has no mount, or a side keeps its files in this process's
            memory (``capabilities.temporary``). Raised at the first item, before any copy.
    """
    blob: list[bytes] = []

    def ship(item: Any) -> tuple[Callable[[Any], Any], Any]:
        node, info, target, dinfo = item
        if not blob:
            if src.mount_name is None or dest.mount_name is None:
                raise InvalidArgumentError("executor=: both sides of the copy need a mount")
            names = [src.mount_name, dest.mount_name]
            for side in (src, dest):
                if side._be.capabilities.temporary:
                    raise InvalidArgumentError(
                        f"executor=: mount {side.mount_name!r} keeps its files in this "
                        "process's memory, which another process cannot reach (use workers= "
                        "or a ThreadPoolExecutor)")
            try:
                blob.append(pickle.dumps(mount_configs(src._manager, names)))
                pickle.dumps(rule[1])
            except Exception as exc:
                raise InvalidArgumentError(
                    f"executor=: the configs of mounts {names} (or skip_fn) cannot be sent to "
                    f"another process: {exc}") from exc
        return run_shipped, ShippedCopy(blob[0], node.fullpath, node.version, info,
                                        target.fullpath, dinfo, str(rule[0]), rule[1])

    return ship


def shipped_manager(configs: bytes) -> StorageManager:
    """The manager of pickled mount ``configs`` in this (worker) process, made once per
    distinct configuration and reused by every item shipped with it."""
    key = hashlib.sha256(configs).digest()
    with _LOCK:
        found = _MANAGERS.get(key)
        if found is None:
            from storied.core.manager import StorageManager

            found = StorageManager()
            found.configure(pickle.loads(configs))
            _MANAGERS[key] = found
        return found


def run_shipped(item: ShippedCopy) -> tuple[str, int | str]:
    """Copy one shipped file in this process (the executor's worker):
    ``('copied', bytes)`` or ``('skipped', reason)``; errors propagate (pickled back)."""
    from storied.core._filecopy import SkipStrategy, transfer_one

    manager = shipped_manager(item.configs)
    src = manager.node(item.src, version=item.version)
    if item.version is None:
        src = src._related(src.path, item.info)
    dest = manager.node(item.dest)
    dest = dest._related(dest.path, item.dinfo)
    return transfer_one((src, item.info, dest, item.dinfo),
                        (SkipStrategy(item.skip), item.skip_fn, None), None)
