"""``storied diff PATH [V1 [V2]]``: compare two versions of a file.

Text diffs are unified (coloured in a terminal), context, side-by-side HTML or JSON hunks;
``--semantic`` picks the JSON, XML, CSV or image diff from the file's extension. Versions are
indexes (``-1`` latest, ``0`` oldest) or version ids; the diff goes from the older to the newer.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from storied.diff.image import MAX_PIXELS

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["diff_command", "register"]

FORMATS = ("unified", "context", "html", "json")
KINDS = {
    ".json": "json",
    ".geojson": "json",
    ".xml": "xml",
    ".svg": "xml",
    ".xhtml": "xml",
    ".xsd": "xml",
    ".xsl": "xml",
    ".csv": "csv",
    ".tsv": "csv",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".gif": "image",
    ".bmp": "image",
    ".webp": "image",
    ".tif": "image",
    ".tiff": "image",
}
_INDEX = re.compile(r"[+-]?\d{1,9}")
_STYLES = {"+": "green", "-": "red", "@": "cyan", "!": "yellow", "*": "bold", "\\": "dim"}


def _version(text: str) -> int | str:
    """An index when ``text`` is a (short) integer, else a version id."""
    return int(text) if _INDEX.fullmatch(text) else text


def _kind(node: StorageNode) -> str:
    return KINDS.get(Path(node.fullpath.partition(":")[2]).suffix.lower(), "text")


@contextmanager
def _writing(output: str) -> Iterator[None]:
    """Report a failure to write the ``--output`` file as one line (a command error)."""
    try:
        yield
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # Pillow: no image format for that extension
        raise click.ClickException(f"cannot write {output}: {exc}") from exc


def _emit(text: str, output: str | None, colour: bool = False) -> None:
    """Write ``text`` to ``output``, or stdout (coloured in a terminal when ``colour``)."""
    if output:
        with _writing(output):
            Path(output).write_text(text, encoding="utf-8")
        return
    console = Console(highlight=False, soft_wrap=True)
    if not (colour and console.is_terminal):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    styled = Text()
    for line in text.splitlines(keepends=True):
        style = _STYLES.get(line[:1], "")
        if line.startswith(("---", "+++", "***")):
            style = "bold"
        styled.append(line, style=style)
    console.print(styled, end="")


def _hunks_json(
    node: StorageNode, v1: int | str, v2: int | str, context: int, encoding: str | None
) -> dict[str, Any]:
    """The text diff as JSON: both sides' labels and the hunks with prefixed lines."""
    from storied.diff.text import compute_text_diff, decode_text

    old, new = node._diff_sides(v1, v2)
    d = compute_text_diff(
        decode_text(node._diff_bytes(old), old.described, encoding),
        decode_text(node._diff_bytes(new), new.described, encoding),
        context_lines=context,
    )
    hunks = []
    for hunk in d.hunks:
        lines = []
        for tag, i1, i2, j1, j2 in hunk.ops:
            if tag == "equal":
                lines += [" " + s for s in d.old[i1:i2]]
            else:
                lines += ["-" + s for s in d.old[i1:i2]] + ["+" + s for s in d.new[j1:j2]]
        (o1, o2), (n1, n2) = hunk.old_range, hunk.new_range
        hunks.append(
            {
                "old_start": o1 + 1,
                "old_lines": o2 - o1,
                "new_start": n1 + 1,
                "new_lines": n2 - n1,
                "lines": lines,
            }
        )
    return {
        "old": {"label": old.label, "date": old.date},
        "new": {"label": new.label, "date": new.date},
        "hunks": hunks,
    }


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _changes_text(kind: str, result: Any) -> str:
    """A structured diff as readable lines: ``- path: value``, ``+ path: value``,
    ``! path: old -> new`` (CSV: whole rows, and ``! key: {column: {old, new}}``)."""
    if kind == "xml":
        marks = {"added": "+", "removed": "-", "changed": "!"}
        return "".join(
            f"{marks[e['kind']]} {e['path']}: "
            + (
                f"{_show(e['old'])} -> {_show(e['new'])}"
                if e["kind"] == "changed"
                else _show(e["new"] if e["kind"] == "added" else e["old"])
            )
            + f"  ({e['action']})\n"
            for e in result
        )
    if kind == "json":
        lines = [f"- {e['path']}: {_show(e['value'])}\n" for e in result["removed"]]
        lines += [f"+ {e['path']}: {_show(e['value'])}\n" for e in result["added"]]
        lines += [
            f"! {e['path']}: {_show(e['old'])} -> {_show(e['new'])}\n" for e in result["changed"]
        ]
        return "".join(lines)
    lines = (
        [f"- columns {', '.join(result['columns_removed'])}\n"] if result["columns_removed"] else []
    )
    if result["columns_added"]:
        lines.append(f"+ columns {', '.join(result['columns_added'])}\n")
    lines += [f"- {_show(row)}\n" for row in result["removed"]]
    lines += [f"+ {_show(row)}\n" for row in result["added"]]
    lines += [f"! {_show(e['key'])}: {_show(e['changes'])}\n" for e in result["changed"]]
    return "".join(lines)


