"""Semantic diffs of structured content: JSON, XML and CSV.

* JSON (stdlib only): objects compared by key whatever their order, arrays by index; every
  change carries a JSONPath (``$.servers[2].port``). ``true`` and ``1`` differ; ``1`` and
  ``1.0`` are the same number.
* XML (the optional ``xmldiff`` library, extra ``diff``): xmldiff's edit script, each edit turned
  into a :class:`~storied.diff.model.Change` with an XPath and the old and new values.
* CSV (stdlib only): the dialect is sniffed, the first row is the header, rows are matched by key
  column(s) or, without a key, by content; the new version is streamed and only the old one's
  rows are held in memory.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import re
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any, BinaryIO

from storied.diff.model import Change, CsvDiff, InvalidContentError, RowChange
from storied.diff.text import _text_codec
from storied.errors import InvalidArgumentError, MissingDependencyError

__all__ = ["diff_csv", "diff_json", "diff_json_bytes", "diff_xml", "load_json", "parse_xml"]

_MISSING: Any = object()
_NUMBERS = (int, float)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_GC_PAUSE_BYTES = 1 << 20


# ---------------------------------------------------------------- JSON
def load_json(data: bytes | str, label: str) -> Any:
    """Parse JSON (UTF-8/16/32 bytes or text).

    Raises:
        InvalidContentError: Not valid JSON; the message names ``label`` and the position.
    """
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidContentError(f"{label} is not valid JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # undecodable bytes, too deep, huge integers
        raise InvalidContentError(f"{label} is not valid JSON: {exc}") from exc


def _segment(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    if _IDENT.match(step):
        return f".{step}"
    quoted = step.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{quoted}']"


def _json_path(where: tuple[Any, ...] | None) -> str:
    """Format a linked path ``(parent, step)`` (built cheaply while walking) as JSONPath."""
    steps: list[str] = []
    while where is not None:
        where, step = where
        steps.append(_segment(step))
    return "$" + "".join(reversed(steps))


def _same_scalar(a: Any, b: Any) -> bool:
    if type(a) is type(b):
        return bool(a == b)
    return type(a) in _NUMBERS and type(b) in _NUMBERS and a == b


def _children(a: Any, b: Any, where: Any) -> list[tuple[Any, Any, Any]] | None:
    """The pairs to compare below two containers of the same kind (None if not containers)."""
    if type(a) is dict and type(b) is dict:
        pairs = [(va, b.get(k, _MISSING), (where, k)) for k, va in a.items()]
        pairs.extend((_MISSING, vb, (where, k)) for k, vb in b.items() if k not in a)
        return pairs
    if type(a) is list and type(b) is list:
        pairs = [(va, vb, (where, i)) for i, (va, vb) in enumerate(zip(a, b, strict=False))]
        common = len(pairs)
        pairs.extend((va, _MISSING, (where, common + i)) for i, va in enumerate(a[common:]))
        pairs.extend((_MISSING, vb, (where, common + i)) for i, vb in enumerate(b[common:]))
        return pairs
    return None


def diff_json(old: Any, new: Any) -> list[Change]:
    """The semantic changes from ``old`` to ``new`` (parsed JSON values), in document order.

    Objects are compared key by key (order does not matter); arrays index by index, extra
    elements being ``added`` or ``removed`` at their index; a value whose type changes (object to
    array, string to number, boolean to number) is ``changed`` as a whole. Equal documents give
    ``[]``.
    """
    changes: list[Change] = []
    stack: list[tuple[Any, Any, Any]] = [(old, new, None)]
    while stack:
        a, b, where = stack.pop()
        if a is _MISSING:
            changes.append(Change("added", _json_path(where), None, b))
        elif b is _MISSING:
            changes.append(Change("removed", _json_path(where), a, None))
        elif (pairs := _children(a, b, where)) is not None:
            stack.extend(reversed(pairs))
        elif not _same_scalar(a, b):
            changes.append(Change("changed", _json_path(where), a, b))
    return changes


@contextmanager
def _gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic structures.

    Parsing a big JSON document creates millions of containers, each allocation counting
    towards a full collection that finds nothing: pausing halves the time. Only for inputs of
    1 MiB or more, and only when the collector was enabled (it is re-enabled on exit).
    """
    if size < _GC_PAUSE_BYTES or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def diff_json_bytes(
    old: bytes | str, new: bytes | str, old_label: str = "old", new_label: str = "new"
) -> list[Change]:
    """Parse two JSON documents and diff them (see :func:`diff_json`).

    Raises:
        InvalidContentError: A document is not valid JSON; the message names its label.
    """
    with _gc_paused(len(old) + len(new)):
        return diff_json(load_json(old, old_label), load_json(new, new_label))


