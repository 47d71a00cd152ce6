"""The operator's console: its data (`GET /api/v1/console`) for each role, the states of
the week's coverage as calls ring, are answered and verified, and its refusals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from test_scheduler import WEDNESDAY, add_slot, open_the_rest_of_the_week

from dispatch import calls
from dispatch.clock import SHANGHAI, SetClock
from dispatch.settings import Settings
from logs import progress
from logs.progress import _Slot, callee_state
from schedules import plans
from web.app import create_app
from web.appkeys import SWITCHBOARD
from web.schema import open_database

from conftest import Cast, bearer, make_token

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)


def at(hours: float, minutes: float = 10, *, makeup: bool = False,
       status: str = plans.PLANNED) -> _Slot:  # fmt: skip
    start = NOW + timedelta(hours=hours)
    return _Slot(start, start + timedelta(minutes=minutes), makeup, status)


def test_the_state_of_one_callee() -> None:
    assert callee_state(True, [calls.RANG], [at(1)], NOW) == progress.HELD
    assert callee_state(False, [calls.ANSWERED], [], NOW) == progress.REACHED
    assert callee_state(False, [calls.RANG], [at(-1)], NOW) == progress.RINGING
    assert callee_state(False, [], [at(-2), at(24, makeup=True)], NOW) == progress.MAKEUP
    assert callee_state(False, [], [at(2)], NOW) == progress.PENDING
    assert callee_state(False, [], [at(-0.05)], NOW) == progress.PENDING  # under way
    assert callee_state(False, [], [], NOW) == progress.PENDING  # an ad-hoc call can cover it
    assert callee_state(False, [], [at(-2, status=plans.MISSED)], NOW) == progress.MISSED
    assert callee_state(False, [calls.DECLINED], [at(-2)], NOW) == progress.MISSED
    assert callee_state(False, [], [at(2, status=plans.CANCELLED)], NOW) == progress.PENDING


async def console(client: TestClient, settings: Settings, who: str) -> Any:
    resp = await client.get("/api/v1/console", headers=bearer(make_token(settings, who)))
    assert resp.status == 200, await resp.text()
    return await resp.json()


def state_of(data: dict[str, Any], code: str) -> str:
    (found,) = [c["state"] for t in data["progress"]["towns"] for c in t["centres"]
                if c["code"] == code]  # fmt: skip
    return found


async def test_the_console_of_each_operator_is_its_own(
    client: TestClient, demo_settings: Settings, cast: Cast
) -> None:
    district = await console(client, demo_settings, cast.district)
    towns = {t["code"] for t in district["tree"]}
    assert {cast.town_a, cast.town_b} <= towns and len(towns) >= 18
    p = district["progress"]
    assert p["caller"] == cast.district
    assert p["required"] == sum(len(t["centres"]) for t in p["towns"])
    # The district covers each town and each village: the town first in its group.
    town_a = next(t for t in p["towns"] if t["code"] == cast.town_a)
    assert town_a["centres"][0]["code"] == cast.town_a
    assert cast.village_a1 in {c["code"] for c in town_a["centres"]}

    town = await console(client, demo_settings, cast.town_a)
    assert [t["code"] for t in town["tree"]] == [cast.town_a] and town["tree"][0]["self"]
    codes = {c["code"] for t in town["progress"]["towns"] for c in t["centres"]}
    assert cast.village_a1 in codes and cast.town_a not in codes  # a town patrols its villages
    assert cast.village_b1 not in codes and cast.village_b1 not in str(town["tree"])


async def test_only_operators_have_a_console(
    client: TestClient, demo_settings: Settings, cast: Cast
) -> None:
    for who in (cast.village_a1, "admin"):
        h = bearer(make_token(demo_settings, who))
        resp = await client.get("/api/v1/console", headers=h)
        assert resp.status == 403 and (await resp.json())["error"], who
        assert (await client.get("/console", headers=h)).status == 403
    assert (await client.get("/api/v1/console")).status == 401


async def test_an_ad_hoc_call_outside_the_scope_is_refused(
    client: TestClient, demo_settings: Settings, cast: Cast
) -> None:
    town = bearer(make_token(demo_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town,
                             json={"callees": [cast.village_b1], "kind": "meeting"})  # fmt: skip
    assert resp.status == 403
    resp = await client.post("/api/v1/calls", headers=town,
                             json={"callees": [cast.village_a1], "kind": "party"})  # fmt: skip
    assert resp.status == 400 and (await resp.json())["field"] == "kind"


async def test_coverage_follows_the_call(
    aiohttp_client, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    clock = SetClock(WEDNESDAY)
    db = open_database(demo_settings.db_url)
    slot_id = add_slot(db, open_the_rest_of_the_week(db, clock), clock, starts_in=3600, minutes=10)
    db.close()
    app = create_app(demo_settings.with_(scheduler=False), clock=clock)
    client: TestClient = await aiohttp_client(app)
    before = await console(client, demo_settings, cast.town_a)
    assert state_of(before, cast.village_a1) == progress.PENDING
    assert [s["id"] for s in before["slots"]] == [slot_id]
    slot_day = datetime.fromisoformat(before["slots"][0]["start"]).date()
    to_reach = [c["code"] for c in before["progress"]["to_reach_today"]]
    assert to_reach == ([cast.village_a1] if slot_day == clock.today() else [])

    town = bearer(make_token(demo_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town,
                             json={"callees": [cast.village_a1, cast.village_a2],
                                   "kind": "meeting"})  # fmt: skip
    assert resp.status == 201
    call_id = (await resp.json())["call"]["id"]
    ringing = await console(client, demo_settings, cast.town_a)
    assert state_of(ringing, cast.village_a1) == progress.RINGING
    assert [c["id"] for c in ringing["open"]] == [call_id]

    village = bearer(make_token(demo_settings, cast.village_a1))
    assert (await client.post(f"/api/v1/calls/{call_id}/accept", headers=village)).status == 200
    reached = await console(client, demo_settings, cast.town_a)
    assert state_of(reached, cast.village_a1) == progress.REACHED
    assert state_of(reached, cast.village_a2) == progress.RINGING

    await app[SWITCHBOARD].record(call_id, calls.VERIFIED, cast.village_a1, seconds_live=60)
    held = await console(client, demo_settings, cast.town_a)
    assert state_of(held, cast.village_a1) == progress.HELD
    assert held["progress"]["covered"] == before["progress"]["covered"] + 1
    assert held["progress"]["counts"]["held"] == 1
