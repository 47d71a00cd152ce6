"""The weekly coverage report over HTTP and the CLI: scope, exempt weeks, every format
re-read (XLSX with openpyxl, PDF text), on a generated history."""

from __future__ import annotations

import io
import json
from datetime import datetime

import openpyxl
import pypdf
import pytest
from aiohttp.test_utils import TestClient

from dispatch.settings import Settings
from logs.history import generate_history
from schedules import workdays
from schedules.workdays import IsoWeek
from web.cli import main
from web.schema import open_database

from conftest import Cast, bearer, make_token

WEEK = IsoWeek(2026, 46)


@pytest.fixture
def history(demo_settings: Settings) -> Settings:
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        for day in IsoWeek(2026, 45).days():  # an exempt week before it
            workdays.set_override(s, day, False, "test", "test")
    with db.session() as s:
        generate_history(s, weeks=2, end_week=WEEK)
    db.close()
    return demo_settings


async def test_weekly_report_scope_and_formats(
    client: TestClient, cast: Cast, history: Settings
) -> None:
    district = bearer(make_token(history, cast.district))
    town = bearer(make_token(history, cast.town_a))
    full = await (await client.get(f"/api/v1/reports/weekly?week={WEEK}", headers=district)).json()
    assert full["exempt"] is False and full["required"] > 500
    assert 0 < full["coverage_pct"] <= 100
    assert len(full["towns"]) >= 18
    mine = await (await client.get(f"/api/v1/reports/weekly?week={WEEK}", headers=town)).json()
    assert [t["code"] for t in mine["towns"]] == [cast.town_a]
    codes = {p["callee"] for p in mine["pairs"]} | {p["caller"] for p in mine["pairs"]}
    assert cast.town_b not in codes and cast.village_b1 not in codes
    exempt = await (
        await client.get("/api/v1/reports/weekly?week=2026-W45", headers=district)
    ).json()
    assert exempt["exempt"] is True and exempt["coverage_pct"] is None

    resp = await client.get(f"/api/v1/reports/weekly?week={WEEK}&format=xlsx", headers=town)
    sheet = openpyxl.load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert "被调度单位" in values and "区级调度" in values
    resp = await client.get(f"/api/v1/reports/weekly?week={WEEK}&format=pdf", headers=district)
    text = pypdf.PdfReader(io.BytesIO(await resp.read())).pages[0].extract_text()
    assert "视频调度周覆盖情况" in text and "覆盖率" in text
    html = await (await client.get(f"/reports/weekly?week={WEEK}", headers=district)).text()
    assert "各镇（街道）排名" in html
    resp = await client.get("/api/v1/reports/weekly?week=2026-W99", headers=district)
    assert resp.status == 400 and (await resp.json())["field"] == "week"
    resp = await client.get(f"/api/v1/reports/weekly?week={WEEK}&format=doc", headers=district)
    assert resp.status == 400


