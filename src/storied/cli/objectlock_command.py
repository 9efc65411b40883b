"""The ``storied hold``, ``storied retention`` and ``storied class`` commands (issue 11).

::

    storied hold MOUNT:PATH [--version V] [on|off] [--json]
    storied retention MOUNT:PATH [--version V] [--mode M --until ISO | --remove]
                      [--bypass-governance] [--json]
    storied class MOUNT:PATH [NAME] [--json]

Without ``on``/``off``, ``--mode`` or ``NAME`` a command prints the current state. ``--version``
is an index (``-1`` latest, the default), a version id or a tag. ``--until`` is ISO 8601; a
time without a zone is UTC. Errors are one line on stderr and exit status 1 (storied's own errors
through ``main()``, argument errors here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from storied.cli.jsonout import json_option, print_json

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])
_NEGATIVE_OK = {"ignore_unknown_options": True}  # so that ``--version -2`` is an index


def _friendly(func: F) -> F:
    """Plain Python errors (a bad index, a bad date) as one line and exit 1; storied's own
    errors go to ``main()``, which reports them the same way."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from storied import StorageError

        try:
            return func(*args, **kwargs)
        except StorageError:
            raise
        except (IndexError, ValueError, TypeError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _node(ctx: click.Context, path: str) -> Any:
    from storied.cli.main import _manager

    return _manager(ctx.obj["config"]).node(path)


def _version(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException(f"--until: not an ISO 8601 date/time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _echo(line: str) -> None:
    from storied.cli.main import console

    console.print(line, highlight=False, markup=False)


@click.command("hold", context_settings=_NEGATIVE_OK)
@click.argument("path")
@click.argument("state", required=False, type=click.Choice(["on", "off"]))
@click.option("--version", "version", default="-1", show_default=True,
              help="Index, version id or tag.")
@json_option
@click.pass_context
@_friendly
def hold_command(ctx: click.Context, path: str, state: str | None, version: str,
                 as_json: bool) -> None:
    """Put a legal hold on a version of PATH (on), take it off (off), or print it."""
    node = _node(ctx, path)
    wanted = _version(version)
    if state is not None:
        node.set_legal_hold(state == "on", version=wanted)
    held = node.get_legal_hold(version=wanted)
    if as_json:
        print_json({"path": path, "version": wanted, "legal_hold": held})
        return
    _echo(f"{path} version {version}: legal hold {'on' if held else 'off'}")


@click.command("retention", context_settings=_NEGATIVE_OK)
@click.argument("path")
@click.option("--version", "version", default="-1", show_default=True,
              help="Index, version id or tag.")
@click.option("--mode", type=click.Choice(["GOVERNANCE", "COMPLIANCE"], case_sensitive=False),
              help="Retention mode to set (with --until).")
@click.option("--until", "until", help="End of the retention period (ISO 8601; UTC if no zone).")
@click.option("--remove", is_flag=True, help="Remove the retention period (GOVERNANCE needs "
              "--bypass-governance; COMPLIANCE cannot be removed).")
@click.option("--bypass-governance", is_flag=True,
              help="Allow shortening or removing GOVERNANCE retention.")
@json_option
@click.pass_context
@_friendly
def retention_command(ctx: click.Context, path: str, version: str, mode: str | None,
                      until: str | None, remove: bool, bypass_governance: bool,
                      as_json: bool) -> None:
    """Set (--mode and --until), remove (--remove) or print the retention of a version."""
    if remove and (mode or until):
        raise click.ClickException("--remove takes neither --mode nor --until")
    if (mode is None) != (until is None):
        raise click.ClickException("--mode and --until go together")
    node = _node(ctx, path)
    wanted = _version(version)
    if remove:
        node.set_retention(None, None, version=wanted, bypass_governance=bypass_governance)
    elif mode is not None and until is not None:
        node.set_retention(mode.upper(), _until(until), version=wanted,
                           bypass_governance=bypass_governance)
    from storied.policies.retention import clock

    found = node.get_retention(version=wanted)
    expired = found is not None and found["until"] <= clock()
    if as_json:
        print_json({"path": path, "version": wanted,
                    "retention": None if found is None else
                    {"mode": found["mode"], "until": found["until"], "expired": expired}})
        return
    if found is None:
        _echo(f"{path} version {version}: no retention")
    else:
        note = " (expired: no longer protects)" if expired else ""
        _echo(f"{path} version {version}: {found['mode']} until "
              f"{found['until'].isoformat()}{note}")


@click.command("class")
@click.argument("path")
@click.argument("name", required=False)
@json_option
@click.pass_context
@_friendly
def class_command(ctx: click.Context, path: str, name: str | None, as_json: bool) -> None:
    """Print the storage class of PATH, or move it to class NAME (S3)."""
    node = _node(ctx, path)
    if name is not None:
        node.set_storage_class(name.upper())
    found = node.storage_class()
    if as_json:
        print_json({"path": path, "storage_class": found})
        return
    _echo(f"{path}: {found}")


def register(cli: click.Group) -> None:
    """Add this module's commands to ``cli``."""
    cli.add_command(hold_command)
    cli.add_command(retention_command)
    cli.add_command(class_command)
