"""Forms in headless Chromium (issue 10 items 9 and 10): the issue form's centre picker
is grouped by town and narrows as one types; the centres page exports the tree; the
screening ledger downloads the chosen period (half-month, month or any range)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from dispatch.clock import SHANGHAI
from dispatch.settings import Settings
from web.app import create_app

from browser import chromium, log_in
from conftest import Cast

pytestmark = pytest.mark.timeout(120)


@pytest.mark.browser
async def test_issue_centre_picker_and_centre_export(
    aiohttp_server, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = await aiohttp_server(create_app(demo_settings.with_(scheduler=False)))
    base = f"http://127.0.0.1:{server.port}"
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 900})
        await log_in(page, base, cast.district, "district-demo-2026", "/issues")
        picker = page.get_by_test_id("centre-picker")
        groups = picker.locator("optgroup")
        assert await groups.count() == 20  # one per town of the demo district
        town_a = picker.locator(f'optgroup[data-town="{cast.town_a}"]')
        codes = await town_a.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
        assert codes[0] == cast.town_a and cast.village_a1 in codes and cast.village_b1 not in codes
        name = (await town_a.locator(f'option[value="{cast.village_a2}"]').inner_text()).strip()
        await page.get_by_test_id("centre-search").fill(name)
        assert await picker.input_value() == cast.village_a2
        visible = await picker.locator("option:not([hidden])").count()
        assert 1 <= visible < 10  # narrowed to the matches
        await page.get_by_test_id("centre-search").fill(cast.village_b1)  # by code too
        assert await picker.input_value() == cast.village_b1

        await page.goto(f"{base}/centers")
        async with page.expect_download() as info:
            await page.get_by_test_id("export").get_by_role("link", name="导出 Excel").click()
        download = await info.value
        assert download.suggested_filename == f"centres-{cast.district}.xlsx"
        saved = tmp_path / "centres.xlsx"
        await download.save_as(saved)
        assert saved.read_bytes()[:2] == b"PK"  # an XLSX (zip) file


@pytest.mark.browser
async def test_ledger_period_picker_downloads_the_chosen_period(
    aiohttp_server, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = await aiohttp_server(create_app(demo_settings.with_(scheduler=False)))
    base = f"http://127.0.0.1:{server.port}"
    today = datetime.now(SHANGHAI).date()
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await log_in(page, base, cast.town_a, "town-demo-2026", "/issues")
        start, end = page.get_by_test_id("ledger-from"), page.get_by_test_id("ledger-to")
        assert await start.input_value() == first.isoformat()  # this month by default
        await page.get_by_test_id("ledger-preset").select_option("prev_month")
        assert await start.input_value() == last_month_end.replace(day=1).isoformat()
        assert await end.input_value() == last_month_end.isoformat()
        await page.get_by_test_id("ledger-preset").select_option("range")
        await start.fill("2026-01-05")
        await end.fill("2026-02-20")
        async with page.expect_download() as info:
            await page.get_by_test_id("ledger-download").click()
        download = await info.value
        assert download.suggested_filename == f"screening-{cast.town_a}-2026-01-05_2026-02-20.xlsx"
        saved = tmp_path / "ledger.xlsx"
        await download.save_as(saved)
    sheet = openpyxl.load_workbook(saved).active
    assert sheet is not None
    values = [c.value for row in sheet.iter_rows(max_row=3) for c in row]
    assert "责任单位" in values and "责任人" in values
    assert any("2026-01-05" in str(v) for v in values if v)  # the title names the period
