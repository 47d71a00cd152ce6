"""The layout holds: in headless Chromium at 1024, 1366 and 1920 px, in Chinese and in
English, every page's header and navigation are measured (each page loaded once and
measured at every width by resizing the window) — no two boxes overlap,
nothing leaves the window, no label wraps (the bug was the menu squeezed into a
column of one or two characters per line, 退出 over the account name) — and no
heading, button or table header anywhere on the page is squeezed to a character or
two per line."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page

from dispatch import demo
from dispatch.clock import SHANGHAI
from dispatch.settings import Settings
from schedules.workdays import IsoWeek
from web.app import create_app

from browser import chromium_windows, log_in
from conftest import Cast, bearer, make_token

pytestmark = pytest.mark.timeout(300)

WIDTHS = (1024, 1366, 1920)
TABS = 3  # pages measured side by side, each in its own window: the server renders one
# while Chromium lays out another

# Runs in the page: the header's boxes and every label that must not be squeezed.
MEASURE = """() => {
  const out = {problems: []};
  const vw = document.documentElement.clientWidth;
  const say = (el) => (el.getAttribute('data-testid') || el.className || el.tagName) +
    ' "' + el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 30) + '"';
  // Lines a node's text takes: distinct line tops of its rectangles.
  const lines = (node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    const tops = [];
    for (const r of range.getClientRects()) {
      if (r.width > 0 && r.height > 0 && !tops.some((t) => Math.abs(t - r.top) < r.height / 2)) {
        tops.push(r.top);
      }
    }
    return Math.max(1, tops.length);
  };
  const bar = document.querySelector('body > header');
  if (!bar) { out.problems.push('no header'); return out; }
  const items = [...bar.querySelectorAll('.brand, nav a, .lang, .who, button')]
    .filter((el) => el.getClientRects().length);
  const boxes = items.map((el) => [el, el.getBoundingClientRect()]);
  for (const [el, r] of boxes) {
    if (r.left < -0.5 || r.right > vw + 0.5) {
      out.problems.push(`outside the window: ${say(el)} ${r.left}-${r.right} of ${vw}`);
    }
    if (el.textContent.trim() && lines(el) > 1) {
      out.problems.push(`wraps: ${say(el)} on ${lines(el)} lines`);
    }
  }
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, ra] = boxes[i], [b, rb] = boxes[j];
    const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
    const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
    if (w > 1 && h > 1) out.problems.push(`overlap: ${say(a)} and ${say(b)}`);
  }
  if (bar.scrollWidth > bar.clientWidth + 1) {
    out.problems.push(`header scrolls: ${bar.scrollWidth} > ${bar.clientWidth}`);
  }
  // Anywhere in the page: a label's text squeezed to one or two characters per line.
  const labels = ['h1', 'h2', 'h3', 'th', 'button', '.button', 'label', 'dt']
    .map((s) => `main ${s}`).join(', ');
  for (const el of document.querySelectorAll(labels)) {
    if (!el.getClientRects().length) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const chars = node.textContent.replace(/\\s+/g, '').length;
      const n = lines(node);
      if (chars >= 2 && n >= 2 && chars / n <= 2) {
        out.problems.push(`squeezed to ${n} lines: ${say(el)}`);
        break;
      }
    }
  }
  return out;
}"""


async def api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    async with ClientSession() as http:
        resp = await http.request(method, f"{base}{path}", json=body, headers=bearer(token))
        assert resp.status < 300, (path, resp.status, await resp.text())
        return await resp.json()


async def pages_of(base: str, settings: Settings, cast: Cast) -> dict[str, list[str]]:
    """Every page, per role, with the records the detail pages need made first."""
    district = make_token(settings, cast.district)
    week = IsoWeek.containing(datetime.now(SHANGHAI).date()).next()
    built = await api(base, district, "POST", "/api/v1/rota/build", {"week": str(week)})
    slot = built["slots"][0]["id"]
    launched = await api(base, district, "POST", "/api/v1/calls",
                         {"callees": [cast.village_a1], "kind": "inspection"})  # fmt: skip
    call = launched["call"]["id"]
    await api(base, district, "POST", f"/api/v1/calls/{call}/end")
    issue = await api(base, make_token(settings, cast.town_a), "POST", "/api/v1/issues", {
        "centre": cast.village_a1, "category": "dispute", "severity": "general",
        "parties": "张三、李四", "description": "宅基地边界纠纷"})  # fmt: skip
    issue_id = issue["issue"]["id"] if "issue" in issue else issue["id"]
    month = datetime.now(SHANGHAI).strftime("%Y-%m")
    quarter = f"{datetime.now(SHANGHAI).year}-Q{(datetime.now(SHANGHAI).month - 1) // 3 + 1}"
    half = f"{datetime.now(SHANGHAI).year}-H{1 if datetime.now(SHANGHAI).month <= 6 else 2}"
    common = ["/", "/centers", f"/centers/{cast.village_a1}", "/journals", "/issues",
              f"/issues/{issue_id}", "/reports", f"/reports/weekly?week={week.previous()}",
              f"/reports/monthly?month={month}", f"/rota?week={week}", "/rota",
              f"/rota/slots/{slot}"]  # fmt: skip
    operator = [*common, "/console", f"/journals/{call}", f"/calls/{call}",
                f"/centers/{cast.town_a}", f"/reports/half-year?half={half}"]  # fmt: skip
    return {
        "admin": [*common, "/admin/policy", f"/reports/half-year?half={half}", "/cameras"],
        cast.district: [*operator, "/cameras"],
        cast.town_a: [*operator, f"/reports/quarterly?quarter={quarter}&town={cast.town_a}",
                      f"/rota?week={week}&caller={cast.town_a}"],
        cast.village_a1: [*common],
    }


# Two frames after a resize: the page's resize handlers (web/static/call.js) have run.
SETTLE = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


async def check(page: Page, url: str, where: str, problems: list[str]) -> None:
    """Load `url` once, at the narrowest width, and measure it at every width in WIDTHS:
    the window is resized in place (media queries and resize handlers apply as on a
    fresh load)."""
    await page.set_viewport_size({"width": WIDTHS[0], "height": 800})
    resp = await page.goto(url)
    assert resp is not None
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 800})
        if resp.status >= 500:
            problems.append(f"{width}px {where}: HTTP {resp.status}")
            continue
        await page.evaluate(SETTLE)
        found = await page.evaluate(MEASURE)
        problems += [f"{width}px {where}: {p}" for p in found["problems"]]


async def every_page_holds_its_layout(
    server_factory, settings: Settings, cast: Cast, locale: str
) -> None:  # type: ignore[no-untyped-def]
    """The whole check in one locale (each locale is a test of its own, so that
    `make test`'s two workers can take one each)."""
    server = await server_factory(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    roles = await pages_of(base, settings, cast)
    passwords = {
        "admin": demo.DEMO_PASSWORDS["admin"],
        cast.district: demo.DEMO_PASSWORDS["district_operator"],
        cast.town_a: demo.DEMO_PASSWORDS["town_operator"],
        cast.village_a1: demo.DEMO_PASSWORDS["village"],
    }
    problems: list[str] = []
    async with chromium_windows() as browser:
        first = await browser.new_context(locale=locale)
        page = await first.new_page()
        await check(page, f"{base}/login", "/login", problems)  # before anyone logs in
        await first.close()
        for who, urls in roles.items():
            # One login, its cookies given to every window; a window each, never a
            # background tab (see chromium_windows).
            first = await browser.new_context(locale=locale)
            page = await first.new_page()
            await page.set_viewport_size({"width": 1366, "height": 800})
            await log_in(page, base, who, passwords[who])
            state = await first.storage_state()
            others = [await browser.new_context(locale=locale, storage_state=state)
                      for _ in range(TABS - 1)]  # fmt: skip
            tabs = [page, *[await other.new_page() for other in others]]

            async def sweep(tab: Page, mine: list[str], who: str = who) -> None:
                for url in mine:
                    await check(tab, f"{base}{url}", f"{who} {url}", problems)

            await asyncio.gather(*(sweep(tab, urls[i::TABS]) for i, tab in enumerate(tabs)))
            for context in (first, *others):
                await context.close()
    assert not problems, "\n".join(sorted(problems))


@pytest.mark.browser
async def test_every_page_holds_its_layout_in_chinese(
    aiohttp_server, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    await every_page_holds_its_layout(aiohttp_server, demo_settings, cast, "zh-CN")
