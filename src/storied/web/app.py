"""The Starlette application: routes, the template environment, and errors as pages.

Every endpoint is a plain function ``(web, request, form) -> Response`` run in Starlette's
thread pool (the storied API blocks); :func:`_endpoint` wraps it so that any failure becomes
an error page: a storied error (and the plain ``ValueError``/``IndexError``/``LookupError`` the
API raises for bad arguments) gives a 4xx page with the one-line message, anything else a
500 page saying "internal error" (the traceback goes to the ``storied.web`` logger, never to
the page).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from storied import errors
from storied.web import render
from storied.web.security import Guard, csrf_token

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["Web", "build_app", "status_for"]

log: logging.Logger = logging.getLogger("storied.web")
HERE = Path(__file__).parent
FLASH = "storied_flash"

Handler = Callable[["Web", Request, Any], Response]


def status_for(exc: BaseException) -> int:
    """The HTTP status of an error page for ``exc``."""
    if isinstance(exc, errors.StorageNotFoundError):
        return 404
    if isinstance(exc, errors.StoragePermissionError):
        return 403
    if isinstance(exc, errors.StorageAlreadyExistsError | errors.PreconditionFailedError):
        return 409
    if isinstance(exc, errors.TransientStorageError):
        return 503
    if isinstance(exc, errors.MissingDependencyError):
        return 501
    if isinstance(exc, errors.StorageError | ValueError | LookupError | TypeError):
        return 400
    return 500


def one_line(text: str, limit: int = 500) -> str:
    """``text`` folded onto one line, control characters escaped, at most ``limit`` chars."""
    folded = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    clean = "".join(c if c.isprintable() else repr(c)[1:-1] for c in folded)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


class Web:
    """What every endpoint needs: the manager, the mode, the token and the templates."""

    csrf: str
    env: Environment

    def __init__(self, storage: StorageManager, read_only: bool, token: str) -> None:
        self.storage = storage
        self.read_only = read_only
        self.token = token
        self.csrf = csrf_token(token)
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(url=url, size=render.human_size, when=render.when)

    def writable(self, mount: str) -> bool:
        """True when actions are offered on ``mount``: not ``read_only`` and the mount writes."""
        if self.read_only:
            return False
        return bool(self.storage.get_backend(mount).capabilities.write)

    def need_writable(self, mount: str) -> None:
        """Raise ``StoragePermissionError`` unless actions are allowed on ``mount``."""
        if self.read_only:
            raise errors.StoragePermissionError("This browser is read-only (--read-only)")
        if not self.writable(mount):
            raise errors.StoragePermissionError(
                f"Mount {mount!r} is read-only. Write operations are not permitted."
            )

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """Render template ``name`` with ``context`` (plus csrf, flash, read_only)."""
        flash = request.cookies.get(FLASH)
        body = self.env.get_template(name).render(
            csrf=self.csrf,
            app_read_only=self.read_only,
            flash=one_line(unquote(flash)) if flash else None,
            **context,
        )
        response = html_response(body, status)
        if flash:
            response.delete_cookie(FLASH, path="/")
        return response

    def error(self, status: int, message: str) -> Response:
        """The error page (no request context needed)."""
        body = self.env.get_template("error.html").render(
            status=status, message=one_line(message), csrf="", app_read_only=self.read_only,
            flash=None,
        )
        return html_response(body, status)


def html_response(body: str, status: int = 200) -> Response:
    """``body`` as a UTF-8 HTML response; a name the storage gave as a lone surrogate (a
    non-UTF-8 file name) shows as a backslash escape instead of failing the page."""
    return HTMLResponse(body.encode("utf-8", "backslashreplace"), status_code=status)


def url(route: str, **params: Any) -> str:
    """``/route?k=v...`` with the parameters that are not None, URL-encoded (UTF-8)."""
    kept = {k: v for k, v in params.items() if v is not None}
    # surrogateescape: a non-UTF-8 name goes out as its own bytes and comes back the same
    # (pages.param parses the query the same way)
    return route + ("?" + urlencode(kept, errors="surrogateescape") if kept else "")


def redirect(target: str, message: str | None = None) -> Response:
    """A 303 to ``target``, with a one-time message shown by the next page."""
    response = RedirectResponse(target, status_code=303)
    if message:
        response.set_cookie(FLASH, quote(one_line(message, 300)), httponly=True,
                            samesite="strict", path="/")
    return response


def _endpoint(web: Web, handler: Handler, post: bool) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            form = None
            if post:
                form = await request.form()
                given = form.get("csrf")
                if not isinstance(given, str) or not secrets.compare_digest(given, web.csrf):
                    return web.error(403, "Forbidden: the form's CSRF token is missing or wrong "
                                     "(reload the page and try again)")
            return await run_in_threadpool(handler, web, request, form)
        except HTTPException as exc:  # a malformed request body (Starlette's form parser)
            return web.error(exc.status_code, str(exc.detail))
        except Exception as exc:  # every failure is a page, never a traceback
            status = status_for(exc)
            if status == 500:
                log.exception("storied web: internal error on %s", request.url.path)
                return web.error(500, "Internal error: the server log has the details")
            return web.error(status, str(exc) or type(exc).__name__)

    return endpoint


def build_app(storage: StorageManager, read_only: bool = False, token: str | None = None) -> Any:
    """See :func:`storied.web.create_app`."""
    from storied.web import actions, mount_pages, pages

    if token is None:
        token = secrets.token_urlsafe(24)
    if not isinstance(token, str) or not token:
        raise errors.InvalidArgumentError("token must be a non-empty str")
    web = Web(storage, bool(read_only), token)
    gets: list[tuple[str, Handler]] = [
        ("/", pages.mounts),
        ("/browse", pages.folder),
        ("/counts", pages.counts),
        ("/file", pages.file_page),
        ("/view", pages.view),
        ("/raw", pages.raw),
        ("/image", pages.image),
        ("/diff", pages.diff),
        ("/diffimage", pages.diff_image),
        ("/snapshots", mount_pages.snapshots),
        ("/snapshot", mount_pages.snapshot),
        ("/snapshot/diff", mount_pages.snapshot_diff),
        ("/snapshot/new", mount_pages.snapshot_new),
        ("/events", mount_pages.events),
    ]
    posts: list[tuple[str, Handler]] = [
        ("/act/restore", actions.restore),
        ("/act/tag", actions.tag),
        ("/act/untag", actions.untag),
        ("/act/annotate", actions.annotate),
        ("/act/snapshot-create", actions.snapshot_create),
        ("/act/snapshot-restore", actions.snapshot_restore),
    ]
    routes: list[Any] = [Route(p, _endpoint(web, h, False), methods=["GET"]) for p, h in gets]
    routes += [Route(p, _endpoint(web, h, True), methods=["POST"]) for p, h in posts]
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return web.error(status, "Not found" if status == 404 else f"HTTP {status}")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("storied web: internal error", exc_info=exc)
        return web.error(500, "Internal error: the server log has the details")

    inner = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found,
                                                         500: crashed})

    def refuse(status: int, message: str) -> Any:
        return web.error(status, message)

    app = Guard(inner, token, refuse)
    app.state = inner.state  # type: ignore[attr-defined]
    inner.state.token = token
    inner.state.web = web
    return app
