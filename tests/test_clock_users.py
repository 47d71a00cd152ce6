"""The application's clock is the time of record (issue 14, item 2): a call's times and
attendance events, an issue's times and whether it is overdue, a journal's signing and
a report's bulletin date all read the clock handed to `create_app`, so a test sets a
moment years away from the real one and finds it in every record.

The set moment is far from any real day the suite runs on, so a record stamped by the
real clock would show at once; the clock runs on at the real pace, so each stamp is
compared with the set moment give or take the test's own run, never a duration."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from dispatch.clock import SHANGHAI, SetClock, as_utc
from dispatch.settings import Settings
from web.app import create_app

from conftest import Cast, bearer, make_token

# Wednesday 14 May 2031, 10:00 in Shanghai: not a day the suite runs on.
SET = datetime(2031, 5, 14, 10, 0, tzinfo=SHANGHAI)
SLACK = timedelta(hours=1)  # the clock runs on while the test runs; no real stamp comes near


def near_set(stamp: str | None, clock: SetClock) -> bool:
    """A stored time that the set clock made: between the set moment and the clock now."""
    assert stamp is not None
    at = as_utc(datetime.fromisoformat(stamp))
    return SET <= at <= clock.now() + SLACK


async def app_at(aiohttp_client: Any, settings: Settings, clock: SetClock) -> TestClient:
    client: TestClient = await aiohttp_client(
        create_app(settings.with_(scheduler=False), clock=clock)
    )
    return client


async def json_of(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_a_calls_times_and_events_come_from_the_set_clock(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    clock = SetClock(SET)
    client = await app_at(aiohttp_client, demo_settings, clock)
    town = bearer(make_token(demo_settings, cast.town_a))
    village = bearer(make_token(demo_settings, cast.village_a1))
    launched = await json_of(await client.post(
        "/api/v1/calls", headers=town, json={"callees": [cast.village_a1], "kind": "inspection"}
    ), 201)  # fmt: skip
    call_id = launched["call"]["id"]
    await json_of(await client.post(f"/api/v1/calls/{call_id}/accept", headers=village))
    await json_of(await client.post(f"/api/v1/calls/{call_id}/end", headers=town))

    call = await json_of(await client.get(f"/api/v1/calls/{call_id}", headers=town))
    assert call["state"] == "ended"
    for key in ("created_at", "started_at", "ended_at"):
        assert near_set(call[key], clock), (key, call[key])
    (invite,) = call["invites"]
    assert near_set(invite["rang_at"], clock) and near_set(invite["answered_at"], clock)

    journal = await json_of(await client.get(f"/api/v1/journals/{call_id}", headers=town))
    kinds = [e["kind"] for e in journal["events"]]
    assert {"invited", "rang", "answered", "ended"} <= set(kinds), kinds
    assert all(near_set(e["at"], clock) for e in journal["events"]), journal["events"]

    await json_of(await client.post(f"/api/v1/journals/{call_id}/sign", headers=town), 201)
    signed = await json_of(await client.get(f"/api/v1/journals/{call_id}", headers=town))
    assert near_set(signed["signed_at"], clock)


async def test_an_issue_is_overdue_when_the_set_clock_passes_its_deadline(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    clock = SetClock(SET)
    client = await app_at(aiohttp_client, demo_settings, clock)
    town = bearer(make_token(demo_settings, cast.town_a))
    day = clock.today()
    body = {"centre": cast.village_a1, "category": "dispute", "severity": "general",
            "description": "邻里宅基地纠纷"}  # fmt: skip

    # A deadline after the real today but before the clock's is already past.
    past = await client.post("/api/v1/issues", headers=town,
                             json={**body, "deadline": str(day - timedelta(days=1))})  # fmt: skip
    assert past.status == 400 and "deadline" in await past.text()

    raised = await json_of(await client.post(
        "/api/v1/issues", headers=town, json={**body, "deadline": str(day + timedelta(days=2))}
    ), 201)  # fmt: skip
    issue_id = raised["id"]
    assert raised["overdue"] is False
    assert near_set(raised["created_at"], clock)
    board = f"/api/v1/issues?centre={cast.town_a}&overdue=1"
    assert (await json_of(await client.get(board, headers=town)))["issues"] == []

    clock.advance(timedelta(days=3))  # the deadline has passed by the clock
    later = await json_of(await client.get(f"/api/v1/issues/{issue_id}", headers=town))
    assert later["overdue"] is True
    overdue = (await json_of(await client.get(board, headers=town)))["issues"]
    assert [i["id"] for i in overdue] == [issue_id]
    page = await client.get(f"/issues/{issue_id}", headers=town)
    assert page.status == 200

    started = await json_of(await client.post(f"/api/v1/issues/{issue_id}/start",
                                              headers=town, json={"note": "走访"}))  # fmt: skip
    assert as_utc(datetime.fromisoformat(started["updated_at"])) >= SET + timedelta(days=3)
    history = (await json_of(await client.get(f"/api/v1/issues/{issue_id}", headers=town)))
    assert [h["action"] for h in history["history"]] == ["raised", "started"]
    assert all(near_set(h["at"], clock) for h in history["history"])


async def test_a_report_bulletin_is_dated_by_the_set_clock(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    clock = SetClock(SET)
    client = await app_at(aiohttp_client, demo_settings, clock)
    district = bearer(make_token(demo_settings, cast.district))
    # May 2031 has not ended by the clock: its bulletin is issued on the clock's day.
    zh = await client.get("/reports/monthly?month=2031-05&lang=zh", headers=district)
    assert zh.status == 200, await zh.text()
    assert "2031年5月14日" in await zh.text()
    en = await client.get("/reports/monthly?month=2031-05&lang=en", headers=district)
    assert "2031-05-14" in await en.text()
    printed = await client.get("/api/v1/reports/monthly?month=2031-05&format=html",
                               headers=district)  # fmt: skip
    assert printed.status == 200 and "2031年5月14日" in await printed.text()

    clock.advance(timedelta(days=1))
    tomorrow = await client.get("/reports/monthly?month=2031-05&lang=en", headers=district)
    assert "2031-05-15" in await tomorrow.text()
