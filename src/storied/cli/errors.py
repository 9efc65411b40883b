"""How the ``storied`` command reports a failure: one line on standard error and an exit code.

=====================================  ==========================================================
what happened                          what the user sees (standard error), exit code
=====================================  ==========================================================
a storied error (``StorageError``)     ``error: <message>``, 1
a command error (``ClickException``)   ``error: <message>``, 1
a usage error (bad option/argument)    click's usage message (``Usage: ...`` / ``Error: ...``), 2
Ctrl-C (``KeyboardInterrupt``)         ``error: interrupted``, 130
output pipe closed (``| head``)        nothing (the reader went away), 1
anything else (a bug)                  ``error: internal error: <type>: <message> (run
                                       'storied --debug ...' for the traceback)``, 1
=====================================  ==========================================================

With ``--debug`` (or ``STORIED_DEBUG=1`` in the environment) the traceback is printed first.
Messages are folded onto one line and control characters are escaped, so a file name cannot
move the cursor or fake more output.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Sequence

import click

from storied.errors import StorageError

__all__ = ["Escaped", "debug_requested", "exit_code_for", "one_line"]

INTERRUPTED = 130


class Escaped(Exception):
    """Carries a ``KeyboardInterrupt`` or ``EOFError`` past click, which would turn both into
    ``Abort`` ("Aborted!") and lose which one it was."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


def debug_requested(argv: Sequence[str]) -> bool:
    """True when ``--debug`` is among the options (before ``--``) or ``STORIED_DEBUG`` is set."""
    if os.environ.get("STORIED_DEBUG", "").strip() not in ("", "0"):
        return True
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--debug":
            return True
    return False


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become spaces, other control characters are escaped."""
    folded = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in folded
    )


def _say(line: str) -> None:
    try:
        click.echo(line, err=True)
    except (OSError, ValueError):  # standard error itself is gone: nothing left to tell
        pass


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and len(exc.args) == 1 and not isinstance(exc, StorageError):
        return one_line(repr(exc.args[0]))
    return one_line(str(exc))


def _is_broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno == errno.EPIPE
    )


def _silence_stdout() -> None:
    """Point standard output at /dev/null so that the interpreter's final flush of a closed
    pipe does not print "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (CliRunner)
        pass


def _unwrap(exc: BaseException) -> BaseException:
    """The exception that really happened, under click's and our own wrappers."""
    if isinstance(exc, Escaped):
        return exc.original
    if isinstance(exc, click.exceptions.Abort) and isinstance(
        exc.__cause__, (KeyboardInterrupt, EOFError)
    ):
        return exc.__cause__
    return exc


def exit_code_for(exc: BaseException, debug: bool = False) -> int:
    """Report ``exc`` as the table in this module's docstring says; return the exit code."""
    exc = _unwrap(exc)
    if _is_broken_pipe(exc):
        _silence_stdout()
        return 1
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if debug and not isinstance(exc, click.ClickException | click.exceptions.Abort):
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, click.exceptions.Abort) and exc.__cause__ is None
    ):
        _say("error: interrupted")
        return INTERRUPTED
    if isinstance(exc, click.exceptions.UsageError):
        exc.show()
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        _say(f"error: {one_line(exc.format_message())}")
        return exc.exit_code or 1
    if isinstance(exc, StorageError):
        _say(f"error: {_message(exc) or type(exc).__name__}")
        return 1
    detail = _message(exc)
    hint = "" if debug else " (run 'storied --debug ...' for the traceback)"
    _say(f"error: internal error: {type(exc).__name__}{': ' + detail if detail else ''}{hint}")
    return 1
