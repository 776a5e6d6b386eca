"""The web UI's token check (``AGENTIC_WEB_TOKEN``), as Jupyter does it.

Anyone who can reach the port can start runs (which spend LLM money and can run tools), so
a server bound to anything but loopback must require a token (``cli.serve_command``
refuses to start otherwise). Accepted as ``Authorization: Bearer TOKEN`` (scripts), or
once as ``?token=TOKEN`` in a browser URL: that sets an HttpOnly cookie and redirects to
the same URL without the token, so it does not stay in the address bar or the history.
Compared in constant time (``hmac.compare_digest``); the value is never logged (uvicorn's
access log is off, and ``redaction`` masks any variable named ``*TOKEN*``).

A pure ASGI middleware, not ``BaseHTTPMiddleware``: it must not buffer the event stream.
"""

from __future__ import annotations

import hmac
import logging
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

__all__ = ["COOKIE", "TokenAuth"]

COOKIE = "agentic_web_token"


class TokenAuth:
    """Refuse (401) every HTTP request that does not carry ``token``."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._token = token.encode()

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is just no cookie
            cookie = SimpleCookie()
        from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
        if self._ok(bearer) or self._ok(from_cookie):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), None)
        if self._ok(given):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            target = scope.get("path", "/") + (f"?{rest}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, given or "", httponly=True, samesite="strict",
                                path="/")
            await response(scope, receive, send)
            return
        logger.info("refused %s %s: no valid token", scope.get("method"), scope.get("path"))
        response = JSONResponse({"error": "unauthorized: this server needs its token "
                                          "(Authorization: Bearer TOKEN, or ?token=TOKEN once "
                                          "in the browser)"}, status_code=401)
        await response(scope, receive, send)
