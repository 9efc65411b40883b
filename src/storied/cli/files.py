"""Commands that move data: ``cp``, ``mv``, ``rm``, ``mkdir``, ``stat``, ``du``, ``rollback``.

Either side of ``cp``/``mv`` may be ``mount:path``, a local path, or ``-`` (standard input as a
source, standard output as a destination). A word is a mount path when the part before its
first ``:`` names a configured mount; anything else is a local path (write ``./home:x`` for a
local file whose name looks like a mount path). Local paths go through an implicit local mount
of ``/`` (the same confinement and atomic writes as any local mount). Commands given only local
paths need no configuration file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from storied.cli.jsonout import counted
from storied.core.foreign import versioned_below as _versioned_below

__all__ = ["COMMANDS", "resolve"]

_LOCAL = "_cli_local"  # the implicit mount of local paths


def storage_for(ctx: click.Context, *words: str) -> Any:
    """The configured manager; a bare one when no config exists and every word is local."""
    from storied import StorageManager
    from storied.cli.main import _manager

    config = ctx.obj.get("config")
    if config or os.path.exists("storied.yaml") or any(_looks_mounted(w) for w in words):
        return _manager(config)
    return StorageManager()


def _looks_mounted(word: str) -> bool:
    head, sep, _ = word.partition(":")
    return bool(sep) and bool(head) and "/" not in head and not word.startswith(".")


def resolve(storage: Any, word: str) -> Any:
    """The node ``word`` names: ``mount:path`` when its mount exists, else a local path."""
    if not word:
        raise click.UsageError("an empty path names nothing")
    mount, sep, _ = word.partition(":")
    if sep and mount != _LOCAL and storage.has_mount(mount):
        return storage.node(word)
    if _looks_mounted(word) and not os.path.exists(word):
        from storied.errors import MountNotFoundError

        raise MountNotFoundError(f"Mount {mount!r} not found (and no local file {word!r})")
    if not storage.has_mount(_LOCAL):
        storage.add_mount({"name": _LOCAL, "type": "local", "base_path": "/"})
    parent, name = os.path.split(os.path.abspath(word))
    real = os.path.join(os.path.realpath(parent), name)
    return storage.node(f"{_LOCAL}:{real.lstrip('/')}")


def shown(node: Any) -> str:
    """How a node is printed: local paths as paths, others as ``mount:path``."""
    return "/" + str(node.path) if node.mount_name == _LOCAL else str(node.fullpath)


def _files(node: Any) -> list[Any]:
    """Every file at or below ``node`` (one walk; a file is itself)."""
    if not node.is_dir():
        return [node] if node.exists() else []
    return [node._related(i.path, i) for i in node._be.walk(node.path) if not i.is_dir]


def _rel(node: Any, base: Any) -> str:
    path = str(node.path)
    return path[len(base.path.rstrip("/")):].lstrip("/") if base.path else path


class Tally:
    """What a transfer did, for the summary line (printed on every run, terminal or not)."""

    failed: int
    bytes: int
    not_started: int
    started: float

    def __init__(self, verb: str = "copied") -> None:
        self.copied = self.skipped = self.failed = self.bytes = self.reserved = 0
        self.not_started = 0
        self.verb = verb
        self.started = time.monotonic()

    def take(self, report: Any) -> None:
        """Counts from a :class:`~storied.core.transfer.TransferReport` (the source of truth
        once the transfer ended: callbacks may not have seen a failure)."""
        self.failed, self.bytes = len(report.failed), report.bytes
        self.not_started = len(report.not_started)

    def line(self) -> str:
        from storied.cli.main import _size

        took = max(time.monotonic() - self.started, 1e-6)
        history = (f" ({counted(self.reserved, 'file')} of storied's history left out)"
                   if self.reserved else "")
        unstarted = f", {self.not_started} not started" if self.not_started else ""
        return (f"{self.copied} {self.verb}, {self.skipped} skipped, {self.failed} failed"
                f"{unstarted}, {_size(self.bytes)} in {took:.1f} s "
                f"({_size(int(self.bytes / took))}/s){history}")


class _Bar:
    """The callbacks a transfer drives its bar with (no-ops off a terminal)."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar, self._task = bar, task

    def bytes(self, done: int, total: int) -> None:
        """``progress_bytes``: bytes done of the total (rate and ETA follow from them)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def name(self, name: str) -> None:
        """The file last handled, shown beside the bar."""
        if self._bar is not None:
            self._bar.update(self._task, description=name)


@contextmanager
def _bar(first: str = "") -> Iterator[_Bar]:
    """A bytes/rate/ETA/current-file bar on stderr when it is a terminal (none elsewhere, nor
    with ``-q`` or ``NO_COLOR``)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from storied.cli.main import err
    from storied.cli.progress import _wanted

    if not _wanted(err):
        yield _Bar()
        return
    bar = Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.description}", markup=False), console=err)
    task = bar.add_task(first, total=None)
    with bar:
        yield _Bar(bar, task)


