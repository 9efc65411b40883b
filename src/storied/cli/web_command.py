"""The ``storied web`` command."""

from __future__ import annotations

import click

__all__ = ["register"]


def register(group: click.Group) -> None:
    """Add the command to ``group``."""
