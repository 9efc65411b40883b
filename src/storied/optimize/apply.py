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
  never changes another; a tool that edits a file in place would change every link. A file
  whose mode or owner differs from the survivor's is skipped (one inode has one of each: a
  link would make a private copy as readable as the survivor). A symbolic link is never
  replaced, and a file a listed symbolic link names is never deleted (``delete``).
- ``reference`` (every writable mount with the reference layer): every member becomes a small
  reference to one content copy in the reserved area (:mod:`storied.optimize.references`,
  :mod:`storied.backends.referencing`); deleting or writing any path never changes another.
  Content copies nobody references any more are removed by ``collect_references`` (gc).

A process killed at any point leaves every path readable with its original bytes: a delete
or a rename is atomic, and a leftover ``.storied-tmp-*`` link is another name of the same
content (hidden from listings).
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from storied.backends.referencing import REF_SIZE
from storied.core.foreign import is_history, portable_roots
from storied.errors import (
    InvalidArgumentError,
    PreconditionFailedError,
    StorageError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.optimize._remote import ShippedGroup, pack, remote, run_group
from storied.optimize.dedup import (
    DuplicateGroup,
    Member,
    default_workers,
    find_duplicates,
    full_sha256,
    run_all,
)
from storied.optimize.references import layer_of, reference_gain, reference_group
from storied.paths import is_under

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["STRATEGIES", "deduplicate", "foreign_roots", "is_history", "refuse_foreign"]

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


def _foreign_history(node: Any) -> str | None:
    """The ``.storied`` directory of a versioned mount whose files ``node`` (a local file of
    a mount that keeps no history itself) is, by another name, or None. Deleting it there
    would record nothing in that history (its verify would call the file stale)."""
    where = node._be.local_path(node.path)
    if where is None:
        return None
    folder = os.path.dirname(os.path.realpath(where))
    while True:
        if is_history(os.path.join(folder, ".storied")):
            return os.path.join(folder, ".storied")
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _delete(member: Member, etag: str | None) -> None:
    node = member.node
    if node._history is None:
        history = _foreign_history(node)
        if history is not None:
            raise UnsupportedOperation(
                f"it is a file of a versioned mount ({history}): deduplicate through that "
                "mount, so that its history records the delete")
    if node._history is not None:  # no conditional tombstone: re-check as late as we can
        if node.info().etag != etag:
            raise PreconditionFailedError(f"{node.fullpath} changed")
        node.delete()  # a tombstone: the content stays in history
        return
    if etag is None:
        raise UnsupportedOperation("the storage gives no etag to delete conditionally")
    node._be.delete_if_match(node.path, etag)


def _local(node: Any) -> Any:
    """The local backend that serves ``node`` under the same path (wrappers that only hide
    or guard names), else UnsupportedOperation."""
    inner = node._be.unwrap()
    mine = node._be.local_path(node.path)
    if mine is None or not hasattr(inner, "_walk") or inner.local_path(node.path) != mine:
        raise UnsupportedOperation("hard links need files of a local mount on both sides")
    return inner


def _owner(st: os.stat_result) -> tuple[int, int, int]:
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def _hardlink(survivor: Member, member: Member, etag: str | None) -> None:
    """Replace ``member`` by a new hard link to ``survivor``. Both directories are opened from
    the mount's base without following a link (the backend's walk), and the link and the
    rename act on those descriptors: a directory swapped for a link meanwhile is never
    followed, so nothing outside the mount is touched."""
    be = _local(survivor.node)
    if _local(member.node) is not be:
        raise UnsupportedOperation("hard links need both files on one local mount")
    with be._walk(survivor.node.path) as (sw, sname), be._walk(member.node.path) as (dw, dname):
        src_st = os.stat(sname, dir_fd=sw.fd, follow_symlinks=False)
        dst_st = os.stat(dname, dir_fd=dw.fd, follow_symlinks=False)
        if not (stat.S_ISREG(src_st.st_mode) and stat.S_ISREG(dst_st.st_mode)):
            raise UnsupportedOperation("a symbolic link is involved (or not a regular file)")
        if (src_st.st_dev, src_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
            raise UnsupportedOperation("already the same file (a hard link)")
        if _owner(src_st) != _owner(dst_st):  # one inode has one mode and owner
            raise UnsupportedOperation(
                "permissions or owner differ from the survivor's (a link would give this "
                "path the survivor's)")
        if src_st.st_dev != os.fstat(dw.fd).st_dev:
            raise UnsupportedOperation("different devices (no fallback to copies or symlinks)")
        tmp = f".storied-tmp-{uuid.uuid4().hex}"
        os.link(sname, tmp, src_dir_fd=sw.fd, dst_dir_fd=dw.fd, follow_symlinks=False)
        try:
            if member.node.info().etag != etag:
                raise PreconditionFailedError(f"{member.node.fullpath} changed")
            os.replace(tmp, dname, src_dir_fd=dw.fd, dst_dir_fd=dw.fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dw.fd)
            except OSError:
                pass
            raise


Roots = list[tuple[Any, str, str]]


def foreign_roots(manager: StorageManager, prefix: str) -> Roots:
    """``(storage key, path, name)`` of each other configured mount that keeps a portable
    history (a delete by another name records nothing in it; a native history keeps the
    storage's own versions whatever name deleted)."""
    return portable_roots(manager, manager.node(prefix).mount_name)


def refuse_foreign(node: Any, roots: Roots) -> None:
    """UnsupportedOperation when ``node`` lies in one of ``roots`` (:func:`foreign_roots`)."""
    if not roots:
        return
    key, path = node._be.location(node.path)
    for rkey, rpath, name in roots:
        if rkey == key and is_under(path, rpath):
            raise UnsupportedOperation(
                f"it is a file of versioned mount {name!r}: deduplicate through that mount, "
                "so that its history records the delete")


def _apply(group: DuplicateGroup, strategy: str, survivor: Member,
           dry_run: bool, roots: Roots) -> dict[str, Any]:
    row: dict[str, Any] = {"digest": group.digest, "size": group.size,
                           "kept": survivor.node.fullpath, "done": [], "skipped": []}
    others = [m for m in group.members if m is not survivor]
    if strategy == "reference" and reference_gain(group) <= 0:
        row["skipped"] = [{"path": m.node.fullpath, "reason": "too small: references and a "
                           "content copy would take more space than the copies"}
                          for m in [*others, survivor]]
        return row
    if dry_run:
        row["done"] = [m.node.fullpath for m in others]
        if strategy == "reference":
            row["done"].append(survivor.node.fullpath)
        return row
    if strategy == "reference":
        row["copied"] = reference_group(group, survivor, row)
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
            if member.linked and strategy == "delete":
                raise UnsupportedOperation(
                    "a symbolic link names it (deleting it would leave the link dangling)")
            if strategy == "delete":
                refuse_foreign(member.node, roots)
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
                dry_run: bool = False, keep: Keep | None = None, *,
                workers: int | None = None, executor: Executor | None = None
                ) -> dict[str, Any]:
    """Remove duplicate copies below ``prefix``; see the module doc for each strategy.

    Returns:
        ``{'strategy', 'dry_run', 'bytes_reclaimed', 'groups': [{'digest', 'size', 'kept',
        'done': [paths], 'skipped': [{'path', 'reason'}]}]}`` (with ``dry_run``: the plan,
        ``done`` listing what would be done, nothing read beyond ``find_duplicates``).

        With ``strategy='reference'`` every member (the survivor too, last) becomes a
        reference, ``done`` lists them all and each row has ``copied``: the bytes of the
        content copy made for it (0 when one existed); ``bytes_reclaimed`` is what the
        references freed (each file's size minus the reference's) minus those copies (a dry
        run assumes one new copy per group). A group whose references and copy would take
        more space than it frees is skipped.

    Args:
        workers: Groups processed at once (each group in order); default
            :func:`~storied.optimize.dedup.default_workers`. ``executor``: run them on this
            ``concurrent.futures.Executor`` instead (its own bound applies).

    Raises:
        InvalidArgumentError: an unknown strategy, ``workers < 1``, or ``keep`` returned a
            node not in a group.
        UnsupportedOperation: ``strategy='reference'`` on a mount without the reference
            layer, or whose storage keeps native versions.
    """
    if strategy not in STRATEGIES:
        raise InvalidArgumentError(
            f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, not {workers!r}")
    if strategy == "reference":
        layer_of(manager.node(prefix))  # no reference layer, native versions: refused up front
    groups = find_duplicates(manager, prefix, workers=workers, executor=executor)
    survivors = [_survivor(g, keep) for g in groups]  # a bad keep() fails before any change
    roots = foreign_roots(manager, prefix) if strategy == "delete" and groups else []
    if workers is None:
        workers = default_workers(manager.node(prefix))
    if remote(executor) and groups:
        configs = pack(manager.node(prefix))
        shipped = [(run_group, (ShippedGroup(
            configs, prefix, g.size, g.digest,
            tuple((m.node.fullpath, m.linked) for m in g.members), s.node.fullpath,
            strategy, dry_run),)) for g, s in zip(groups, survivors, strict=True)]
        rows = run_all(shipped, workers, executor)
    else:
        tasks = [(_apply, (g, strategy, s, dry_run, roots))
                 for g, s in zip(groups, survivors, strict=True)]
        rows = run_all(tasks, workers, executor)
    reclaimed = 0
    for group, row in zip(groups, rows, strict=True):
        if strategy == "reference":
            reclaimed += (group.size - REF_SIZE) * len(row["done"])
            reclaimed -= row.get("copied", group.size) if row["done"] else 0
        else:
            reclaimed += group.size * len(row["done"])
    return {"strategy": strategy, "dry_run": dry_run, "bytes_reclaimed": reclaimed,
            "groups": rows}
