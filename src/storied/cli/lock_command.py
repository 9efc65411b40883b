"""The ``storied lock`` command: run a command while holding a node's lock, like ``flock(1)``.

``storied lock MOUNT:PATH [--timeout S] [--ttl S] -- COMMAND [ARG...]`` takes the lock
(:meth:`storied.core.locking.LockMethods.lock`), runs the command with the lease renewed in the
background, releases the lock and exits with the command's exit code. The command's standard
streams are this process's. Exit codes of its own: 1 for a storied error (not acquired in time,
a mount that cannot lock), one line on standard error; 127 when the command is not found, 126
when it cannot be run; and when the lease was lost while the command ran, a line saying so and
the command's code, or 1 if that was 0.
"""

from __future__ import annotations

import subprocess
import sys

import click

__all__ = ["register"]


class _Seconds(click.ParamType):  # type: ignore[type-arg]
    """A number of seconds, or ``none`` (wait forever) where allowed."""

    name = "seconds"

    def __init__(self, allow_none: bool) -> None:
        self.allow_none = allow_none

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float | None:  # fmt: skip
        if value is None or isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if self.allow_none and text in ("none", "inf", "forever"):
            return None
        try:
            return float(text)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)


def _run(argv: list[str]) -> int:
    try:
        return subprocess.call(argv)
    except FileNotFoundError:
        click.echo(f"error: command not found: {argv[0]}", err=True)
        return 127
    except PermissionError:
        click.echo(f"error: command cannot be run: {argv[0]}", err=True)
        return 126
    except OSError as exc:
        click.echo(f"error: command cannot be run: {argv[0]}: {exc.strerror or exc}", err=True)
        return 126


def register(group: click.Group) -> None:
    """Add the command to ``group``."""

    @group.command("lock", context_settings={"ignore_unknown_options": True})
    @click.argument("target", metavar="MOUNT:PATH")
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    @click.option("--timeout", type=_Seconds(True), default=30.0, show_default=True,
                  help="Seconds to wait for the lock (0: one try; 'none': forever).")
    @click.option("--ttl", type=_Seconds(False), default=60.0, show_default=True,
                  help="Seconds the lease lasts without renewal (a crashed holder's lock is "
                       "taken over after that).")
    @click.pass_context
    def lock(ctx: click.Context, target: str, command: tuple[str, ...],
             timeout: float | None, ttl: float) -> None:  # fmt: skip
        """Run COMMAND while holding the lock of MOUNT:PATH (put -- before COMMAND).

        Exits with the command's exit code; 1 when the lock is not acquired in time.
        """
        from storied.cli.main import _manager
        from storied.errors import LockLostError

        storage = _manager(ctx.obj["config"])
        held = storage.node(target).lock(timeout=timeout, ttl=ttl)
        code = 0
        try:
            with held:
                sys.stdout.flush()
                code = _run(list(command))
        except LockLostError as exc:
            click.echo(f"error: {exc}", err=True)
            code = code or 1
        finally:
            storage.close()
        ctx.exit(code)