def test_cli_weekly_report(history: Settings, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    cli = ["--db", history.db_url, "report", "weekly", "--week", str(WEEK)]
    assert main([*cli, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["week"] == str(WEEK) and report["covered"] <= report["required"]
    out = tmp_path / "w.pdf"
    assert main([*cli, "--format", "pdf", "-o", str(out)]) == 0
    assert "覆盖率" in pypdf.PdfReader(str(out)).pages[0].extract_text()
    assert main([*cli, "--format", "xlsx"]) == 2  # a binary file needs -o


async def test_reports_are_produced_once_and_kept(
    aiohttp_client, cast: Cast, history: Settings
) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from dispatch.clock import SHANGHAI, SetClock
    from dispatch.events import EventBus
    from logs import archive, coverage, report_jobs
    from schedules.jobs import WeekScheduler

    # Monday 7 December 2026: its last week (W49) is November's last, so the monthly
    # report is due too — at 08:30, after the weekly reports at 08:00.
    clock = SetClock(datetime(2026, 12, 7, 7, 30, tzinfo=SHANGHAI))
    db = open_database(history.db_url)
    ws = WeekScheduler(db, EventBus(), name="reports", close_delay=timedelta(0), clock=clock)
    await ws.start()
    report_jobs.install(ws)
    job = ws.scheduler.get_job("weekly-reports")
    assert job is not None and (job.next_run_time.weekday(), job.next_run_time.hour) == (0, 8)
    assert await report_jobs.catch_up(ws) == 0  # before 08:00 nothing is due yet
    clock.set(datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI))
    now = clock.local()
    week = report_jobs.last_week(now.date())
    made = await report_jobs.catch_up(ws)
    again = await report_jobs.catch_up(ws)  # a second start, or a second run: nothing new
    await report_jobs.weekly_reports(ws.context)
    ws.shutdown()
    assert week == IsoWeek(2026, 49)
    assert made >= 1 and again == 0
    with db.session() as s:
        stored = archive.find(s, "weekly", str(week), cast.district)
        fresh = archive.canonical(coverage.weekly_report(s, cast.district, week).as_dict())
    db.close()
    assert stored is not None and stored.body == fresh  # produced again: the same bytes
    from web.app import create_app

    client = await aiohttp_client(create_app(history, clock=clock))  # it finds them produced
    district = bearer(make_token(history, cast.district))
    listed = await (await client.get("/api/v1/reports", headers=district)).json()
    labels = {(r["kind"], r["label"]) for r in listed["reports"]}
    assert ("weekly", str(week)) in labels
    monthly = [r for r in listed["reports"] if r["kind"] == "monthly"]
    assert any(p.kind == "month" for p in report_jobs.due_periods(now.date()))
    html = await (await client.get(f"/reports/{monthly[0]['id']}", headers=district)).text()
    assert "信息月报" in html and "期" in html
    resp = await client.get(f"/api/v1/reports/{stored.id}", headers=district)
    assert await resp.text() == stored.body and resp.headers["X-Content-SHA256"] == stored.sha256
    html = await (await client.get(f"/reports/{stored.id}", headers=district)).text()
    assert "各镇（街道）排名" in html or "免于调度" in html
    town = bearer(make_token(history, cast.town_a))
    resp = await client.get(f"/reports/{stored.id}", headers=town, allow_redirects=False)
    assert resp.status == 302  # a town reads the report cut to its own town


async def test_period_reports(client: TestClient, cast: Cast, history: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    district = bearer(make_token(history, cast.district))
    town = bearer(make_token(history, cast.town_a))
    monthly = await (await client.get("/api/v1/reports/monthly?month=2026-11",
                                      headers=district)).json()  # fmt: skip
    assert monthly["issue_number"] == "2026年第11期" and monthly["heat_map"]
    url = f"/api/v1/reports/quarterly?quarter=2026-Q4&town={cast.town_a}"
    quarter = await (await client.get(url, headers=town)).json()
    assert quarter["view"] == cast.town_a
    resp = await client.get(f"/api/v1/reports/quarterly?quarter=2026-Q4&town={cast.town_b}",
                            headers=town)  # fmt: skip
    assert resp.status == 403
    resp = await client.get("/api/v1/reports/monthly?month=2026-13", headers=district)
    assert resp.status == 400 and (await resp.json())["field"] == "month"
    html = await (await client.get("/reports/half-year?half=2026-H2", headers=district)).text()
    assert "研判分析报告" in html and "覆盖率热力图" in html
    out = tmp_path / "m.pdf"
    assert main(["--db", history.db_url, "report", "monthly", "--month", "2026-11",
                 "--format", "pdf", "-o", str(out)]) == 0  # fmt: skip
    assert "信息月报" in pypdf.PdfReader(str(out)).pages[0].extract_text()
    resp = await client.get("/api/v1/reports/monthly?month=2026-11&format=xlsx", headers=district)
    sheet = openpyxl.load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert "单位" in values and "2026-W46" in values
