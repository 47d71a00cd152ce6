"""The calls API: launch from a slot or ad hoc, ring over the events socket, answer by
session or join token, and the refusals."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from dispatch.settings import Settings
from schedules import planner
from schedules.workdays import IsoWeek
from web.schema import open_database

from conftest import Cast, bearer, make_token


async def test_launch_ring_answer_end(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    town = bearer(make_token(demo_settings, cast.town_a))
    village_ws = await client.ws_connect(
        "/ws/events", headers=bearer(make_token(demo_settings, cast.village_a1))
    )
    assert (await village_ws.receive_json())["type"] == "hello"
    resp = await client.post("/api/v1/calls", json={"callees": [cast.village_a1, cast.village_a2],
                                                    "kind": "meeting"}, headers=town)  # fmt: skip
    assert resp.status == 201, await resp.text()
    launched = await resp.json()
    call_id = launched["call"]["id"]
    tokens = {i["centre"]: i["join_token"] for i in launched["invites"]}
    assert launched["invites"][0]["join_url"].endswith(
        f"/calls/{call_id}?token={tokens[cast.village_a1]}"
    )
    ring = await asyncio.wait_for(village_ws.receive_json(), 5)
    while ring["type"] != "call_ringing":
        ring = await asyncio.wait_for(village_ws.receive_json(), 5)
    assert ring["call_id"] == call_id and ring["callee"] == cast.village_a1
    await village_ws.close()

    # The village answers with its own login; the other with its join token.
    village = bearer(make_token(demo_settings, cast.village_a1))
    assert (await client.post(f"/api/v1/calls/{call_id}/accept", headers=village)).status == 200
    resp = await client.post(f"/api/v1/calls/{call_id}/decline",
                             headers=bearer(tokens[cast.village_a2]))  # fmt: skip
    assert resp.status == 200
    # A join token opens nothing but its call's endpoints.
    token_only = bearer(tokens[cast.village_a1])
    for url in ("/api/v1/me", "/api/v1/centers", f"/centers/{cast.village_a1}"):
        resp = await client.get(url, headers=token_only, allow_redirects=False)
        assert resp.status in (401, 302), url
    # A token for another centre's answer, or for another call, is refused.
    assert (await client.post(f"/api/v1/calls/{call_id}/accept",
                              headers=bearer(tokens[cast.village_a2]))).status == 409  # fmt: skip
    assert (await client.post(f"/api/v1/calls/{call_id + 1}/accept",
                              headers=bearer(tokens[cast.village_a1]))).status == 403  # fmt: skip

    seen = await (await client.get(f"/api/v1/calls/{call_id}", headers=village)).json()
    assert [i["centre"] for i in seen["invites"]] == [cast.village_a1]  # not the other village
    full = await (await client.get(f"/api/v1/calls/{call_id}", headers=town)).json()
    assert {i["centre"]: i["state"] for i in full["invites"]} == {
        cast.village_a1: "answered", cast.village_a2: "declined"}  # fmt: skip
    outsider = bearer(make_token(demo_settings, cast.village_b1))
    assert (await client.get(f"/api/v1/calls/{call_id}", headers=outsider)).status == 403
    assert (await client.post(f"/api/v1/calls/{call_id}/end", headers=village)).status == 403
    assert (await client.post(f"/api/v1/calls/{call_id}/end", headers=town)).status == 200
    done = await (await client.get(f"/api/v1/calls/{call_id}", headers=town)).json()
    assert done["state"] == "ended"


async def test_launch_refusals(client: TestClient, cast: Cast, demo_settings: Settings) -> None:
    town = bearer(make_token(demo_settings, cast.town_a))
    cases = (
        ({"callees": [cast.village_b1]}, 403), ({"callees": []}, 400), ({"callees": "x"}, 400),
        ({"callees": [cast.village_a1], "kind": "x"}, 400), ({"slot_id": "1"}, 400),
        ({"slot_id": 999999}, 404),
    )  # fmt: skip
    for body, status in cases:
        resp = await client.post("/api/v1/calls", json=body, headers=town)
        assert resp.status == status, (body, await resp.text())
    village = bearer(make_token(demo_settings, cast.village_a1))
    resp = await client.post("/api/v1/calls", json={"callees": [cast.village_a2]}, headers=village)
    assert resp.status == 403
    # A 1:1 inspection calls one centre: two callees are refused, naming the field.
    two = [cast.village_a1, cast.village_a2]
    for body in ({"callees": two, "kind": "inspection"}, {"callees": two}):
        resp = await client.post("/api/v1/calls", json=body, headers=town)
        assert resp.status == 400 and (await resp.json())["field"] == "callees"


async def test_launch_from_a_rota_slot(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        record = planner.build_week(s, cast.district, IsoWeek(2026, 50))
        from schedules import plans

        slot = next(x for x in plans.week_slots(s, record.id or 0) if x.caller_code == cast.town_a)
        other = next(x for x in plans.week_slots(s, record.id or 0) if x.caller_code == cast.town_b)
    db.close()
    town = bearer(make_token(demo_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", json={"slot_id": slot.id}, headers=town)
    assert resp.status == 201
    call = (await resp.json())["call"]
    assert call["slot_id"] == slot.id and call["kind"] == slot.kind
    assert call["answer_deadline_seconds"] == 60
    resp = await client.post("/api/v1/calls", json={"slot_id": other.id}, headers=town)
    assert resp.status == 403


async def test_a_join_link_opens_the_call_page_without_a_login(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    town = bearer(make_token(demo_settings, cast.town_a))
    launched = await (await client.post("/api/v1/calls", headers=town,
                                        json={"callees": [cast.village_a1]})).json()  # fmt: skip
    call_id, token = launched["call"]["id"], launched["invites"][0]["join_token"]
    other = await (await client.post("/api/v1/calls", headers=town,
                                     json={"callees": [cast.village_a2]})).json()  # fmt: skip
    resp = await client.get(f"/calls/{call_id}?token={token}")
    assert resp.status == 200
    html = await resp.text()
    assert f'data-me="{cast.village_a1}"' in html and 'data-role="centre"' in html
    assert 'id="accept"' in html
    resp = await client.get(f"/calls/{other['call']['id']}?token={token}")
    assert resp.status == 403
    resp = await client.get(f"/calls/{call_id}", allow_redirects=False)
    assert resp.status == 302  # no link, no login: log in first
    ws = await client.ws_connect(f"/ws/calls/{call_id}?token={token}")
    assert (await ws.receive_json())["call_id"] == call_id
    await client.post(f"/api/v1/calls/{call_id}/accept", headers=bearer(token))
    event = await ws.receive_json()
    assert event["kind"] == "answered" and event["centre"] == cast.village_a1
    await ws.close()
    # The token in a query string opens nothing else.
    resp = await client.get(f"/api/v1/calls/{call_id}?token={token}")
    assert resp.status == 401
