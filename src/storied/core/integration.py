"""Integration helpers of :class:`~storied.core.node.StorageNode`: local paths, subprocesses,
WSGI serving, URL downloads, base64 and zip. Thin methods; the work is in ``localfile``, ``web``
and ``virtual``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from storied.errors import ZipSourceNotFoundError

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["IntegrationMethods"]


class IntegrationMethods:
    """Mixed into ``StorageNode``; relies on its ``_version``."""

    _version: int | str | None

    def _as_node(self) -> StorageNode:
        return cast("StorageNode", self)

    def local_path(self, mode: str = "r") -> AbstractContextManager[str]:
        """A context manager yielding a local filesystem path for this file; see
        :func:`storied.core.localfile.local_path`."""
        from storied.core.localfile import local_path

        if self._version is not None:
            from storied.core.pinned import pinned_local_path

            return pinned_local_path(self._as_node(), mode)
        return local_path(self._as_node(), mode)

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """Run a subprocess with node arguments as local paths; see
        :func:`storied.core.localfile.call`."""
        from storied.core.localfile import call

        return call(*args, **kwargs)

    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any], **kw: Any) -> Any:
        """Answer a WSGI request with this file; see :func:`storied.core.web.serve`."""
        from storied.core.web import serve

        return serve(self._as_node(), environ, start_response, **kw)

    def fill_from_url(self, url: str, timeout: float = 30) -> None:
        """Download ``url`` (http/https) into this file, streamed."""
        from storied.core.web import fill_from_url

        fill_from_url(self._as_node(), url, timeout)

    def to_base64(self, mime: str | None = None, include_uri: bool = True) -> str:
        """The content as base64, as a ``data:`` URI unless ``include_uri`` is false."""
        from storied.core.web import to_base64

        return to_base64(self._as_node(), mime, include_uri)

    def zip(self) -> bytes:
        """A ZIP archive (deflated) of this file (one entry, its basename) or directory (every
        file below it, by its path relative to the directory; an empty directory gives an
        empty archive), as genro-storage makes it.

        Raises:
            ZipSourceNotFoundError: Nothing is at this path (a ``FileNotFoundError`` and, as
                genro-storage raises, a ``ValueError``).
        """
        from storied.core.virtual import zip_nodes

        node = self._as_node()
        if not node.exists():
            raise ZipSourceNotFoundError(
                f"Cannot create ZIP: node doesn't exist or is invalid type: {node.fullpath}")
        return zip_nodes([node], dir_prefix=False)
