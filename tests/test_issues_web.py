"""The issue ledger over HTTP: raise during a call, escalate village → town → district
through the inboxes, scope refusals, pages, and the ledger files."""

from __future__ import annotations

import asyncio
import io

import openpyxl
from aiohttp.test_utils import TestClient

from dispatch.settings import Settings

from conftest import Cast, bearer, make_token


async def test_a_major_issue_climbs_to_the_district(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    village = bearer(make_token(demo_settings, cast.village_a1))
    town = bearer(make_token(demo_settings, cast.town_a))
    district = bearer(make_token(demo_settings, cast.district))
    other_town = bearer(make_token(demo_settings, cast.town_b))
    call = await (await client.post("/api/v1/calls", headers=town,
                                    json={"callees": [cast.village_a1]})).json()  # fmt: skip
    call_id = call["call"]["id"]
    town_ws = await client.ws_connect("/ws/events", headers=town)
    await town_ws.receive_json()

    resp = await client.post("/api/v1/issues", headers=village, json={
        "centre": cast.village_a1, "category": "dispute", "severity": "major",
        "parties": "张某、李某", "description": "宅基地边界争议，双方情绪激动",
        "call_id": call_id})  # fmt: skip
    assert resp.status == 201, await resp.text()
    issue = await resp.json()
    assert issue["holder"] == cast.village_a1 and issue["call_id"] == call_id
    resp = await client.post(f"/api/v1/issues/{issue['id']}/resolve", headers=village,
                             json={"note": "已调解"})  # fmt: skip
    assert resp.status == 409  # a major issue is reported up, not closed in the village
    resp = await client.post(f"/api/v1/issues/{issue['id']}/escalate", headers=village,
                             json={"note": "报镇综治中心"})  # fmt: skip
    assert resp.status == 200 and (await resp.json())["holder"] == cast.town_a
    note = await asyncio.wait_for(town_ws.receive_json(), 5)
    assert note["type"] == "issue_escalated" and note["to_centre"] == cast.town_a
    await town_ws.close()

    inbox = await (await client.get("/api/v1/issues?inbox=1", headers=town)).json()
    assert [i["id"] for i in inbox["issues"]] == [issue["id"]]
    assert (await client.get(f"/api/v1/issues/{issue['id']}", headers=other_town)).status == 403
    resp = await client.post(f"/api/v1/issues/{issue['id']}/escalate", headers=town, json={})
    assert resp.status == 200
    assert (await (await client.get("/api/v1/issues?inbox=1", headers=town)).json())["issues"] == []
    inbox = await (await client.get("/api/v1/issues?inbox=1", headers=district)).json()
    assert [i["id"] for i in inbox["issues"]] == [issue["id"]]
    resp = await client.post(f"/api/v1/issues/{issue['id']}/resolve", headers=district,
                             json={"note": "区矛盾纠纷多元化解协调中心调处完毕"})  # fmt: skip
    assert resp.status == 200 and (await resp.json())["state"] == "resolved"
    seen = await (await client.get(f"/api/v1/issues/{issue['id']}", headers=village)).json()
    assert [h["action"] for h in seen["history"]] == [
        "raised",
        "escalated",
        "escalated",
        "resolved",
    ]


async def test_bad_input_and_pages(client: TestClient, cast: Cast, demo_settings: Settings) -> None:
    village = bearer(make_token(demo_settings, cast.village_a1))
    for body, field in (({"centre": cast.village_a1, "category": "x", "severity": "general",
                          "description": "d"}, "category"),
                        ({"centre": cast.village_a1, "category": "hazard", "severity": "general",
                          "description": ""}, "description"),
                        ({"centre": cast.village_a1, "category": "hazard", "severity": "general",
                          "description": "d", "colour": "red"}, "colour")):  # fmt: skip
        resp = await client.post("/api/v1/issues", headers=village, json=body)
        assert resp.status == 400 and (await resp.json())["field"] == field
    resp = await client.post("/api/v1/issues", headers=village, json={
        "centre": cast.village_a2, "category": "hazard", "severity": "general",
        "description": "d"})  # fmt: skip
    assert resp.status == 403
    resp = await client.post("/api/v1/issues", headers=village, json={
        "centre": cast.village_a1, "category": "hazard", "severity": "general",
        "description": "河堤渗水", "deadline": "2030-01-01"})  # fmt: skip
    issue_id = (await resp.json())["id"]
    html = await (await client.get("/issues", headers=village)).text()
    assert "河堤渗水" in html and "隐患" in html
    html = await (await client.get(f"/issues/{issue_id}", headers=village)).text()
    assert "处理记录" in html and "登记" in html
    town = bearer(make_token(demo_settings, cast.town_a))
    resp = await client.get(f"/api/v1/ledgers/screening?town={cast.town_a}&format=xlsx",
                            headers=town)  # fmt: skip
    assert resp.status == 200
    sheet = openpyxl.load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None and "序号" in [
        c.value for row in sheet.iter_rows(max_row=3) for c in row
    ]
    resp = await client.get(f"/api/v1/ledgers/tracking?town={cast.town_b}", headers=town)
    assert resp.status == 403


async def test_an_issue_raised_in_a_call_reaches_the_call_socket(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    town = bearer(make_token(demo_settings, cast.town_a))
    call = await (await client.post("/api/v1/calls", headers=town,
                                    json={"callees": [cast.village_a1]})).json()  # fmt: skip
    call_id = call["call"]["id"]
    ws = await client.ws_connect(f"/ws/calls/{call_id}", headers=town)
    await ws.receive_json()
    village = bearer(make_token(demo_settings, cast.village_a1))
    await client.post("/api/v1/issues", headers=village, json={
        "centre": cast.village_a1, "category": "lead", "severity": "general",
        "description": "可疑人员", "call_id": call_id})  # fmt: skip
    event = await asyncio.wait_for(ws.receive_json(), 5)
    assert event["type"] == "issue_raised" and event["call_id"] == call_id
    await ws.close()
    html = await (await client.get(f"/issues?call={call_id}", headers=village)).text()
    assert f'name="call_id" value="{call_id}"' in html
