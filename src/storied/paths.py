"""Pure path rules: parse, normalise, join and confine. No I/O here.

Every path that reaches a backend has gone through :func:`normalize`: ``/``-separated segments, no
leading or trailing slash, no empty, ``.`` or ``..`` segments. ``""`` is the mount root.

Refused, with :class:`~storied.errors.PathEscapeError` (also ``PermissionError`` and
``ValueError``): ``..`` segments and anything that decodes to one (``%2e%2e``, full-width dots),
Windows drive prefixes, and (in relative parts) absolute paths. Refused with
:class:`~storied.errors.InvalidPathError` (a ``ValueError``): NUL and other control characters, and
backslashes, which some servers (SMB, WebDAV on Windows) treat as separators.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from storied.errors import InvalidPathError, PathEscapeError, StoragePermissionError

__all__ = [
    "RESERVED",
    "TMP_MARK",
    "check_public",
    "is_hidden",
    "is_under",
    "join",
    "normalize",
    "relative_to",
    "split_fullpath",
]

#: Name of the area inside a mount that storied keeps for itself (history, tags, locks). The
#: segment is reserved at any depth: user paths may not contain it, listings never show it.
RESERVED = ".storied"

#: Marker in the names of the temporary files adapters write before an atomic rename. Listings
#: hide such names, so user paths may not contain it either (what a listing hides, a copy cannot
#: see and a delete must not touch).
TMP_MARK = ".storied-tmp-"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_segment(segment: str, original: str) -> None:
    decoded = unquote(segment)
    folded = unicodedata.normalize("NFKC", decoded)
    if folded in ("..", "."):
        raise PathEscapeError(f"Parent directory traversal (..) is not supported: {original!r}")
    if "/" in decoded or "\\" in decoded or "/" in folded or "\\" in folded:
        raise PathEscapeError(f"Encoded separator in path segment: {original!r}")


def normalize(path: str, *, allow_absolute: bool = True) -> str:
    """Return the canonical form of a mount-relative path.

    Args:
        path: A ``/``-separated path. Leading slashes mean "from the mount root" and are dropped
            when ``allow_absolute`` is true (genro-storage behaviour for ``'mount:/a/b'``).
        allow_absolute: When false, a leading slash is an escape attempt (used for ``child()``
            parts, where pathlib would replace the whole path).

    Returns:
        The path without empty, ``.`` segments or surrounding slashes; ``""`` for the root.

    Raises:
        InvalidPathError: The path is not a string, or has control characters or backslashes.
        PathEscapeError: The path has ``..`` (in any encoding), a drive prefix, or is absolute
            where that is not allowed.
    """
    if not isinstance(path, str):
        raise InvalidPathError(f"A path must be a str, not {type(path).__name__}")
    if _CONTROL.search(path):
        raise InvalidPathError(f"Control characters are not allowed in a path: {path!r}")
    if "\\" in path:
        raise InvalidPathError(f"Backslashes are not allowed in a path: {path!r}")
    if _DRIVE.match(path):
        raise PathEscapeError(f"Drive-qualified paths are not allowed: {path!r}")
    if path.startswith("/") and not allow_absolute:
        raise PathEscapeError(f"Absolute paths are not allowed here: {path!r}")
    parts = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        _check_segment(segment, path)
        parts.append(segment)
    return "/".join(parts)


def join(base: str, *parts: str) -> str:
    """Join normalised ``base`` with relative ``parts``, refusing any escape.

    Each part may hold several segments (``'a/b'``) but may not be absolute.
    """
    extra = [normalize(p, allow_absolute=False) for p in parts]
    return "/".join(p for p in (base, *extra) if p)


def split_fullpath(fullpath: str) -> tuple[str, str]:
    """Split ``'mount:path'`` into ``('mount', 'path')``; ``'mount'`` gives ``('mount', '')``."""
    mount, sep, rest = fullpath.partition(":")
    return mount, rest if sep else ""


def _is_reserved(segment: str) -> bool:
    """``.storied`` in any case, with trailing dots or spaces (names that case-insensitive or
    Windows/SMB file systems take for the reserved folder itself), also percent-encoded or in an
    NFKC-equivalent form (full-width letters), as :func:`normalize` folds ``..``."""
    folded = unicodedata.normalize("NFKC", unquote(segment))
    return any(form.casefold().rstrip(". ") == RESERVED for form in (segment, folded))


def _is_temp(segment: str) -> bool:
    return TMP_MARK in segment.casefold()


def check_public(path: str) -> str:
    """Return the normalised ``path`` unless a user may not name it.

    Raises:
        StoragePermissionError: A segment (at any depth) is :data:`RESERVED` (in any case, with
            trailing dots or spaces: the same folder on case-insensitive storages; also
            percent-encoded or NFKC-equivalent, e.g. full-width letters).
        InvalidPathError: A segment contains :data:`TMP_MARK` (names listings hide).
    """
    for segment in path.split("/"):
        if _is_reserved(segment):
            raise StoragePermissionError(f"{path!r} is reserved for storied's own records")
        if _is_temp(segment):
            raise InvalidPathError(
                f"{path!r}: names containing {TMP_MARK!r} are reserved for temporary files"
            )
    return path


def is_hidden(path: str) -> bool:
    """True when a listing must not show ``path``: a :data:`RESERVED` segment or a
    :data:`TMP_MARK` name at any depth (exactly the paths :func:`check_public` refuses)."""
    return any(_is_reserved(seg) or _is_temp(seg) for seg in path.split("/"))


def is_under(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or inside it (both normalised)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


def relative_to(path: str, prefix: str) -> str:
    """Strip ``prefix`` from a normalised ``path`` that :func:`is_under` it."""
    if not prefix:
        return path
    if path == prefix:
        return ""
    if not path.startswith(prefix + "/"):
        raise PathEscapeError(f"{path!r} is not under {prefix!r}")
    return path[len(prefix) + 1 :]
