"""``find_duplicates``: groups of identical files, reading as little as the storage allows.

The funnel (each stage only sees what the previous one could not tell apart):

1. one walk of the prefix (sizes, etags and trustworthy MD5s from the listing); files of a
   size no other file has are never read; local hard links of one file count once, and so
   do references (``strategy='reference'``) to one content copy;
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
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from storied.backends.referencing import find_layer
from storied.errors import InvalidArgumentError, StorageError, StorageNotFoundError
from storied.info import Info
from storied.optimize._remote import ShippedHash, pack, remote, run_hash

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.core.node import StorageNode

log: logging.Logger = logging.getLogger("storied.optimize")

__all__ = ["BLOCK", "REMOTE_WORKERS", "DuplicateGroup", "Member", "default_workers",
           "find_duplicates", "full_sha256", "run_all"]

#: Bytes hashed at each end of a file in the head/tail stage.
BLOCK = 64 * 1024
_CHUNK = 1 << 20

#: Default pool size on remote storages (S3, SFTP, WebDAV...).
REMOTE_WORKERS = 8

Progress = Callable[[int, int], object]
T = TypeVar("T")


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


def _identity(node: StorageNode, info: Info) -> tuple[Hashable, bool] | None:
    """``((device, inode), is_link)`` of a local file, ``(('ref', sha256, gen), False)`` of a
    reference (the walk resolved it: no request), else None. The identity is the file's
    stored content: hard links share it, so does a symbolic link (listed as a file when it
    names one inside the mount) with its target, and so do references to one content copy."""
    found = find_layer(node._be, info.path)
    if found is not None and info.etag is not None:
        ref = found[0].cached(found[1], info)
        if ref is not None:
            return ("ref", ref.sha256, ref.gen), False
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


def default_workers(node: StorageNode) -> int:
    """The pool size when none is given: 1 on a local disk (parallel reads only seek more)
    or in memory (nothing to wait for), :data:`REMOTE_WORKERS` elsewhere (each request
    waits on the network). Decided without a request (as for copies)."""
    try:
        local = node._be.local_path(node.path) is not None
    except StorageError:
        local = False
    return 1 if local or node._be.static_capabilities.temporary else REMOTE_WORKERS


def run_all(tasks: list[tuple[Callable[..., T], tuple[Any, ...]]], workers: int,
            executor: Executor | None = None,
            done: Callable[[int], object] | None = None) -> list[T]:
    """The results of ``fn(*args)`` for each task, in the tasks' order, at most ``workers``
    at once (on ``executor`` when given); ``done(i)`` is called in this thread, once per
    task as it finishes. The first exception is raised after every task has finished."""
    if executor is None and (workers <= 1 or len(tasks) <= 1):
        results = []
        for i, (fn, args) in enumerate(tasks):
            results.append(fn(*args))
            if done is not None:
                done(i)
        return results
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=workers,
                                          thread_name_prefix="storied-dedup")
    try:
        futures = {pool.submit(fn, *args): i for i, (fn, args) in enumerate(tasks)}
        for future in as_completed(futures):
            if done is not None:
                done(futures[future])
        return [f.result() for f in sorted(futures, key=futures.__getitem__)]
    finally:
        if own:
            pool.shutdown(wait=True)


def _safe(key: Callable[[Member], str | None], member: Member) -> str | None:
    """``key(member)``, or None when it cannot be computed (deleted meanwhile, or its
    folder swapped for a link the mount refuses to follow: logged on ``storied.optimize``,
    never called a duplicate)."""
    try:
        return key(member)
    except StorageNotFoundError:
        return None
    except StorageError as exc:
        log.warning("find_duplicates: %s left out: %s", member.node.fullpath, exc)
        return None


def _split(members: list[Member], key: Callable[[Member], str | None], workers: int = 1,
           executor: Executor | None = None, tick: Callable[[int], object] | None = None
           ) -> list[tuple[str, list[Member]]]:
    """``(key, members)`` for each key two or more members share (keys computed by a pool
    of ``workers``; ``tick`` once per member, in the caller's thread). A member whose key
    cannot be computed drops out (:func:`_safe`)."""
    values = run_all([(_safe, (key, m)) for m in members], workers, executor, tick)
    groups: dict[str, list[Member]] = defaultdict(list)
    for member, value in zip(members, values, strict=True):
        if value is not None:
            groups[value].append(member)
    return [(k, g) for k, g in groups.items() if len(g) > 1]


def _walk(manager: StorageManager, prefix: str) -> tuple[StorageNode, list[Member]]:
    """The files below ``prefix``: one walk (one flat listing on object stores); a prefix
    naming a file is that file (asked only when the walk found nothing).

    Raises:
        StorageNotFoundError: ``prefix`` names neither a file nor a directory (a typo must
            not read as "no duplicates").
    """
    root = manager.node(prefix)
    try:
        infos: list[Info] = [i for i in root._be.walk(root.path) if not i.is_dir]
    except (StorageNotFoundError, NotADirectoryError):
        infos = []
    if not infos and root.path:
        try:
            found = root.info()
        except StorageNotFoundError:
            raise StorageNotFoundError(
                f"No such file or directory: {root.fullpath!r}") from None
        infos = [found] if not found.is_dir else []
    return root, [Member(root._related(i.path, i), i) for i in infos]


def _one_per_inode(members: list[Member]) -> list[Member]:
    """One member per local file: of the names sharing a content (hard links, symbolic
    links and their target) the first regular file is kept, marked ``linked`` when a
    symbolic link names it."""
    chosen: dict[Hashable, tuple[Member, bool]] = {}
    order: list[Member | Hashable] = []
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
                    progress: Progress | None = None, workers: int | None = None,
                    executor: Executor | None = None) -> list[DuplicateGroup]:
    """Groups of identical files below ``prefix`` (``'mount:'`` or ``'mount:dir'``), most
    wasted bytes first; see the module doc for what is read.

    Args:
        min_size: Files smaller than this many bytes are ignored (default 1: empty files
            are not reported as duplicates of each other).
        progress: ``progress(done, total)`` after each file read in stage 3, in the
            caller's thread, ``done`` counting up by one whatever the pool.
        workers: Files hashed at once (default :func:`default_workers`: 1 on a local disk
            or in memory, :data:`REMOTE_WORKERS` elsewhere).
        executor: A ``concurrent.futures.Executor`` to hash on instead of storied's pool;
            one that is not a ``ThreadPoolExecutor`` (processes, Dask) gets picklable items
            (:mod:`storied.optimize._remote`).

    Raises:
        InvalidArgumentError: ``workers`` below 1; an ``executor`` in other processes for
            a mount they cannot rebuild (memory, a backend instance).
    """
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, not {workers!r}")
    root, members = _walk(manager, prefix)
    pool = workers if workers is not None else default_workers(root)
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

    def tick(_: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    configs = pack(root) if remote(executor) and to_read else b""

    def keys(members: list[Member], kind: str,
             done: Callable[[int], object] | None = None) -> list[str | None]:
        if configs:
            return run_all([(run_hash, (ShippedHash(configs, m.node.fullpath, m.info.size,
                                                    kind),)) for m in members],
                           pool, executor, done)
        fn = _head_tail if kind == "ends" else _full
        return run_all([(_safe, (fn, m)) for m in members], pool, executor, done)

    flat = [m for same in to_read for m in same]
    ends = keys(flat, "ends", tick)
    by_ends: dict[tuple[int, str], list[Member]] = defaultdict(list)
    for member, key in zip(flat, ends, strict=True):
        if key is not None:
            by_ends[(member.info.size, key)].append(member)
    to_hash = [(size, key, c) for (size, key), c in by_ends.items() if len(c) > 1]
    for size, key, candidates in to_hash:
        if key.startswith("full:"):  # the ends were the whole file: proven already
            groups.append(_group(size, f"sha256:{key[5:]}", candidates))
    rest = [c for _, key, c in to_hash if not key.startswith("full:")]
    flat = [m for c in rest for m in c]
    fulls = keys(flat, "full")
    full_of = {id(m): v for m, v in zip(flat, fulls, strict=True)}
    for candidates in rest:
        by_full: dict[str, list[Member]] = defaultdict(list)
        for member in candidates:
            value = full_of[id(member)]
            if value is not None:
                by_full[value].append(member)
        for digest, group in by_full.items():
            if len(group) > 1:
                groups.append(_group(candidates[0].info.size, f"sha256:{digest}", group))
    groups.sort(key=lambda g: (-g.wasted, g.nodes[0].fullpath))
    return groups


def _full(member: Member) -> str:
    return full_sha256(member.node)


def _group(size: int, digest: str, members: list[Member]) -> DuplicateGroup:
    members = sorted(members, key=lambda m: m.node.path)
    return DuplicateGroup(size, digest, [m.node for m in members], members)


def describe(group: DuplicateGroup) -> dict[str, Any]:
    """The stable JSON keys of a group (``storied dupes --json``)."""
    return {"size": group.size, "digest": group.digest, "wasted": group.wasted,
            "paths": [n.fullpath for n in group.nodes]}