# ---------------------------------------------------------------- XML
def _xml_modules() -> tuple[Any, Any, Any]:
    try:
        from lxml import etree
        from xmldiff import main as xmain
        from xmldiff import patch as xpatch
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"XML diffs need the xmldiff library ({exc.name!r} is missing): "
            "pip install 'storied[diff]'"
        ) from exc
    return etree, xmain, xpatch


def parse_xml(data: bytes, label: str) -> Any:
    """Parse XML safely, dropping whitespace-only text between elements.

    Internal entities are expanded (libxml2 refuses exponential expansion); external ones are
    never loaded (no network, no file, no DTD): a reference to one is an error. Processing
    instructions inside the root element are dropped (xmldiff cannot compare them).

    Raises:
        InvalidContentError: Not well-formed XML; the message names ``label``.
        MissingDependencyError: xmldiff/lxml are not installed (extra ``diff``).
    """
    etree, _, _ = _xml_modules()
    parser = etree.XMLParser(
        remove_blank_text=True, resolve_entities="internal", no_network=True, load_dtd=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidContentError(f"{label} is not well-formed XML: {exc}") from exc
    if root is None:
        raise InvalidContentError(f"{label} is not well-formed XML: no root element")
    for special in list(root.iter(etree.Entity, etree.ProcessingInstruction)):
        _unwrap(special, str(special.text) if special.tag is etree.Entity else "")
    return root


def _unwrap(node: Any, text: str) -> None:
    """Replace ``node`` by ``text`` (keeping its tail): xmldiff cannot diff entity references
    or processing instructions."""
    text += node.tail or ""
    parent, before = node.getparent(), node.getprevious()
    if before is not None:
        before.tail = (before.tail or "") + text
    else:
        parent.text = (parent.text or "") + text
    parent.remove(node)


def _serialize(node: Any) -> str:
    from lxml import etree

    return str(etree.tostring(node, encoding="unicode", with_tail=False))


def _xml_change(action: Any, work: Any, ns: dict[str, str]) -> Change:
    """Describe one xmldiff action, reading old values from ``work`` (the old tree with every
    earlier action applied, so the action's paths point at the right nodes)."""
    kind = type(action).__name__

    def node(path: str) -> Any:
        return work.xpath(path, namespaces=ns)[0]

    if kind == "UpdateTextIn":
        return Change(
            "changed", f"{action.node}/text()", action.oldtext, action.text, "update-text"
        )
    if kind == "UpdateTextAfter":
        return Change(
            "changed", f"{action.node}/tail()", action.oldtext, action.text, "update-tail"
        )
    if kind == "UpdateAttrib":
        old = node(action.node).get(action.name)
        return Change(
            "changed", f"{action.node}/@{action.name}", old, action.value, "update-attribute"
        )
    if kind == "InsertAttrib":
        return Change(
            "added", f"{action.node}/@{action.name}", None, action.value, "insert-attribute"
        )
    if kind == "DeleteAttrib":
        old = node(action.node).get(action.name)
        return Change("removed", f"{action.node}/@{action.name}", old, None, "delete-attribute")
    if kind == "RenameAttrib":
        return Change(
            "changed",
            f"{action.node}/@{action.oldname}",
            action.oldname,
            action.newname,
            "rename-attribute",
        )
    if kind == "InsertNode":
        return Change("added", action.target, None, action.tag, "insert-node")
    if kind == "DeleteNode":
        return Change("removed", action.node, _serialize(node(action.node)), None, "delete-node")
    if kind == "RenameNode":
        return Change("changed", action.node, node(action.node).tag, action.tag, "rename-node")
    if kind == "MoveNode":
        return Change("changed", action.node, action.node, None, "move-node")
    if kind == "InsertComment":
        return Change("added", f"{action.target}/comment()", None, action.text, "insert-comment")
    if kind == "InsertNamespace":
        return Change("added", f"xmlns:{action.prefix}", None, action.uri, "insert-namespace")
    if kind == "DeleteNamespace":
        return Change("removed", f"xmlns:{action.prefix}", None, None, "delete-namespace")
    return Change("changed", str(getattr(action, "node", "")), None, repr(action), kind)


def diff_xml(
    old: bytes, new: bytes, old_label: str = "old", new_label: str = "new"
) -> list[Change]:
    """The edit script turning the ``old`` XML document into the ``new`` one.

    Each :class:`Change` has an XPath (``/config/server[2]/@port``, ``.../text()``), the old and
    new values and the edit in ``action`` (``update-text``, ``update-attribute``,
    ``insert-node``, ``delete-node``, ``move-node``...). Edits are in xmldiff's order: paths of
    later edits refer to the document with the earlier edits applied. Equal documents give ``[]``.

    Raises:
        InvalidContentError: A version is not well-formed XML (the message names it).
        MissingDependencyError: xmldiff is not installed (``pip install 'storied[diff]'``).
    """
    _, xmain, xpatch = _xml_modules()
    left, right = parse_xml(old, old_label), parse_xml(new, new_label)
    patcher = xpatch.Patcher()
    work = patcher.patch([], left)  # a copy of the old tree, and the patcher's namespace map
    actions = xmain.diff_trees(left, right, diff_options={"F": 0.5, "ratio_mode": "fast"})
    changes: list[Change] = []
    for action in actions:
        change = _xml_change(action, work, patcher.nsmap)
        patcher.handle_action(action, work)
        if type(action).__name__ in ("InsertNode", "MoveNode"):
            change = _placed(change, action, work, patcher.nsmap)
        changes.append(change)
    return changes


def _placed(change: Change, action: Any, work: Any, ns: dict[str, str]) -> Change:
    """An inserted or moved node's change, its new XPath known once the action is applied:
    the inserted node's path for an insert, the destination as ``new`` for a move."""
    from xmldiff.utils import getpath

    where = getpath(work.xpath(action.target, namespaces=ns)[0][action.position])
    if change.action == "move-node":
        return Change("changed", change.path, change.path, where, change.action)
    return Change("added", where, None, action.tag, change.action)


# ---------------------------------------------------------------- CSV
_SAMPLE = 64 * 1024
_DELIMITERS = ",;\t|:"


class _CsvSource:
    """A streamed CSV version: its sniffed dialect, header and row iterator."""

    def __init__(self, stream: BinaryIO, label: str, encoding: str) -> None:
        self.label = label
        self.line = 1
        self._text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        sample = self._read(lambda: self._text.read(_SAMPLE))
        sample += self._read(self._text.readline)  # end the sample on a line boundary
        dialect = self._sniff(sample)
        lines = chain(io.StringIO(sample, newline=""), self._text)
        self._reader = csv.reader(lines, dialect)
        self.header = next(self._rows(), [])
        if len(set(self.header)) != len(self.header):
            raise InvalidContentError(f"{label}: the CSV header repeats a column name")

    def _read(self, read: Any) -> str:
        try:
            return str(read())
        except UnicodeDecodeError as exc:
            raise InvalidContentError(f"{self.label} is not CSV text: {exc}") from exc

    @staticmethod
    def _sniff(sample: str) -> type[csv.Dialect] | csv.Dialect:
        try:
            return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
        except csv.Error:
            return csv.excel

    def _rows(self) -> Iterator[list[str]]:
        try:
            for row in self._reader:
                if row:
                    yield row
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidContentError(
                f"{self.label}: unreadable CSV near line {self._reader.line_num}: {exc}"
            ) from exc

    def rows(self) -> Iterator[tuple[str, ...]]:
        """The data rows as tuples as wide as the header (short rows padded with '')."""
        width = len(self.header)
        for row in self._rows():
            if len(row) > width:
                if any(row[width:]):
                    raise InvalidContentError(
                        f"{self.label}: line {self._reader.line_num} has {len(row)} fields, "
                        f"the header has {width}"
                    )
                row = row[:width]
            yield tuple(row) + ("",) * (width - len(row))

    def indexes(self, columns: Sequence[str]) -> list[int]:
        """Positions of ``columns`` in the header."""
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise InvalidContentError(
                f"{self.label}: key column(s) {', '.join(map(repr, missing))} not in the header "
                f"({', '.join(self.header)})"
            )
        return [self.header.index(c) for c in columns]


def _as_dict(header: list[str], row: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(header, row, strict=True))


def _keyed(old: _CsvSource, new: _CsvSource, key: list[str], out: CsvDiff) -> None:
    old_key, new_key = old.indexes(key), new.indexes(key)
    common = [c for c in new.header if c in old.header]
    pairs = [(c, old.header.index(c), new.header.index(c)) for c in common]
    pending: dict[tuple[str, ...], tuple[str, ...]] = {}
    for row in old.rows():
        k = tuple(row[i] for i in old_key)
        if k in pending:
            raise InvalidContentError(f"{old.label}: key {_as_dict(key, k)} appears twice")
        pending[k] = row
    seen: set[tuple[str, ...]] = set()
    for row in new.rows():
        k = tuple(row[i] for i in new_key)
        if k in seen:
            raise InvalidContentError(f"{new.label}: key {_as_dict(key, k)} appears twice")
        seen.add(k)
        before = pending.pop(k, None)
        if before is None:
            out.added.append(_as_dict(new.header, row))
            continue
        cells = {c: (before[i], row[j]) for c, i, j in pairs if before[i] != row[j]}
        if cells:
            out.changed.append(RowChange(_as_dict(key, k), cells))
    out.removed.extend(_as_dict(old.header, row) for row in pending.values())


def _by_content(old: _CsvSource, new: _CsvSource, out: CsvDiff) -> None:
    common = [c for c in old.header if c in new.header]
    old_ix = [old.header.index(c) for c in common]
    new_ix = [new.header.index(c) for c in common]
    pending: dict[tuple[str, ...], deque[int]] = {}
    rows: list[tuple[str, ...]] = []
    for n, row in enumerate(old.rows()):
        rows.append(row)
        pending.setdefault(tuple(row[i] for i in old_ix), deque()).append(n)
    for row in new.rows():
        matches = pending.get(tuple(row[i] for i in new_ix))
        if matches:
            matches.popleft()
        else:
            out.added.append(_as_dict(new.header, row))
    left = sorted(n for queue in pending.values() for n in queue)
    out.removed.extend(_as_dict(old.header, rows[n]) for n in left)


def diff_csv(
    old: BinaryIO,
    new: BinaryIO,
    key: str | Sequence[str] | None = None,
    *,
    old_label: str = "old",
    new_label: str = "new",
    encoding: str = "utf-8-sig",
) -> CsvDiff:
    """Row-level diff of two CSV streams (each dialect sniffed, first row = header).

    With ``key`` (a column name or several), rows are matched by their key values: unmatched
    rows are ``added``/``removed`` and matched rows whose common cells differ are ``changed``.
    Without a key, rows are matched by content (their common columns, duplicates counted), so
    an edited row shows as one removed and one added row and ``changed`` stays empty. The old
    version's rows are held in memory; the new version is streamed.

    Raises:
        InvalidContentError: A version is not decodable CSV, lacks a key column, repeats a
            column name or (with a key) a key value; the message names the version.
        InvalidArgumentError: ``key`` is not a column name or a sequence of them.
        InvalidEncodingError: ``encoding`` is not a text codec.
    """
    if key is not None and not isinstance(key, str) and (
        not isinstance(key, Sequence) or not all(isinstance(k, str) for k in key)
    ):
        raise InvalidArgumentError(f"key must be a column name or a list of them, not {key!r}")
    encoding = _text_codec(encoding)
    keys = [key] if isinstance(key, str) else list(key or [])
    src_old = _CsvSource(old, old_label, encoding)
    src_new = _CsvSource(new, new_label, encoding)
    out = CsvDiff(
        columns_added=[c for c in src_new.header if c not in src_old.header],
        columns_removed=[c for c in src_old.header if c not in src_new.header],
    )
    if keys:
        _keyed(src_old, src_new, keys, out)
    else:
        _by_content(src_old, src_new, out)
    return out
