"""The web app's guard: the access token, the CSRF token and the headers of every response.

* Every request must carry the token: ``?token=T`` (the first visit; answered with a redirect
  to the same URL without it, setting an ``HttpOnly; SameSite=Strict`` cookie), the cookie, or
  an ``Authorization: token T`` header. Anything else gets a 403 page that shows nothing.
* Every POST must carry the CSRF token (a hidden ``csrf`` form field; derived from the access
  token with HMAC, so it is no secret to anyone holding the token and useless to anyone else)
  and, when the browser sends an ``Origin`` or ``Sec-Fetch-Site``, come from the app's own
  origin.
* Every response carries a strict Content-Security-Policy (nothing but the app's own scripts,
  styles and images; no framing, no plugins, forms post only to the app),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (no other site
  sees a URL of the app; ``no-referrer`` would make browsers send ``Origin: null`` on the
  app's own forms) and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

__all__ = ["CSP", "Guard", "cookie_name", "csrf_token", "security_headers"]



def cookie_name(token: str) -> str:
    """The cookie that keeps ``token``: ``storied_token_<8 hex>``, named after the token so
    that two ``storied web`` servers on one host (cookies ignore ports) do not overwrite each
    other's cookie."""
    return "storied_token_" + hashlib.sha256(token.encode()).hexdigest()[:8]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The Content-Security-Policy of every page: no inline script or style, nothing fetched
from another origin, no frames, no plugins."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def csrf_token(token: str) -> str:
    """The CSRF token that goes with access token ``token``."""
    return hmac.new(token.encode(), b"storied-web-csrf", hashlib.sha256).hexdigest()


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers added to every response."""
    return [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class Guard:
    """ASGI middleware: refuse requests without the token, add the headers to every response.

    ``refuse(status, message)`` builds the ASGI response sent for a refused request (the app's
    error page).
    """

    cookie: str

    def __init__(self, app: ASGIApp, token: str,
                 refuse: Callable[[int, str], ASGIApp]) -> None:
        self.app = app
        self.token = token
        self.cookie = cookie_name(token)
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets: refused before the handshake
            await send({"type": "websocket.close", "code": 1008})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in security_headers() if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        from starlette.requests import Request

        request = Request(scope)
        query = request.query_params.get("token")
        cookie = request.cookies.get(self.cookie)
        header = request.headers.get("authorization", "")
        bearer = header[6:].strip() if header.lower().startswith("token ") else None
        if _same(query, self.token):
            if request.method in ("GET", "HEAD"):
                await self._redirect_without_token(scope, send_with_headers, receive)
                return
        elif not (_same(cookie, self.token) or _same(bearer, self.token)):
            what = "a wrong token" if (query or cookie or bearer) else "no token"
            message = (f"Forbidden: {what}. Open the URL that `storied web` printed "
                       "(it ends with ?token=...).")
            await self.refuse(403, message)(scope, receive, send_with_headers)
            return
        if request.method not in ("GET", "HEAD") and not self._origin_ok(request):
            await self.refuse(403, "Forbidden: a request from another origin")(
                scope, receive, send_with_headers
            )
            return
        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _origin_ok(request: Any) -> bool:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:  # not a browser, or a same-origin form an old browser sent
            return True
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    async def _redirect_without_token(self, scope: Scope, send: Send, receive: Receive) -> None:
        from starlette.requests import Request
        from starlette.responses import RedirectResponse

        request = Request(scope)
        raw = scope.get("query_string", b"").decode("latin-1")
        rest = [p for p in raw.split("&") if p and p.split("=", 1)[0] != "token"]
        # one leading slash: "//host" would send the browser to another site
        target = "/" + quote(request.url.path).lstrip("/") + ("?" + "&".join(rest) if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
        await response(scope, receive, send)
