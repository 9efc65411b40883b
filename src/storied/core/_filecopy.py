"""One file's copy and the pool that runs many (the engine of :mod:`storied.core.transfer`).

Every caller callback is called from the calling thread (see :mod:`storied.core._parallel`);
:func:`transfer_one` runs in a worker and calls none of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, cast

from storied.core._parallel import (
    EXTERNAL_IN_FLIGHT,
    ByteSink,
    Counted,
    Pool,
    TransferReport,
    default_workers,
    run_pool,
)
from storied.core._shipping import shipper
from storied.errors import PreconditionFailedError
from storied.info import Info

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["Item", "Plan", "SkipStrategy", "announce_new", "run_items", "transfer_one"]

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
class Plan:
    include: list[str]
    exclude: list[str]
    filter: FilterFn | None
    skip: SkipStrategy
    skip_fn: SkipFn | None
    progress: Progress | None
    on_file: NodeCallback | None
    on_skip: SkipCallback | None
    workers: int | None = None
    executor: Executor | None = None
    progress_bytes: Progress | None = None
    on_error: str = "raise"
    report: TransferReport = field(default_factory=TransferReport)
    move: bool = False  # a move's copy: each copy is checked against the listed size
    copied: list[Info] = field(default_factory=list)  # the source files copied so far


Item = tuple["StorageNode", Info, "StorageNode", "Info | None"]


def _workers(src: StorageNode, dest: StorageNode, items: list[Item], plan: Plan) -> int:
    if plan.workers is not None:
        return plan.workers
    if plan.executor is not None:
        return EXTERNAL_IN_FLIGHT
    if len(items) <= 1:
        return 1
    return default_workers(src._be, dest._be, src.path, dest.path)


def run_items(src: StorageNode, dest: StorageNode, items: list[Item], total: int, done: int,
              plan: Plan) -> list[Info]:
    """Copy ``items`` on the pool; every callback from this thread. Returns the source files
    copied; raises the first error (with ``.report``) after the pool settled."""
    report = plan.report
    report.workers = workers = _workers(src, dest, items, plan)
    copied = plan.copied
    errors: list[BaseException] = []
    streamed: dict[int, int] = {}
    counts = {"done": done, "bytes": 0, "total": sum(item[1].size or 0 for item in items)}

    def emit_bytes(count: int) -> None:
        counts["bytes"] += count
        counts["total"] = max(counts["total"], counts["bytes"])
        if plan.progress_bytes:
            plan.progress_bytes(counts["bytes"], counts["total"])

    def on_bytes(item: Item, count: int) -> None:
        streamed[id(item)] = streamed.get(id(item), 0) + count
        emit_bytes(count)

    def on_done(item: Item, result: tuple[str, int | str] | None,
                error: BaseException | None) -> bool:
        node, info = item[0], item[1]
        rest = (info.size or 0) - streamed.pop(id(item), 0)
        if rest > 0:
            emit_bytes(rest)
        if result is not None and error is None and plan.move:
            error = _unverified(node, info, result)
        if error is not None or result is None:
            errors.append(error or RuntimeError(f"{node.fullpath}: no result"))
            report.failed[node.fullpath] = errors[-1]
        elif result[0] == "skipped":
            report.skipped[node.fullpath] = str(result[1])
            if plan.on_skip:
                plan.on_skip(node, str(result[1]))
        else:
            report.copied.append(node.fullpath)
            report.bytes += int(result[1])
            copied.append(info)
            if plan.on_file:
                plan.on_file(node)
        counts["done"] += 1
        if plan.progress:
            plan.progress(counts["done"], total)
        return not errors or plan.on_error == "continue"

    # one large file at a time fetches its parts ahead (parallel ranged GETs on S3): memory
    # stays one prefetching file plus one buffer per other worker
    rule: Rule = (plan.skip, plan.skip_fn,
                  threading.BoundedSemaphore(1) if plan.executor is None else None)
    pool: Pool[Item, tuple[str, int | str]] = Pool(
        lambda item, sink: transfer_one(item, rule, sink), workers, plan.executor,
        shipper(src, dest, rule[:2]) if plan.executor is not None else None)
    left = run_pool(pool, items, on_done, on_bytes if plan.progress_bytes else None)
    report.not_started += [item[0].fullpath for item in left]
    if errors:
        raise _with_report(errors[0], report, total)
    return copied


def _unverified(node: StorageNode, info: Info, result: tuple[str, int | str]
                ) -> BaseException | None:
    """For a move: a copy whose byte count differs from the listed size is not trusted (the
    source changed meanwhile): the source is kept."""
    if result[0] == "copied" and int(result[1]) != (info.size or 0):
        return PreconditionFailedError(
            f"{node.fullpath} changed while being moved (listed {info.size} bytes, read "
            f"{result[1]}): its source is kept")
    return None


def _with_report(error: BaseException, report: TransferReport, total: int) -> BaseException:
    try:
        error.report = report  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__
        pass
    if total > 1 and not getattr(error, "_storied_noted", False):
        names = ", ".join(list(report.failed)[:5]) + (", ..." if len(report.failed) > 5 else "")
        error.add_note(f"storied: {report.summary()} of {total} files (failed: {names})")
        try:
            error._storied_noted = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return error


#: ``(skip strategy, skip_fn, prefetch)``; ``prefetch``: whoever holds it reads a file of
#: :data:`LARGE` bytes or more with the sequential-read hint (S3 fetches the next parts ahead,
#: in parallel); one file of a transfer at a time, the others are read plainly. None: never.
Rule = tuple[SkipStrategy, "SkipFn | None", "threading.BoundedSemaphore | None"]
#: From this size a file may be read with the sequential-read hint.
LARGE = 8 * 1024 * 1024


def _skip_reason(
    src: StorageNode, info: Info, dest: StorageNode, dinfo: Info, rule: Rule
) -> str | None:
    skip, skip_fn = rule[0], rule[1]
    try:
        if skip is SkipStrategy.EXISTS:
            return "destination exists"
        if skip is SkipStrategy.SIZE:
            return f"same size ({info.size} bytes)" if info.size == dinfo.size else None
        if skip is SkipStrategy.HASH:
            if info.size != dinfo.size:
                return None
            digest = info.md5 or src.md5hash()
            if digest == (dinfo.md5 or dest.md5hash()):
                return f"same content (MD5: {digest[:8]}...)"
            return None
        if skip is SkipStrategy.CUSTOM and skip_fn is not None and skip_fn(src, dest):
            return "custom function returned True"
    except Exception:
        return None  # any doubt means "copy"
    return None


def transfer_one(item: Item, rule: Rule, sink: ByteSink | None) -> tuple[str, int | str]:
    """Copy one file (in a worker): ``('skipped', reason)`` or ``('copied', bytes read)``.
    ``sink(n)`` hears the bytes as they are read. No callback of the caller is called here."""
    src, info, dest, dinfo = item
    if dinfo is not None and rule[0] is not SkipStrategy.NEVER:
        reason = _skip_reason(src, info, dest, dinfo, rule)
        if reason is not None:
            return "skipped", reason
    if src.version is not None:
        with src.open("rb") as stream:
            counted = Counted(cast(BinaryIO, stream), sink)
            dest._store(cast(BinaryIO, counted))
        return "copied", counted.count
    if src._be is dest._be and not dest._portable:
        from storied.core.locking import guard_write

        dest.require_writable()
        guard_write(dest)
        announce_new(dest, src._be.copy(src.path, dest.path))
        if sink is not None and info.size:
            sink(info.size)
        return "copied", info.size or 0
    prefetch = rule[2]
    hint = prefetch is not None and (info.size or 0) >= LARGE and prefetch.acquire(False)
    try:
        with _sequential(hint), src._be.open_read(src.path) as stream:
            counted = Counted(stream, sink)
            dest._store(cast(BinaryIO, counted), info.metadata or None)
    finally:
        if hint and prefetch is not None:
            prefetch.release()
    return "copied", counted.count


def _sequential(wanted: bool) -> AbstractContextManager[None]:
    """The sequential-read hint of :mod:`storied.backends._s3_prefetch` when ``wanted``: the
    same stored bytes as a plain read, fetched ahead in parts (S3; other backends ignore it)."""
    if not wanted:
        return nullcontext()
    from storied.backends._s3_prefetch import sequential_reads

    return sequential_reads(LARGE)


def announce_new(node: StorageNode, info: Info | None) -> None:
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
