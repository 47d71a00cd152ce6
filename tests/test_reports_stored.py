"""Stored reports and the reports list (issue 10 item 6): every format a stored report
lists is that format; no `None` in any figure; period titles; every role opens the
reports of its own scope (a village: its own centre) and no other; /reports links every
kind, newest period first, times in Asia/Shanghai."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pypdf
import pytest
from aiohttp.test_utils import TestClient

from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.settings import Settings
from logs import archive, periods
from schedules import planner
from schedules.workdays import IsoWeek

from conftest import Cast, bearer, make_token

W46 = IsoWeek(2026, 46)


@pytest.fixture(scope="session")
def period_figures() -> dict[str, dict[str, Any]]:
    """The three period reports `stored` keeps, by label, computed by the first test that
    needs them (about 2.5 s on an idle machine, most of `stored`'s time). Each test of this
    file computes them over the same database: the started demo district with the same
    W46 rota built on it. A test that stores other figures is not in this file."""
    return {}


@pytest.fixture
def stored(
    demo_settings: Settings, cast: Cast, period_figures: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """A rota for W46 (built the week before) and four stored reports: W46, October (before
    the first rota: no figures), 2026-Q4 of town A and 2026-H2."""
    db = Database(demo_settings.db_url)
    ids: dict[str, int] = {}
    with db.session() as s:
        planner.build_week(s, cast.district, W46, now=datetime(2026, 11, 6, 12, tzinfo=SHANGHAI))
        ids["weekly"] = archive.store_weekly(s, cast.district, W46, "test").id or 0
        for kind, period, town in (
            ("monthly", periods.parse_month("2026-10"), None),
            ("quarterly", periods.parse_quarter("2026-Q4"), cast.town_a),
            ("half-year", periods.parse_half("2026-H2"), None),
        ):
            label = period.code if town is None else f"{period.code}@{town}"
            if label not in period_figures:
                report = periods.period_report(s, cast.district, period, town=town)
                period_figures[label] = report.as_dict()
            data = period_figures[label]
            ids[kind] = archive.store(s, kind, label, cast.district, data, "t").id or 0
    db.close()
    return ids


async def test_stored_reports_export_in_every_format(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int]
) -> None:
    h = bearer(make_token(demo_settings, cast.district))
    for kind, report_id in stored.items():
        body = await (await client.get(f"/api/v1/reports/{report_id}", headers=h)).text()
        for fmt in ("pdf", "xlsx", "csv", "json", "html"):
            resp = await client.get(f"/reports/{report_id}?format={fmt}", headers=h)
            assert resp.status == 200, (kind, fmt, await resp.text())
            data = await resp.read()
            if fmt == "pdf":
                assert resp.content_type == "application/pdf" and data.startswith(b"%PDF")
                text = pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
                assert "None" not in text
            elif fmt == "xlsx":
                sheet = openpyxl.load_workbook(io.BytesIO(data)).active
                assert sheet is not None and sheet.max_row >= 1
            elif fmt == "csv":
                assert resp.content_type == "text/csv"
                header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
                assert "单位" in header or "被调度单位" in header
            elif fmt == "json":
                assert data.decode() == body  # exactly as stored
            else:
                assert b"<!doctype html>" in data and b"None" not in data
            assert "attachment" in resp.headers.get("Content-Disposition", "") or fmt == "json"
        # The page links each of those formats on the stored report itself.
        page = await (await client.get(f"/reports/{report_id}", headers=h)).text()
        for fmt in ("pdf", "xlsx", "csv", "json"):
            assert f"/reports/{report_id}?format={fmt}" in page or (
                f"/reports/{report_id}?&amp;format={fmt}" in page
            )
    resp = await client.get(f"/reports/{stored['weekly']}?format=doc", headers=h)
    assert resp.status == 400


async def test_no_none_in_figures_and_titles_fit_the_period(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int]
) -> None:
    h = bearer(make_token(demo_settings, cast.district))
    october = await (await client.get(f"/reports/{stored['monthly']}", headers=h)).text()
    assert "None" not in october and "本期问题" in october and "本周问题" not in october
    summary = re.search(r'data-testid="summary">(.*?)</table>', october, re.S)
    assert summary and "—" in summary.group(1)  # nothing counted: a dash, never None
    assert "尚未排班" in october  # its weeks were before the first rota: not exempt
    for kind in ("weekly", "quarterly", "half-year"):
        html = await (await client.get(f"/reports/{stored[kind]}", headers=h)).text()
        assert "None" not in html, kind
    weekly = await (await client.get(f"/reports/{stored['weekly']}", headers=h)).text()
    assert "本周问题" in weekly


async def test_every_role_opens_its_own_scope(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int]
) -> None:
    village = bearer(make_token(demo_settings, cast.village_a1))
    for kind, report_id in stored.items():
        resp = await client.get(f"/reports/{report_id}", headers=village)
        assert resp.status == 200, (kind, await resp.text())
        resp = await client.get(f"/api/v1/reports/{report_id}", headers=village)
        assert resp.status == 200, (kind, await resp.text())
        data = await resp.json()
        assert data["view"] == cast.village_a1, kind  # its own centre's figures
        text = json.dumps(data)
        assert cast.village_a2 not in text and cast.town_b not in text, kind
        resp = await client.get(f"/reports/{report_id}?format=pdf", headers=village)
        assert resp.status == 200 and (await resp.read()).startswith(b"%PDF"), kind
    # Town B's operator sees no trace of town A's quarterly report and cannot open it.
    town_b = bearer(make_token(demo_settings, cast.town_b))
    listed = await (await client.get("/api/v1/reports", headers=town_b)).json()
    assert stored["quarterly"] not in {r["id"] for r in listed["reports"]}
    resp = await client.get(f"/api/v1/reports/{stored['quarterly']}", headers=town_b)
    assert resp.status == 403
    village_b = bearer(make_token(demo_settings, cast.village_b1))
    resp = await client.get(f"/reports/{stored['quarterly']}", headers=village_b)
    assert resp.status == 403
    # Town A's operator: its own town.
    town_a = bearer(make_token(demo_settings, cast.town_a))
    data = await (await client.get(f"/api/v1/reports/{stored['monthly']}", headers=town_a)).json()
    assert data["view"] == cast.town_a


async def test_reports_page_links_every_kind_newest_first(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int]
) -> None:
    h = bearer(make_token(demo_settings, cast.district))
    html = await (await client.get("/reports", headers=h)).text()
    kinds = re.search(r'data-testid="report-kinds">(.*?)</p>', html, re.S)
    assert kinds
    for path in ("/reports/weekly?week=", "/reports/monthly?month=",
                 "/reports/quarterly?quarter=", "/reports/half-year?half="):  # fmt: skip
        assert path in kinds.group(1)
    mine = set(stored.values())  # the app's start also produces last week's and month's
    order = [int(i) for i in re.findall(r'href="/reports/(\d+)"', html) if int(i) in mine]
    # By period, newest first: W46 (9 Nov), Q4 and October (1 Oct: the longer first), H2.
    assert order == [stored["weekly"], stored["quarterly"], stored["monthly"], stored["half-year"]]
    assert "UTC" not in html
    db = Database(demo_settings.db_url)
    with db.session() as s:
        row = s.get(archive.StoredReport, stored["weekly"])
        assert row is not None
        local = row.created_at.replace(tzinfo=UTC).astimezone(SHANGHAI)
    db.close()
    assert local.strftime("%Y-%m-%d %H:%M") in html
    listed = await (await client.get("/api/v1/reports", headers=h)).json()
    (entry,) = [r for r in listed["reports"] if r["id"] == stored["weekly"]]
    assert entry["created_at"] == local.isoformat() and entry["created_at"].endswith("+08:00")
    # A town's links lead to its own quarterly report.
    town = bearer(make_token(demo_settings, cast.town_a))
    html = await (await client.get("/reports", headers=town)).text()
    assert f"&amp;town={cast.town_a}" in html
    for link in re.findall(r'class="button" href="([^"]+)"', html):
        resp = await client.get(link.replace("&amp;", "&"), headers=town)
        assert resp.status == 200, link


FULL_WIDTH = re.compile(r"[：（）、，。；]")


async def test_english_pages_are_complete(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int]
) -> None:
    """Titles, labels and the narrative in English, with half-width punctuation (centre
    names stay as they are)."""
    pages = {
        "/reports/monthly?month=2026-11": "Monthly information report, November 2026",
        f"/reports/quarterly?quarter=2026-Q4&town={cast.town_a}": "Quarterly analysis report",
        "/reports/half-year?half=2026-H2": "Half-year analysis report, H2 2026",
        f"/reports/{stored['monthly']}": "Monthly information report, October 2026",
        f"/reports/weekly?week={W46}": "Weekly coverage compliance",
        f"/reports/{stored['weekly']}": "Weekly coverage compliance",
        "/reports": "Reports produced on time",
    }
    for who in (cast.district, cast.village_a1):
        h = bearer(make_token(demo_settings, who))
        for path, title in pages.items():
            sep = "&" if "?" in path else "?"
            resp = await client.get(f"{path}{sep}lang=en", headers=h)
            assert resp.status == 200, (who, path)
            html = await resp.text()
            assert title in html, (who, path)
            assert not FULL_WIDTH.findall(html), (who, path, FULL_WIDTH.findall(html)[:5])
            for word in ("信息月报", "研判分析报告", "本月", "本季度", "共登记问题", "示范类"):
                assert word not in html, (who, path, word)
            narrative = re.search(r'data-testid="narrative">(.*?)</p>', html, re.S)
            if narrative:
                assert narrative.group(1).startswith("This "), narrative.group(1)
        # In Chinese, the same pages keep their Chinese titles.
        html = await (await client.get("/reports/monthly?month=2026-11&lang=zh", headers=h)).text()
        assert "信息月报" in html and "2026年11月" in html


KINDS = {
    "weekly": f"week={W46}",
    "monthly": "month=2026-11",
    "quarterly": "quarter=2026-Q4",
    "half-year": "half=2026-H2",
}


# One case a role (the admin, the district, town A, village A1), so that `make test`'s
# two workers share the matrix: every kind of each role's scope, in every format.
@pytest.mark.parametrize("role", ["admin", "district", "town_a", "village_a1"])
async def test_every_role_opens_every_kind_of_its_scope_in_every_format(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int], role: str
) -> None:
    who = role if role == "admin" else cast.all()[role]
    h = bearer(make_token(demo_settings, who))
    own = {"admin": cast.district, cast.district: cast.district}.get(who, who)
    for kind, query in KINDS.items():
        if kind == "quarterly" and who not in ("admin", cast.district):
            query += f"&town={cast.town_a}"  # its own town's quarter
        page = await client.get(f"/reports/{kind}?{query}", headers=h)
        assert page.status == 200, (who, kind, await page.text())
        assert "None" not in await page.text(), (who, kind)
        data = await (await client.get(f"/api/v1/reports/{kind}?{query}", headers=h)).json()
        assert data["view"] in (own, cast.town_a), (who, kind, data.get("view"))
        if who == cast.village_a1:
            assert data["view"] == cast.village_a1  # its own centre, never its town
        formats = ("csv", "xlsx", "html") + (("pdf",) if who == cast.village_a1 else ())
        for fmt in formats:
            resp = await client.get(f"/api/v1/reports/{kind}?{query}&format={fmt}", headers=h)
            assert resp.status == 200, (who, kind, fmt, await resp.text())
            assert b"None" not in await resp.read() or fmt == "xlsx", (who, kind, fmt)


async def test_no_role_opens_another_towns_quarter(
    client: TestClient, cast: Cast, demo_settings: Settings, stored: dict[str, int]
) -> None:
    """Scope refusals: another town's quarter, for its operator and for its villages."""
    for who in (cast.town_b, cast.village_b1):
        h = bearer(make_token(demo_settings, who))
        url = f"/api/v1/reports/quarterly?quarter=2026-Q4&town={cast.town_a}"
        resp = await client.get(url, headers=h)
        assert resp.status == 403, who
        assert cast.town_a not in await resp.text() or "outside your scope" in await resp.text()
