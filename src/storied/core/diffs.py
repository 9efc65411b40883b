"""The version diff methods of :class:`~storied.core.node.StorageNode`.

Each method reads two versions of the node's file from the mount's history and hands them to
:mod:`storied.diff`. ``v1`` and ``v2`` name versions as everywhere else: an index (``-1`` the
latest, ``0`` the oldest), a version id or a tag, resolved by the history. Whatever the
argument order, the diff goes **from the older of the two versions to the newer**: with the
defaults (``-1``, ``-2``) it shows what the latest write changed, ``added`` meaning "in the
newer version only".

Headers, labels and error messages name the file and the version: ``v:app/config.yaml@<id>``,
its tags in brackets when it has any, and its date (ISO 8601, UTC).
"""

from __future__ import annotations

import io
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    from storied.diff.image import ImageDiff
    from storied.versioning.engine import Version
    from storied.versioning.history import MountHistory

__all__ = ["DiffMethods"]


class _Side:
    """One resolved version of the file, with its label and date."""

    def __init__(self, version: Version, fullpath: str, tags: list[str]) -> None:
        self.version = version
        self.label = f"{fullpath}@{version.version_id}" + (f" [{', '.join(tags)}]" if tags else "")
        self.date = version.last_modified.isoformat(timespec="seconds")

    @property
    def described(self) -> str:
        """How errors name it: label and date."""
        return f"{self.label} ({self.date})"


def _resolve(history: MountHistory, path: str, version: int | str) -> Version:
    """``history.resolve``, with an unknown index also a storied error.

    Raises:
        VersionNotFoundError: No such version (also an ``IndexError``, a
            ``StorageNotFoundError``).
    """
    from storied.errors import StorageNotFoundError, VersionNotFoundError

    try:
        return history.resolve(path, version)
    except VersionNotFoundError:
        raise
    except (IndexError, StorageNotFoundError) as exc:
        raise VersionNotFoundError(str(exc)) from exc


