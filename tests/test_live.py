"""Reminders reach the open pages of the centres concerned, and only those."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from test_scheduler import WEDNESDAY, add_slot, open_the_rest_of_the_week, slot

from dispatch.clock import Clock, SetClock
from dispatch.events import Event
from dispatch.settings import Settings
from schedules.jobs import SlotReminder
from schedules.workdays import IsoWeek
from web.app import create_app
from web.appkeys import BUS
from web.schema import open_database

from browser import chromium, log_in
from conftest import Cast, bearer, make_token, wait_for


def slot_soon(settings: Settings, clock: Clock, seconds: float) -> int:
    """A patrol of the first town's first village, whose reminder (10 minutes ahead)
    falls `seconds` from the clock's now."""
    db = open_database(settings.db_url)
    week: IsoWeek = open_the_rest_of_the_week(db, clock)
    slot_id = add_slot(db, week, clock, starts_in=600 + seconds, minutes=10)
    db.close()
    return slot_id


async def test_the_reminder_reaches_the_village_and_its_town_only(
    aiohttp_client, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    clock = SetClock(WEDNESDAY)
    slot_id = slot_soon(demo_settings, clock, 1.5)
    client: TestClient = await aiohttp_client(create_app(demo_settings, clock=clock))
    sockets = {}
    for who in ("village_a1", "village_a2", "town_a", "district"):
        token = make_token(demo_settings, getattr(cast, who))
        sockets[who] = await client.ws_connect("/ws/events", headers=bearer(token))
        assert (await sockets[who].receive_json())["type"] == "hello"
    got = await asyncio.wait_for(sockets["village_a1"].receive_json(), 10)
    assert got["type"] == "slot_reminder" and got["slot_id"] == slot_id
    assert got["callees"] == [cast.village_a1] and got["minutes_before"] == 10
    town = await asyncio.wait_for(sockets["town_a"].receive_json(), 5)
    assert town["slot_id"] == slot_id
    for who in ("village_a2", "district"):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sockets[who].receive_json(), 0.5)
    for ws in sockets.values():
        await ws.close()


async def test_a_page_that_connects_after_the_reminder_still_gets_it(
    aiohttp_client, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    clock = SetClock(WEDNESDAY)
    due = slot_soon(demo_settings, clock, -1)  # its reminder is due already: sent at start-up
    db = open_database(demo_settings.db_url)
    started = add_slot(db, open_the_rest_of_the_week(db, clock), clock, starts_in=-5, minutes=10)
    app = create_app(demo_settings, clock=clock)
    sent: list[Event] = []
    app[BUS].subscribe(sent.append)
    client: TestClient = await aiohttp_client(app)
    try:
        await wait_for(lambda: slot(db, due).reminded_at is not None
                       and slot(db, started).reminded_at is not None)  # fmt: skip
    finally:
        db.close()
    (live,) = [e for e in sent if isinstance(e, SlotReminder) and e.slot_id == due]
    sockets = {}
    for who in ("village_a1", "village_a2", "town_a", "district"):
        token = make_token(demo_settings, getattr(cast, who))
        sockets[who] = await client.ws_connect("/ws/events", headers=bearer(token))
        assert (await sockets[who].receive_json())["type"] == "hello"
    for who in ("village_a1", "town_a"):
        got = await asyncio.wait_for(sockets[who].receive_json(), 10)
        # The reminder as it was sent (JSON has no tuples); not the started call's.
        assert got == json.loads(json.dumps(live.as_dict())), who
    for who in ("village_a1", "town_a", "village_a2", "district"):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sockets[who].receive_json(), 0.5)
    for ws in sockets.values():
        await ws.close()


async def test_the_socket_needs_a_login(client: TestClient) -> None:
    resp = await client.get("/ws/events")
    assert resp.status == 401


@pytest.mark.browser
async def test_village_page_shows_its_next_call_and_the_reminder(
    aiohttp_server, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    clock = SetClock(WEDNESDAY)
    slot_soon(demo_settings, clock, 4)
    server = await aiohttp_server(create_app(demo_settings, clock=clock))
    base = f"http://127.0.0.1:{server.port}"
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await log_in(page, base, cast.village_a1, "village-demo-2026")
        calls = page.get_by_test_id("next-calls")
        assert "镇级视频巡查" in await calls.inner_text()
        toast = page.locator("#live .toast")
        await toast.first.wait_for(timeout=15_000)
        assert "即将开始" in await toast.first.inner_text()
        await toast.first.click()
        await page.wait_for_url(f"{base}/rota/slots/*")
        assert "镇级视频巡查" in await page.locator("h1").inner_text()


@pytest.mark.browser
async def test_district_operator_builds_and_reads_the_week(
    aiohttp_server, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = await aiohttp_server(create_app(demo_settings))
    base = f"http://127.0.0.1:{server.port}"
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await log_in(page, base, cast.district, "district-demo-2026", "/rota?week=2026-W41")
        await page.get_by_test_id("not-built").locator("button").click()
        week = page.get_by_test_id("week")
        await week.wait_for()
        text = await week.inner_text()
        assert "区级视频调度会" in text and "镇级视频巡查" not in text  # the district's calls
        rows = week.locator("tbody tr.workday")
        assert await rows.count() == 3  # 8, 9 and Saturday 10 October
        assert "10-10" in await rows.nth(2).inner_text()
        assert await week.locator("tbody tr.dayoff").count() == 4
        await page.get_by_role("link", name="百节镇", exact=True).click()  # one town's patrol week
        await page.wait_for_url("**centre=511703*")
        text = await page.get_by_test_id("week").inner_text()
        assert "镇级视频巡查" in text and "受调度" in text and "区级视频调度会" in text
