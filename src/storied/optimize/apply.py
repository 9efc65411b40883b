"""``deduplicate``: act on :func:`~storied.optimize.dedup.find_duplicates` groups, proving each
file's content right before changing it.

Every member is re-hashed (SHA-256, whole content) immediately before it is touched, and the
change is conditional on the etag read *before* that hash, so a file changed during
deduplication is left alone and reported (``changed``), never overwritten or deleted. The
survivor is re-hashed too. Strategies:

- ``delete``: destructive by design: the duplicates are deleted, one copy stays. On a mount
  with history the delete is a tombstone (the content stays in history). Elsewhere it is the
  storage's conditional delete (``delete_if_match``); a storage without one skips the group.
- ``hardlink``: local mounts, same device only (never a fallback to symlinks or copies): a new
  hard link to the survivor replaces the duplicate by an atomic rename. storied's own writes
  replace files (temp + rename), which breaks the link, so writing one path through storied
  never changes another; a tool that edits a file in place would change every link.
- ``reference``: not available yet (see the README): refused with UnsupportedOperation.

A process killed at any point leaves every path readable with its original bytes: a delete
or a rename is atomic, and a leftover ``.storied-tmp-*`` link is another name of the same
content (hidden from listings).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storied.errors import (
    InvalidArgumentError,
    PreconditionFailedError,
    StorageError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.optimize.dedup import DuplicateGroup, Member, find_duplicates, full_sha256

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["STRATEGIES", "deduplicate"]

STRATEGIES = ("reference", "hardlink", "delete")
Keep = Callable[[DuplicateGroup], Any]


def _oldest(group: DuplicateGroup) -> Any:
    """The default survivor: the member modified first (ties: the first path)."""
    return min(group.members, key=lambda m: (m.info.mtime or 0.0, m.node.path)).node


def _survivor(group: DuplicateGroup, keep: Keep | None) -> Member:
    chosen = keep(group) if keep is not None else _oldest(group)
    for member in group.members:
        if member.node == chosen or member.node.fullpath == str(chosen):
            return member
    raise InvalidArgumentError(f"keep() returned {chosen!r}, which is not in the group")


def _proof(member: Member) -> tuple[str, str | None]:
    """``(sha256, etag)``: the etag is read *before* the hash, so a change after it makes
    the conditional step fail."""
    etag = member.node.info().etag
    return full_sha256(member.node), etag


def _delete(member: Member, etag: str | None) -> None:
    node = member.node
    if node._history is not None:
        node.delete()  # a tombstone: the content stays in history
        return
    if etag is None:
        raise UnsupportedOperation("the storage gives no etag to delete conditionally")
    node._be.delete_if_match(node.path, etag)


def _hardlink(survivor: Member, member: Member, etag: str | None) -> None:
    src = survivor.node._be.local_path(survivor.node.path)
    dst = member.node._be.local_path(member.node.path)
    if src is None or dst is None:
        raise UnsupportedOperation("hard links need local files on both sides")
    if os.stat(src).st_dev != os.stat(os.path.dirname(dst)).st_dev:
        raise UnsupportedOperation("different devices (no fallback to copies or symlinks)")
    if os.path.islink(src) or os.path.islink(dst):
        raise UnsupportedOperation("a symbolic link is involved")
    tmp = os.path.join(os.path.dirname(dst), f".storied-tmp-{uuid.uuid4().hex}")
    os.link(src, tmp)
    try:
        if member.node.info().etag != etag:
            raise PreconditionFailedError(f"{member.node.fullpath} changed")
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _apply(group: DuplicateGroup, strategy: str, keep: Keep | None,
           dry_run: bool) -> dict[str, Any]:
    survivor = _survivor(group, keep)
    row: dict[str, Any] = {"digest": group.digest, "size": group.size,
                           "kept": survivor.node.fullpath, "done": [], "skipped": []}
    others = [m for m in group.members if m is not survivor]
    if dry_run:
        row["done"] = [m.node.fullpath for m in others]
        return row
    try:
        wanted, _ = _proof(survivor)
    except StorageError as exc:
        row["skipped"] = [{"path": m.node.fullpath, "reason": f"survivor unreadable: {exc}"}
                          for m in others]
        return row
    for member in others:
        try:
            digest, etag = _proof(member)
            if digest != wanted:
                raise PreconditionFailedError("content differs from the survivor's")
            member.node.require_writable()
            if strategy == "delete":
                _delete(member, etag)
            else:
                _hardlink(survivor, member, etag)
            row["done"].append(member.node.fullpath)
        except (PreconditionFailedError, StorageNotFoundError) as exc:
            row["skipped"].append({"path": member.node.fullpath, "reason": f"changed: {exc}"})
        except (StorageError, OSError) as exc:
            row["skipped"].append({"path": member.node.fullpath, "reason": str(exc)})
    return row


def deduplicate(manager: StorageManager, prefix: str, strategy: str = "reference",
                dry_run: bool = False, keep: Keep | None = None) -> dict[str, Any]:
    """Remove duplicate copies below ``prefix``; see the module doc for each strategy.

    Returns:
        ``{'strategy', 'dry_run', 'bytes_reclaimed', 'groups': [{'digest', 'size', 'kept',
        'done': [paths], 'skipped': [{'path', 'reason'}]}]}`` (with ``dry_run``: the plan,
        ``done`` listing what would be done, nothing read beyond ``find_duplicates``).

    Raises:
        InvalidArgumentError: an unknown strategy, or ``keep`` returned a node not in a group.
        UnsupportedOperation: ``strategy='reference'`` (not available yet).
    """
    if strategy not in STRATEGIES:
        raise InvalidArgumentError(
            f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "reference":
        raise UnsupportedOperation(
            "strategy='reference' is not available yet; use 'hardlink' (local mounts) or "
            "'delete' (destructive; history keeps the content on versioned mounts)")
    groups = find_duplicates(manager, prefix)
    rows = [_apply(g, strategy, keep, dry_run) for g in groups]
    reclaimed = sum(g.size * len(r["done"]) for g, r in zip(groups, rows, strict=True))
    return {"strategy": strategy, "dry_run": dry_run, "bytes_reclaimed": reclaimed,
            "groups": rows}
