"""Copy and move between nodes, with filters and skip strategies.

Request economy: a directory copy lists the source once (one flat listing on object stores) and
the destination once when a skip strategy needs it; the ``hash`` strategy compares MD5s known from
those listings (single-part ETags, local hashes computed on the local side) and downloads nothing
when nothing changed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, cast

from storied import paths
from storied.errors import (
    DirectoryNotEmptyError,
    InvalidArgumentError,
    InvalidPathError,
    StorageNotFoundError,
)
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["SkipStrategy", "copy_node", "move_node"]

Progress = Callable[[int, int], object]
NodeCallback = Callable[["StorageNode"], object]
SkipCallback = Callable[["StorageNode", str], object]
FilterFn = Callable[["StorageNode", str], bool]
SkipFn = Callable[["StorageNode", "StorageNode"], bool]


class SkipStrategy(StrEnum):
    """When ``copy_to`` leaves an existing destination file alone.

    ``NEVER`` always copies; ``EXISTS`` skips when the destination exists; ``SIZE`` when sizes
    match; ``HASH`` when MD5s match; ``CUSTOM`` when ``skip_fn(src, dest)`` returns True.
    Plain strings (``'hash'``) work wherever a member does.
    """

    NEVER = "never"
    EXISTS = "exists"
    SIZE = "size"
    HASH = "hash"
    CUSTOM = "custom"


@dataclass
class _Plan:
    include: list[str]
    exclude: list[str]
    filter: FilterFn | None
    skip: SkipStrategy
    skip_fn: SkipFn | None
    progress: Progress | None
    on_file: NodeCallback | None
    on_skip: SkipCallback | None


def _patterns(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def copy_node(
    src: StorageNode,
    dest: StorageNode,
    include: str | list[str] | None = None,
    exclude: str | list[str] | None = None,
    filter: FilterFn | None = None,
    skip: SkipStrategy | str = SkipStrategy.NEVER,
    skip_fn: SkipFn | None = None,
    progress: Progress | None = None,
    on_file: NodeCallback | None = None,
    on_skip: SkipCallback | None = None,
) -> StorageNode:
    """Copy ``src`` (file or directory) to ``dest``; return ``dest``.

    Filters (``include``/``exclude`` fnmatch globs on the path relative to the copied directory,
    then ``filter(node, relpath)``) apply to directory copies. Skip strategies compare with the
    destination file and never apply when it is missing. ``progress(done, total)`` is called
    after every file, copied or skipped; ``on_file(src_node)`` after each copy;
    ``on_skip(src_node, reason)`` for each file left out (``'reserved'`` for a name below
    storied's reserved ``.storied`` area, which is never copied).

    A copy onto the very same storage location (also through another mount naming it) is a
    no-op; a version-pinned ``src`` writes that version's bytes (a restore). The files to copy
    are listed once before anything is written.

    Raises:
        StorageNotFoundError: ``src`` does not exist.
        ValueError: ``skip='custom'`` without ``skip_fn``.
        InvalidPathError: ``dest`` is inside ``src`` (also a ``ValueError``).
        StoragePermissionError: ``dest`` is on a mount that refuses writes (checked first).
    """
    try:
        strategy = SkipStrategy(skip)
    except ValueError:
        valid = ", ".join(s.value for s in SkipStrategy)
        raise InvalidArgumentError(f"Unknown skip strategy {skip!r}; use one of {valid}") from None
    if strategy is SkipStrategy.CUSTOM and skip_fn is None:
        raise InvalidArgumentError("skip='custom' requires skip_fn parameter")
    dest.require_writable()
    plan = _Plan(
        _patterns(include), _patterns(exclude), filter, strategy, skip_fn, progress, on_file,
        on_skip,
    )
    if src.version is None and _relation(src, dest) == "same":
        return dest
    _copy(src, dest, plan)
    return dest


def _relation(src: StorageNode, dest: StorageNode) -> str | None:
    """``'same'`` when both nodes name one storage location, else None (decided on resolved
    backend locations, never on mount names).

    Raises:
        InvalidPathError: ``dest`` is inside ``src``.
    """
    skey, spath = src._be.location(src.path)
    dkey, dpath = dest._be.location(dest.path)
    if skey != dkey:
        return None
    if spath == dpath:
        return "same"
    if paths.is_under(dpath, spath):
        raise InvalidPathError(
            f"Cannot copy or move {src.fullpath} into itself ({dest.fullpath} is inside it)"
        )
    return None


def _copy(src: StorageNode, dest: StorageNode, plan: _Plan) -> list[Info] | None:
    """Copy; return the source files copied (None when ``src`` is a single file).

    A directory copy creates the destination directory first, and (without filters, between
    storages with real directories) every source sub-directory that holds no file, as
    genro-storage does.
    """
    if src.version is not None:
        _copy_one(src, src.info(), dest, _dest_if_skipping(dest, plan), plan)
        if plan.progress:
            plan.progress(1, 1)
        return None
    walked = _walk_if_dir(src)
    files, hidden = walked if walked is not None else (None, set())
    if files is None:
        try:
            info = src.info()
        except StorageNotFoundError:
            raise StorageNotFoundError(f"Source not found: {src.fullpath}") from None
        if not info.is_dir:
            _copy_one(src, info, dest, _dest_if_skipping(dest, plan), plan)
            if plan.progress:
                plan.progress(1, 1)
            return None
        files = []
    dest.mkdir(parents=True, exist_ok=True)
    copied = _copy_dir(src, dest, files, hidden, plan)
    if not files and plan.progress:
        plan.progress(0, 0)
    if not (plan.include or plan.exclude or plan.filter):
        _make_empty_dirs(src, dest, copied)
    return copied


def _make_empty_dirs(src: StorageNode, dest: StorageNode, files: list[Info]) -> None:
    """Create below ``dest`` the sub-directories of ``src`` that no copied file (of
    ``files``) created."""
    if not (src._be.capabilities.empty_dirs and dest._be.capabilities.empty_dirs):
        return
    filled: set[str] = set()  # directories (relative) that hold a copied file below them
    for info in files:
        parent = paths.relative_to(info.path, src.path).rpartition("/")[0]
        while parent and parent not in filled:
            filled.add(parent)
            parent = parent.rpartition("/")[0]
    pending, empty = [src.path], []
    while pending:
        current = pending.pop()
        try:
            entries = list(src._be.list(current))
        except (StorageNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir:
                pending.append(entry.path)
                rel = paths.relative_to(entry.path, src.path)
                if rel not in filled:
                    empty.append(rel)
    for rel in empty:
        dest._related(paths.join(dest.path, rel)).mkdir(parents=True, exist_ok=True)


def _dest_if_skipping(dest: StorageNode, plan: _Plan) -> Info | None:
    return _dest_info(dest) if plan.skip is not SkipStrategy.NEVER else None


def _dest_info(dest: StorageNode) -> Info | None:
    try:
        info = dest.info()
    except StorageNotFoundError:
        return None
    return None if info.is_dir else info


def _walk_if_dir(src: StorageNode) -> tuple[list[Info], set[str]] | None:
    """The files below ``src`` when it is a non-empty directory (with the paths of those the
    mount hides, which are never copied), else None.

    Listing first makes a directory copy cost one listing (no HEAD of an object-store prefix);
    a file costs one empty listing more than a HEAD alone would.
    """
    if src._listed is not None and not src._listed.is_dir:
        return None
    try:
        shown, hidden = src._be.walk_split(src.path)
    except (StorageNotFoundError, NotADirectoryError):
        return None
    if not shown and not hidden:
        return None
    return shown + hidden, {e.path for e in hidden}  # hidden: reported as skipped ('reserved')


def _copy_dir(
    src: StorageNode, dest: StorageNode, files: list[Info], hidden: set[str], plan: _Plan
) -> list[Info]:
    copied: list[Info] = []
    existing: dict[str, Info] = {}
    if plan.skip is not SkipStrategy.NEVER:
        try:
            existing = {paths.relative_to(e.path, dest.path): e for e in dest._be.walk(dest.path)}
        except StorageNotFoundError:
            existing = {}
    total = len(files)
    for done, info in enumerate(sorted(files, key=lambda i: i.path), start=1):
        rel = paths.relative_to(info.path, src.path)
        node = src._related(info.path, info)
        hide = info.path in hidden or paths.is_hidden(rel)
        reason = "reserved" if hide else _filtered(node, rel, plan)
        if reason is not None:
            if plan.on_skip:
                plan.on_skip(node, reason)
        else:
            target = dest._related(paths.join(dest.path, rel), existing.get(rel))
            _copy_one(node, info, target, existing.get(rel), plan)
            copied.append(info)
        if plan.progress:
            plan.progress(done, total)
    return copied


def _filtered(node: StorageNode, rel: str, plan: _Plan) -> str | None:
    if plan.include and not any(fnmatch.fnmatch(rel, p) for p in plan.include):
        return "not matching include patterns"
    for pattern in plan.exclude:
        if fnmatch.fnmatch(rel, pattern):
            return f"matching exclude pattern '{pattern}'"
    if plan.filter is not None:
        try:
            if not plan.filter(node, rel):
                return "filtered by custom function"
        except Exception as exc:
            return f"filter error: {exc}"
    return None


def _skip_reason(
    src: StorageNode, info: Info, dest: StorageNode, dinfo: Info, plan: _Plan
) -> str | None:
    try:
        if plan.skip is SkipStrategy.EXISTS:
            return "destination exists"
        if plan.skip is SkipStrategy.SIZE:
            return f"same size ({info.size} bytes)" if info.size == dinfo.size else None
        if plan.skip is SkipStrategy.HASH:
            if info.size != dinfo.size:
                return None
            digest = info.md5 or src.md5hash()
            if digest == (dinfo.md5 or dest.md5hash()):
                return f"same content (MD5: {digest[:8]}...)"
            return None
        if (
            plan.skip is SkipStrategy.CUSTOM
            and plan.skip_fn is not None
            and plan.skip_fn(src, dest)
        ):
            return "custom function returned True"
    except Exception:
        return None  # any doubt means "copy"
    return None


def _copy_one(
    src: StorageNode, info: Info, dest: StorageNode, dinfo: Info | None, plan: _Plan
) -> None:
    if dinfo is not None and plan.skip is not SkipStrategy.NEVER:
        reason = _skip_reason(src, info, dest, dinfo, plan)
        if reason is not None:
            if plan.on_skip:
                plan.on_skip(src, reason)
            return
    if src.version is not None:
        with src.open("rb") as stream:
            dest._store(cast(BinaryIO, stream))
    elif src._be is dest._be and not dest._portable:
        from storied.core.locking import guard_write

        dest.require_writable()
        guard_write(dest)
        _announce_new(dest, src._be.copy(src.path, dest.path))
    else:
        with src._be.open_read(src.path) as stream:
            dest._store(stream, info.metadata or None)
    if plan.on_file:
        plan.on_file(src)


def move_node(src: StorageNode, dest: StorageNode) -> StorageNode:
    """Move ``src`` to ``dest``: one rename inside a mount, else copy then delete the source.

    Onto the same storage location (also through another mount naming it) a move is a no-op.
    Across mounts (and on versioned mounts) the files are listed once, copied, and then exactly
    the copied files are deleted (with a tombstone each on a versioned mount), then the
    directories that left empty: a file the listing did not show is never deleted.

    Raises:
        StorageNotFoundError: ``src`` does not exist.
        InvalidPathError: ``dest`` is inside ``src`` (also a ``ValueError``).
        StoragePermissionError: Either mount refuses (the source needs delete permission), or
            ``src`` is a version-pinned (read-only) node.
        DirectoryNotEmptyError: ``src`` is a directory and ``dest`` a non-empty one (on every
            mount, as a rename refuses it: a copy-and-delete move would merge and overwrite).
    """
    from storied.core.eventing import needs_events
    from storied.core.locking import guard_write

    src.require_writable()
    dest.require_writable()
    if _relation(src, dest) == "same":
        return dest
    _refuse_full_dir_target(src, dest)
    guard_write(src)
    guard_write(dest)
    if src._be is dest._be and not src._portable:
        wanted = (needs_events(src, "file_deleted")
                  or needs_events(dest, "file_written", "version_created"))
        walked, single = None, False
        if wanted:  # the files, for their events
            walked = _walk_if_dir(src)
            single = walked is None and not src.info().is_dir
        src._be.move(src.path, dest.path)
        if wanted:
            _announce_moved(src, dest, walked, single)
        return dest
    src._need_delete()
    copied = _copy(src, dest, _Plan([], [], None, SkipStrategy.NEVER, None, None, None, None))
    if copied is None:
        src._remove(recursive=False)
    else:
        src._remove_files([info.path for info in copied])
    return dest


def _announce_new(node: StorageNode, info: Info | None) -> None:
    """Events for a file a server-side copy or rename put at ``node`` (``info``: what the
    storage said, if anything). A native history needs the new version: from ``info`` when it
    names one, else from one listing of the file's versions."""
    from storied.core.eventing import file_info, notify, notify_version

    history = node._history
    if history is None:
        notify(node, "file_written", lambda: file_info(node, info or node._info_or_none()))
        return
    if info is not None and info.version_id:
        from storied.versioning.native import version_from_info

        notify_version(node, version_from_info(info))
        return
    found = history.versions(node.path)
    if found and found[-1].is_latest:
        notify_version(node, found[-1])


def _announce_moved(src: StorageNode, dest: StorageNode,
                    walked: tuple[list[Info], set[str]] | None, single: bool) -> None:
    """``file_deleted`` at the source and the new file's events at the destination, for each
    file a rename moved (``single``: the one file ``src`` was; else those a walk showed:
    storied's own hidden files have no events)."""
    from storied.core.eventing import notify_deleted

    if walked is None:
        if single:
            notify_deleted(src)
            _announce_new(dest, None)
        return
    files, hidden = walked
    for info in sorted(files, key=lambda i: i.path):
        if info.path in hidden:
            continue
        rel = paths.relative_to(info.path, src.path)
        notify_deleted(src._related(info.path))
        _announce_new(dest._related(paths.join(dest.path, rel)), None)


def _refuse_full_dir_target(src: StorageNode, dest: StorageNode) -> None:
    """Raise when a directory would be moved onto a non-empty directory (one listing of
    ``dest``; ``src`` is looked at only then)."""
    try:
        first = next(iter(dest._be.list_names(dest.path)), None)
    except (StorageNotFoundError, NotADirectoryError):
        return
    if first is None:
        return
    try:
        if not src.info().is_dir:
            return
    except StorageNotFoundError:
        raise StorageNotFoundError(f"Source not found: {src.fullpath}") from None
    raise DirectoryNotEmptyError(f"Cannot move {src.fullpath} onto non-empty {dest.fullpath}")
