"""Encrypted cookie sessions for pages.

The cookie holds a Fernet token (AES-128-CBC + HMAC-SHA256, with its issue time) of a
small JSON object: the account id and the CSRF token. It is HttpOnly, SameSite=Lax and
Secure when configured; a cookie older than the session lifetime, or one that fails
authentication, is treated as absent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)


class CookieSession:
    """Session data for one request; the middleware writes it back only when it changed."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self.changed = False
        self.cleared = False

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self.changed = True

    def renew(self) -> None:
        """Drop everything (call on login and logout: no session fixation)."""
        self._data = {}
        self.changed = True
        self.cleared = True

    def dump(self) -> dict[str, Any]:
        return dict(self._data)


SESSION = web.RequestKey("session", CookieSession)


def get_session(request: web.Request) -> CookieSession:
    return request[SESSION]


def session_middleware(key: bytes, *, cookie_name: str, max_age: int, secure: bool) -> Middleware:
    fernet = Fernet(key)

    def load(raw: str | None) -> CookieSession:
        if not raw:
            return CookieSession()
        try:
            data = json.loads(fernet.decrypt(raw.encode(), ttl=max_age))
        except (InvalidToken, ValueError):
            return CookieSession()
        return CookieSession(data if isinstance(data, dict) else None)

    def store(session: CookieSession, response: web.StreamResponse) -> None:
        if not session.changed or response.prepared:
            return
        data = session.dump()
        if not data:
            response.del_cookie(cookie_name, path="/")
            return
        token = fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()
        response.set_cookie(
            cookie_name,
            token,
            max_age=max_age,
            path="/",
            httponly=True,
            secure=secure,
            samesite="Lax",
        )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        session = load(request.cookies.get(cookie_name))
        request[SESSION] = session
        response = await handler(request)
        store(session, response)
        return response

    return middleware
