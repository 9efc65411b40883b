"""``find_duplicates``: groups of identical files, reading as little as the storage allows.

The funnel (each stage only sees what the previous one could not tell apart):

1. one walk of the prefix (sizes, etags and trustworthy MD5s from the listing); files of a
   size no other file has are never read; local hard links of one file count once;
2. a content MD5 the storage already knows (``Info.md5``: a single-part S3 ETag, a memory
   object; never a multipart ETag) groups files with **no read at all**;
3. otherwise a hash of the first and last :data:`BLOCK` bytes (two ranged reads; the whole
   file when it is smaller than two blocks);
4. then a full SHA-256 of the candidates left, before anything is called equal.

A group found by MD5 alone is reported with ``digest='md5:<hex>'``; :func:`deduplicate`
re-reads every member with SHA-256 before it changes anything (an MD5 collision is cheap to
make), so a report is a hint and a mutation is proven.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storied.errors import StorageError, StorageNotFoundError
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.core.node import StorageNode

log = logging.getLogger("storied.optimize")

__all__ = ["BLOCK", "DuplicateGroup", "Member", "find_duplicates", "full_sha256"]

#: Bytes hashed at each end of a file in the head/tail stage.
BLOCK = 64 * 1024
_CHUNK = 1 << 20

Progress = Callable[[int, int], object]


@dataclass
class Member:
    """One file of a group as the listing saw it (its etag guards later changes).

    ``linked`` is True when another listed name is a symbolic link to this file: deleting
    it would leave that link dangling, so :func:`~storied.optimize.apply.deduplicate` never
    deletes it.
    """

    node: StorageNode
    info: Info
    linked: bool = False


@dataclass
class DuplicateGroup:
    """Files with identical content.

    Attributes:
        size: The size of each file, in bytes.
        digest: ``'sha256:<hex>'`` (read and proven) or ``'md5:<hex>'`` (the storage's own
            MD5 of every member, no read).
        nodes: The files, sorted by path.
        wasted: Bytes the copies beyond the first take: ``size * (len(nodes) - 1)``.
    """

    size: int
    digest: str
    nodes: list[StorageNode]
    members: list[Member] = field(default_factory=list, repr=False)

    @property
    def wasted(self) -> int:
        return self.size * (len(self.nodes) - 1)


def _identity(node: StorageNode, info: Info) -> tuple[tuple[int, int], bool] | None:
    """``((device, inode), is_link)`` of a local file, else None. The identity is the file's
    content: hard links share it, and so does a symbolic link (listed as a file when it names
    one inside the mount) with its target."""
    try:
        where = node._be.local_path(info.path)
    except StorageError:
        return None
    if where is None:
        return None
    try:
        st = os.stat(where)
        link = os.path.islink(where)
    except OSError:
        return None
    return (st.st_dev, st.st_ino), link


def _read_range(node: StorageNode, start: int, end: int | None) -> bytes:
    with node._be.open_read(node.path, start, end) as stream:
        return stream.read()


def _head_tail(member: Member) -> str:
    size = member.info.size
    digest = hashlib.sha256()
    if size <= 2 * BLOCK:
        digest.update(_read_range(member.node, 0, None))
        return "full:" + digest.hexdigest()
    digest.update(_read_range(member.node, 0, BLOCK))
    digest.update(_read_range(member.node, size - BLOCK, size))
    return "ends:" + digest.hexdigest()


def full_sha256(node: StorageNode) -> str:
    """The SHA-256 hex of ``node``'s whole content (streamed)."""
    digest = hashlib.sha256()
    with node._be.open_read(node.path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _split(members: list[Member], key: Callable[[Member], str | None]
           ) -> list[tuple[str, list[Member]]]:
    """``(key, members)`` for each key two or more members share. A member whose key cannot
    be computed drops out (deleted meanwhile, or its folder swapped for a link the mount
    refuses to follow: it is logged on ``storied.optimize``, never called a duplicate)."""
    groups: dict[str, list[Member]] = defaultdict(list)
    for member in members:
        try:
            value = key(member)
        except StorageNotFoundError:
            continue
        except StorageError as exc:
            log.warning("find_duplicates: %s left out: %s", member.node.fullpath, exc)
            continue
        if value is not None:
            groups[value].append(member)
    return [(k, g) for k, g in groups.items() if len(g) > 1]


def _walk(manager: StorageManager, prefix: str) -> tuple[StorageNode, list[Member]]:
    """The files below ``prefix``: one walk (one flat listing on object stores); a prefix
    naming a file is that file (asked only when the walk found nothing)."""
    root = manager.node(prefix)
    try:
        infos: list[Info] = [i for i in root._be.walk(root.path) if not i.is_dir]
    except (StorageNotFoundError, NotADirectoryError):
        infos = []
    if not infos and root.path:
        try:
            found = root.info()
        except StorageNotFoundError:
            found = None
        infos = [found] if found is not None and not found.is_dir else []
    return root, [Member(root._related(i.path, i), i) for i in infos]


def _one_per_inode(members: list[Member]) -> list[Member]:
    """One member per local file: of the names sharing a content (hard links, symbolic
    links and their target) the first regular file is kept, marked ``linked`` when a
    symbolic link names it."""
    chosen: dict[tuple[int, int], tuple[Member, bool]] = {}
    order: list[Member | tuple[int, int]] = []
    for member in members:
        found = _identity(member.node, member.info)
        if found is None:
            order.append(member)
            continue
        ident, is_link = found
        if ident not in chosen:
            chosen[ident] = (member, is_link)
            order.append(ident)
            continue
        kept_is_link = chosen[ident][1]
        if kept_is_link and not is_link:  # the file itself, not a link to it
            chosen[ident] = (member, False)
        chosen[ident][0].linked = chosen[ident][0].linked or is_link or kept_is_link
    kept_members = []
    for entry in order:
        kept_members.append(entry if isinstance(entry, Member) else chosen[entry][0])
    return kept_members


def find_duplicates(manager: StorageManager, prefix: str, *, min_size: int = 1,
                    progress: Progress | None = None) -> list[DuplicateGroup]:
    """Groups of identical files below ``prefix`` (``'mount:'`` or ``'mount:dir'``), most
    wasted bytes first; see the module doc for what is read.

    Args:
        min_size: Files smaller than this many bytes are ignored (default 1: empty files
            are not reported as duplicates of each other).
        progress: ``progress(done, total)`` after each file read in stages 3-4.
    """
    _, members = _walk(manager, prefix)
    by_size: dict[int, list[Member]] = defaultdict(list)
    for member in members:
        if member.info.size >= max(min_size, 0):
            by_size[member.info.size].append(member)
    groups: list[DuplicateGroup] = []
    to_read: list[list[Member]] = []
    for size, same in by_size.items():
        same = _one_per_inode(same) if len(same) > 1 else same
        if len(same) < 2:
            continue
        if all(m.info.md5 for m in same):
            for md5, group in _split(same, lambda m: m.info.md5):
                groups.append(_group(size, f"md5:{md5}", group))
            continue
        to_read.append(same)
    total = sum(len(g) for g in to_read)
    done = 0

    def tick(member: Member) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for same in to_read:
        def ends(m: Member) -> str:
            value = _head_tail(m)
            tick(m)
            return value

        for key, candidates in _split(same, ends):
            size = candidates[0].info.size
            if key.startswith("full:"):  # the ends were the whole file: proven already
                groups.append(_group(size, f"sha256:{key[5:]}", candidates))
                continue
            for digest, group in _split(candidates, lambda m: full_sha256(m.node)):
                groups.append(_group(size, f"sha256:{digest}", group))
    groups.sort(key=lambda g: (-g.wasted, g.nodes[0].fullpath))
    return groups


def _group(size: int, digest: str, members: list[Member]) -> DuplicateGroup:
    members = sorted(members, key=lambda m: m.node.path)
    return DuplicateGroup(size, digest, [m.node for m in members], members)


def describe(group: DuplicateGroup) -> dict[str, Any]:
    """The stable JSON keys of a group (``storied dupes --json``)."""
    return {"size": group.size, "digest": group.digest, "wasted": group.wasted,
            "paths": [n.fullpath for n in group.nodes]}