def _semantic(
    node: StorageNode,
    kind: str,
    v1: int | str,
    v2: int | str,
    fmt: str,
    output: str | None,
    key: tuple[str, ...],
    max_pixels: int,
) -> None:
    if kind == "image":
        found = node.diff_image_versions(v1, v2, max_pixels=max_pixels)
        if output:
            with _writing(output):
                found.image.save(output)
        text = (
            json.dumps(found.summary(), indent=2) + "\n"
            if fmt == "json"
            else f"similarity {found.similarity:.6f}, hash distance {found.hash_distance}, "
            f"{found.changed_pixels} changed pixels\n"
        )
        _emit(text, None)
        return
    result: Any
    if kind == "json":
        result = node.diff_json_versions(v1, v2)
    elif kind == "xml":
        result = node.diff_xml_versions(v1, v2)
    else:
        result = node.diff_csv_versions(v1, v2, key=list(key) or None)
    if fmt == "json":
        _emit(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", output)
    else:
        _emit(_changes_text(kind, result), output, colour=True)


@click.command("diff", context_settings={"ignore_unknown_options": True})
@click.argument("path")
@click.argument("v1", required=False, default="-1")
@click.argument("v2", required=False, default="-2")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="unified",
    show_default=True,
    help="Output format (json: hunks, or the semantic result).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to FILE instead of standard output (an image diff saves its picture).",
)
@click.option(
    "--semantic", is_flag=True, help="JSON/XML/CSV/image diff chosen by the file's extension."
)
@click.option(
    "--context",
    "-U",
    "context_lines",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Unchanged lines around each text change.",
)
@click.option("--key", "-k", multiple=True, help="CSV key column (repeat for several).")
@click.option("--encoding", default=None, help="Text encoding (default UTF-8).")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Image diffs: refuse images (or a canvas) of more pixels than this.",
)
@click.pass_context
def diff_command(
    ctx: click.Context,
    path: str,
    v1: str,
    v2: str,
    fmt: str,
    output: str | None,
    semantic: bool,
    context_lines: int,
    key: tuple[str, ...],
    encoding: str | None,
    max_pixels: int,
) -> None:
    """Compare versions V1 and V2 (default -1 and -2) of PATH (mount:path).

    V1/V2 are indexes (-1 latest, 0 oldest) or version ids; the diff goes from the older to the
    newer. Put `--` before negative indexes if a shell wrapper insists.
    """
    from storied.cli.main import _manager

    node = _manager(ctx.obj["config"]).node(path)
    a, b = _version(v1), _version(v2)
    kind = _kind(node) if semantic else "text"
    if kind != "text":
        if fmt in ("context", "html"):
            raise click.UsageError(f"--format {fmt} is for text diffs; use unified or json")
        _semantic(node, kind, a, b, fmt, output, key, max_pixels)
        return
    if fmt == "json":
        found = _hunks_json(node, a, b, context_lines, encoding)
        _emit(json.dumps(found, indent=2, ensure_ascii=False) + "\n", output)
        return
    text = node.diff_versions_text(a, b, format=fmt, context_lines=context_lines, encoding=encoding)
    _emit(text, output, colour=fmt != "html")


def register(group: click.Group) -> None:
    """Add the ``diff`` command to ``group`` (idempotent)."""
    if "diff" not in group.commands:
        group.add_command(diff_command)
