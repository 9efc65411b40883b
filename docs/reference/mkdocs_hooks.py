"""mkdocs hooks of the storied site (``hooks:`` in mkdocs.yml; not a page: ``exclude_docs``).

- The "Decisions (ADRs)" section of the nav lists every ``docs/adr/*.md`` under its first
  heading, so an ADR added by anyone appears without editing mkdocs.yml; likewise the "Design"
  section gets ``docs/CONFIG.md`` (the generated list of mount keys) once that file exists.
- Sphinx cross-reference roles left in docstrings (``:class:`~storied.errors.X```) render as
  plain code (``X``) instead of showing the role's markup, and a reST literal-block marker
  (a paragraph ending in ``::``) ends in one colon.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ADR_SECTION = "Decisions (ADRs)"
DESIGN_SECTION = "Design"
#: Optional pages of other owners: added to the Design section when present.
OPTIONAL_DESIGN_PAGES = {"CONFIG.md": "Configuration keys"}
_LITERAL = re.compile(r"(?<!:)::</p>")
_ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc|obj):<code>(~?)([^<]+)</code>")


_ADR_NUMBER = re.compile(r"^(?:ADR\s*)?(\d{4})\s*[:.-]?\s*", re.IGNORECASE)


def _title(path: Path) -> str:
    """An ADR's nav label: its first heading as ``ADR NNNN: title``, without code marks."""
    title = path.stem
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            title = line[2:].strip().replace("`", "")
            break
    match = _ADR_NUMBER.match(title) or _ADR_NUMBER.match(path.stem)
    if match:
        rest = title[match.end():] if _ADR_NUMBER.match(title) else title
        title = f"ADR {match.group(1)}: {rest}"
    return title


def on_config(config: Any) -> Any:
    """Fill the ADR section of the nav from the files in docs/adr/."""
    docs = Path(config["docs_dir"])
    adrs = sorted((docs / "adr").glob("*.md"))
    entries = [{_title(p): f"adr/{p.name}"} for p in adrs]
    for i, item in enumerate(config["nav"] or []):
        if isinstance(item, dict) and ADR_SECTION in item:
            config["nav"][i] = {ADR_SECTION: entries}
        if isinstance(item, dict) and isinstance(item.get(DESIGN_SECTION), list):
            section = item[DESIGN_SECTION]
            listed = {v for entry in section if isinstance(entry, dict) for v in entry.values()}
            for name, label in OPTIONAL_DESIGN_PAGES.items():
                if (docs / name).is_file() and name not in listed:
                    section.insert(0, {label: name})
    return config


def _plain(match: re.Match[str]) -> str:
    name = match.group(2)
    if match.group(1):  # ~a.b.C shows C, as Sphinx does
        name = name.rsplit(".", 1)[-1]
    return f"<code>{name}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Sphinx roles in rendered docstrings become plain ``<code>``; ``::`` ends as ``:``."""
    return _LITERAL.sub(":</p>", _ROLE.sub(_plain, html))
