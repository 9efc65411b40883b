"""Line diffs of two texts: computed once as hunks, rendered as unified, context or HTML.

The computation is :class:`difflib.SequenceMatcher` (stdlib, no dependency). The unified and
context renderers produce exactly what :func:`difflib.unified_diff` and
:func:`difflib.context_diff` produce for newline-terminated text, plus GNU diff's
``\\ No newline at end of file`` marker where a last line has none (difflib would glue it to the
next line). The HTML renderer writes a complete, self-contained page (inline CSS, no script, no
external resource; a Content-Security-Policy forbids loading any) showing the two versions side
by side with changed characters highlighted.

Work bound of the HTML renderer: a replaced line is first trimmed of its common prefix and
suffix (slice comparisons, no per-character Python loop); only the differing middle may be
matched character by character (:class:`difflib.SequenceMatcher`, quadratic), and only while
it is at most :data:`INTRALINE_PAIR_CELLS` (length x length) and a budget of
:data:`INTRALINE_CELLS_PER_CHAR` cells per character of the two texts lasts. Past that the
middle is marked changed as a whole. So the HTML diff costs a small multiple of the unified diff
whatever the lines (``bench/diffs.py`` prints the ratio); the highlighting is exact for one
change per line and coarser when a long line changes in many places.
"""

from __future__ import annotations

import codecs
import difflib
import html
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Literal

from storied.diff.model import BinaryContentError, Hunk
from storied.errors import InvalidArgumentError, InvalidEncodingError

__all__ = [
    "TextDiff",
    "compute_text_diff",
    "decode_text",
    "diff_text",
    "render_context",
    "render_html",
    "render_unified",
    "split_lines",
]

TextFormat = Literal["unified", "context", "html"]
FORMATS: tuple[str, ...] = ("unified", "context", "html")
NO_EOL = "\\ No newline at end of file\n"
INTRALINE_PAIR_CELLS = 40_000
"""Largest differing middle (old length x new length) matched character by character."""
INTRALINE_CELLS_PER_CHAR = 0.05
"""Character-matching budget of one HTML diff, in cells per character of the two texts."""


@dataclass(frozen=True)
class TextDiff:
    """Two texts split into lines, and the hunks that turn the old lines into the new ones.

    Attributes:
        old: The old lines, each with its line ending (the last may have none).
        new: The new lines.
        hunks: The change groups with ``context`` lines around them; empty when equal.
        old_label: What names the old side in headers (file and version).
        new_label: What names the new side.
        old_date: The old side's date (ISO 8601), '' when unknown.
        new_date: The new side's date.
    """

    old: list[str]
    new: list[str]
    hunks: list[Hunk]
    old_label: str = "old"
    new_label: str = "new"
    old_date: str = ""
    new_date: str = ""


def decode_text(data: bytes, label: str, encoding: str | None = None) -> str:
    """Decode ``data`` as text, refusing binary content.

    Args:
        data: The raw content.
        label: Names the content in the error (file and version).
        encoding: The codec; None means UTF-8 (a leading BOM is dropped).

    Raises:
        BinaryContentError: ``data`` holds a NUL byte (unless the codec is UTF-16/32, where NUL
            bytes are normal) or does not decode with the codec.
        InvalidEncodingError: ``encoding`` is not a known text codec (also a ``LookupError``).
    """
    codec = _text_codec(encoding)
    if b"\x00" in data and not codec.startswith(("utf-16", "utf-32")):
        raise BinaryContentError(f"{label} is binary (it contains NUL bytes); no text diff")
    try:
        return data.decode(codec)
    except UnicodeError as exc:
        where = f"undecodable byte at offset {exc.start}" if hasattr(exc, "start") else str(exc)
        raise BinaryContentError(
            f"{label} is binary or not {codec} text ({where}); "
            "pass encoding= if it is text in another encoding"
        ) from exc


