"""``storied web``: a browser for mounts, file histories, diffs and snapshots.

``create_app(storage, read_only=False, token=...)`` returns an ASGI application (Starlette,
server-rendered Jinja2 pages with autoescape, a little JavaScript, nothing fetched from
elsewhere) to run with any ASGI server; ``storied web`` runs it with uvicorn on 127.0.0.1.
It needs the ``web`` extra: ``pip install 'storied[web]'``. Security model: docs/adr/0017.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["create_app"]


def create_app(storage: StorageManager, read_only: bool = False, token: str | None = None) -> Any:
    """The web browser of ``storage`` as an ASGI application.

    Args:
        storage: The configured manager whose mounts are browsed (public API only).
        read_only: When true no action is offered or accepted (restore, tag, annotate,
            snapshots); read-only mounts never offer them anyway.
        token: The secret every request must carry (``?token=`` once, then a cookie, or an
            ``Authorization: token <T>`` header). None makes a random one, available as
            ``app.state.token``.

    Raises:
        MissingDependencyError: Starlette or Jinja2 is missing (``pip install 'storied[web]'``).
        InvalidArgumentError: ``token`` is empty or not a str.
    """
    try:
        from storied.web.app import build_app
    except ModuleNotFoundError as exc:
        from storied.errors import MissingDependencyError

        raise MissingDependencyError(
            f"storied web needs {exc.name}: pip install 'storied[web]'"
        ) from exc
    return build_app(storage, read_only=read_only, token=token)
