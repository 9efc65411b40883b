"""``storied dupes`` and ``storied dedup``."""

from __future__ import annotations

import click

from storied.cli.jsonout import json_option, print_json

__all__ = ["register"]


@click.command("dupes")
@click.argument("prefix")
@click.option("--min-size", type=click.IntRange(min=0), default=1, show_default=True,
              help="Ignore files smaller than this many bytes.")
@json_option
@click.pass_context
def dupes(ctx: click.Context, prefix: str, min_size: int, as_json: bool) -> None:
    """List groups of identical files under PREFIX, most wasted space first."""
    from storied.cli.main import _manager, _size
    from storied.optimize.dedup import describe

    groups = _manager(ctx.obj["config"]).find_duplicates(prefix, min_size=min_size)
    if as_json:
        print_json([describe(g) for g in groups])
        return
    for group in groups:
        click.echo(f"{_size(group.size)} x {len(group.nodes)}  ({_size(group.wasted)} wasted)  "
                   f"{group.digest[:23]}")
        for node in group.nodes:
            click.echo(f"    {node.fullpath}")
    total = sum(g.wasted for g in groups)
    click.echo(f"{len(groups)} groups, {_size(total)} wasted")


@click.command("dedup")
@click.argument("prefix")
@click.option("--strategy", type=click.Choice(["hardlink", "delete", "reference"]),
              required=True, help="How duplicates are removed (delete is destructive).")
@click.option("--dry-run", "-n", is_flag=True, help="Show the plan; change nothing.")
@json_option
@click.pass_context
def dedup(ctx: click.Context, prefix: str, strategy: str, dry_run: bool, as_json: bool) -> None:
    """Keep one copy of each group of identical files under PREFIX."""
    from storied.cli.main import _manager, _size

    report = _manager(ctx.obj["config"]).deduplicate(prefix, strategy=strategy,
                                                      dry_run=dry_run)
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


def register(group: click.Group) -> None:
    """Add the commands to ``group``."""
    group.add_command(dupes)
    group.add_command(dedup)