class DiffMethods:
    """Mixed into ``StorageNode``; relies on its ``_path``, ``fullpath`` and ``_need_history``."""

    _path: str

    if TYPE_CHECKING:

        @property
        def fullpath(self) -> str: ...

        def _need_history(self, what: str = "versioning") -> MountHistory: ...

    # ---------------------------------------------------------------- plumbing
    def _diff_sides(self, v1: int | str, v2: int | str) -> tuple[_Side, _Side]:
        """Resolve both versions (index, id or tag); return them oldest first."""
        history = self._need_history()
        first = _resolve(history, self._path, v1)
        second = _resolve(history, self._path, v2)
        order = {v.version_id: n for n, v in enumerate(history.versions(self._path))}
        if order.get(first.version_id, 0) > order.get(second.version_id, 0):
            first, second = second, first
        tags: dict[str, list[str]] = {}
        for tag, version_id in sorted(history.refs(self._path).tags.items()):
            tags.setdefault(version_id, []).append(tag)
        return (
            _Side(first, self.fullpath, tags.get(first.version_id, [])),
            _Side(second, self.fullpath, tags.get(second.version_id, [])),
        )

    def _diff_bytes(self, side: _Side) -> bytes:
        """The version's content, decrypted when it was written encrypted."""
        from storied.core.sealed import opened

        history = self._need_history()
        with history.open_version(self._path, side.version) as stream:
            return opened(self, stream.read())

    # ---------------------------------------------------------------- text
    def diff_versions_text(
        self,
        v1: int | str = -1,
        v2: int | str = -2,
        format: str = "unified",
        context_lines: int = 3,
        encoding: str | None = None,
    ) -> str:
        """A line diff between two versions of a text file.

        Args:
            v1: One version (index, id or tag).
            v2: The other; the diff goes from the older of the two to the newer.
            format: ``'unified'`` or ``'context'`` (the :mod:`difflib` formats, headers naming
                file, version id and date), or ``'html'``: a complete, self-contained page
                (inline CSS, no script, nothing fetched) showing both versions side by side.
            context_lines: Unchanged lines shown around each change.
            encoding: The text encoding; None means UTF-8 (a BOM is dropped).

        Returns:
            The diff; '' when the versions are equal (HTML: a page saying "No differences").

        Raises:
            BinaryContentError: A version is binary (a NUL byte, or undecodable); the message
                names it. Also a ``ValueError``.
            InvalidEncodingError: ``encoding`` is not a text codec (also a ``LookupError``).
            InvalidArgumentError: Unknown ``format`` or negative ``context_lines`` (also a
                ``ValueError``).
            VersionNotFoundError: A version does not exist (also an ``IndexError`` and a
                ``StorageNotFoundError``).
            UnsupportedOperation: The mount keeps no history.
        """
        from storied.diff.text import FORMATS, decode_text, diff_text
        from storied.errors import InvalidArgumentError

        if format not in FORMATS:
            raise InvalidArgumentError(
                f"format must be one of {', '.join(FORMATS)}, not {format!r}"
            )
        old, new = self._diff_sides(v1, v2)
        old_text = decode_text(self._diff_bytes(old), old.described, encoding)
        new_text = decode_text(self._diff_bytes(new), new.described, encoding)
        return diff_text(
            old_text,
            new_text,
            format,  # type: ignore[arg-type]
            context_lines=context_lines,
            old_label=old.label,
            new_label=new.label,
            old_date=old.date,
            new_date=new.date,
        )

    # ---------------------------------------------------------------- structured
    def diff_json_versions(
        self, v1: int | str = -1, v2: int | str = -2
    ) -> dict[str, list[dict[str, Any]]]:
        """The semantic diff between two versions of a JSON document.

        Objects are compared by key whatever their order, arrays by index.

        Returns:
            ``{'added': [...], 'removed': [...], 'changed': [...]}``: added and removed entries
            are ``{'path': '$.servers[2]', 'value': ...}``, changed ones ``{'path', 'old',
            'new'}``; all three lists are empty for equal documents.

        Raises:
            InvalidContentError: A version is not valid JSON (the message names it); also a
                ``ValueError``.
        """
        from storied.diff.model import changes_as_dict
        from storied.diff.structured import diff_json_bytes

        old, new = self._diff_sides(v1, v2)
        before, after = self._diff_bytes(old), self._diff_bytes(new)
        return changes_as_dict(diff_json_bytes(before, after, old.described, new.described))

    def diff_xml_versions(self, v1: int | str = -1, v2: int | str = -2) -> list[dict[str, Any]]:
        """The semantic edit list between two versions of an XML document (xmldiff).

        Returns:
            One dict per edit, in order: ``{'kind': 'added'|'removed'|'changed', 'action':
            'update-text'|'update-attribute'|'insert-node'|'delete-node'|..., 'path': an XPath
            such as '/config/server[2]/@port', 'old': ..., 'new': ...}``; ``[]`` when equal.
            Paths of later edits refer to the document with the earlier edits applied.

        Raises:
            InvalidContentError: A version is not well-formed XML (the message names it).
            MissingDependencyError: xmldiff is missing: ``pip install 'storied[diff]'``.
        """
        from storied.diff.structured import diff_xml

        old, new = self._diff_sides(v1, v2)
        changes = diff_xml(
            self._diff_bytes(old), self._diff_bytes(new), old.described, new.described
        )
        return [change.as_record() for change in changes]

    def diff_csv_versions(
        self, v1: int | str = -1, v2: int | str = -2, key: str | list[str] | None = None
    ) -> dict[str, Any]:
        """The row-level diff between two versions of a CSV file (dialect sniffed, first row
        the header; the older version's rows are held in memory, the newer one is streamed).

        Args:
            v1: One version (index, id or tag).
            v2: The other.
            key: Column name(s) identifying a row. Without it rows are matched by content, so
                an edited row is one removed and one added row.

        Returns:
            ``{'added': [row, ...], 'removed': [row, ...], 'changed': [{'key': {col: value},
            'changes': {col: {'old', 'new'}}}, ...], 'columns_added': [...],
            'columns_removed': [...]}`` with rows as ``{column: value}`` dicts.

        Raises:
            InvalidContentError: A version is not decodable CSV, lacks a key column or repeats
                a key; the message names it.
        """
        from storied.diff.structured import diff_csv

        old, new = self._diff_sides(v1, v2)
        history = self._need_history()
        with ExitStack() as stack:
            a = stack.enter_context(history.open_version(self._path, old.version))
            b = stack.enter_context(history.open_version(self._path, new.version))
            a, b = _plain_stream(self, a), _plain_stream(self, b)
            result = diff_csv(a, b, key, old_label=old.described, new_label=new.described)
        return result.as_dict()

    def diff_image_versions(
        self, v1: int | str = -1, v2: int | str = -2, max_pixels: int | None = 50_000_000
    ) -> ImageDiff:
        """A visual diff between two versions of an image.

        Args:
            v1: One version (index, id or tag).
            v2: The other.
            max_pixels: The largest image (and common canvas), width x height, that is
                decoded: checked from each file's header before decoding (default 50 Mpx,
                :data:`storied.diff.image.MAX_PIXELS`; a diff costs ~30 bytes per pixel).
                None removes this limit (Pillow's own bomb guard stays).

        Returns:
            An :class:`~storied.diff.image.ImageDiff`: ``similarity`` in [0, 1] (1.0 when
            identical), ``hash_distance`` (perceptual hash), ``image`` (a Pillow image of the
            newer version with changed pixels highlighted), ``changed_pixels``, ``bbox``.
            Images of different sizes are compared on a common canvas.

        Raises:
            InvalidContentError: A version is not a readable image, or is over ``max_pixels``
                (the message names it).
            MissingDependencyError: Pillow/imagehash are missing: ``pip install
                'storied[image]'``.
        """
        from storied.diff.image import diff_images, load_image

        old, new = self._diff_sides(v1, v2)
        before = load_image(self._diff_bytes(old), old.described, max_pixels)
        after = load_image(self._diff_bytes(new), new.described, max_pixels)
        return diff_images(before, after, max_pixels)


def _plain_stream(node: Any, stream: BinaryIO) -> BinaryIO:
    """``stream``'s bytes as they are, or decrypted when they hold an encryption envelope
    (peeking at the first bytes, which are given back: no seek needed)."""
    from storied.core.sealed import opened

    head = stream.read(7)
    if head in (b"#GNRE1:", b"#STRE1:"):
        return io.BytesIO(opened(node, head + stream.read()))
    return cast(BinaryIO, io.BufferedReader(_Prepended(head, stream)))


class _Prepended(io.RawIOBase):
    """``head`` then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
