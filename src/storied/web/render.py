"""Pure helpers of the web pages: the SVG timeline, content kinds, hex previews, numbers.

Everything here returns data for the templates or markup built only from escaped values; no
stored byte ever reaches the page unescaped.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

__all__ = [
    "IMAGE_TYPES",
    "hex_rows",
    "human_size",
    "image_type",
    "pretty_json",
    "timeline_svg",
    "when",
]

IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"BM": "image/bmp",
}
"""Raster formats shown as images, by their magic bytes (never SVG: it is active content)."""

MAX_POINTS = 1500
"""Most versions drawn as points on a timeline (tagged and latest versions always are)."""


def image_type(head: bytes) -> str | None:
    """The media type of a raster image starting with ``head``, else None (WebP included)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for magic, kind in IMAGE_TYPES.items():
        if head.startswith(magic):
            return kind
    return None


def human_size(n: int | None) -> str:
    """``1.5 KiB`` style; ``-`` when unknown."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def when(moment: datetime | float | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC; ``-`` when unknown."""
    from datetime import UTC

    if moment is None:
        return "-"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty_json(text: str) -> str | None:
    """``text`` re-indented when it is a JSON document, else None."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False)
    except (ValueError, RecursionError):
        return None


def hex_rows(data: bytes, width: int = 16) -> list[tuple[str, str, str]]:
    """``(offset, hex bytes, printable ASCII)`` rows of ``data`` (escaped by the template)."""
    rows = []
    for start in range(0, len(data), width):
        chunk = data[start : start + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append((f"{start:08x}", " ".join(f"{b:02x}" for b in chunk), text))
    return rows


def _sample(versions: list[dict[str, Any]]) -> list[int]:
    """Indexes of the versions to draw: all, or an even spread plus every tagged and the
    latest one."""
    count = len(versions)
    if count <= MAX_POINTS:
        return list(range(count))
    step = count / MAX_POINTS
    keep = {int(i * step) for i in range(MAX_POINTS)}
    keep.update(i for i, v in enumerate(versions) if v.get("tags"))
    keep.add(count - 1)
    return sorted(keep)


def timeline_svg(versions: list[dict[str, Any]], width: int = 900, height: int = 160) -> str:
    """An inline SVG chart of the versions (oldest first): size over time, tags marked.

    The markup is built here from numbers and escaped strings only (tag names and version ids
    are escaped; nothing from file contents appears).
    """
    if not versions:
        return ""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 12, 28
    times = [v["last_modified"].timestamp() for v in versions]
    sizes = [int(v.get("size") or 0) for v in versions]
    t0, t1 = min(times), max(times)
    top = max(sizes) or 1
    span = (t1 - t0) or 1.0
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(i: int) -> float:
        if t1 == t0:
            return pad_l + plot_w * (i + 1) / (len(versions) + 1)
        return float(pad_l + plot_w * (times[i] - t0) / span)

    def y(i: int) -> float:
        return pad_t + plot_h * (1 - sizes[i] / top)

    chosen = _sample(versions)
    line = " ".join(f"{x(i):.1f},{y(i):.1f}" for i in chosen)
    esc = html.escape
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="size of each version over time">',
        f'<line class="axis" x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" '
        f'y2="{pad_t + plot_h}"/>',
        f'<line class="axis" x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + plot_h}"/>',
        f'<text class="label" x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">'
        f"{esc(human_size(top))}</text>",
        f'<text class="label" x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end">0</text>',
        f'<text class="label" x="{pad_l}" y="{height - 8}">'
        f'{esc(when(versions[0]["last_modified"]))}</text>',
        f'<text class="label" x="{width - pad_r}" y="{height - 8}" text-anchor="end">'
        f'{esc(when(versions[-1]["last_modified"]))}</text>',
        f'<polyline class="sizes" points="{line}"/>',
    ]
    for i in chosen:
        tags = versions[i].get("tags") or []
        title = esc(
            f"#{i} {versions[i]['version_id']} {when(versions[i]['last_modified'])} "
            f"{human_size(sizes[i])}" + (f" [{', '.join(tags)}]" if tags else "")
        )
        cls = "tagged" if tags else ("latest" if versions[i].get("is_latest") else "point")
        radius = 4 if tags or cls == "latest" else 2
        parts.append(
            f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(i):.1f}" r="{radius}">'
            f"<title>{title}</title></circle>"
        )
        if tags:
            parts.append(
                f'<text class="tag" x="{x(i):.1f}" y="{max(y(i) - 7, 10):.1f}" '
                f'text-anchor="middle">{esc(", ".join(tags)[:40])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