def _text_codec(encoding: str | None) -> str:
    """The normalised name of a text codec (``rot13``, ``base64``... are not text codecs)."""
    if encoding is not None and not isinstance(encoding, str):
        raise InvalidEncodingError(f"encoding must be a codec name, not {encoding!r}")
    try:
        info = codecs.lookup(encoding or "utf-8-sig")
    except LookupError as exc:
        raise InvalidEncodingError(f"unknown encoding: {encoding!r}") from exc
    if not getattr(info, "_is_text_encoding", True):
        raise InvalidEncodingError(f"{encoding!r} is not a text encoding")
    return info.name


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping the endings (``str.splitlines`` would also split on form
    feeds and other separators a diff must keep inside a line)."""
    lines = [line + "\n" for line in text.split("\n")]
    last = lines.pop()
    if last != "\n":
        lines.append(last[:-1])
    return lines


def compute_text_diff(
    old: str,
    new: str,
    *,
    context_lines: int = 3,
    old_label: str = "old",
    new_label: str = "new",
    old_date: str = "",
    new_date: str = "",
) -> TextDiff:
    """Compute the hunks between two texts (``context_lines`` unchanged lines around each)."""
    if isinstance(context_lines, bool) or not isinstance(context_lines, int) or context_lines < 0:
        raise InvalidArgumentError(f"context_lines must be an int >= 0, not {context_lines!r}")
    a, b = split_lines(old), split_lines(new)
    hunks: list[Hunk] = []
    if a != b:
        matcher = difflib.SequenceMatcher(None, a, b)
        hunks = [Hunk(tuple(group)) for group in matcher.get_grouped_opcodes(context_lines)]
    return TextDiff(a, b, hunks, old_label, new_label, old_date, new_date)


def diff_text(
    old: str,
    new: str,
    format: TextFormat = "unified",
    *,
    context_lines: int = 3,
    old_label: str = "old",
    new_label: str = "new",
    old_date: str = "",
    new_date: str = "",
) -> str:
    """Diff two texts and render the result in ``format`` (``unified``, ``context``, ``html``).

    Returns:
        The rendered diff: '' for equal texts in unified and context form; for HTML a complete
        page (saying "No differences" for equal texts).

    Raises:
        InvalidArgumentError: Unknown ``format`` or negative ``context_lines`` (a
            ``ValueError``).
    """
    if format not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    result = compute_text_diff(
        old,
        new,
        context_lines=context_lines,
        old_label=old_label,
        new_label=new_label,
        old_date=old_date,
        new_date=new_date,
    )
    return RENDERERS[format](result)


# ---------------------------------------------------------------- unified / context
def _header(mark: str, label: str, date: str) -> str:
    return f"{mark} {label}" + (f"\t{date}" if date else "") + "\n"


def _line(prefix: str, line: str) -> str:
    return prefix + line if line.endswith("\n") else prefix + line + "\n" + NO_EOL


def _unified_range(start: int, stop: int) -> str:
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if not length else start + 1},{length}"


def _context_range(start: int, stop: int) -> str:
    length = stop - start
    first = start if not length else start + 1
    return str(first) if length <= 1 else f"{first},{first + length - 1}"


def _unified_lines(d: TextDiff) -> Iterator[str]:
    yield _header("---", d.old_label, d.old_date)
    yield _header("+++", d.new_label, d.new_date)
    for hunk in d.hunks:
        old, new = hunk.old_range, hunk.new_range
        yield f"@@ -{_unified_range(*old)} +{_unified_range(*new)} @@\n"
        for tag, i1, i2, j1, j2 in hunk.ops:
            if tag == "equal":
                yield from (_line(" ", line) for line in d.old[i1:i2])
                continue
            yield from (_line("-", line) for line in d.old[i1:i2])
            yield from (_line("+", line) for line in d.new[j1:j2])


def render_unified(d: TextDiff) -> str:
    """The unified diff ('' when there is no hunk)."""
    return "".join(_unified_lines(d)) if d.hunks else ""


_CONTEXT_PREFIX = {"insert": "+ ", "delete": "- ", "replace": "! ", "equal": "  "}


def _context_lines(d: TextDiff) -> Iterator[str]:
    yield _header("***", d.old_label, d.old_date)
    yield _header("---", d.new_label, d.new_date)
    for hunk in d.hunks:
        yield "***************\n"
        yield f"*** {_context_range(*hunk.old_range)} ****\n"
        if any(op[0] in ("replace", "delete") for op in hunk.ops):
            for tag, i1, i2, _, _ in hunk.ops:
                if tag != "insert":
                    yield from (_line(_CONTEXT_PREFIX[tag], line) for line in d.old[i1:i2])
        yield f"--- {_context_range(*hunk.new_range)} ----\n"
        if any(op[0] in ("replace", "insert") for op in hunk.ops):
            for tag, _, _, j1, j2 in hunk.ops:
                if tag != "delete":
                    yield from (_line(_CONTEXT_PREFIX[tag], line) for line in d.new[j1:j2])


def render_context(d: TextDiff) -> str:
    """The context diff ('' when there is no hunk)."""
    return "".join(_context_lines(d)) if d.hunks else ""


# ---------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1f2328}
h1{font-size:1.2em;margin:0 0 .6em}
.meta{margin:0 0 1em;color:#57606a}
.meta b{color:#1f2328}
table.diff{border-collapse:collapse;width:100%;table-layout:fixed;
 font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:12.5px}
table.diff col.n{width:4.5em}
table.diff th{background:#f6f8fa;border:1px solid #d0d7de;padding:4px 8px;text-align:left;
 font-weight:600;overflow-wrap:anywhere}
table.diff td{padding:0 8px;vertical-align:top;white-space:pre-wrap;overflow-wrap:anywhere}
td.n{color:#8c959f;text-align:right;user-select:none;border-right:1px solid #d0d7de}
td.del{background:#ffebe9}td.add{background:#e6ffec}td.empty{background:#f6f8fa}
td.del del{background:#ff818266;text-decoration:none}
td.add ins{background:#abf2bc;text-decoration:none}
tr.sep td{background:#ddf4ff;color:#57606a;text-align:center;padding:2px}
.same{padding:1em;border:1px solid #d0d7de;background:#f6f8fa;border-radius:6px}
.stats .a{color:#1a7f37}.stats .r{color:#cf222e}
"""


