"""In headless Chromium at 1366 px: the district operator launches an ad-hoc meeting from
the console's launcher and, back on the console, sees the week's coverage change live
as a village answers and its video is verified — also on a first run as `make serve`
loads it (issue 10, "Done when"): an empty database, the demo district with history,
a village that is a real aiortc peer, and this week's report in progress."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession
from village_clients import join

from dispatch import calls, centres
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.settings import Settings
from schedules.workdays import IsoWeek
from web.app import create_app
from web.appkeys import SWITCHBOARD
from web.cli import main

from browser import chromium, log_in
from conftest import Cast, bearer, make_token
from peers import on_loopback

pytestmark = pytest.mark.timeout(120)


# The two cases with no media peer (the village's answer and its verified video are
# recorded through the API and the switchboard) run in `make test`'s parallel pass.
@pytest.mark.browser
@pytest.mark.parallel
async def test_an_ad_hoc_meeting_from_the_console_changes_the_coverage(
    aiohttp_server, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(demo_settings.with_(scheduler=False))
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 900})
        await log_in(page, base, cast.district, "district-demo-2026", "/console")
        await page.wait_for_selector("body[data-console=ready]")
        figures = page.locator("#progress-figures")
        assert (await figures.inner_text()).startswith("已覆盖 0 /")

        # The launcher: town A, two of its villages, a meeting.
        await page.get_by_test_id("adhoc-town").select_option(cast.town_a)
        villages = page.get_by_test_id("adhoc-villages")
        await villages.locator(f'input[value="{cast.village_a1}"]').check()
        await villages.locator(f'input[value="{cast.village_a2}"]').check()
        await page.get_by_test_id("adhoc-launch").click()
        await page.wait_for_url(f"{base}/calls/*")
        call_id = int(page.url.rsplit("/", 1)[1])

        await page.goto(f"{base}/console")
        await page.wait_for_selector("body[data-console=ready]")
        assert f"#{call_id}" in await page.get_by_test_id("open-calls").inner_text()
        a1 = page.locator(f'#coverage li[data-centre="{cast.village_a1}"]')
        assert await a1.get_attribute("data-state") == "ringing"

        # The village answers: the console hears it over its event socket …
        async with ClientSession() as http:
            token = make_token(demo_settings, cast.village_a1)
            resp = await http.post(f"{base}/api/v1/calls/{call_id}/accept", headers=bearer(token))
            assert resp.status == 200
        await page.wait_for_selector(
            f'#coverage li[data-centre="{cast.village_a1}"][data-state="reached"]', state="attached"
        )
        assert "已接听 1/2" in await page.get_by_test_id("open-calls").inner_text()
        # … and once its video is verified (what the media room records), it is covered.
        await app[SWITCHBOARD].record(call_id, calls.VERIFIED, cast.village_a1, seconds_live=60)
        await page.wait_for_selector(
            f'#coverage li[data-centre="{cast.village_a1}"][data-state="held"]', state="attached"
        )
        assert (await figures.inner_text()).startswith("已覆盖 1 /")
        row = page.locator(f'#coverage tr[data-town="{cast.town_a}"]')
        assert "1/" in await row.locator("td").first.inner_text()
        a2 = page.locator(f'#coverage li[data-centre="{cast.village_a2}"]')
        assert await a2.get_attribute("data-state") == "ringing"


@pytest.mark.browser
@pytest.mark.parallel
async def test_a_one_to_one_inspection_names_one_centre(
    aiohttp_server, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = await aiohttp_server(create_app(demo_settings.with_(scheduler=False)))
    base = f"http://127.0.0.1:{server.port}"
    async with chromium(tmp_path / "profile", locale="en-US") as browser:
        page = await browser.new_page()
        await log_in(page, base, cast.town_a, "town-demo-2026", "/console")
        await page.wait_for_selector("body[data-console=ready]")
        assert await page.locator("#adhoc .include-town").is_hidden()  # the town is the caller
        villages = page.get_by_test_id("adhoc-villages")
        assert await villages.locator(f'input[value="{cast.village_b1}"]').count() == 0
        await villages.locator(f'input[value="{cast.village_a1}"]').check()
        await villages.locator(f'input[value="{cast.village_a2}"]').check()
        await page.locator('#adhoc input[name=kind][value=inspection]').check()
        await page.get_by_test_id("adhoc-launch").click()
        error = page.locator("#console-error")
        await page.wait_for_function("() => document.getElementById('console-error').textContent")
        assert "one centre" in await error.inner_text()
        assert page.url.endswith("/console")


def _first_run(settings: Settings) -> tuple[str, str, str, str]:
    """`make serve`'s first step on an empty database (with 2 weeks of history instead
    of 8, the same code), and verified video after 3 s instead of 60 (a policy setting);
    returns the district, its first town and that town's first two villages."""
    db = ["--db", settings.db_url, "--data-dir", settings.data_dir]
    assert main([*db, "demo", "load", "--if-empty", "--history-weeks", "2"]) == 0
    assert main([*db, "policy", "set", "min_verified_seconds=3"]) == 0
    database = Database(settings.db_url)
    with database.session() as s:
        district = centres.roots(s)[0].code
        town = centres.children(s, district)[0].code
        a1, a2 = (c.code for c in centres.children(s, town)[:2])
    database.close()
    return district, town, a1, a2


