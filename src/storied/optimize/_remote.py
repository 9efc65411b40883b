"""find_duplicates hashing and deduplicate groups on another process's (or machine's) executor.

An executor that is not a ``ThreadPoolExecutor`` (a process pool, a Dask ``distributed``
client's executor) gets picklable items: the configs of the mount (and the mounts it is
relative to or keeps its history on, :func:`storied.core._shipping.mount_configs`), full paths
and sizes. The worker rebuilds a manager once per distinct set of configs (cached per process)
and hashes one file, or handles one group and sends its report row back. Mounts whose files
live in this process's memory are refused, as for copies.
"""

from __future__ import annotations

import pickle
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storied.core._shipping import shipped_manager
from storied.errors import InvalidArgumentError
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["ShippedGroup", "ShippedHash", "pack", "remote", "run_group", "run_hash"]



def remote(executor: Executor | None) -> bool:
    """Whether work for ``executor`` must travel as data (not a thread pool of this process)."""
    return executor is not None and not isinstance(executor, ThreadPoolExecutor)


def pack(root: StorageNode) -> bytes:
    """The pickled configs that rebuild ``root``'s mount elsewhere.

    Raises:
        InvalidArgumentError: The mount keeps its files in this process's memory, or its
            configuration cannot be pickled.
    """
    from storied.core._shipping import mount_configs

    name = root.mount_name
    if name is None:
        raise InvalidArgumentError("executor=: the prefix needs a mount")
    if root._be.capabilities.temporary:
        raise InvalidArgumentError(
            f"executor=: mount {name!r} keeps its files in this process's memory, which "
            "another process cannot reach (use workers= or a ThreadPoolExecutor)")
    try:
        return pickle.dumps(mount_configs(root._manager, [name]))
    except Exception as exc:
        raise InvalidArgumentError(
            f"executor=: the configs of mount {name!r} cannot be sent to another process: "
            f"{exc}") from exc




@dataclass(frozen=True)
class ShippedHash:
    """One file to hash: ``kind`` is ``'ends'`` (head/tail) or ``'full'``."""

    configs: bytes
    fullpath: str
    size: int
    kind: str


def run_hash(item: ShippedHash) -> str | None:
    """The key of one shipped file, or None when it cannot be read (as in-process)."""
    from storied.optimize.dedup import Member, _full, _head_tail, _safe

    node = shipped_manager(item.configs).node(item.fullpath)
    member = Member(node, Info(node.path, size=item.size))
    return _safe(_head_tail if item.kind == "ends" else _full, member)


@dataclass(frozen=True)
class ShippedGroup:
    """One group to deduplicate: its members' full paths (and ``linked`` flags), the
    survivor's, the strategy and the prefix (for the history-root check)."""

    configs: bytes
    prefix: str
    size: int
    digest: str
    members: tuple[tuple[str, bool], ...]
    survivor: str
    strategy: str
    dry_run: bool


def run_group(item: ShippedGroup) -> dict[str, Any]:
    """Deduplicate one shipped group in this process; its report row. A member gone or
    unreadable is skipped with the reason, as in-process."""
    from storied.errors import StorageError
    from storied.optimize.apply import _apply, foreign_roots
    from storied.optimize.dedup import DuplicateGroup, Member

    manager = shipped_manager(item.configs)
    members: list[Member] = []
    gone: list[dict[str, str]] = []
    for fullpath, linked in item.members:
        node = manager.node(fullpath)
        try:
            members.append(Member(node, node.info(), linked))
        except StorageError as exc:
            gone.append({"path": fullpath, "reason": f"changed: {exc}"})
    group = DuplicateGroup(item.size, item.digest, [m.node for m in members], members)
    chosen = next((m for m in members if m.node.fullpath == item.survivor), None)
    if chosen is None or len(members) < 2:
        return {"digest": item.digest, "size": item.size, "kept": item.survivor, "done": [],
                "skipped": gone + [{"path": m.node.fullpath, "reason": "survivor gone"}
                                   for m in members]}
    roots = foreign_roots(manager, item.prefix) if item.strategy == "delete" else []
    row = _apply(group, item.strategy, chosen, item.dry_run, roots)
    row["skipped"] = gone + row["skipped"]
    return row
