"""Write-side helpers of :class:`~storied.core.node.StorageNode`: the atomic writer behind
``open('w'|'a'|'x'|'r+')``, the ``skip_if_unchanged`` comparison and encoding checks.

``open('x')`` is exclusive everywhere: a create-only backend write where the storage has
conditional writes (also on native S3 versions), the portable engine's exclusive write on
mounts with storied's history, else a check at open and another at close.
"""

from __future__ import annotations

import codecs
import hashlib
from typing import TYPE_CHECKING, BinaryIO

from storied.core.streams import AtomicWriter, md5_of_stream
from storied.errors import (
    InvalidArgumentError,
    InvalidEncodingError,
    StorageAlreadyExistsError,
    StorageNotFoundError,
    UnsupportedOperation,
)

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["check_encoding", "check_mode", "open_writer", "unchanged"]


def check_encoding(encoding: str) -> str:
    """Return ``encoding`` if Python knows a codec of that name.

    Raises:
        InvalidEncodingError: Unknown encoding (also a ``LookupError`` and a ``ValueError``).
    """
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise InvalidEncodingError(f"Unknown text encoding: {encoding!r}") from None
    return encoding


def check_mode(mode: object) -> None:
    """Refuse an ``open`` mode that is not one of ``r w a x`` (plus ``+``, ``b`` or ``t``).

    Raises:
        InvalidArgumentError: A malformed mode (also a ``ValueError``, as ``open`` raises).
    """
    if (
        not isinstance(mode, str)
        or set(mode) - set("rwaxbt+")
        or sum(mode.count(c) for c in "rwax") != 1
        or len(set(mode)) != len(mode)
        or ("b" in mode and "t" in mode)
    ):
        raise InvalidArgumentError(f"Invalid mode {mode!r} (use r, w, a, x, r+; add b)")


def open_writer(node: StorageNode, mode: str) -> AtomicWriter:
    """The buffered atomic writer of ``node.open(mode)`` for a writing ``mode``.

    Raises:
        StoragePermissionError: The mount refuses writes, or the node is version-pinned.
        StorageAlreadyExistsError: ``'x'`` and the file exists (at open, or at close when
            another writer created it meanwhile: nothing is overwritten).
        StorageNotFoundError: ``'r+'`` of a missing file.
    """
    backend, path = node._be, node.path
    node.require_writable()
    exclusive = "x" in mode
    if exclusive and backend.exists(path):
        raise StorageAlreadyExistsError(f"{node.fullpath} already exists")
    initial: BinaryIO | None = None
    if "a" in mode or "r" in mode:
        try:
            initial = backend.open_read(path)
        except StorageNotFoundError:
            if "r" in mode:
                raise

    def commit(stream: BinaryIO) -> None:
        # create-only where the storage can (history or not), else a check first
        node._store(stream, exclusive=exclusive)

    return AtomicWriter(commit, initial, position_at_end="a" in mode)


def unchanged(node: StorageNode, data: bytes) -> bool:
    """True when ``data`` is what the file holds, so a ``skip_if_unchanged`` write may skip.

    On a mount with history the latest version must match (size, MD5) *and* so must the
    working copy: after a crash between the history record and the working copy, the working
    copy is older than the history, and the write then goes through (which repairs it).
    """
    md5 = hashlib.md5(data).hexdigest()
    history = node._history
    if history is not None:
        found = history.versions(node.path)
        latest = found[-1] if found and found[-1].is_latest else None
        if latest is None or latest.size != len(data) or latest.etag != md5:
            return False
        if history.name != "portable":
            return True  # native versions: the latest version is the object itself
    info = node._info_or_none()
    if info is None or info.is_dir or info.size != len(data):
        return False
    current = info.md5 or md5_of_stream(node._be.open_read(node.path))
    return current == md5


def check_conditions(node: StorageNode, if_match: object, create_only: object) -> None:
    """Refuse bad ``if_match``/``create_only`` arguments, and either on a mount without
    conditional writes (the message names the mount)."""
    if if_match is None and not create_only:
        return
    if if_match is not None and create_only:
        raise InvalidArgumentError("Pass either if_match or create_only, not both")
    if if_match is not None and (not isinstance(if_match, str) or not if_match):
        raise InvalidArgumentError(f"if_match must be a non-empty etag str, not {if_match!r}")
    if not isinstance(create_only, bool):
        raise InvalidArgumentError(f"create_only must be a bool, not {create_only!r}")
    if not node._be.capabilities.conditional_write:
        what = "if_match" if if_match is not None else "create_only"
        raise UnsupportedOperation(
            f"Mount {node.mount_name!r} cannot write conditionally ({what}): its storage "
            "has no conditional writes"
        )


def check_text_options(buffering: object, errors: object, newline: object) -> None:
    """Refuse what :func:`open` would refuse in ``buffering``, ``errors`` and ``newline``."""
    if not isinstance(buffering, int) or isinstance(buffering, bool):
        raise InvalidArgumentError(f"buffering must be an int, not {buffering!r}")
    if errors is not None:
        try:
            codecs.lookup_error(errors)  # type: ignore[arg-type]
        except (LookupError, TypeError):
            raise InvalidArgumentError(f"Unknown error handler {errors!r}") from None
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise InvalidArgumentError(f"Invalid newline {newline!r}")
