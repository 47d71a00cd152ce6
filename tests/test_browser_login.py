"""In headless Chromium: the district operator logs in and sees the demo district's tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch import demo
from web.app import create_app

from browser import chromium
from conftest import Cast


@pytest.mark.browser
async def test_district_operator_logs_in_and_sees_the_tree(
    aiohttp_server, demo_settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = await aiohttp_server(create_app(demo_settings))
    base = f"http://127.0.0.1:{server.port}"
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{base}/centers")
        assert "/login" in page.url  # a stranger is sent to log in first
        assert await page.locator("h1").inner_text() == "平安调度"
        await page.fill("input[name=username]", cast.district)
        await page.fill("input[name=password]", demo.DEMO_PASSWORDS["district_operator"])
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/centers")
        tree = page.get_by_test_id("tree")
        assert "达川区" in await tree.inner_text()
        towns = tree.locator("li.town")
        assert 18 <= await towns.count() <= 22
        villages = tree.locator("li.village")
        assert await villages.count() >= 18 * 8
        # Towns start folded; opening one shows its villages.
        first_village = villages.first
        assert not await first_village.is_visible()
        await tree.locator("li.town summary").first.click(position={"x": 2, "y": 5})
        assert await first_village.is_visible()
        counts = await page.get_by_test_id("counts").inner_text()
        assert "示范类" in counts and "带动类" in counts
        # English on request.
        await page.goto(f"{base}/centers?lang=en")
        assert "Centre tree" in await page.locator("h1").inner_text()
