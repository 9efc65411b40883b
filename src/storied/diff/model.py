"""Typed change records shared by every diff, and the errors diffs raise.

Diffs compute these records; renderers (``storied.diff.text``, the node methods, the CLI) format
them. Every record is frozen and made of plain values, so results can be compared, hashed where
their values allow, and turned into JSON-ready dicts with ``as_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from storied.errors import BinaryContentError, InvalidContentError

__all__ = [
    "BinaryContentError",
    "Change",
    "CsvDiff",
    "Hunk",
    "InvalidContentError",
    "Opcode",
    "RowChange",
    "changes_as_dict",
]

ChangeKind = Literal["added", "removed", "changed"]
Opcode = tuple[str, int, int, int, int]
"""A :class:`difflib.SequenceMatcher` opcode: ``(tag, i1, i2, j1, j2)``."""


@dataclass(frozen=True)
class Change:
    """One semantic change between two documents.

    Attributes:
        kind: ``'added'`` (only in the new document), ``'removed'`` (only in the old one) or
            ``'changed'`` (in both, with different values).
        path: Where: a JSONPath such as ``$.servers[2].port`` for JSON, an XPath such as
            ``/config/server[2]/@port`` for XML.
        old: The old value (None for ``added``).
        new: The new value (None for ``removed``).
        action: The edit that produced it when the format has several (XML: ``'update-text'``,
            ``'insert-node'``...); empty otherwise.
    """

    kind: ChangeKind
    path: str
    old: Any = None
    new: Any = None
    action: str = ""

    def as_dict(self) -> dict[str, Any]:
        """``{'path', 'value'}`` for added/removed, ``{'path', 'old', 'new'}`` for changed;
        ``action`` is included when set."""
        out: dict[str, Any] = {"path": self.path}
        if self.action:
            out["action"] = self.action
        if self.kind == "added":
            out["value"] = self.new
        elif self.kind == "removed":
            out["value"] = self.old
        else:
            out["old"] = self.old
            out["new"] = self.new
        return out

    def as_record(self) -> dict[str, Any]:
        """Every field: ``{'kind', 'action', 'path', 'old', 'new'}`` (an edit-list entry)."""
        return {
            "kind": self.kind,
            "action": self.action,
            "path": self.path,
            "old": self.old,
            "new": self.new,
        }


def changes_as_dict(changes: list[Change]) -> dict[str, list[dict[str, Any]]]:
    """Group changes as ``{'added': [...], 'removed': [...], 'changed': [...]}`` (each list in
    document order, each entry from :meth:`Change.as_dict`)."""
    out: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    for change in changes:
        out[change.kind].append(change.as_dict())
    return out


@dataclass(frozen=True)
class Hunk:
    """One group of line changes with its context, as ``SequenceMatcher`` groups them.

    Attributes:
        ops: The opcodes of the group, in order; ``'equal'`` ones are the context lines.
    """

    ops: tuple[Opcode, ...]

    @property
    def old_range(self) -> tuple[int, int]:
        """``(start, stop)`` of the old lines the hunk covers (0-based, stop exclusive)."""
        return self.ops[0][1], self.ops[-1][2]

    @property
    def new_range(self) -> tuple[int, int]:
        """``(start, stop)`` of the new lines the hunk covers (0-based, stop exclusive)."""
        return self.ops[0][3], self.ops[-1][4]


@dataclass(frozen=True)
class RowChange:
    """One CSV row present in both versions with different cells.

    Attributes:
        key: The key columns and their values (``{'id': '7'}``).
        cells: ``{column: (old, new)}`` for each column that differs (common columns only).
    """

    key: dict[str, str]
    cells: dict[str, tuple[str, str]]

    def as_dict(self) -> dict[str, Any]:
        """``{'key': {...}, 'changes': {column: {'old': ..., 'new': ...}}}``."""
        changes = {col: {"old": old, "new": new} for col, (old, new) in self.cells.items()}
        return {"key": dict(self.key), "changes": changes}


@dataclass(frozen=True)
class CsvDiff:
    """A row-level CSV diff.

    Attributes:
        added: Rows only in the new version (dicts keyed by the new header).
        removed: Rows only in the old version (dicts keyed by the old header).
        changed: Rows matched by key whose common cells differ (empty without a key).
        columns_added: Columns only in the new header, in its order.
        columns_removed: Columns only in the old header, in its order.
    """

    added: list[dict[str, str]] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    changed: list[RowChange] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form: ``added``, ``removed``, ``changed`` (see
        :meth:`RowChange.as_dict`), ``columns_added``, ``columns_removed``."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [c.as_dict() for c in self.changed],
            "columns_added": list(self.columns_added),
            "columns_removed": list(self.columns_removed),
        }
