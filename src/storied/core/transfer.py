"""Copy and move between nodes, with filters and skip strategies.

Request economy: a directory copy lists the source once (one flat listing on object stores) and
the destination once when a skip strategy needs it; the ``hash`` strategy compares MD5s known from
those listings (single-part ETags, local hashes computed on the local side) and downloads nothing
when nothing changed.
"""

from __future__ import annotations

import fnmatch
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from storied import paths
from storied.core._filecopy import (
    FilterFn,
    Item,
    NodeCallback,
    Plan,
    Progress,
    SkipCallback,
    SkipFn,
    SkipStrategy,
    announce_new,
    run_items,
)
from storied.core._parallel import OnError, TransferReport, check_policy, check_workers
from storied.errors import (
    DirectoryNotEmptyError,
    InvalidArgumentError,
    InvalidPathError,
    StorageNotFoundError,
)
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["SkipStrategy", "TransferReport", "copy_node", "move_node"]


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
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    progress_bytes: Progress | None = None,
    on_error: OnError = "raise",
    report: TransferReport | None = None,
) -> StorageNode:
    """Copy ``src`` (file or directory) to ``dest``; return ``dest``.

    Filters (``include``/``exclude`` fnmatch globs on the path relative to the copied directory,
    then ``filter(node, relpath)``) apply to directory copies. Skip strategies compare with the
    destination file and never apply when it is missing. ``progress(done, total)`` is called
    after every file the filters let through, copied or skipped by the skip strategy
    (``total`` counts those files only, as genro-storage does, and is never 0: no file, no
    call); ``on_file(src_node)`` after each copy;
    ``on_skip(src_node, reason)`` for each file left out (``'reserved'`` for a name below
    storied's reserved ``.storied`` area, which is never copied).

    A copy onto the very same storage location (also through another mount naming it) is a
    no-op; a version-pinned ``src`` writes that version's bytes (a restore). The files to copy
    are listed once before anything is written.

    Parallelism: the files are copied by a bounded pool of ``workers`` threads (default: 8
    when either side is remote, 1 when both are local disks or memory; see
    :func:`storied.core._parallel.default_workers`), or on ``executor`` (any
    ``concurrent.futures.Executor``: a ``ThreadPoolExecutor`` runs the copies on these very
    nodes; any other executor, such as a ``ProcessPoolExecutor`` or a Dask client's
    ``get_executor()``, gets picklable items, the mount configs and two paths, and rebuilds a
    manager in the worker, so both mounts must be reachable from there). Every callback
    (``progress``, ``progress_bytes``, ``on_file``, ``on_skip``) is called from the calling
    thread only, ``progress``'s ``done`` going 1, 2, 3 ... in completion order.
    ``progress_bytes(done, total)`` counts bytes (also within a large file, as it is read):
    ``total`` is the listed size of the files to copy and only grows; a file skipped or failed
    counts whole, so ``done == total`` at the end. Events of the copies may be delivered from
    the pool's threads.

    Errors: each file's outcome goes into ``report`` (a :class:`TransferReport` filled in as
    files finish). ``on_error='raise'`` (the default) stops at the first failure: no new file
    is started, the ones in flight finish, then that first error is raised. With
    ``'continue'`` every other file is still copied and the first error is raised at the end.
    Either way the error carries the report as ``.report`` and a note naming how many files
    failed; files are written atomically, so each is whole or absent at ``dest``.

    Raises:
        StorageNotFoundError: ``src`` does not exist.
        ValueError: ``skip='custom'`` without ``skip_fn``, or bad ``workers``/``on_error``.
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
    check_workers(workers)
    check_policy(on_error)
    dest.require_writable()
    plan = Plan(
        _patterns(include), _patterns(exclude), filter, strategy, skip_fn, progress, on_file,
        on_skip, workers, executor, progress_bytes, on_error, report or TransferReport(),
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


def _copy(src: StorageNode, dest: StorageNode, plan: Plan) -> list[Info] | None:
    """Copy; return the source files copied (None when ``src`` is a single file).

    A directory copy creates the destination directory first, and (between storages with
    real directories) every source sub-directory that holds no copied file, filters or not,
    as genro-storage does.
    """
    if src.version is not None:
        run_items(src, dest, [(src, src.info(), dest, _dest_if_skipping(dest, plan))], 1, 0, plan)
        return None
    walked = _walk_if_dir(src)
    files, hidden = walked if walked is not None else (None, set())
    if files is None:
        try:
            info = src.info()
        except StorageNotFoundError:
            raise StorageNotFoundError(f"Source not found: {src.fullpath}") from None
        if not info.is_dir:
            run_items(src, dest, [(src, info, dest, _dest_if_skipping(dest, plan))], 1, 0, plan)
            return None
        files = []
    dest.mkdir(parents=True, exist_ok=True)
    copied = _copy_dir(src, dest, files, hidden, plan)  # no file, no progress call: genro's
    # callers may divide by ``total``
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


def _dest_if_skipping(dest: StorageNode, plan: Plan) -> Info | None:
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
    src: StorageNode, dest: StorageNode, files: list[Info], hidden: set[str], plan: Plan
) -> list[Info]:
    """Filters are applied here, in the calling thread (``filter`` and ``on_skip`` are called
    from it, in path order); the files that pass go to :func:`_run`."""
    existing: dict[str, Info] = {}
    if plan.skip is not SkipStrategy.NEVER:
        try:
            existing = {paths.relative_to(e.path, dest.path): e for e in dest._be.walk(dest.path)}
        except StorageNotFoundError:
            existing = {}
    items: list[Item] = []
    for info in sorted(files, key=lambda i: i.path):
        rel = paths.relative_to(info.path, src.path)
        node = src._related(info.path, info)
        hide = info.path in hidden or paths.is_hidden(rel)
        reason = "reserved" if hide else _filtered(node, rel, plan)
        if reason is None:
            target = dest._related(paths.join(dest.path, rel), existing.get(rel))
            items.append((node, info, target, existing.get(rel)))
            continue
        plan.report.skipped[node.fullpath] = reason
        if plan.on_skip:
            plan.on_skip(node, reason)
    return run_items(src, dest, items, len(items), 0, plan)


def _filtered(node: StorageNode, rel: str, plan: Plan) -> str | None:
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


def move_node(
    src: StorageNode,
    dest: StorageNode,
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    progress_bytes: Progress | None = None,
    on_error: OnError = "raise",
    report: TransferReport | None = None,
) -> StorageNode:
    """Move ``src`` to ``dest``: one rename inside a mount, else copy then delete the source.

    Onto the same storage location (also through another mount naming it) a move is a no-op.
    Across mounts (and on versioned mounts) the files are listed once, copied, and then exactly
    the copied files are deleted (with a tombstone each on a versioned mount), then the
    directories that left empty: a file the listing did not show is never deleted.

    The copies run as in :func:`copy_node` (``workers``, ``executor``, ``progress``,
    ``progress_bytes``, ``report``; a rename reports nothing). A source is deleted only after
    its copy is verified: the write succeeded and the bytes read equal the listed size (else
    the source changed meanwhile and is kept, a ``PreconditionFailedError`` in the report).
    With ``on_error='raise'`` (default) nothing at all is deleted when any copy failed; with
    ``'continue'`` the sources of the verified copies are deleted and the failed ones stay.
    Either way every file is whole on at least one side, and the first error is raised.

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

    check_workers(workers)
    check_policy(on_error)
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
    plan = Plan([], [], None, SkipStrategy.NEVER, None, progress, None, None, workers,
                 executor, progress_bytes, on_error, report or TransferReport(), move=True)
    try:
        copied = _copy(src, dest, plan)
    except BaseException as exc:
        if on_error == "continue" and plan.copied and getattr(exc, "report", None) is plan.report:
            src._remove_files([info.path for info in plan.copied])  # the verified ones only
        raise
    if copied is None:
        src._remove(recursive=False)
    else:
        src._remove_files([info.path for info in copied])
    return dest


def _announce_moved(src: StorageNode, dest: StorageNode,
                    walked: tuple[list[Info], set[str]] | None, single: bool) -> None:
    """``file_deleted`` at the source and the new file's events at the destination, for each
    file a rename moved (``single``: the one file ``src`` was; else those a walk showed:
    storied's own hidden files have no events)."""
    from storied.core.eventing import notify_deleted

    if walked is None:
        if single:
            notify_deleted(src)
            announce_new(dest, None)
        return
    files, hidden = walked
    for info in sorted(files, key=lambda i: i.path):
        if info.path in hidden:
            continue
        rel = paths.relative_to(info.path, src.path)
        notify_deleted(src._related(info.path))
        announce_new(dest._related(paths.join(dest.path, rel)), None)


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