@pytest.mark.browser
@pytest.mark.timeout(300)
async def test_first_run_console_meeting_with_a_real_village_and_this_weeks_report(
    aiohttp_server, settings: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    district, town, a1, a2 = await asyncio.to_thread(_first_run, settings)
    live = settings.with_(ice_hosts="127.0.0.1", scheduler=False)
    server = await aiohttp_server(create_app(live))
    base = f"http://127.0.0.1:{server.port}"
    # A browser whose own clock is in New York: the call page still shows Shanghai times.
    async with chromium(tmp_path / "profile", timezone="America/New_York") as browser:
        page = await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 900})
        await log_in(page, base, district, "district-demo-2026", "/console")
        await page.wait_for_selector("body[data-console=ready]")
        figures = page.locator("#progress-figures")
        before = int(re.findall(r"\d+", await figures.inner_text())[0])
        row = page.locator(f'#coverage li[data-centre="{a1}"]')
        assert await row.get_attribute("data-state") in ("pending", "makeup")  # this week's rota

        await page.get_by_test_id("adhoc-town").select_option(town)
        villages = page.get_by_test_id("adhoc-villages")
        await villages.locator(f'input[value="{a1}"]').check()
        await villages.locator(f'input[value="{a2}"]').check()
        await page.locator('#adhoc input[name=kind][value=meeting]').check()
        await page.get_by_test_id("adhoc-launch").click()
        await page.wait_for_url(f"{base}/calls/*")
        call_id = int(page.url.rsplit("/", 1)[1])
        await page.wait_for_selector("#log li", state="attached")
        stamp = (await page.locator("#log li").last.inner_text())[:8]
        shown = datetime.combine(datetime.now(SHANGHAI).date(),
                                 datetime.strptime(stamp, "%H:%M:%S").time(), SHANGHAI)  # fmt: skip
        gap = abs((datetime.now(SHANGHAI) - shown).total_seconds()) % 86400
        assert min(gap, 86400 - gap) < timedelta(hours=1).total_seconds(), stamp  # not New York

        console = await browser.new_page()  # the call page stays open in its own tab
        await console.set_viewport_size({"width": 1366, "height": 900})
        await console.goto(f"{base}/console")
        await console.wait_for_selector("body[data-console=ready]")
        assert f"#{call_id}" in await console.get_by_test_id("open-calls").inner_text()
        cell = f'#coverage li[data-centre="{a1}"]'
        assert await console.locator(cell).get_attribute("data-state") == "ringing"

        # The village answers as a real aiortc peer, sending video the server checks.
        async with ClientSession() as http:
            with on_loopback():
                village = await join(http, base, call_id, a1,
                                     make_token(settings, a1), "green", 10)  # fmt: skip
            try:
                await console.wait_for_selector(f'{cell}[data-state="reached"]', state="attached")
                await console.wait_for_selector(f'{cell}[data-state="held"]', state="attached",
                                                timeout=60_000)  # fmt: skip
            finally:
                await village.close()
        after = int(re.findall(r"\d+", await console.locator("#progress-figures").inner_text())[0])
        assert after == before + 1

        # This week's report, from the reports page: in progress, nothing called missed.
        await console.goto(f"{base}/reports")
        await console.get_by_role("link", name="本周周报（进行中）").click()
        this_week = IsoWeek.containing(datetime.now(SHANGHAI).date())
        await console.wait_for_url(f"{base}/reports/weekly?week={this_week}")
        body = await console.locator("main").inner_text()
        assert "进行中" in body and "尚未排班" not in body
