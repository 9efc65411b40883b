"""The progress bar of the long-running commands (cp, cleanup, compact, snapshot restore)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

__all__ = ["QUIET", "progress_bar"]

#: Set by ``storied -q``: no progress bars.
QUIET = {"on": False}


def _wanted(console: Console) -> bool:
    """Bars only on a terminal, without ``-q`` and without ``NO_COLOR``."""
    return console.is_terminal and not QUIET["on"] and not os.environ.get("NO_COLOR")


@contextmanager
def progress_bar(label: str, console: Console) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on ``console``; yields the ``progress(done, total)`` callback.

    The bar appears at the first callback only: a command that fails before any work (a missing
    source, an unknown snapshot) prints its one error line and nothing else. Off the terminal,
    with ``-q`` or with ``NO_COLOR`` set there is no bar (the callback does nothing).
    """
    if not _wanted(console):
        yield lambda done, total: None
        return
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total} files"),
    )
    bar = Progress(*columns, console=console, transient=False)
    task = bar.add_task(label, total=None)
    started = False

    def progress(done: int, total: int) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.update(task, completed=done, total=total)

    try:
        yield progress
    finally:
        if started:
            bar.stop()
