"""The ``storied`` command: parse arguments, call the public API, render with rich."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from storied import StorageError, StorageManager

__all__ = ["cli", "main"]

console = Console()
err = Console(stderr=True)


def _manager(config: str | None) -> StorageManager:
    path = Path(config or "storied.yaml")
    if not path.exists():
        if config:
            raise click.UsageError(f"configuration file not found: {path}")
        raise click.UsageError(
            "no storied.yaml in the current folder; pass --config FILE "
            "(a YAML/JSON/TOML list of mounts) or try `storied demo`"
        )
    storage = StorageManager()
    storage.configure(str(path))
    return storage


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="Mount configuration file (default: ./storied.yaml).",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """storied: one API and one history for every storage."""
    ctx.obj = {"config": config}


@cli.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    default=None,
    help="Run the tour in this folder and keep it (default: a temporary folder).",
)
def demo(keep: str | None) -> None:
    """A short tour of mounts, nodes, copies and permissions on a local folder."""
    from storied.cli.demo import run_demo

    run_demo(console, keep)


@cli.command("ls")
@click.argument("path")
@click.option("--long", "-l", "long_", is_flag=True, help="Show size and modification time.")
@click.pass_context
def ls_command(ctx: click.Context, path: str, long_: bool) -> None:
    """List a directory (PATH is mount:path)."""
    node = _manager(ctx.obj["config"]).node(path)
    entries = [node] if node.is_file() else node.children()
    table = Table(show_header=long_, box=None)
    table.add_column("name")
    if long_:
        table.add_column("size", justify="right")
        table.add_column("modified")
    for child in entries:
        info = child._listed or child.info()
        name = child.basename + ("/" if info.is_dir else "")
        if long_:
            from datetime import datetime

            when = (
                datetime.fromtimestamp(info.mtime).isoformat(" ", "seconds") if info.mtime else "-"
            )
            table.add_row(name, "-" if info.is_dir else _size(info.size), when)
        else:
            table.add_row(name)
    console.print(table)


@cli.command()
@click.argument("path")
@click.pass_context
def cat(ctx: click.Context, path: str) -> None:
    """Write a file's content to standard output (streamed)."""
    node = _manager(ctx.obj["config"]).node(path)
    out = sys.stdout.buffer
    for chunk in node.iter_bytes():
        out.write(chunk)
    out.flush()


@cli.command()
@click.argument("source")
@click.argument("dest")
@click.option(
    "--skip",
    type=click.Choice(["never", "exists", "size", "hash"]),
    default="never",
    show_default=True,
    help="When to leave an existing destination file alone.",
)
@click.option("--include", multiple=True, help="Only copy files matching this glob.")
@click.option("--exclude", multiple=True, help="Do not copy files matching this glob.")
@click.pass_context
def cp(
    ctx: click.Context,
    source: str,
    dest: str,
    skip: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
) -> None:
    """Copy SOURCE to DEST (mount:path each), with a progress bar."""
    storage = _manager(ctx.obj["config"])
    counts = {"copied": 0, "skipped": 0}
    columns = (
        TextColumn("[bold]copying"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total} files"),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("copy", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        storage.node(source).copy_to(
            storage.node(dest),
            skip=skip,
            include=list(include) or None,
            exclude=list(exclude) or None,
            progress=progress,
            on_file=lambda n: counts.__setitem__("copied", counts["copied"] + 1),
            on_skip=lambda n, r: counts.__setitem__("skipped", counts["skipped"] + 1),
        )
    console.print(f"{counts['copied']} copied, {counts['skipped']} skipped")


@cli.command()
@click.argument("path")
@click.pass_context
def log(ctx: click.Context, path: str) -> None:
    """Print a file's history, one version per line, newest first."""
    node = _manager(ctx.obj["config"]).node(path)
    found = node.versions
    if not found:
        err.print(f"{node.fullpath}: no history (mount without versioning, or never written)")
        sys.exit(1)
    for version in reversed(found):
        mark = "*" if version["is_latest"] else " "
        when = version["last_modified"].isoformat(" ", "seconds")
        etag = (version["etag"] or "-")[:12]
        click.echo(f"{mark} {version['version_id']}  {when}  {version['size']:>10}  {etag}")


@cli.command()
@click.argument("prefix", required=False)
@click.pass_context
def verify(ctx: click.Context, prefix: str | None) -> None:
    """Check the history of PREFIX (mount:path), or of every versioned mount.

    Exits 1 when an invariant is broken; orphans and stale working copies are listed but allowed.
    """
    report = _manager(ctx.obj["config"]).verify(prefix)
    for title, items, style in (("problem", report.problems, "red"),
                                ("orphan", report.orphans, "yellow"),
                                ("stale", report.stale, "yellow")):
        for item in items:
            console.print(f"[{style}]{title}[/{style}] {item}")
    status = "[green]ok[/green]" if report.ok else "[red]BROKEN[/red]"
    console.print(f"{status}: {report.checked} records checked, {len(report.problems)} problems, "
                  f"{len(report.orphans)} orphans, {len(report.stale)} stale")
    if not report.ok:
        sys.exit(1)


def _register_extras() -> None:
    """Add the commands that live in their own modules (version management, diffs)."""
    from storied.cli import diff_command, manage

    manage.register(cli)
    diff_command.register(cli)


_register_extras()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning storied errors into a one-line message and exit 1."""
    try:
        cli.main(args=argv, prog_name="storied", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StorageError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
