"""WHIP per RFC 9725 (issue 11, item 2): a publisher of one stream without BUNDLE (as
simple-whip-client sends) is taken and its video reaches the operator; OPTIONS is
answered; DELETE of another centre's session is 403, of a session that does not exist
404; the configured STUN/TURN servers are sent as `Link` headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dispatch import calls
from dispatch.settings import Settings
from web.app import create_app
from web.schema import open_database
from web.whip import ice_links

from conftest import Cast, bearer, make_token
from peers import Client, PatternTrack

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def media_settings(demo_settings: Settings) -> Settings:
    return demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)


async def eventually(check: Any, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def kinds(settings: Settings, call_id: int) -> list[tuple[str | None, str]]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = [(r.centre_code, r.kind) for r in calls.events(s, call_id)]
    db.close()
    return out


async def meeting(client: TestClient, settings: Settings, cast: Cast) -> tuple[int, dict, dict]:
    town = bearer(make_token(settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={
        "callees": [cast.village_a1, cast.village_a2], "kind": "meeting"})  # fmt: skip
    launched = await resp.json()
    tokens = {i["centre"]: bearer(i["join_token"]) for i in launched["invites"]}
    return launched["call"]["id"], town, tokens


async def test_a_single_stream_publisher_without_bundle_is_taken(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, town, tokens = await meeting(client, media_settings, cast)
    operator, camera = Client("op", "blue"), Client("cam", None)
    try:
        operator.offer_as_operator(slots=2)
        resp = await client.post(f"/api/v1/calls/{call_id}/sdp", headers=town,
                                 json={"type": "offer", "sdp": await operator.offer()})  # fmt: skip
        assert resp.status == 200
        await operator.accept((await resp.json())["sdp"])
        camera.pc.addTransceiver(PatternTrack("green"), direction="sendonly")  # video only
        offer = await camera.offer()
        # As simple-whip-client: one m-line, no BUNDLE group (and here no mid either).
        bare = "".join(line for line in offer.splitlines(keepends=True)
                       if not line.startswith(("a=group:BUNDLE", "a=mid:")))  # fmt: skip
        assert "BUNDLE" not in bare and "a=mid" not in bare
        headers = {**tokens[cast.village_a1], "Content-Type": "application/sdp"}
        resp = await client.post(f"/whip/{call_id}", data=bare, headers=headers)
        assert resp.status == 201, await resp.text()
        answer = await resp.text()
        assert "a=group:BUNDLE" in answer and "a=setup:passive" in answer
        await camera.accept(answer)
        await eventually(lambda: operator.video and operator.video[0].count("green") > 10)
        # Two m-lines without BUNDLE are still refused: one transport for all.
        two = Client("cam2", None)
        try:
            two.pc.addTransceiver(PatternTrack("red"), direction="sendonly")
            two.pc.addTransceiver(PatternTrack("red"), direction="sendonly")
            unbundled = "".join(x for x in (await two.offer()).splitlines(keepends=True)
                                if not x.startswith("a=group:BUNDLE"))  # fmt: skip
        finally:
            await two.close()
        headers2 = {**tokens[cast.village_a2], "Content-Type": "application/sdp"}
        before = kinds(media_settings, call_id)
        resp = await client.post(f"/whip/{call_id}", data=unbundled, headers=headers2)
        assert resp.status == 400 and "BUNDLE" in (await resp.json())["message"]
        assert kinds(media_settings, call_id) == before
        # The session ends once: its DELETE is 200, then it is unknown (404).
        session = f"/whip/{call_id}/{cast.village_a1}"
        assert (await client.delete(session, headers=tokens[cast.village_a1])).status == 200
        assert (await client.delete(session, headers=tokens[cast.village_a1])).status == 404
    finally:
        await operator.close()
        await camera.close()


async def test_options_delete_and_unknown_sessions(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    settings = media_settings.with_(ice_servers="stun:stun.example.cn:3478")
    client: TestClient = await aiohttp_client(create_app(settings))
    call_id, _town, tokens = await meeting(client, settings, cast)
    mine, theirs = tokens[cast.village_a1], tokens[cast.village_a2]

    # OPTIONS: a pre-flight without credentials learns what the endpoint takes…
    resp = await client.options(f"/whip/{call_id}")
    assert resp.status == 204
    assert "POST" in resp.headers["Allow"] and resp.headers["Accept-Post"] == "application/sdp"
    assert "Link" not in resp.headers
    # …and with the join token the ICE servers too.
    resp = await client.options(f"/whip/{call_id}", headers=mine)
    assert resp.status == 204
    assert resp.headers.getall("Link") == ['<stun:stun.example.cn:3478>; rel="ice-server"']
    resp = await client.options(f"/whip/{call_id + 1000}", headers=mine)
    assert resp.status == 403  # this call's token is not another call's

    # No session yet: DELETE, OPTIONS and PATCH of it are 404.
    session = f"/whip/{call_id}/{cast.village_a1}"
    for method in ("DELETE", "OPTIONS", "PATCH"):
        resp = await client.request(method, session, headers=mine)
        assert resp.status == 404, (method, await resp.text())
    # Another centre's session: 403, whoever holds it.
    resp = await client.delete(f"/whip/{call_id}/{cast.village_a2}", headers=mine)
    assert resp.status == 403
    resp = await client.delete(session, headers=theirs)
    assert resp.status == 403
    resp = await client.delete(session)
    assert resp.status == 401
    resp = await client.delete(f"/whip/{call_id}/nobody", headers=mine)
    assert resp.status == 403
    assert (await client.get("/healthz")).status == 200


def test_ice_servers_become_link_headers(settings: Settings) -> None:
    s = settings.with_(
        ice_servers="stun:stun.example.cn:3478 turn:alice:s3cret@turn.example.cn:3478"
    )
    assert ice_links(s) == [
        '<stun:stun.example.cn:3478>; rel="ice-server"',
        '<turn:turn.example.cn:3478>; rel="ice-server"; username="alice"; credential="s3cret"; '
        'credential-type="password"',
    ]
    assert ice_links(settings) == []  # none configured: no Link, never a public fallback
