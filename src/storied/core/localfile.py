"""Local filesystem access to any node: ``local_path`` and ``call``."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from storied.backends.base import CHUNK
from storied.errors import InvalidArgumentError, PreconditionFailedError, StorageNotFoundError

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["call", "local_path"]

_LOG = logging.getLogger("storied")


def _digest(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def local_path(node: StorageNode, mode: str = "r") -> Iterator[str]:
    """Yield a filesystem path holding the node's content.

    On local mounts this is the real file (for writing modes, only on mounts without history).
    Elsewhere the file is downloaded to a temporary file (same suffix) for ``'r'`` and ``'rw'``,
    and uploaded on exit for ``'w'`` and ``'rw'`` only if its content changed; the temporary
    file is removed on exit. Leaving the block by an exception uploads nothing. With ``'rw'``
    the upload is refused when the file changed in the storage since it was downloaded
    (another writer's update is never silently overwritten; two small reads of its etag).

    Raises:
        InvalidArgumentError: (a ``ValueError``) ``mode`` is not ``'r'``, ``'w'`` or ``'rw'``.
        StoragePermissionError: A writing mode on a mount that refuses writes.
        PreconditionFailedError: ``'rw'``, and the file changed in the storage meanwhile; the
            local result is kept in the temporary file the message names.
    """
    if mode not in ("r", "w", "rw"):
        raise InvalidArgumentError(f"local_path mode must be 'r', 'w' or 'rw', not {mode!r}")
    if "w" in mode:
        node.require_writable()
    real = node._be.local_path(node.path)
    if real is not None and "w" in mode and (node._portable or _has_other_names(real)):
        # writes must reach the history, and must never go through a hard link planted in the
        # mount into a file elsewhere: both go through a temporary copy whose upload replaces
        real = None
    if real is not None:
        if "w" in mode:
            os.makedirs(os.path.dirname(real), exist_ok=True)
        yield real
        return
    fd, tmp = tempfile.mkstemp(suffix=node.suffix, prefix="storied-")
    os.close(fd)
    keep = False
    try:
        seen = _etag(node) if mode == "rw" else None
        if "r" in mode:
            try:
                with node._be.open_read(node.path) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            except StorageNotFoundError:
                if mode == "r":
                    raise
        before = _digest(tmp) if mode == "rw" else None
        yield tmp
        if "w" in mode and os.path.exists(tmp) and (mode == "w" or _digest(tmp) != before):
            if mode == "rw" and _etag(node) != seen:
                keep = True
                raise PreconditionFailedError(
                    f"{node.fullpath} was changed by someone else while it was being edited "
                    f"locally; not overwriting it. The local result is kept in {tmp!r}"
                )
            with open(tmp, "rb") as stream:
                node._store(stream)
    finally:
        if not keep and os.path.exists(tmp):
            os.unlink(tmp)


def _etag(node: StorageNode) -> str | None:
    """The node's etag now (None when it does not exist or has no etag)."""
    try:
        return node._be.info(node.path).etag
    except StorageNotFoundError:
        return None


def call(
    *args: Any,
    callback: Callable[[], object] | None = None,
    async_mode: bool = False,
    return_output: bool = False,
    **subprocess_kwargs: Any,
) -> str | None:
    """Run a command whose node arguments are replaced by local paths (genro-storage semantics).

    Node arguments are made local with ``local_path(mode='rw')``: downloaded first, uploaded
    afterwards only when the command changed them. ``subprocess_kwargs`` go to
    :func:`subprocess.check_output` / :func:`subprocess.check_call` (``cwd``, ``env``,
    ``timeout``, ``shell``...). ``callback()`` runs after a successful run, once every changed
    node has been uploaded (genro-storage calls it before the upload; storied waits, so a callback
    always sees the new content).

    With ``async_mode=True`` the command runs in a background thread and ``None`` is returned at
    once; the thread is not a daemon, so an exiting interpreter waits for the upload instead of
    cutting it off. A failure in the background is logged on the ``storied`` logger and the
    callback is not called.

    Returns:
        The command's standard output as ``str`` (UTF-8, undecodable bytes replaced) with
        ``return_output=True``; ``None`` otherwise, and always ``None`` with ``async_mode``.

    Raises:
        subprocess.CalledProcessError: The command exited non-zero (synchronous mode).
        FileNotFoundError: The executable does not exist (synchronous mode).
    """
    from storied.core.node import StorageNode

    def run() -> str | None:
        output: str | None = None
        with ExitStack() as stack:
            argv = [
                stack.enter_context(local_path(a, "rw")) if isinstance(a, StorageNode) else str(a)
                for a in args
            ]
            if return_output:
                raw = subprocess.check_output(argv, **subprocess_kwargs)
                output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            else:
                subprocess.check_call(argv, **subprocess_kwargs)
        if callback is not None:
            callback()
        return output

    if not async_mode:
        return run()

    def background() -> None:
        try:
            run()
        except BaseException:
            _LOG.exception("storied call %r failed in the background", [str(a) for a in args])

    threading.Thread(target=background, name="storied-call", daemon=False).start()
    return None


def _has_other_names(real: str) -> bool:
    """True when the file at ``real`` has more than one name (a hard link), so writing it in
    place could change a file outside the mount."""
    try:
        return os.lstat(real).st_nlink > 1
    except OSError:
        return False