def _copy_tree(src: Any, dest: Any, skip: str, tally: Tally, workers: int | None,
               include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> None:
    """``src.copy_to(dest)`` with every other file still copied when one fails (the first
    error is raised at the end, after ``tally`` took the report)."""
    from storied.core.transfer import TransferReport

    report = TransferReport()
    with _bar(src.basename) as bar:
        def copied(node: Any) -> None:
            tally.copied += 1
            bar.name(node.basename)

        def skipped(node: Any, reason: str) -> None:
            if reason == "reserved":  # never copied, never counted as a skip
                tally.reserved += 1
                return
            tally.skipped += 1
            bar.name(node.basename)

        try:
            src.copy_to(dest, skip=skip, include=list(include) or None,
                        exclude=list(exclude) or None, on_file=copied, on_skip=skipped,
                        progress_bytes=bar.bytes, workers=workers, on_error="continue",
                        report=report)
        finally:
            tally.take(report)


def _stream(source: str, dest: str, storage: Any, tally: Tally, dry_run: bool) -> None:
    if source == dest == "-":
        raise click.UsageError("SOURCE and DEST cannot both be '-'")
    if source == "-":
        if dest.endswith("/"):
            raise click.UsageError("the destination of standard input must be a file")
        target = resolve(storage, dest)
        if dry_run:
            click.echo(f"would copy standard input -> {shown(target)}")
            return
        with target.open("wb") as out:
            while chunk := sys.stdin.buffer.read(1 << 20):
                out.write(chunk)
                tally.bytes += len(chunk)
        tally.copied = 1
        click.echo(tally.line(), err=True)
        return
    out = sys.stdout.buffer
    for chunk in resolve(storage, source).iter_bytes():
        out.write(chunk)
    out.flush()


def _overlap(src: Any, dest: Any) -> str | None:
    """How two nodes' storage locations overlap, seen through every mount and alias (two
    mounts of one directory, a local path and a mount of it): ``'the same place'``, ``'inside
    the source'``, ``'holds the source'``, or None."""
    from storied.paths import is_under

    skey, spath = src._be.location(src.path)
    dkey, dpath = dest._be.location(dest.path)
    if skey != dkey:
        return None
    if spath == dpath:
        return "the same place"
    if is_under(dpath, spath):
        return "inside the source"
    if is_under(spath, dpath):
        return "holds the source"
    return None


def _refuse_root(node: Any, word: str, action: str) -> None:
    """``/`` itself is never removed, emptied or moved (as ``rm --preserve-root``)."""
    if node.mount_name == _LOCAL and not str(node.path).strip("/"):
        raise click.ClickException(f"{word}: refusing to {action} '/'")


def _target(src: Any, dest: Any, word: str) -> Any:
    """``cp FILE DIR/`` and ``cp X DIR`` (an existing directory): the copy goes inside."""
    if word.endswith("/") or dest.is_dir():
        return dest.child(src.basename)
    return dest


@click.command("cp")
@click.argument("source")
@click.argument("dest")
@click.option("-r", "--recursive", is_flag=True, help="Copy directories and their contents.")
@click.option("--skip", type=click.Choice(["never", "exists", "size", "hash"]), default="never",
              show_default=True, help="When to leave an existing destination file alone.")
@click.option("--include", multiple=True, help="Only copy files matching this glob.")
@click.option("--exclude", multiple=True, help="Do not copy files matching this glob.")
@click.option("--delete", is_flag=True,
              help="Sync: delete destination files the source does not have (listed first).")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be done; change nothing.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Files copied at once (default: 8 when a side is remote, else 1).")
@click.pass_context
def cp(ctx: click.Context, source: str, dest: str, recursive: bool, skip: str,
       include: tuple[str, ...], exclude: tuple[str, ...], delete: bool, dry_run: bool,
       workers: int | None) -> None:
    """Copy SOURCE to DEST: mount:path, a local path, or - (standard input/output).

    `cp FILE DIR/` copies into DIR; a directory needs -r.
    """
    storage = storage_for(ctx, source, dest)
    tally = Tally()
    if "-" in (source, dest):
        if delete:
            raise click.UsageError("--delete needs two directories, not '-'")
        _stream(source, dest, storage, tally, dry_run)
        return
    src = resolve(storage, source)
    if not src.exists():
        from storied.errors import StorageNotFoundError

        raise StorageNotFoundError(f"{source}: no such file or directory")
    if src.is_dir() and not recursive:
        raise click.ClickException(f"{source}: is a directory (use -r to copy a tree)")
    target = resolve(storage, dest)
    if not src.is_dir():
        target = _target(src, target, dest)
    elif dest.endswith("/") and target.is_dir():
        target = target.child(src.basename)
    if delete:
        _refuse_root(target, dest, "delete files in")
    overlap = _overlap(src, target) if delete else None
    if overlap is not None:
        raise click.ClickException(
            f"{shown(target)} is {overlap} {shown(src)}: --delete would remove files it "
            "copies (choose a destination outside the source)")
    wanted = {_rel(f, src) for f in _files(src)}
    extra = ([f for f in _files(target) if _rel(f, target) not in wanted]
             if delete and target.is_dir() else [])
    history = _versioned_below(storage, target) if extra else None
    if history is not None:
        raise click.ClickException(
            f"{dest}: holds a versioned mount's files and history ({history}); --delete "
            "there only through that mount, so that its history records the deletes")
    if dry_run:
        for f in _files(src):
            rel = _rel(f, src)
            click.echo(f"would copy {shown(f)} -> {shown(target.child(rel) if rel else target)}")
        for f in extra:
            click.echo(f"would delete {shown(f)}")
        return
    for f in extra:
        click.echo(f"deleting {shown(f)}", err=True)  # said before it is done
        f.delete()
    filters = (include, exclude) if src.is_dir() else ((), ())
    try:
        _copy_tree(src, target, skip, tally, workers, *filters)
    finally:  # the summary also when a file failed (then the error line, exit 1)
        click.echo(tally.line())


@click.command("mv")
@click.argument("source")
@click.argument("dest")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be done; change nothing.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Files copied at once across mounts (default: 8 when a side is remote).")
@click.pass_context
def mv(ctx: click.Context, source: str, dest: str, dry_run: bool, workers: int | None) -> None:
    """Move SOURCE to DEST (mount:path or a local path); `mv X DIR/` moves into DIR.

    Within one mount it is a rename; across mounts a copy, then the source is deleted only
    once every file is copied and verified (a failed copy deletes no source at all).
    """
    storage = storage_for(ctx, source, dest)
    src, target = resolve(storage, source), resolve(storage, dest)
    if not src.exists():
        from storied.errors import StorageNotFoundError

        raise StorageNotFoundError(f"{source}: no such file or directory")
    if dest.endswith("/") or (target.is_dir() and not src.is_dir()):
        target = target.child(src.basename)
    _refuse_root(src, source, "move")
    history = _versioned_below(storage, src)
    if history is not None:
        raise click.ClickException(
            f"{source}: holds a versioned mount's files and history ({history}); moving it "
            "by this name would leave the history behind")
    if dry_run:
        click.echo(f"would move {shown(src)} -> {shown(target)}")
        return
    from storied.core.transfer import TransferReport

    said = f"{shown(src)} -> {shown(target)}"
    if src._be.location(src.path) == target._be.location(target.path):
        click.echo(f"nothing moved: {said} name one storage location")
        return
    count = len(_files(src))
    tally, report = Tally("moved"), TransferReport()
    try:
        with _bar(src.basename) as bar:
            src.move_to(target, workers=workers, progress_bytes=bar.bytes, report=report)
    except BaseException:
        if report.copied or report.failed:  # a copy ran: say what it did, then the error
            tally.copied, tally.skipped = len(report.copied), len(report.skipped)
            tally.take(report)
            click.echo(tally.line().replace(" moved,", " copied (no source deleted),", 1),
                       err=True)
        raise
    click.echo(f"moved {said} ({counted(count, 'file')})")
    if report.copied:  # across mounts: what the copies did (a rename copies nothing)
        tally.copied, tally.skipped = len(report.copied), len(report.skipped)
        tally.take(report)
        click.echo(tally.line(), err=True)


@click.command("rm")
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Remove directories and their contents.")
@click.option("-f", "--force", is_flag=True, help="No error for paths that do not exist.")
@click.option("--dry-run", "-n", is_flag=True, help="List what would be removed.")
@click.pass_context
def rm(ctx: click.Context, paths: tuple[str, ...], recursive: bool, force: bool,
       dry_run: bool) -> None:
    """Remove files (and, with -r, directories). On a versioned mount the history stays: the
    file can be read back with `storied cat --version`."""
    storage = storage_for(ctx, *paths)
    for word in paths:
        node = resolve(storage, word)
        if not node.exists():
            if force:
                continue
            from storied.errors import StorageNotFoundError

            raise StorageNotFoundError(f"{word}: no such file or directory")
        if node.is_dir() and not recursive:
            raise click.ClickException(f"{word}: is a directory (use -r)")
        _refuse_root(node, word, "remove")
        # node.delete(recursive=True) refuses such a tree itself; a dry run asks up front
        history = _versioned_below(storage, node) if recursive and dry_run else None
        if history is not None:
            raise click.ClickException(
                f"{word}: holds a versioned mount's files and history ({history}); delete "
                "through that mount, so that its history records the delete")
        if dry_run:
            for f in _files(node):
                click.echo(f"would remove {shown(f)}")
            continue
        node.delete(recursive=recursive)


@click.command("mkdir")
@click.argument("paths", nargs=-1, required=True)
@click.option("-p", "--parents", is_flag=True,
              help="Make parents as needed; no error if it exists.")
@click.pass_context
def mkdir(ctx: click.Context, paths: tuple[str, ...], parents: bool) -> None:
    """Create directories (a no-op on storages where directories are implied)."""
    storage = storage_for(ctx, *paths)
    for word in paths:
        resolve(storage, word).mkdir(parents=parents, exist_ok=parents)


def _stat_row(node: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    info = node.info()
    row: dict[str, Any] = {
        "path": shown(node),
        "type": "directory" if info.is_dir else "file",
        "size": None if info.is_dir else info.size,
        "modified": datetime.fromtimestamp(info.mtime, UTC) if info.mtime else None,
        "etag": None if info.is_dir else (info.etag or None),
        "mimetype": None if info.is_dir else node.mimetype,
    }
    if not info.is_dir:
        versions = node.versions if node._history is not None else []
        row["versions"] = len(versions)
        row["version_id"] = versions[-1]["version_id"] if versions else None
        row["metadata"] = node.get_metadata() if node.capabilities.metadata else {}
    return row


@click.command("stat")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.pass_context
def stat(ctx: click.Context, path: str, as_json: bool) -> None:
    """Show a file's or directory's size, time, etag, type and version count."""
    from storied.cli.jsonout import print_json

    row = _stat_row(resolve(storage_for(ctx, path), path))
    if as_json:
        print_json(row)
        return
    for key, value in row.items():
        if key == "modified" and value is not None:
            value = value.isoformat(" ", "seconds")
        click.echo(f"{key + ':':<11} {'-' if value is None else value}")


@click.command("du")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.pass_context
def du(ctx: click.Context, path: str, as_json: bool) -> None:
    """Total size and file count below PATH (one walk; history not included)."""
    from storied.cli.jsonout import print_json
    from storied.cli.main import _size

    node = resolve(storage_for(ctx, path), path)
    files = _files(node)
    if not files and not node.exists():
        from storied.errors import StorageNotFoundError

        raise StorageNotFoundError(f"{path}: no such file or directory")
    total = sum((f._listed.size if f._listed else f.size()) or 0 for f in files)
    if as_json:
        print_json({"path": shown(node), "files": len(files), "bytes": total})
        return
    click.echo(f"{_size(total)}  {counted(len(files), 'file')}  {shown(node)}")


@click.command("rollback", context_settings={"ignore_unknown_options": True})
@click.argument("path")
@click.argument("version", default="-2")
@click.option("--tag", default=None, help="Roll back to the version this tag names.")
@click.pass_context
def rollback(ctx: click.Context, path: str, version: str, tag: str | None) -> None:
    """Write VERSION (default -2: the one before the current) of PATH back as a new version."""
    from storied.cli.manage import parse_version

    node = resolve(storage_for(ctx, path), path)
    node.rollback(parse_version(version), tag=tag)
    click.echo(f"rolled back {shown(node)} to {tag or version}: now {len(node.versions)} versions")


COMMANDS = (cp, mv, rm, mkdir, stat, du, rollback)
