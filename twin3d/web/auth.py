"""The token gate of the browser view: a login form or an ``Authorization`` header.

With a token, every request (the page, its scripts, the WebSocket that carries the data)
needs either ``Authorization: Bearer TOKEN`` (for a reverse proxy or a script) or the
session cookie that the login form sets after a POST of the right token. Without either,
a page request gets the login form (HTTP 401) and the WebSocket is refused (401) before
any state is sent. The token never travels in a URL (so it never lands in access logs);
the cookie holds a random session secret, not the token. All paths are relative, so the
gate works behind a reverse proxy under a path prefix.
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["COOKIE", "LOGIN_PATH", "token_gate"]

#: Name of the session cookie.
COOKIE = "twin3d_session"
#: Path (relative to the page) the login form posts to.
LOGIN_PATH = "login"

_Handler = Callable[[Any], Awaitable[Any]]

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>twin3d: sign in</title>
<style>body{{background:#20232a;color:#d8dee9;font:14px 'DejaVu Sans',sans-serif;
display:flex;align-items:center;justify-content:center;height:100vh;margin:0}}
form{{background:#2e3440;padding:24px 28px;border-radius:4px;min-width:320px}}
input{{width:100%;box-sizing:border-box;margin:8px 0 12px;padding:6px;font:inherit}}
.err{{color:#bf616a;margin:0 0 8px}}</style></head>
<body><form method="post" action="{action}" id="t3-login">
<div><b>twin3d</b> live view</div>{error}
<label for="token">Bridge token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button type="submit">Show the twin</button></form></body></html>
"""


def _form(action: str, error: str = "") -> str:
    err = f'<p class="err" id="t3-login-error">{html.escape(error)}</p>' if error else ""
    return _FORM.format(action=html.escape(action), error=err)


def token_gate(token: str) -> Any:
    """An aiohttp middleware that lets through only requests carrying ``token``.

    Args:
        token: the token users must give (the bridge token of ``twin3d web --token``).

    Returns:
        The middleware (append it to the aiohttp application before it starts).
    """
    from aiohttp import web

    session = secrets.token_urlsafe(32)
    want = token.encode()

    def allowed(request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), want):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), session.encode())

    def action(request: web.Request) -> str:
        """The login form's relative target, wherever under a prefix the page was asked for."""
        depth = request.path.count("/") - 1
        return "../" * depth + LOGIN_PATH

    @web.middleware
    async def gate(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path == f"/{LOGIN_PATH}" and request.method == "POST":
            form = await request.post()
            given = str(form.get("token", "")).encode()
            if not hmac.compare_digest(given, want):
                return web.Response(status=403, text=_form(LOGIN_PATH, "Wrong token."),
                                    content_type="text/html")
            resp = web.Response(status=303, headers={"Location": "./"})
            resp.set_cookie(COOKIE, session, httponly=True, samesite="Strict")
            return resp
        if allowed(request):
            result: web.StreamResponse = await handler(request)
            return result
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return web.Response(status=401, text="sign in first")
        return web.Response(status=401, text=_form(action(request)), content_type="text/html")

    return gate
