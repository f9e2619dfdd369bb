"""Who may use the dashboard, and how a page is kept from being turned against its user.

- **Token.** Bound to a loopback address, the dashboard needs no token (only this machine can reach it);
  bound anywhere else it refuses to start without one (``KEEL_DASHBOARD_TOKEN``). With a token set, every request
  but static assets must carry it: ``Authorization: Bearer …`` (API clients, Prometheus), or the ``keel_token``
  cookie a browser gets by opening any page once with ``?token=…`` (the token is then dropped from the address).
  Tokens are compared in constant time.
- **Host.** Without a token, only requests addressed to a loopback name are served, so a web page elsewhere
  cannot reach the dashboard through DNS rebinding.
- **Cross-site requests.** Every state-changing request (POST) must carry the app's CSRF token (form field
  ``csrf`` or header ``X-CSRF-Token``), which only a page of the dashboard itself can read, and a cross-origin
  ``Origin`` is refused; a POST authorized by a bearer token needs neither (browsers never add that header on
  their own). The cookie is ``HttpOnly; SameSite=Strict``.
- **Content.** Every response forbids inline scripts and framing (Content-Security-Policy) and MIME sniffing;
  templates escape everything they print.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "MAX_FORM_BYTES", "Guard", "SecurityMiddleware", "is_loopback"]

COOKIE = "keel_token"
MAX_FORM_BYTES = 64 * 1024
"""The largest body a state-changing request may have (a decision and its note)."""
_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on our own forms
}


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or name to bind or to be addressed as) stays on this machine.

    A loopback IP address (127.0.0.0/8, ::1) or exactly ``localhost``; never a name that merely starts like one
    (``127.0.0.1.evil.example`` resolves wherever its owner wants: DNS rebinding).
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Guard:
    """The dashboard's credentials: the access token (None on loopback) and the CSRF token of this app."""

    token: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def token_ok(self, given: str | None) -> bool:
        """Whether `given` is the access token (always, when none is configured)."""
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def csrf_ok(self, given: str | None) -> bool:
        """Whether `given` is this app's CSRF token."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SecurityMiddleware:
    """Applies a `Guard` to every HTTP request, and the security headers to every response."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, redirect or pass the request on; add the headers on the way out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            refusal = self._check(scope)
        except ValueError:  # a Host header that is not a host name at all
            refusal = _refuse(scope["path"], 400, "malformed Host header")
        safe = scope["method"] in ("GET", "HEAD", "OPTIONS")
        if refusal is None and not safe and not self._by_bearer(Headers(scope=scope)):
            refusal, receive = await self._cross_site(scope, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _by_bearer(self, headers: Headers) -> bool:
        """Whether the request was authorized by a bearer token (which a browser never adds by itself)."""
        bearer = _bearer(headers)
        return self.guard.token is not None and bool(bearer) and self.guard.token_ok(bearer)

    def _check(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        path: str = scope["path"]
        host = urlsplit(f"//{headers.get('host', '')}").hostname or ""
        if self.guard.token is None and not is_loopback(host):
            return _refuse(path, 400, f"this dashboard answers on localhost only, not as {host!r}")
        if path.startswith("/static/"):
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        bearer = _bearer(headers)
        if self.guard.token is not None and "token" in query and scope["method"] == "GET":
            if not self.guard.token_ok(query["token"]):
                return _refuse(path, 401, "wrong token")
            return _enter(path, query, self.guard.token)
        if not self.guard.token_ok(bearer if bearer is not None else _cookie(headers)):
            if bearer is None and _cookie(headers) is None:
                return _refuse(path, 401, "a token is required: open the dashboard's address with ?token=…")
            return _refuse(path, 401, "wrong token")
        return None

    async def _cross_site(self, scope: Scope, receive: Receive) -> tuple[Response | None, Receive]:
        """Check a state-changing request's origin and CSRF token; the body read is replayed to the endpoint."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        try:
            foreign = bool(origin) and urlsplit(origin).netloc != headers.get("host", "")
        except ValueError:
            foreign = True
        if foreign:
            return _refuse(scope["path"], 403, f"cross-site request from {origin} refused"), receive
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_FORM_BYTES:
                return _refuse(scope["path"], 413, "request body too large"), receive
            if not message.get("more_body"):
                break
        given = headers.get("x-csrf-token") or _form_field(headers, body, "csrf")
        if not self.guard.csrf_ok(given):
            return _refuse(scope["path"], 403, "missing or wrong CSRF token: reload the page and try again"), receive
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect, as Starlette expects
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return None, replay


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


def _cookie(headers: Headers) -> str | None:
    # Starlette's lenient parser: another local app's malformed cookie (cookies ignore ports) must not hide ours.
    return cookie_parser(headers.get("cookie", "")).get(COOKIE)


def _form_field(headers: Headers, body: bytes, name: str) -> str | None:
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    return dict(parse_qsl(body.decode("utf-8", "replace"))).get(name)


def _enter(path: str, query: dict[str, str], token: str) -> Response:
    """The token was right: keep it in a cookie and reload the address without it."""
    rest = {k: v for k, v in query.items() if k != "token"}
    here = "/" + path.lstrip("/")  # "//evil.example" would be another site to a browser
    response = RedirectResponse(here + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


def _refuse(path: str, status: int, reason: str) -> Response:
    if path.startswith("/api/") or path == "/metrics":
        return JSONResponse({"error": reason}, status_code=status, headers=_HEADERS)
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Keel dashboard</title>"
        "<link rel=stylesheet href=/static/keel.css></head><body><main class=refused>"
        f"<h1>{status}</h1><p>{_escape(reason)}</p></main></body></html>"
    )
    return HTMLResponse(page, status_code=status, headers=_HEADERS)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
