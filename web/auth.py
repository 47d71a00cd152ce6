"""Who is calling: cookie sessions for pages, bearer tokens for the API, CSRF on posts.

Invariants:
- `request[SCOPE]` is built only from the session cookie or the bearer token,
  never from the request body or query.
- A request authenticated by cookie that changes state carries the session's CSRF
  token (form field `csrf_token` or header `X-CSRF-Token`); bearer requests carry no
  cookie and need none.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlmodel import Session

from dispatch import accounts, logins
from dispatch.errors import InvalidInput, NotAuthenticated, NotAuthorised

from .appkeys import ACCOUNT, CSRF, DB, SCOPE, SETTINGS, THROTTLE, VIA
from .bodies import TokenRequest
from .reading import read_body
from .remote import client_address
from .render import render
from .sessions import get_session
from .throttle import MAX_USERNAME, LoginThrottle

log = logging.getLogger(__name__)

JOIN_TOKEN_PREFIX = "jt1."
JOIN_PAGES = re.compile(r"^/(ws/)?calls/\d+$")
JOIN_PATHS = re.compile(r"^/(api/v1/calls/\d+(/[a-z]+)?|whip/\d+(/[a-z0-9-]+)?)$")
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz", "/api/v1/auth/token",
                          "/api/v1/openapi.json"})
PUBLIC_PREFIXES = ("/static/", "/calendar/")  # feeds carry their own token
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


WHIP_ENDPOINT = re.compile(r"^/whip/\d+$")


def is_public(request: web.Request) -> bool:
    if request.method == "OPTIONS" and WHIP_ENDPOINT.match(request.path):
        return True  # a WHIP client's pre-flight (RFC 9725 §4.1) carries no credentials
    return request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def join_token(request: web.Request) -> str | None:
    """A join token sent as the bearer, or — on a call's page and its event socket, which
    a browser opens from a link — as `?token=`."""
    token = bearer_token(request)
    if token is not None and token.startswith(JOIN_TOKEN_PREFIX):
        return token
    query = request.query.get("token", "")
    if JOIN_PAGES.match(request.path) and query.startswith(JOIN_TOKEN_PREFIX):
        return query
    return None


def _csrf_token(request: web.Request) -> str:
    session = get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


async def _check_csrf(request: web.Request, expected: str) -> None:
    given: object = request.headers.get("X-CSRF-Token")  # a form's field may be a file
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        given = (await request.post()).get("csrf_token")
    if not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise NotAuthorised("missing or wrong CSRF token; reload the page and try again")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    db = request.app[DB]
    token = bearer_token(request)
    if join_token(request) is not None:
        # A join token admits one centre to one call: only the call's own endpoints
        # and pages take it, and they check it against the call (web/calls.py).
        # Anywhere else it counts for nothing.
        if JOIN_PATHS.match(request.path) or JOIN_PAGES.match(request.path):
            request[VIA] = "join"
            return await handler(request)
        token = None
    if token is not None:
        account = await db.read(accounts.account_for_token, token)
        request[SCOPE] = await db.read(accounts.scope_for, account)
        request[ACCOUNT] = account
        request[VIA] = "token"
        return await handler(request)

    session = get_session(request)
    request[CSRF] = _csrf_token(request)
    account_id, sid = session.get("account_id"), session.get("sid")
    if isinstance(account_id, int):
        try:
            if not isinstance(sid, str):  # a cookie from before logins were recorded
                raise NotAuthenticated("log in again")
            logged_in: accounts.Account | None = await db.read(logins.account_for, account_id, sid)
        except NotAuthenticated:
            session.renew()
            logged_in = None
        if logged_in is not None:
            request[ACCOUNT] = logged_in
            request[SCOPE] = await db.read(accounts.scope_for, logged_in)
            request[VIA] = "session"
    # CSRF rides on cookies: check every state change made with the session cookie,
    # and the login form itself (login CSRF).
    if request.method not in SAFE_METHODS and (
        request.get(VIA) == "session" or request.path == "/login"
    ):
        await _check_csrf(request, request[CSRF])
    if SCOPE not in request and not is_public(request):
        raise NotAuthenticated("log in first, or send Authorization: Bearer <token>")
    return await handler(request)


def scope_of(request: web.Request) -> accounts.Scope:
    scope = request.get(SCOPE)
    if scope is None:
        raise NotAuthenticated("log in first, or send Authorization: Bearer <token>")
    return scope


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes home (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def login_page(request: web.Request) -> web.Response:
    if SCOPE in request:
        return redirect(_safe_next(request.query.get("next")))
    return render(request, "login.html", next=request.query.get("next", "/"), failed=None)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    throttle = request.app[THROTTLE]
    remote = client_address(request, request.app[SETTINGS].trusted_proxies)
    if len(username) > MAX_USERNAME:  # no account has it: refused unhashed, not remembered
        return render(request, "login.html", status=401, next=target, failed="login.failed")
    if not throttle.attempt(username, remote):  # counted now, before the await below
        resp = render(request, "login.html", status=429, next=target, failed="login.throttled")
        resp.headers["Retry-After"] = _retry_after(throttle, username, remote)
        return resp
    try:
        account = await request.app[DB].read(accounts.authenticate, username, password)
    except NotAuthenticated:
        log.info("login failed for %r from %s", username, remote)
        return render(request, "login.html", status=401, next=target, failed="login.failed")
    throttle.succeeded(username, remote)
    max_age = request.app[SETTINGS].session_max_age
    sid = await request.app[DB].write(logins.start, account.id, max_age)
    # A fresh session on login: an old cookie (and its CSRF token) cannot be fixed upon us.
    session = get_session(request)
    session.renew()
    session["account_id"] = account.id
    session["sid"] = sid
    session["csrf"] = secrets.token_urlsafe(24)
    log.info("login %s (%s)", account.username, account.role)
    return redirect(target)


async def logout(request: web.Request) -> web.StreamResponse:
    """Ends the login in the database too: a copy of the cookie is worth nothing after."""
    session = get_session(request)
    sid = session.get("sid")
    if isinstance(sid, str):
        await request.app[DB].write(logins.end, sid)
    session.renew()
    return redirect("/login")


def _retry_after(throttle: LoginThrottle, username: str, remote: str) -> str:
    return str(max(1, math.ceil(throttle.retry_after(username, remote))))


def redirect(location: str) -> web.Response:
    """A 303 returned (not raised) so the session middleware can set its cookie on it."""
    return web.Response(status=303, headers={"Location": location})


async def token_create(request: web.Request) -> web.Response:
    """POST /api/v1/auth/token {username, password, label?} → a bearer token, shown once."""
    body = await read_body(request, TokenRequest)
    username, password = body.username, body.password
    throttle = request.app[THROTTLE]
    remote = client_address(request, request.app[SETTINGS].trusted_proxies)
    if not throttle.attempt(username, remote):  # counted now, before the await below
        wait = _retry_after(throttle, username, remote)
        message = f"too many failed attempts; try again in {wait} s"
        return web.json_response({"error": "throttled", "message": message}, status=429,
                                 headers={"Retry-After": wait})  # fmt: skip
    db = request.app[DB]
    account = await db.read(accounts.authenticate, username, password)
    throttle.succeeded(username, remote)
    label = body.label
    max_age = request.app[SETTINGS].token_max_age
    token, row = await db.write(_issue, account.id, max_age, label)
    return web.json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": row.expires_at.isoformat(),
            "account": account.as_dict(),
        },
        status=201,
    )


def _issue(
    session: Session, account_id: int, max_age: int, label: str
) -> tuple[str, accounts.ApiToken]:
    account = accounts.active_account(session, account_id)
    return accounts.issue_token(session, account, max_age, label)


async def token_revoke(request: web.Request) -> web.Response:
    """DELETE /api/v1/auth/token — revokes the bearer token this request carries."""
    token = bearer_token(request)
    if token is None:
        raise InvalidInput("Authorization", "send the token to revoke as a bearer token")
    await request.app[DB].write(accounts.revoke_token, token)
    return web.json_response({"revoked": True})
