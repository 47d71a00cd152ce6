"""In headless Chromium, under the Content-Security-Policy every response carries
(web/headers.py): no page trips it, and the behaviours that were inline handlers —
the journal's print button, the policy page's district picker — still work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from dispatch import demo
from web.app import create_app

from browser import chromium, log_in
from conftest import Cast, bearer, make_token

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

PAGES = ["/", "/console", "/centers", "/rota", "/issues", "/journals", "/reports",
         "/reports/weekly", "/reports/monthly"]  # fmt: skip


def watch(page: Any, seen: list[str]) -> None:
    """Record every CSP violation the page reports, in the console or as an event."""
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text
            else None)  # fmt: skip


async def test_no_page_trips_the_policy_and_former_inline_handlers_work(
    aiohttp_server: Any, demo_settings: Any, cast: Cast, tmp_path: Path
) -> None:
    server = await aiohttp_server(create_app(demo_settings))
    base = f"http://127.0.0.1:{server.port}"
    token = make_token(demo_settings, cast.district)
    async with ClientSession() as http:  # a call to give the journal page something
        body = {"callees": [cast.village_a1], "kind": "inspection"}
        resp = await http.post(f"{base}/api/v1/calls", headers=bearer(token), json=body)
        assert resp.status == 201, await resp.text()
        call_id = (await resp.json())["call"]["id"]
    violations: list[str] = []
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        watch(page, violations)
        await log_in(page, base, cast.district, demo.DEMO_PASSWORDS["district_operator"])
        for path in [*PAGES, f"/journals/{call_id}", f"/calls/{call_id}"]:
            await page.goto(f"{base}{path}")
            await page.wait_for_load_state("networkidle")
            await page.evaluate("() => new Promise((r) => setTimeout(r, 100))")
        assert violations == [], violations

        await page.goto(f"{base}/journals/{call_id}")
        await page.evaluate("() => { window.printed = 0; window.print = () => window.printed++; }")
        await page.locator('[data-action="print"]').click()
        assert await page.evaluate("() => window.printed") == 1

    async with chromium(tmp_path / "admin") as browser:  # a second login, its own cookies
        admin = await browser.new_page()
        watch(admin, violations)
        await log_in(admin, base, "admin", demo.DEMO_PASSWORDS["admin"], then="/admin/policy")
        await admin.locator("select[name=district]").select_option(cast.district)
        await admin.wait_for_url(f"**/admin/policy?district={cast.district}")
        assert violations == [], violations
