"""Leaving a call without a hang-up, with real aiortc peers over 127.0.0.1 standing in
for pages: the page's beacon (authenticated as the page is, scoped by the leave token
of the connection it holds), a page's event socket closing, and a page that goes
silent are each recorded "left" within 5 s; coming back is a new interval. A client
with no page (no event socket) keeps the rejoin grace (tests/test_call_media.py)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from dispatch import calls
from dispatch.settings import Settings
from schedules import policy
from web.app import create_app
from web.schema import open_database

from conftest import Cast, bearer, make_token
from peers import Client

pytestmark = pytest.mark.timeout(60)
LEFT_WITHIN = 5.0  # seconds: the behavioural deadline for recording a vanished page


@pytest.fixture
def media_settings(demo_settings: Settings) -> Settings:
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        policy.set_policy(s, None, {"min_verified_seconds": 3}, "test")
    db.close()
    return demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)


def events(settings: Settings, call_id: int) -> list[tuple[str | None, str, dict[str, Any]]]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = [(r.centre_code, r.kind, dict(r.data)) for r in calls.events(s, call_id)]
    db.close()
    return out


def count(settings: Settings, call_id: int, centre: str, kind: str) -> int:
    return sum(1 for c, k, _ in events(settings, call_id) if (c, k) == (centre, kind))


async def until(check, within: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Poll until `check()`; the seconds it took (fails after `within`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def launch(client: TestClient, settings: Settings, cast: Cast) -> tuple[int, dict[str, str]]:
    town = bearer(make_token(settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a1]})
    launched = await resp.json()
    call_id = launched["call"]["id"]
    token = launched["invites"][0]["join_token"]
    assert (
        await client.post(f"/api/v1/calls/{call_id}/accept", headers=bearer(token))
    ).status == 200
    return call_id, {"token": token}


async def join(client: TestClient, peer: Client, call_id: int, token: str) -> str:
    """Joins as the token's centre; the connection's leave token."""
    resp = await client.post(
        f"/api/v1/calls/{call_id}/sdp",
        headers=bearer(token),
        json={"type": "offer", "sdp": await peer.offer()},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    await peer.accept(body["sdp"])
    assert body["leave_token"]
    return str(body["leave_token"])


async def page_socket(client: TestClient, call_id: int, token: str) -> ClientWebSocketResponse:
    ws = await client.ws_connect(f"/ws/calls/{call_id}?token={token}")
    assert (await ws.receive_json())["type"] == "hello"
    return ws


async def test_the_beacon_leaves_only_with_the_current_connections_token(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, invite = await launch(client, media_settings, cast)
    token = invite["token"]
    first, second = Client(cast.village_a1, "green"), Client(cast.village_a1, "red")
    try:
        first.offer_as_participant()
        stale = await join(client, first, call_id, token)
        await until(
            lambda: count(media_settings, call_id, cast.village_a1, "joined") == 1, 10, "joined"
        )
        second.offer_as_participant()  # a second tab of the same centre takes over
        current = await join(client, second, call_id, token)
        assert current != stale
        beacon = f"/calls/{call_id}?token={token}"
        # No credentials at all, or no leave token: refused, nothing recorded.
        resp = await client.post(
            f"/calls/{call_id}", data={"leave_token": current}, allow_redirects=False
        )
        assert resp.status in (302, 401)
        assert (await client.post(beacon, data={})).status == 400
        # The first tab closes: its token no longer names the centre's connection.
        assert (await client.post(beacon, data={"leave_token": stale})).status == 204
        await asyncio.sleep(0.5)
        assert count(media_settings, call_id, cast.village_a1, "left") == 0
        # The second tab closes: left at once, and the token is spent.
        assert (await client.post(beacon, data={"leave_token": current})).status == 204
        took = await until(
            lambda: count(media_settings, call_id, cast.village_a1, "left") == 1,
            LEFT_WITHIN,
            "left",
        )
        print(f"beacon -> left recorded in {took:.2f} s")
        left = next(d for c, k, d in events(media_settings, call_id) if k == "left")
        assert left["reason"] == "page closed"
        assert (await client.post(beacon, data={"leave_token": current})).status == 204
        await asyncio.sleep(0.3)
        assert count(media_settings, call_id, cast.village_a1, "left") == 1
    finally:
        await first.close()
        await second.close()


async def test_a_logged_in_pages_beacon_carries_its_csrf_token(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    """The operator's page: the session cookie plus the CSRF token as a form field (a
    beacon cannot set X-CSRF-Token); without the CSRF token the cookie counts for nothing."""
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, _ = await launch(client, media_settings, cast)
    html = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert csrf
    resp = await client.post(
        "/login",
        allow_redirects=False,
        data={"username": cast.town_a, "password": "town-demo-2026", "csrf_token": csrf.group(1)},
    )
    assert resp.status == 303
    page = await (await client.get(f"/calls/{call_id}")).text()
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert csrf and 'data-role="operator"' in page
    operator = Client(cast.town_a, "blue")
    try:
        operator.offer_as_operator(slots=1)
        resp = await client.post(
            f"/api/v1/calls/{call_id}/sdp",
            json={"type": "offer", "sdp": await operator.offer()},
            headers={"X-CSRF-Token": csrf.group(1)},
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        await operator.accept(body["sdp"])
        await until(
            lambda: count(media_settings, call_id, cast.town_a, "joined") == 1, 10, "joined"
        )
        resp = await client.post(f"/calls/{call_id}", data={"leave_token": body["leave_token"]})
        assert resp.status == 403  # the cookie alone: a cross-site form could send that
        assert count(media_settings, call_id, cast.town_a, "left") == 0
        resp = await client.post(
            f"/calls/{call_id}",
            data={"leave_token": body["leave_token"], "csrf_token": csrf.group(1)},
        )
        assert resp.status == 204
        took = await until(
            lambda: count(media_settings, call_id, cast.town_a, "left") == 1, LEFT_WITHIN, "left"
        )
        print(f"operator beacon -> left recorded in {took:.2f} s")
    finally:
        await operator.close()


async def test_a_page_that_vanishes_is_left_within_5_s_and_a_rejoin_is_a_new_interval(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, invite = await launch(client, media_settings, cast)
    token, village = invite["token"], cast.village_a1
    first, again = Client(village, "green"), Client(village, "red")
    ws = await page_socket(client, call_id, token)
    try:
        first.offer_as_participant()
        await join(client, first, call_id, token)
        await until(lambda: count(media_settings, call_id, village, "joined") == 1, 10, "joined")
        # Lost network: the page's socket stays open (TCP has not noticed) but the
        # media goes silent. A page makes a new peer of its own, so no grace is held.
        first.cut_network(True)
        took = await until(
            lambda: count(media_settings, call_id, village, "left") == 1,
            LEFT_WITHIN + 1,
            "left after silence",
        )
        print(f"lost network -> left recorded in {took:.2f} s")
        assert took <= LEFT_WITHIN
        left = [d for c, k, d in events(media_settings, call_id) if (c, k) == (village, "left")]
        assert left[0]["went_at"] <= time.time()
        # The page reconnects with a new peer: joined again, a second interval.
        again.offer_as_participant()
        await join(client, again, call_id, token)
        await until(lambda: count(media_settings, call_id, village, "joined") == 2, 10, "rejoined")
        # The tab closes without a beacon or a hang-up: its socket closes, media stops.
        again.cut_network(True)
        await ws.close()
        took = await until(
            lambda: count(media_settings, call_id, village, "left") == 2,
            LEFT_WITHIN + 1,
            "left after the socket closed",
        )
        print(f"closed tab (socket closed, no beacon) -> left recorded in {took:.2f} s")
        assert took <= LEFT_WITHIN
        kinds = [k for c, k, _ in events(media_settings, call_id) if c == village]
        assert kinds[-4:] == ["joined", "left", "joined", "left"] or kinds.count("left") == 2
    finally:
        await ws.close()
        await first.close()
        await again.close()


async def test_a_socket_that_comes_back_is_not_a_leave(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    """A page whose event socket drops and reopens (its media still flowing) stays."""
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, invite = await launch(client, media_settings, cast)
    token, village = invite["token"], cast.village_a1
    peer = Client(village, "green")
    ws = await page_socket(client, call_id, token)
    try:
        peer.offer_as_participant()
        await join(client, peer, call_id, token)
        await until(lambda: count(media_settings, call_id, village, "joined") == 1, 10, "joined")
        await ws.close()
        await asyncio.sleep(0.5)
        ws = await page_socket(client, call_id, token)
        await asyncio.sleep(3.5)  # past the page grace
        assert count(media_settings, call_id, village, "left") == 0
        town = bearer(make_token(media_settings, cast.town_a))
        media = await (await client.get(f"/api/v1/calls/{call_id}/media", headers=town)).json()
        assert village in media["present"]
    finally:
        await ws.close()
        await peer.close()
