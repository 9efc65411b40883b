"""Version-management commands: tags, annotations, queries, retention, compaction, snapshots.

Registered on the ``storied`` group by :func:`register`. A version given on the command line is
an index when it parses as an integer (``-1`` latest, ``0`` oldest), else a version id or a tag.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from storied.cli.jsonout import counted, json_option, print_json, print_table, version_row

__all__ = ["parse_version", "register"]

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(func: F) -> F:
    """Turn the API's plain Python errors (bad index, bad tag name, ...) into one line, exit 1.

    ``StorageError`` is left to ``main()``, which already reports it that way.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from storied import StorageError

        try:
            return func(*args, **kwargs)
        except StorageError:
            raise
        except (IndexError, ValueError, TypeError, KeyError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise click.ClickException(str(text)) from None

    return wrapper  # type: ignore[return-value]


def parse_version(text: str) -> int | str:
    """An integer string is an index; anything else a version id or a tag."""
    try:
        return int(text)
    except ValueError:
        return text


def _parse_value(text: str) -> Any:
    """A JSON literal when the value is one (``3``, ``true``, ``[1]``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        found[key] = _parse_value(value)
    return found


def _criteria(items: tuple[str, ...]) -> dict[str, Any]:
    """``find`` criteria: a value matches as typed JSON or as the literal string."""
    criteria: dict[str, Any] = {}
    for key, value in _pairs(items).items():
        raw = next(i.partition("=")[2] for i in items if i.partition("=")[0] == key)
        if value is None or value == raw:
            criteria[key] = value
        else:
            criteria[key] = functools.partial(_either, value, raw)
    return criteria


def _either(typed: Any, raw: str, found: Any) -> bool:
    return found is not None and found in (typed, raw)


def _when(moment: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC (``-`` when unknown)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _short(version_id: str) -> str:
    return version_id if len(version_id) <= 32 else version_id[:29] + "..."


def _manager(ctx: click.Context) -> Any:
    from storied.cli.main import _manager as build

    return build(ctx.obj["config"])


def _consoles() -> tuple[Any, Any]:
    from storied.cli.main import console, err

    return console, err


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on standard error; yields the ``progress(done, total)`` callback."""
    from storied.cli.progress import progress_bar

    _, err = _consoles()
    with progress_bar(label, err) as progress:
        yield progress


def _version_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("", width=1)
    table.add_column("version", no_wrap=True)
    table.add_column("written (UTC)", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("tags")
    table.add_column("metadata")
    for row in rows:
        meta = json.dumps(row.get("metadata") or {}, sort_keys=True, default=str)
        table.add_row(
            str(row.get("index", "")),
            "*" if row.get("is_latest") else "",
            _short(row["version_id"]),
            _when(row.get("last_modified")),
            str(row.get("size", "-")),
            ", ".join(row.get("tags") or []) or "-",
            meta if meta != "{}" else "-",
        )
    return table


# ---------------------------------------------------------------------------- commands
_NEGATIVE_OK = {"ignore_unknown_options": True}  # so that ``-1`` is a version, not an option




@click.command("tag", context_settings=_NEGATIVE_OK)
@click.argument("path")
@click.argument("version")
@click.argument("name")
@click.option("--move", is_flag=True, help="Move the tag if it already names another version.")
@click.pass_context
@_friendly
def tag_command(ctx: click.Context, path: str, version: str, name: str, move: bool) -> None:
    """Tag VERSION (index, id or tag) of file PATH as NAME."""
    from storied import StorageAlreadyExistsError

    console, _ = _consoles()
    try:
        vid = _manager(ctx).node(path).tag_version(parse_version(version), name, move=move)
    except StorageAlreadyExistsError as exc:
        raise StorageAlreadyExistsError(str(exc).replace("move=True", "--move")) from None
    console.print(f"tagged {path} version {vid} as {name}", highlight=False)


@click.command("untag")
@click.argument("path")
@click.argument("name")
@click.pass_context
@_friendly
def untag_command(ctx: click.Context, path: str, name: str) -> None:
    """Remove tag NAME from file PATH."""
    console, _ = _consoles()
    _manager(ctx).node(path).untag_version(name)
    console.print(f"untagged {name} from {path}", highlight=False)


@click.command("tags")
@click.argument("path")
@json_option
@click.pass_context
@_friendly
def tags_command(ctx: click.Context, path: str, as_json: bool) -> None:
    """List the tags of file PATH."""
    console, _ = _consoles()
    node = _manager(ctx).node(path)
    tags = node.get_version_tags()
    if as_json:
        print_json({"path": node.fullpath, "tags": dict(sorted(tags.items()))})
        return
    if not tags:
        console.print(f"{path}: no tags", highlight=False)
        return
    by_id = {v["version_id"]: (i, v) for i, v in enumerate(node.versions)}
    table = Table(title=f"tags of {path}")
    table.add_column("tag")
    table.add_column("#", justify="right")
    table.add_column("version", no_wrap=True)
    table.add_column("written (UTC)", no_wrap=True)
    for name, vid in sorted(tags.items()):
        index, version = by_id.get(vid, (None, None))
        table.add_row(name, "-" if index is None else str(index), vid,
                      _when(version["last_modified"]) if version else "(gone)")
    print_table(console, table)


@click.command("annotate", context_settings=_NEGATIVE_OK)
@click.argument("path")
@click.argument("pairs", nargs=-1, required=True)
@click.option("--version", "-V", "version", default="-1", show_default=True,
              help="Version to annotate (index, id or tag).")
@click.pass_context
@_friendly
def annotate_command(ctx: click.Context, path: str, pairs: tuple[str, ...], version: str) -> None:
    """Merge KEY=VALUE pairs into the metadata of a version of PATH.

    VALUE is stored as JSON when it parses as JSON (numbers, true/false, null, lists), else
    as a string.
    """
    console, _ = _consoles()
    merged = _manager(ctx).node(path).annotate_version(parse_version(version), _pairs(pairs))
    console.print(json.dumps(merged, sort_keys=True, default=str), highlight=False)


@click.command("find")
@click.argument("path")
@click.argument("pairs", nargs=-1)
@json_option
@click.pass_context
@_friendly
def find_command(ctx: click.Context, path: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """List the versions of PATH whose metadata matches every KEY=VALUE (exact match)."""
    console, _ = _consoles()
    node = _manager(ctx).node(path)
    criteria = _criteria(pairs)
    index = {v["version_id"]: i for i, v in enumerate(node.versions)}
    found = node.find_versions(**criteria)
    if as_json:
        print_json({"path": node.fullpath,
                    "versions": [version_row(v, index.get(v["version_id"])) for v in found]})
        return
    if not found:
        console.print(f"{path}: no matching version", highlight=False)
        return
    rows = [{**v, "index": index.get(v["version_id"], "")} for v in found]
    print_table(console, _version_table(rows, title=f"{len(found)} matching version(s) of {path}"))


def _is_prefix(storage: Any, target: str) -> bool:
    """True for ``mount:``, ``dir/`` or an existing directory; False for a file (even a
    deleted one that still has history)."""
    if target.endswith((":", "/")):
        return True
    node = storage.node(target)
    if node.is_file() or node.versions:
        return False
    if node.is_dir():
        return True
    from storied import StorageNotFoundError

    raise StorageNotFoundError(f"{target}: no such file or directory (end a prefix with '/')")


@click.command("cleanup")
@click.argument("target")
@click.option("--keep-last", type=click.IntRange(min=0), default=None,
              help="Keep the newest N versions.")
@click.option("--keep-days", type=click.FloatRange(min=0), default=None,
              help="Keep versions written less than D days ago.")
@click.option("--dry-run", is_flag=True, help="Show the plan; delete nothing.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Files worked on at once (default 8 on a remote storage, else 1).")
@json_option
@click.pass_context
@_friendly
def cleanup_command(ctx: click.Context, target: str, keep_last: int | None,
                    keep_days: float | None, dry_run: bool, workers: int | None,
                    as_json: bool) -> None:
    """Remove old versions of a file, or of every file under a prefix (ending in ':' or '/').

    A version stays when any rule keeps it; the current version, tagged versions and versions
    in a snapshot always stay. Without --keep-last or --keep-days nothing is removed.
    """
    console, err = _consoles()
    if keep_last is None and keep_days is None:
        err.print("no rule given (--keep-last / --keep-days): nothing would be removed")
    storage = _manager(ctx)
    if _is_prefix(storage, target):
        with _progress("planning" if dry_run else "cleaning") as progress:
            result = storage.bulk_cleanup_versions(target, keep_last=keep_last,
                                                   keep_days=keep_days, dry_run=dry_run,
                                                   progress=progress, workers=workers)
        kept = _kept_by_server(result)
        if as_json:
            print_json({"target": target, "dry_run": dry_run,
                        "files": {p: list(v) for p, v in sorted(result.items())},
                        "removed" if not dry_run else "would_remove":
                            sum(len(v) for v in result.values()),
                        "kept_by_server": kept})
            return
        table = Table(title=f"cleanup of {target}" + (" (dry run)" if dry_run else ""))
        table.add_column("file")
        table.add_column("versions " + ("to remove" if dry_run else "removed"), justify="right")
        if kept:
            table.add_column("kept by the server (object lock)", justify="right")
        for path in sorted(set(result) | set(kept)):
            row = [path, str(len(result.get(path, ())))]
            table.add_row(*row, *([str(len(kept.get(path, ())))] if kept else []))
        if result or kept:
            print_table(console, table)
        total = sum(len(v) for v in result.values())
        verb = "would remove" if dry_run else "removed"
        console.print(f"{verb} {counted(total, 'version')} from {counted(len(result), 'file')}",
                      highlight=False)
        _print_kept(console, kept)
        return
    node = storage.node(target)
    plan = node.cleanup_versions(keep_last=keep_last, keep_days=keep_days, dry_run=True)
    held: list[str] = []
    if not dry_run:
        removed = node.cleanup_versions(keep_last=keep_last, keep_days=keep_days)
        gone = {v["version_id"] for v in removed}
        held = list(getattr(removed, "kept_by_server", []))
    else:
        gone = {row["version_id"] for row in plan if not row["keep"]}
    if as_json:
        print_json({"target": target, "dry_run": dry_run, "versions": [
            {"version_id": row["version_id"], "last_modified": row["last_modified"],
             "size": row["size"], "removed" if not dry_run else "would_remove":
                 row["version_id"] in gone,
             "reasons": _reasons(row, held)} for row in plan],
            "kept_by_server": held})
        return
    table = Table(title=f"cleanup of {target}" + (" (dry run)" if dry_run else ""))
    table.add_column("#", justify="right")
    table.add_column("version", no_wrap=True)
    table.add_column("written (UTC)", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("decision")
    table.add_column("reasons")
    for i, row in enumerate(plan):
        if row["version_id"] in gone:
            decision = Text("remove" if dry_run else "removed", style="red")
        else:
            decision = Text("keep", style="green")
        reasons = ", ".join(_reasons(row, held)) or "-"
        table.add_row(str(i), _short(row["version_id"]), _when(row["last_modified"]),
                      str(row["size"]), decision, reasons)
    print_table(console, table)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(gone)} of {counted(len(plan), 'version')}", highlight=False)
    _print_kept(console, {node.fullpath: held} if held else {})


def _kept_by_server(result: Any) -> dict[str, list[str]]:
    """``{path: [version ids]}`` an S3 Object Lock bucket refused to delete (a bulk result's
    ``kept_by_server``), sorted by path."""
    kept = getattr(result, "kept_by_server", None) or {}
    return {path: list(ids) for path, ids in sorted(kept.items()) if ids}


def _reasons(row: dict[str, Any], held: list[str]) -> list[str]:
    """A plan row's reasons, plus ``kept by the server (object lock)`` for a version the
    server refused to delete."""
    reasons = [r for r in row["reasons"] if r != "remove"]
    return [*reasons, _KEPT] if row["version_id"] in held else reasons


_KEPT = "kept by the server (object lock)"


def _print_kept(console: Any, kept: dict[str, list[str]]) -> None:
    """The summary line of the versions an Object Lock bucket refused to delete (nothing
    when it refused none)."""
    if kept:
        count = sum(len(ids) for ids in kept.values())
        console.print(f"{_KEPT}: {counted(count, 'version')} in {counted(len(kept), 'file')}",
                  highlight=False)


@click.command("compact")
@click.argument("prefix")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Files worked on at once (default 8 on a remote storage, else 1).")
@json_option
@click.pass_context
@_friendly
def compact_command(ctx: click.Context, prefix: str, dry_run: bool, workers: int | None,
                    as_json: bool) -> None:
    """Remove consecutive duplicate versions of every file under PREFIX."""
    console, _ = _consoles()
    storage = _manager(ctx)
    with _progress("planning" if dry_run else "compacting") as progress:
        result = storage.bulk_compact_versions(prefix, dry_run=dry_run, progress=progress,
                                               workers=workers)
    kept = _kept_by_server(result)
    if as_json:
        print_json({"target": prefix, "dry_run": dry_run, "files": dict(sorted(result.items())),
                    "removed" if not dry_run else "would_remove": sum(result.values()),
                    "kept_by_server": kept})
        return
    for path in sorted(set(result) | set(kept)):
        held = f" (kept by the server: {len(kept[path])})" if path in kept else ""
        console.print(f"{path}: {result.get(path, 0)}{held}", highlight=False)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {counted(sum(result.values()), 'duplicate version')} from "
                  f"{counted(len(result), 'file')}",
                  highlight=False)
    _print_kept(console, kept)


# ---------------------------------------------------------------------------- snapshots
@click.group("snapshot")
def snapshot_group() -> None:
    """Record, list, show, restore and delete snapshots (which version of every file)."""


@snapshot_group.command("create")
@click.argument("prefix")
@click.argument("tag")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Files worked on at once (default 8 on a remote storage, else 1).")
@click.pass_context
@_friendly
def snapshot_create(ctx: click.Context, prefix: str, tag: str, workers: int | None) -> None:
    """Record the current version of every file under PREFIX as snapshot TAG."""
    console, _ = _consoles()
    snap = _manager(ctx).create_snapshot(prefix, tag, workers=workers)
    files = counted(len(snap["files"]), "file")
    console.print(f"snapshot {snap['tag']}: {files} of {snap['prefix']}", highlight=False)


@snapshot_group.command("list")
@click.argument("prefix", required=False)
@json_option
@click.pass_context
@_friendly
def snapshot_list(ctx: click.Context, prefix: str | None, as_json: bool) -> None:
    """List snapshots (optionally only those within PREFIX)."""
    console, _ = _consoles()
    rows = _manager(ctx).list_snapshots(prefix)
    if as_json:
        print_json([{"tag": r["tag"], "prefix": r["prefix"], "created": r["created"],
                     "file_count": r["file_count"]} for r in rows])
        return
    if not rows:
        console.print("no snapshots")
        return
    table = Table()
    table.add_column("tag")
    table.add_column("prefix")
    table.add_column("created")
    table.add_column("files", justify="right")
    for row in rows:
        table.add_row(row["tag"], row["prefix"], _when(row["created"]), str(row["file_count"]))
    print_table(console, table)


@snapshot_group.command("show")
@click.argument("tag")
@json_option
@click.pass_context
@_friendly
def snapshot_show(ctx: click.Context, tag: str, as_json: bool) -> None:
    """Show the files of snapshot TAG and the version recorded for each."""
    console, _ = _consoles()
    snap = _manager(ctx).get_snapshot(tag)
    if as_json:
        print_json({"tag": snap["tag"], "prefix": snap["prefix"], "created": snap["created"],
                    "files": dict(sorted(snap["files"].items()))})
        return
    table = Table(title=f"snapshot {snap['tag']} of {snap['prefix']} "
                        f"({_when(snap['created'])})")
    table.add_column("file")
    table.add_column("version")
    for path, vid in sorted(snap["files"].items()):
        table.add_row(path, vid)
    print_table(console, table)


@snapshot_group.command("restore")
@click.argument("tag")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--delete-new", is_flag=True,
              help="Also delete files created under the prefix after the snapshot.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Files worked on at once (default 8 on a remote storage, else 1).")
@click.pass_context
@_friendly
def snapshot_restore(ctx: click.Context, tag: str, dry_run: bool, delete_new: bool,
                     workers: int | None) -> None:
    """Write every file of snapshot TAG back as it was (as new versions)."""
    console, _ = _consoles()
    storage = _manager(ctx)
    with _progress("checking" if dry_run else "restoring") as progress:
        report = storage.restore_snapshot(tag, dry_run=dry_run, delete_new=delete_new,
                                          progress=progress, workers=workers)
    would = "would be " if dry_run else ""
    for path in report["restored"]:
        console.print(f"{would}restored {path}", highlight=False)
    for path in report["deleted"]:
        console.print(f"deleted {path}", highlight=False)
    for path in report["new"]:
        if path not in report["deleted"]:
            hint = "" if delete_new else " (kept; --delete-new removes it)"
            console.print(f"new since snapshot: {path}{hint}", highlight=False)
    console.print(
        f"{len(report['restored'])} {would}restored, {len(report['unchanged'])} unchanged, "
        f"{len(report['new'])} new, {len(report['deleted'])} deleted",
        highlight=False,
    )


@snapshot_group.command("delete")
@click.argument("tag")
@click.pass_context
@_friendly
def snapshot_delete(ctx: click.Context, tag: str) -> None:
    """Delete snapshot TAG (its versions lose that protection; no file changes)."""
    console, _ = _consoles()
    _manager(ctx).delete_snapshot(tag)
    console.print(f"deleted snapshot {tag}", highlight=False)


COMMANDS = (tag_command, untag_command, tags_command, annotate_command, find_command,
            cleanup_command, compact_command, snapshot_group)


def register(group: click.Group) -> None:
    """Add the version-management commands to ``group`` (the ``storied`` CLI)."""
    for command in COMMANDS:
        group.add_command(command)
