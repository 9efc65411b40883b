"""``--json`` output: one JSON document per command, stable keys (docs in README's CLI section).

Datetimes are ISO 8601 strings in UTC, bytes never appear, keys are sorted, and the document
ends with a newline. Names are printed as they are (no markup, no escaping beyond JSON's).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

__all__ = ["json_option", "print_json", "print_table", "version_row"]

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (stable keys) instead."
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)


def print_table(console: Any, table: Any) -> None:
    """Print a rich ``table`` on a terminal; elsewhere (a pipe, a file) plain lines that are
    never cut or wrapped: the title, then one line per row with cells separated by two spaces
    (the header line first when the table shows one). Cells print as they are, no markup."""
    if sys.stdout.isatty():
        console.print(table)
        return
    if table.title:
        click.echo(str(table.title))
    columns = table.columns
    if table.show_header:
        click.echo("  ".join(str(c.header) for c in columns).rstrip())
    cells = [list(c.cells) for c in columns]
    for row in zip(*cells, strict=False):
        click.echo("  ".join(str(cell) for cell in row).rstrip())


def print_json(document: Any) -> None:
    """Write ``document`` as JSON to standard output, one document, newline-terminated."""
    sys.stdout.write(json.dumps(document, sort_keys=True, default=_default, ensure_ascii=False))
    sys.stdout.write("\n")


def version_row(version: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    """A version dict with its stable JSON keys (``index`` when known)."""
    row = {
        "version_id": version["version_id"],
        "is_latest": bool(version.get("is_latest")),
        "last_modified": version.get("last_modified"),
        "size": version.get("size"),
        "etag": version.get("etag") or None,
        "tags": list(version.get("tags") or []),
        "metadata": dict(version.get("metadata") or {}),
    }
    if index is not None:
        row["index"] = index
    return row


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless it is one ("1 file", "2 files")."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
