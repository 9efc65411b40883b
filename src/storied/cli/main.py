"""The ``storied`` command: parse arguments, call the public API, render with rich.

Errors: :class:`StoriedGroup` (the ``storied`` group) is the one handler of the whole CLI (see
:mod:`storied.cli.errors`): a storied error prints ``error: <message>`` and exits 1, anything
else ``error: internal error: <type>: <message>`` and exits 1 (``storied --debug ...`` adds the
traceback), Ctrl-C exits 130, a closed output pipe ends quietly; no traceback otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from storied import StorageError, StorageManager
from storied.cli.errors import Escaped, debug_requested, exit_code_for
from storied.cli.jsonout import json_option, print_json, version_row
from storied.cli.progress import QUIET
from storied.errors import StorageConfigError

__all__ = ["StoriedGroup", "cli", "main"]

# markup=False: file names, tags and messages are printed as they are ("[red]" in a name is text,
# "[/x]" no crash); styled output uses rich Text objects.
console: Console = Console(markup=False)
err: Console = Console(stderr=True, markup=False)


def _manager(config: str | None) -> StorageManager:
    """The manager configured from ``config`` (default ``./storied.yaml``).

    Raises:
        StorageConfigError: The file is missing, unreadable, not UTF-8, not valid YAML/JSON/TOML,
            or describes invalid mounts.
    """
    path = Path(config or "storied.yaml")
    if not path.exists():
        if config:
            raise StorageConfigError(f"configuration file not found: {path}")
        raise StorageConfigError(
            "no storied.yaml in the current folder; pass --config FILE "
            "(a YAML/JSON/TOML list of mounts) or try `storied demo`"
        )
    storage = StorageManager()
    try:
        storage.configure(str(path))
    except StorageError:
        raise
    except (Exception, RecursionError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise StorageConfigError(f"{path}: invalid configuration ({detail})") from exc
    return storage


class StoriedGroup(click.Group):
    """The ``storied`` group; its :meth:`main` turns every failure into one line and an exit code.

    ``main`` is also what click's ``CliRunner`` calls, so tests see exactly what users see.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; Ctrl-C and ``EOFError`` are wrapped so that click (which would turn
        both into "Aborted!") hands them to :meth:`main` unchanged."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, EOFError) as exc:
            raise Escaped(exc) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI. In standalone mode (the default) always ends with ``sys.exit(code)``:
        0 on success, 1 for an error (one line on standard error), 2 for a command-line usage
        error (click's usage message), 130 for Ctrl-C."""
        argv = hoist_globals(list(sys.argv[1:] if args is None else args))
        _tolerant_output()
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, False, **extra)
        try:
            result = super().main(argv, prog_name or "storied", complete_var, False, **extra)
            code = result if isinstance(result, int) else 0
            _flush_stdout()
        except SystemExit:
            raise
        except BaseException as exc:
            code = exit_code_for(exc, debug=debug_requested(argv))
        sys.exit(code)


#: Global options that take a value / that are flags (``-v`` may repeat).
_GLOBAL_VALUED = ("-c", "--config")
_GLOBAL_FLAGS = ("--debug", "-v", "-vv", "--verbose", "-q", "--quiet")


