"""``storied dupes`` and ``storied dedup``."""

from __future__ import annotations

from typing import Any

import click

from storied.cli.jsonout import json_option, print_json

__all__ = ["register"]


def _where(ctx: click.Context, prefix: str) -> tuple[Any, str]:
    """The manager and ``mount:path`` of PREFIX: a configured mount path, a URL, or a local
    directory (through the CLI's implicit local mount; no configuration needed)."""
    from storied.cli.files import resolve, storage_for
    from storied.core.urls import is_url

    storage = storage_for(ctx, prefix)
    if is_url(prefix):
        return storage, prefix
    return storage, str(resolve(storage, prefix).fullpath)


def _shown(fullpath: str) -> str:
    """A path as the user gave it: local files as paths, others as ``mount:path``."""
    from storied.cli.files import _LOCAL

    mount, _, rest = fullpath.partition(":")
    return "/" + rest if mount == _LOCAL else fullpath


@click.command("dupes")
@click.argument("prefix")
@click.option("--min-size", type=click.IntRange(min=0), default=1, show_default=True,
              help="Ignore files smaller than this many bytes.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Files hashed at once (default: 1 on local disks, 8 elsewhere).")
@json_option
@click.pass_context
def dupes(ctx: click.Context, prefix: str, min_size: int, workers: int | None,
          as_json: bool) -> None:
    """List groups of identical files under PREFIX (mount:path or a local directory), most
    wasted space first."""
    from storied.cli.main import _size
    from storied.optimize.dedup import describe

    storage, where = _where(ctx, prefix)
    groups = storage.find_duplicates(where, min_size=min_size, workers=workers)
    if as_json:
        print_json([{**describe(g), "paths": [_shown(n.fullpath) for n in g.nodes]}
                    for g in groups])
        return
    for group in groups:
        click.echo(f"{_size(group.size)} x {len(group.nodes)}  ({_size(group.wasted)} wasted)  "
                   f"{group.digest[:23]}")
        for node in group.nodes:
            click.echo(f"    {_shown(node.fullpath)}")
    total = sum(g.wasted for g in groups)
    click.echo(f"{len(groups)} groups, {_size(total)} wasted")


@click.command("dedup")
@click.argument("prefix")
@click.option("--strategy", type=click.Choice(["hardlink", "delete", "reference"]),
              required=True, help="How duplicates are removed (delete is destructive).")
@click.option("--dry-run", "-n", is_flag=True, help="Show the plan; change nothing.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Groups handled at once (default: 1 on local disks, 8 elsewhere).")
@json_option
@click.pass_context
def dedup(ctx: click.Context, prefix: str, strategy: str, dry_run: bool, workers: int | None,
          as_json: bool) -> None:
    """Keep one copy of each group of identical files under PREFIX (mount:path or a local
    directory). `reference`: every copy becomes a small reference to one content copy kept
    in the mount's .storied/ area (reads, sizes and MD5s stay those of the file; writing a
    path replaces only it); `storied dedup-gc MOUNT` removes copies no file names any more."""
    from storied.cli.files import _LOCAL
    from storied.cli.main import _size

    storage, where = _where(ctx, prefix)
    if strategy == "reference" and where.partition(":")[0] == _LOCAL:
        raise click.UsageError(
            "--strategy reference needs a configured mount (its content copies live in the "
            "mount's .storied/ area, and only that mount resolves its references): give "
            "mount:path, with the mount in storied.yaml")
    report = storage.deduplicate(where, strategy=strategy, dry_run=dry_run, workers=workers)
    for group in report["groups"]:
        group["kept"] = _shown(group["kept"])
        group["done"] = [_shown(p) for p in group["done"]]
        for skipped in group["skipped"]:
            skipped["path"] = _shown(skipped["path"])
    if as_json:
        print_json(report)
        return
    verb = "would " if dry_run else ""
    for group in report["groups"]:
        for path in group["done"]:
            click.echo(f"{verb}{strategy} {path} (kept {group['kept']})")
        for skipped in group["skipped"]:
            click.echo(f"skipped {skipped['path']}: {skipped['reason']}")
    click.echo(f"{verb}reclaim {_size(report['bytes_reclaimed'])}")


@click.command("dedup-gc")
@click.argument("mount")
@click.option("--grace", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              help="Seconds between condemning an unreferenced content copy and removing it "
                   "(0: both now; only while no dedup runs on the mount).")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would go; change nothing.")
@json_option
@click.pass_context
def dedup_gc(ctx: click.Context, mount: str, grace: float, dry_run: bool,
             as_json: bool) -> None:
    """Remove the content copies of `dedup --strategy reference` that no file names any more
    (MOUNT: a configured mount name)."""
    from storied.cli.files import storage_for
    from storied.cli.main import _size

    name, _, rest = mount.partition(":")
    if rest.strip("/") or not name:
        raise click.ClickException(
            f"dedup-gc works on a whole mount: give its name (e.g. {name or 'home'!r}), "
            f"not {mount!r}")
    storage = storage_for(ctx, f"{name}:")
    report = storage.collect_references(name, grace=grace, dry_run=dry_run)
    if as_json:
        print_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    for path in report["removed"]:
        click.echo(f"{verb} {path}")
    click.echo(f"{report['copies']} content copies, {report['referenced']} referenced, "
               f"{len(report['condemned'])} condemned now, {verb} {len(report['removed'])} "
               f"({_size(report['bytes_freed'])})")


def register(group: click.Group) -> None:
    """Add the commands to ``group``."""
    group.add_command(dupes)
    group.add_command(dedup)
    group.add_command(dedup_gc)