def _escape(text: str) -> str:
    """``html.escape(text, quote=False)``, skipping the work for text with nothing to escape."""
    if "&" in text or "<" in text or ">" in text:
        return html.escape(text, quote=False)
    return text


def _esc(text: str) -> str:
    return _escape(text.rstrip("\r\n"))


def _wrap(tag: str, text: str) -> str:
    return f"<{tag}>{_esc(text)}</{tag}>" if text else ""


class _Budget:
    """What is left of one diff's character-matching budget, in cells (length x length)."""

    def __init__(self, cells: float) -> None:
        self.cells = cells

    def take(self, cells: int) -> bool:
        if cells > INTRALINE_PAIR_CELLS or cells > self.cells:
            return False
        self.cells -= cells
        return True


# Both searches compare the first 16 characters one by one (a line changed in many places has
# short common ends), then gallop (64, 256... characters) and bisect: O(log k) slice
# comparisons at C speed, so a long common part costs a few large slices.
_SCAN = 16


def _prefix_length(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b``."""
    limit = min(len(a), len(b))
    for i in range(min(limit, _SCAN)):
        if a[i] != b[i]:
            return i
    if limit <= _SCAN:
        return limit
    lo, step = _SCAN, _SCAN * 4
    while step < limit and a[:step] == b[:step]:
        lo, step = step, step * 4
    if step >= limit and a[:limit] == b[:limit]:
        return limit
    hi = min(step, limit) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _suffix_length(a: str, b: str, limit: int) -> int:
    """Length of the common suffix of ``a`` and ``b``, at most ``limit``."""
    for i in range(1, min(limit, _SCAN) + 1):
        if a[-i] != b[-i]:
            return i - 1
    if limit <= _SCAN:
        return max(limit, 0)
    la, lb = len(a), len(b)
    lo, step = _SCAN, _SCAN * 4
    while step < limit and a[la - step :] == b[lb - step :]:
        lo, step = step, step * 4
    if step >= limit and a[la - limit :] == b[lb - limit :]:
        return limit
    hi = min(step, limit) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid :] == b[lb - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _piece(tag: str, text: str) -> str:
    return f"<{tag}>{_escape(text)}</{tag}>" if text else ""


def _intraline(old: str, new: str, budget: _Budget) -> tuple[str, str]:
    """Both lines as HTML with the differing characters wrapped in ``<del>``/``<ins>``."""
    old, new = old.rstrip("\r\n"), new.rstrip("\r\n")
    la, lb = len(old), len(new)
    total = la + lb
    if 4 * min(la, lb) < total:  # under 0.5 however the lines match: mark them whole
        return _piece("del", old), _piece("ins", new)
    head = _prefix_length(old, new)
    tail = _suffix_length(old, new, min(la, lb) - head)
    common = head + tail
    a_mid, b_mid = old[head : la - tail], new[head : lb - tail]
    ops = None
    if a_mid and b_mid and budget.take(len(a_mid) * len(b_mid)):
        matcher = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=False)
        common += sum(block.size for block in matcher.get_matching_blocks())
        ops = matcher.get_opcodes()
    if 4 * common < total:  # mostly rewritten: mark the whole line
        return _piece("del", old), _piece("ins", new)
    esc = _escape
    left = [esc(old[:head])]
    right = [esc(new[:head])]
    if ops is None:
        left.append(_piece("del", a_mid))
        right.append(_piece("ins", b_mid))
    else:
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                left.append(esc(a_mid[i1:i2]))
                right.append(esc(b_mid[j1:j2]))
                continue
            left.append(_piece("del", a_mid[i1:i2]))
            right.append(_piece("ins", b_mid[j1:j2]))
    left.append(esc(old[la - tail :]))
    right.append(esc(new[lb - tail :]))
    return "".join(left), "".join(right)


def _row(ln: int | None, left: str, lcls: str, rn: int | None, right: str, rcls: str) -> str:
    lnum = "" if ln is None else str(ln)
    rnum = "" if rn is None else str(rn)
    return (
        f'<tr><td class="n">{lnum}</td><td class="{lcls}">{left}</td>'
        f'<td class="n">{rnum}</td><td class="{rcls}">{right}</td></tr>'
    )


def _op_rows(
    d: TextDiff, op: tuple[str, int, int, int, int], budget: _Budget
) -> Iterator[str]:
    tag, i1, i2, j1, j2 = op
    if tag == "equal":
        for k in range(i2 - i1):
            text = _esc(d.old[i1 + k])
            yield _row(i1 + k + 1, text, "ctx", j1 + k + 1, text, "ctx")
        return
    old, new = d.old, d.new
    paired = min(i2 - i1, j2 - j1)
    for k in range(paired):
        left, right = _intraline(old[i1 + k], new[j1 + k], budget)
        yield (
            f'<tr><td class="n">{i1 + k + 1}</td><td class="del">{left}</td>'
            f'<td class="n">{j1 + k + 1}</td><td class="add">{right}</td></tr>'
        )
    for i in range(i1 + paired, i2):
        yield _row(i + 1, _esc(old[i]), "del", None, "", "empty")
    for j in range(j1 + paired, j2):
        yield _row(None, "", "empty", j + 1, _esc(new[j]), "add")


def _table_rows(d: TextDiff) -> Iterator[str]:
    chars = sum(map(len, d.old)) + sum(map(len, d.new))
    budget = _Budget(chars * INTRALINE_CELLS_PER_CHAR)
    for index, hunk in enumerate(d.hunks):
        (o1, o2), (n1, n2) = hunk.old_range, hunk.new_range
        if index or o1 or n1:
            yield (
                '<tr class="sep"><td colspan="4">'
                f"&#8943; old lines {o1 + 1}&ndash;{o2}, new lines {n1 + 1}&ndash;{n2} &#8943;"
                "</td></tr>"
            )
        for op in hunk.ops:
            yield from _op_rows(d, op, budget)


def _counts(d: TextDiff) -> tuple[int, int]:
    removed = added = 0
    for hunk in d.hunks:
        for tag, i1, i2, j1, j2 in hunk.ops:
            if tag != "equal":
                removed += i2 - i1
                added += j2 - j1
    return removed, added


def _side(label: str, date: str) -> str:
    return _esc(label) + (f" <small>({_esc(date)})</small>" if date else "")


def render_html(d: TextDiff) -> str:
    """A complete side-by-side HTML page (UTF-8, inline CSS, no script, no external resource).

    Equal texts give a page that says "No differences".
    """
    # Markup is ASCII (entities for arrows and dots): joining it with ASCII content costs no
    # widening of the page to a wider string kind.
    title = f"Diff: {_esc(d.old_label)} &rarr; {_esc(d.new_label)}"
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    )
    meta = (
        f'<p class="meta"><b>old:</b> {_side(d.old_label, d.old_date)}<br>'
        f"<b>new:</b> {_side(d.new_label, d.new_date)}</p>\n"
    )
    if not d.hunks:
        body = '<p class="same">No differences: the two versions are identical.</p>\n'
        return head + meta + body + "</body>\n</html>\n"
    removed, added = _counts(d)
    stats = (
        f'<p class="stats"><span class="r">&minus;{removed} removed</span>, '
        f'<span class="a">+{added} added</span></p>\n'
    )
    table_head = (
        '<table class="diff">\n<colgroup><col class="n"><col><col class="n"><col></colgroup>\n'
        f'<thead><tr><th colspan="2">{_side(d.old_label, d.old_date)}</th>'
        f'<th colspan="2">{_side(d.new_label, d.new_date)}</th></tr></thead>\n<tbody>'
    )
    end = "</tbody>\n</table>\n</body>\n</html>\n"
    # One join builds the page: no intermediate copy of the (possibly large) table.
    return "\n".join(chain((head + meta + stats + table_head,), _table_rows(d), (end,)))


RENDERERS = {"unified": render_unified, "context": render_context, "html": render_html}