def hoist_globals(argv: list[str]) -> list[str]:
    """Move global options given after the command name (``storied ls -c FILE home:``) in
    front of it, as users of git/aws expect. Nothing after a ``--`` moves (``storied lock
    PATH -- cmd -c x`` keeps the command's own arguments)."""
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    seen_command = False
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if not seen_command and not arg.startswith("-"):
            seen_command = True
            rest.append(arg)
        elif seen_command and arg in _GLOBAL_VALUED and i + 1 < len(argv):
            moved += [arg, argv[i + 1]]
            i += 1
        elif seen_command and (arg.startswith("--config=") or arg in _GLOBAL_FLAGS):
            moved.append(arg)
        elif not seen_command and arg in _GLOBAL_VALUED and i + 1 < len(argv):
            rest += [arg, argv[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return moved + rest if moved else argv


def _tolerant_output() -> None:
    """Let standard output and error print any name: a character the encoding cannot show (a
    non-UTF-8 file name decoded with surrogates, anything on an ASCII terminal) is written as
    a backslash escape instead of failing the command."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that refuses
                pass


def _flush_stdout() -> None:
    """Flush standard output now, so that a reader that went away is noticed here (and handled
    as a broken pipe) rather than at interpreter exit."""
    sys.stdout.flush()


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


@click.group(cls=StoriedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="Mount configuration file (default: ./storied.yaml).",
)
@click.option(
    "--debug", is_flag=True, help="On an error, also print its traceback (STORIED_DEBUG=1 too)."
)
@click.option("--verbose", "-v", count=True,
              help="Log storage requests and retries to standard error (-vv: more).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.version_option(package_name="storied", prog_name="storied")
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool, verbose: int, quiet: bool) -> None:
    """storied: one API and one history for every storage.

    Exit codes: 0 success, 1 failure (one line on standard error), 2 usage error, 130 Ctrl-C.
    Global options (-c, --debug, -v, -q) may also follow the command name.
    """
    ctx.obj = {"config": config, "debug": debug}
    QUIET["on"] = quiet
    if verbose:
        import logging

        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        for name in ("storied", "botocore") if verbose > 1 else ("storied",):
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            # -v: storied at INFO (retries, give-ups); -vv: storied at DEBUG (every request)
            logger.setLevel(logging.DEBUG if verbose > 1 and name == "storied" else logging.INFO)


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

    try:
        run_demo(Console(), keep)
    except StorageError:
        raise
    except OSError as exc:  # the --keep folder cannot be created or written
        where = exc.filename or keep or "the temporary folder"
        reason = exc.strerror or exc
        raise click.ClickException(f"cannot run the demo in {where}: {reason}") from exc


@cli.command("ls")
@click.argument("path")
@click.option("--long", "-l", "long_", is_flag=True, help="Show size and modification time.")
@json_option
@click.pass_context
def ls_command(ctx: click.Context, path: str, long_: bool, as_json: bool) -> None:
    """List a directory (PATH is mount:path)."""
    node = _manager(ctx.obj["config"]).node(path)
    entries = [node] if node.is_file() else node.children()
    if as_json:
        print_json([_entry_row(child) for child in entries])
        return
    if not sys.stdout.isatty():  # plain lines: never cut or wrapped for a pipe
        for child in entries:
            info = child._listed or child.info()
            name = child.basename + ("/" if info.is_dir else "")
            if long_:
                size = "-" if info.is_dir else str(info.size)
                click.echo(f"{size:>12}  {_mtime(info.mtime)}  {name}")
            else:
                click.echo(name)
        return
    table = Table(show_header=long_, box=None)
    table.add_column("name")
    if long_:
        table.add_column("size", justify="right")
        table.add_column("modified")
    for child in entries:
        info = child._listed or child.info()
        name = child.basename + ("/" if info.is_dir else "")
        if long_:
            table.add_row(name, "-" if info.is_dir else _size(info.size), _mtime(info.mtime))
        else:
            table.add_row(name)
    console.print(table)


def _mtime(mtime: float | None) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(mtime).isoformat(" ", "seconds") if mtime else "-"


def _entry_row(node: Any) -> dict[str, Any]:
    """The stable JSON keys of one ``ls`` entry."""
    from datetime import UTC, datetime

    info = node._listed or node.info()
    return {
        "name": node.basename,
        "path": node.fullpath,
        "type": "directory" if info.is_dir else "file",
        "size": None if info.is_dir else info.size,
        "modified": datetime.fromtimestamp(info.mtime, UTC) if info.mtime else None,
        "etag": None if info.is_dir else (info.etag or None),
    }


@cli.command()
@click.argument("path")
@click.option("--version", "-V", "version", default=None,
              help="Print this version (index such as -2, version id, or tag).")
@click.pass_context
def cat(ctx: click.Context, path: str, version: str | None) -> None:
    """Write a file's content to standard output (streamed)."""
    from storied.cli.manage import parse_version

    node = _manager(ctx.obj["config"]).node(path)
    out = sys.stdout.buffer
    if version is None:
        for chunk in node.iter_bytes():
            out.write(chunk)
    else:
        with node.open("rb", version=parse_version(version)) as stream:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
    out.flush()


@cli.command()
@click.argument("path")
@json_option
@click.pass_context
def log(ctx: click.Context, path: str, as_json: bool) -> None:
    """Print a file's history, one version per line, newest first."""
    node = _manager(ctx.obj["config"]).node(path)
    found = node.versions
    if as_json:  # oldest first, like node.versions; an empty history is an empty list
        print_json({"path": node.fullpath,
                    "versions": [version_row(v, i) for i, v in enumerate(found)]})
        return
    if not found:
        raise click.ClickException(
            f"{node.fullpath}: no history (mount without versioning, or never written)"
        )
    for version in reversed(found):
        mark = "*" if version["is_latest"] else " "
        when = version["last_modified"].isoformat(" ", "seconds")
        etag = (version["etag"] or "-")[:12]
        click.echo(f"{mark} {version['version_id']}  {when}  {version['size']:>10}  {etag}")


@cli.command()
@click.argument("prefix", required=False)
@json_option
@click.pass_context
def verify(ctx: click.Context, prefix: str | None, as_json: bool) -> None:
    """Check the history of PREFIX (mount:path), or of every versioned mount.

    Exits 1 when an invariant is broken; orphans and stale working copies are listed but allowed.
    """
    storage = _manager(ctx.obj["config"])
    try:
        report = storage.verify(prefix)
    except StorageError as exc:
        if prefix is None or not _is_check_failure(exc):
            raise
        _verify_failed(exc, as_json)
    except Exception as exc:
        _verify_failed(exc, as_json)
    if as_json:
        print_json({"ok": report.ok, "checked": report.checked, "problems": report.problems,
                    "orphans": report.orphans, "stale": report.stale})
        if not report.ok:
            sys.exit(1)
        return
    for title, items, style in (("problem", report.problems, "red"),
                                ("orphan", report.orphans, "yellow"),
                                ("stale", report.stale, "yellow")):
        for item in items:
            console.print(Text.assemble((title, style), " ", str(item)))
    status = Text("ok", style="green") if report.ok else Text("BROKEN", style="red")
    console.print(Text.assemble(
        status, f": {report.checked} records checked, {len(report.problems)} problems, "
                f"{len(report.orphans)} orphans, {len(report.stale)} stale"))
    if not report.ok:
        sys.exit(1)


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    bash: `eval "$(storied completion bash)"` in ~/.bashrc; zsh: the same in ~/.zshrc;
    fish: `storied completion fish > ~/.config/fish/completions/storied.fish`.
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the choices are click's own shells
    click.echo(cls(cli, {}, "storied", "_STORIED_COMPLETE").source())


def _is_check_failure(exc: StorageError) -> bool:
    """True when ``verify`` failed while checking (not because the prefix is wrong)."""
    from storied.errors import (
        InvalidPathError,
        MountNotFoundError,
        PathEscapeError,
        UnsupportedOperation,
    )

    return not isinstance(
        exc, MountNotFoundError | InvalidPathError | PathEscapeError | UnsupportedOperation
    )


def _verify_failed(exc: BaseException, as_json: bool = False) -> NoReturn:
    """Report a check that could not complete as a problem (a report, not a traceback)."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    if as_json:
        print_json({"ok": False, "checked": 0, "orphans": [], "stale": [],
                    "problems": [f"verify could not complete: {reason}"]})
        sys.exit(1)
    console.print(Text.assemble(("problem", "red"), f" verify could not complete: {reason}"))
    console.print(Text.assemble(("BROKEN", "red"), ": verification stopped, 1 problem"))
    sys.exit(1)


def _register_extras() -> None:
    """Add the commands that live in their own modules (version management, diffs)."""
    from storied.cli import (
        diff_command,
        files,
        lock_command,
        manage,
        objectlock_command,
        optimize_command,
        watch_command,
        web_command,
    )

    for command in files.COMMANDS:
        cli.add_command(command)
    manage.register(cli)
    diff_command.register(cli)
    watch_command.register(cli)
    lock_command.register(cli)
    web_command.register(cli)
    optimize_command.register(cli)
    objectlock_command.register(cli)


_register_extras()


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point (the ``storied`` script): run the CLI and exit with its code.

    Never raises but ``SystemExit``: see :class:`StoriedGroup` for the codes and messages.
    """
    cli.main(args=argv, prog_name="storied")
    raise SystemExit(0)  # pragma: no cover - cli.main always exits
