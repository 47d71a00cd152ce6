"""In headless Chromium at 1366 px: the district operator launches an ad-hoc meeting from
the console's launcher and, back on the console, sees the week's coverage change live
as a village answers and its video is verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import ClientSession

from dispatch import calls
from dispatch.settings import Settings
from web.app import create_app
from web.appkeys import SWITCHBOARD

from browser import chromium, log_in
from conftest import Cast, bearer, make_token

pytestmark = pytest.mark.timeout(120)


@pytest.mark.browser
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
