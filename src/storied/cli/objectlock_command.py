"""The ``storied hold``, ``storied retention`` and ``storied class`` commands (issue 11).

Placeholder until the object-lock work lands: registers nothing yet."""

from __future__ import annotations

import click

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add this module's commands to ``cli``."""
