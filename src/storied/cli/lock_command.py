"""The ``storied lock`` command: run a command while holding a node's lock, like ``flock(1)``.

``storied lock MOUNT:PATH [--timeout S] [--ttl S] -- COMMAND [ARG...]`` takes the lock
(:meth:`storied.core.locking.LockMethods.lock`), runs the command with the lease renewed in the
background, releases the lock and exits with the command's exit code. The command's standard
streams are this process's. Exit codes of its own: 1 for a storied error (not acquired in time,
a mount that cannot lock), one line on standard error; 127 when the command is not found, 126
when it cannot be run. SIGTERM and SIGHUP are passed on to the command; Ctrl-C reaches it from
the terminal. When the lease is lost while the command runs (this process was paused past the
ttl, or the storage was unreachable for that long), the command is terminated (SIGTERM) and a
line says so: exit with its code, or 1 if that was 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from storied.core.locking import Lock

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


def _start(argv: list[str]) -> subprocess.Popen[bytes] | int:
    """The running command, or the exit code of its failure to start."""
    try:
        return subprocess.Popen(argv)
    except FileNotFoundError:
        click.echo(f"error: command not found: {argv[0]}", err=True)
        return 127
    except PermissionError:
        click.echo(f"error: command cannot be run: {argv[0]}", err=True)
        return 126
    except OSError as exc:
        click.echo(f"error: command cannot be run: {argv[0]}: {exc.strerror or exc}", err=True)
        return 126


def _run(argv: list[str], lock: Lock) -> int:
    """Run the command to its end, SIGTERM and SIGHUP passed on to it (Ctrl-C reaches it from
    the terminal); terminate it when the lease is lost. Its exit code (128 + N when a signal N
    ended it)."""
    proc = _start(argv)
    if isinstance(proc, int):
        return proc
    forward = {sig: signal.signal(sig, lambda n, _f: proc.send_signal(n))
               for sig in (signal.SIGTERM, signal.SIGHUP)}  # fmt: skip
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if lock.lost and proc.poll() is None:
                    click.echo("error: lease lost while the command ran: terminating it",
                               err=True)
                    proc.terminate()
    finally:
        for sig, handler in forward.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, interrupt)
    return 128 - code if code < 0 else code


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
                code = _run(list(command), held)
        except LockLostError as exc:
            click.echo(f"error: {exc}", err=True)
            code = code or 1
        finally:
            storage.close()
        ctx.exit(code)
