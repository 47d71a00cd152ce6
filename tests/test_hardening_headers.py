"""Headers and origins (issue 11 item 6): a Content-Security-Policy without inline
script, frame-ancestors 'none', nosniff and Referrer-Policy on every response (404s,
static files and errors too), no server version; WebSocket handshakes and state changes
from a page of another origin are refused."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import select
from test_hardening_logins import cookie_login, csrf_for

from dispatch import calls, demo
from web import headers
from web.appkeys import SETTINGS
from web.schema import open_database

from conftest import Cast, bearer, make_token

TEMPLATES = Path(__file__).resolve().parents[1] / "web" / "templates"
DISTRICT_PW = demo.DEMO_PASSWORDS["district_operator"]


def assert_secured(resp: aiohttp.ClientResponse) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ") if d}
    assert directives.get("script-src") == ["'self'"], (resp.url, csp)
    assert directives.get("frame-ancestors") == ["'none'"], csp
    assert directives.get("object-src") == ["'none'"], csp
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    assert resp.headers.get("Referrer-Policy") == "same-origin"
    server = resp.headers.get("Server", "")
    assert "aiohttp" not in server.lower() and not re.search(r"\d", server), server


@pytest.mark.parametrize(
    "path",
    ["/login", "/", "/static/app.css", "/static/page.js", "/healthz", "/api/v1/me",
     "/no/such/page", "/api/v1/no/such", "/static/missing.js", "/api/v1/calls/99999999"],
)  # fmt: skip
async def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert_secured(resp)


async def test_api_answers_and_errors_carry_them(client: TestClient, cast: Cast) -> None:
    token = bearer(make_token(client.app[SETTINGS], cast.district))
    for path in ("/api/v1/me", "/api/v1/centers/NOPE", "/api/v1/calls/abc"):
        resp = await client.get(path, headers=token)
        assert_secured(resp)
        assert resp.status in (200, 400, 404), (path, resp.status)


def test_no_template_has_inline_script_or_handlers() -> None:
    handler = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
    script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE)
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not handler.search(text), f"{template.name}: inline event handler"
        assert not script.search(text), f"{template.name}: inline script"
        assert "javascript:" not in text, template.name


@pytest.mark.parametrize(
    ("url", "origin"),
    [("http://example.org", "http://example.org"),
     ("https://dispatch.example.org/", "https://dispatch.example.org"),
     ("https://Dispatch.Example.org:443/x", "https://dispatch.example.org"),
     ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
     ("http://[::1]:80/", "http://[::1]")],
)  # fmt: skip
def test_origins_are_compared_in_one_form(url: str, origin: str) -> None:
    assert headers.origin_of(url) == origin


async def login_cookie(client: TestClient, username: str, password: str) -> str:
    """Log in through the form; the page's CSRF token (the cookie stays in the jar)."""
    cookie = await cookie_login(client, username, password)
    token = await csrf_for(client, cookie)
    client.session.cookie_jar.update_cookies({"pd_session": cookie})
    return token


def calls_made(client: TestClient) -> int:
    db = open_database(client.app[SETTINGS].db_url)
    with db.session() as s:
        count = len(s.exec(select(calls.Call)).all())
    db.close()
    return count


async def test_a_state_change_from_another_origin_is_refused(
    client: TestClient, cast: Cast
) -> None:
    csrf = await login_cookie(client, cast.district, DISTRICT_PW)
    own = f"http://{client.server.host}:{client.server.port}"
    body = {"callees": [cast.village_a1], "kind": "inspection"}
    evil = await client.post("/api/v1/calls", json=body, headers={
        "Origin": "http://evil.example", "X-CSRF-Token": csrf})  # fmt: skip
    assert evil.status == 403, await evil.text()
    assert "evil.example" in (await evil.json())["message"]
    assert_secured(evil)
    assert calls_made(client) == 0  # nothing was launched
    ok = await client.post("/api/v1/calls", json=body,
                           headers={"Origin": own, "X-CSRF-Token": csrf})  # fmt: skip
    assert ok.status == 201, await ok.text()
    assert calls_made(client) == 1


async def test_a_websocket_from_another_origin_is_refused(client: TestClient, cast: Cast) -> None:
    await login_cookie(client, cast.district, DISTRICT_PW)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/events", origin="http://evil.example")
    assert refused.value.status == 403
    own = f"http://{client.server.host}:{client.server.port}"
    ws = await client.ws_connect("/ws/events", origin=own)
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello"
    await ws.close()
    # A program (no Origin) is judged by its credentials alone.
    ws = await client.ws_connect("/ws/events")
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    await ws.close()


async def test_the_public_url_origin_is_accepted(
    aiohttp_client, demo_settings, cast: Cast  # type: ignore[no-untyped-def]
) -> None:
    from dataclasses import replace

    from web.app import create_app

    settings = replace(demo_settings, public_url="https://dispatch.example.org")
    client = await aiohttp_client(create_app(settings))
    token = bearer(make_token(settings, cast.district))
    body = {"callees": [cast.village_a1], "kind": "inspection"}
    resp = await client.post("/api/v1/calls", json=body, headers={
        **token, "Origin": "https://dispatch.example.org"})  # fmt: skip
    assert resp.status == 201, await resp.text()
    resp = await client.post("/api/v1/calls", json=body,
                             headers={**token, "Origin": "https://other.example.org"})  # fmt: skip
    assert resp.status == 403
