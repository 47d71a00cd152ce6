"""In headless Chromium with a fake camera: a district meeting is recorded from its start
(the policy), both pages show the recording mark, the operator stops and starts it from
the call page, and after the call the journal page plays the recording (the done-when
check of issue 13's recording half) and shows its sha256."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dispatch import calls, recordings
from dispatch.settings import Settings
from web.app import create_app
from web.schema import open_database

from browser import DECODED_MORE_THAN, PLAYS, chromium, log_in
from conftest import Cast, bearer, make_token

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

async def files_begun(settings: Settings, call_id: int, count: int) -> None:
    """Wait until the call has `count` recorded files (each begins on a key frame)."""
    for _ in range(300):
        db = open_database(settings.db_url)
        with db.session() as s:
            begun = len(recordings.of_call(s, call_id))
        db.close()
        if begun >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{begun} recorded files, not {count}")


async def test_the_journal_plays_the_recording_of_a_browser_run_call(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False, recording_min_free_mb=1)
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    client_auth = bearer(make_token(settings, cast.district))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{base}/api/v1/calls",
            headers=client_auth,
            json={"callees": [cast.town_a], "kind": "meeting"},
        )
        assert resp.status == 201, await resp.text()
        launched = await resp.json()
    call_id = launched["call"]["id"]
    join_url = launched["invites"][0]["join_url"].replace("http://localhost:8080", base)

    async with (
        chromium(tmp_path / "district") as district_ctx,
        chromium(tmp_path / "town") as town_ctx,
    ):
        operator = await district_ctx.new_page()
        await log_in(operator, base, cast.district, "district-demo-2026")
        await operator.goto(f"{base}/calls/{call_id}")
        town = await town_ctx.new_page()
        await town.goto(join_url)
        await town.locator("#accept").click()
        for page in (operator, town):
            await page.wait_for_function(DECODED_MORE_THAN, arg=20, timeout=30_000)
            await page.get_by_test_id("rec-mark").wait_for(state="visible", timeout=15_000)
        assert "录像中" in await town.get_by_test_id("rec-mark").inner_text()

        await files_begun(settings, call_id, 2)  # each publisher's first key frame came
        toggle = operator.get_by_test_id("rec-toggle")
        assert await toggle.inner_text() == "停止录像"
        await toggle.click()  # off: both marks go
        for page in (operator, town):
            await page.get_by_test_id("rec-mark").wait_for(state="hidden", timeout=15_000)
        await operator.wait_for_function(
            "() => document.getElementById('rec-toggle').textContent === '开始录像'"
        )
        await toggle.click()  # on again: a second file per publisher
        for page in (operator, town):
            await page.get_by_test_id("rec-mark").wait_for(state="visible", timeout=15_000)
        await files_begun(settings, call_id, 4)
        await operator.wait_for_timeout(3000)
        await operator.locator("#end").click()
        await town.get_by_test_id("call-state").filter(has_text="调度已结束").wait_for()

        db = open_database(settings.db_url)
        with db.session() as s:
            files = recordings.of_call(s, call_id)
            marks = [
                e.data.get("on") for e in calls.events(s, call_id) if e.kind == calls.RECORDING
            ]
        db.close()
        assert marks == [True, False, True]
        assert {f.participant for f in files} == {cast.district, cast.town_a}
        assert len(files) == 4 and all(f.sha256 and f.ended_at for f in files)

        await operator.goto(f"{base}/journals/{call_id}")
        section = operator.get_by_test_id("recordings")
        await section.wait_for()
        longest = max(files, key=lambda f: f.seconds or 0)
        shown = await operator.get_by_test_id(f"recording-sha256-{longest.id}").inner_text()
        assert shown == longest.sha256
        played = await operator.evaluate(PLAYS, f'[data-testid="recording-{longest.id}"]')
        assert played["error"] is None, played
        assert played["ready"] >= 2 and played["now"] > played["start"], played
        assert played["width"] > 0, played
