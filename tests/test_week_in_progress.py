"""Weeks in progress (issue 10 item 5): days already past when a week was built are
"not planned (built mid-week)", not days off, alike on the rota page, the rota JSON and
the reports; a week not yet ended is "in progress" with pairs still ahead pending, never
missed; a week before the district's first rota is "no rota yet" and ranks nobody, in the
weekly and the monthly report alike."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from aiohttp.test_utils import TestClient

from dispatch import centres
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.settings import Settings
from logs import coverage, periods
from schedules import planner, plans, workdays
from schedules.workdays import IsoWeek
from web.cli import main

from conftest import Cast, bearer, make_token

W46, W47 = IsoWeek(2026, 46), IsoWeek(2026, 47)  # 9–15 and 16–22 November 2026
BUILT = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)  # Wednesday of W47
ALL_DAYS = [f"2026-11-{d}" for d in (16, 17, 18, 19, 20)]
PASSED = ALL_DAYS[:3]  # Monday to Wednesday: the build day plans from Thursday


def build_mid_week(settings: Settings) -> str:
    db = Database(settings.db_url)
    with db.session() as s:
        district = centres.roots(s)[0].code
        planner.build_week(s, district, W47, now=BUILT)
    db.close()
    return district


def test_days_passed_when_built_are_working_days_not_planned(demo_settings: Settings) -> None:
    district = build_mid_week(demo_settings)
    db = Database(demo_settings.db_url)
    with db.session() as s:
        record = plans.get_week(s, district, W47)
        assert record is not None and record.workdays == ALL_DAYS[3:]
        days = workdays.load_calendar(s).workdays(W47)
        assert list(plans.not_planned_days(record, days)) == PASSED
        data = plans.week_json(record, plans.week_slots(s, record.id or 0), workdays=days)
        report = coverage.weekly_report(s, district, W47)
    db.close()
    assert data["workdays"] == ALL_DAYS and data["not_planned_days"] == PASSED
    # The report agrees on the working days and names the same days as not planned.
    assert list(report.workdays) == ALL_DAYS and list(report.not_planned_days) == PASSED


def test_cli_rota_json_lists_every_working_day(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    build_mid_week(demo_settings)
    cli = ["--db", demo_settings.db_url, "rota", "show", "--week", str(W47)]
    assert main([*cli, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["workdays"] == ALL_DAYS and data["not_planned_days"] == PASSED
    assert main([*cli, "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "not planned (built mid-week): " + ", ".join(PASSED) in out


def test_a_week_in_progress_counts_pairs_ahead_as_pending(demo_settings: Settings) -> None:
    district = build_mid_week(demo_settings)
    db = Database(demo_settings.db_url)
    just_built = datetime(2026, 11, 18, 11, 0, tzinfo=SHANGHAI)
    thursday_night = datetime(2026, 11, 19, 23, 0, tzinfo=SHANGHAI)
    with db.session() as s:
        record = plans.get_week(s, district, W47)
        assert record is not None
        slots = plans.week_slots(s, record.id or 0)
        fresh = coverage.weekly_report(s, district, W47, now=just_built)
        later = coverage.weekly_report(s, district, W47, now=thursday_night)
        ended = coverage.weekly_report(s, district, W47)
    db.close()
    # Right after the build: nothing is missed, everything still to come is pending.
    assert fresh.state == coverage.IN_PROGRESS and fresh.required
    assert fresh.pending == fresh.required and fresh.covered == 0
    assert {p.status for p in fresh.pairs} == {coverage.PENDING}
    assert set((fresh.missed_by_reason or {}).values()) == {0}
    assert sum(t.pending for t in fresh.towns) == fresh.required
    assert all(t.missed == 0 for t in fresh.towns)
    # Thursday night: a pair is missed only when every slot naming it has ended.
    ends = {s.id: s.end.astimezone(UTC) for s in slots}
    assert later.state == coverage.IN_PROGRESS
    for p in later.pairs:
        over = bool(p.slot_ids) and all(ends[i] <= thursday_night for i in p.slot_ids)
        assert p.status == (coverage.MISSED if over else coverage.PENDING), p
    assert any(p.status == coverage.MISSED for p in later.pairs)
    assert any(p.status == coverage.PENDING for p in later.pairs)
    assert later.pending == sum(p.status == coverage.PENDING for p in later.pairs)
    # Without a clock reading (a stored report) the week is read as ended.
    assert ended.state == coverage.ENDED and ended.pending is None
    assert {p.status for p in ended.pairs} == {coverage.MISSED}


def test_before_the_first_rota_no_rota_yet_in_weekly_and_monthly(demo_settings: Settings) -> None:
    district = build_mid_week(demo_settings)
    db = Database(demo_settings.db_url)
    now = datetime(2026, 11, 19, 23, 0, tzinfo=SHANGHAI)
    with db.session() as s:
        before = coverage.weekly_report(s, district, W46, now=now)
        month = periods.period_report(s, district, periods.parse_month("2026-11"), now=now)
        weekly = {
            p.week: coverage.weekly_report(s, district, IsoWeek.parse(p.week), now=now)
            for p in month.weeks
        }
    db.close()
    assert before.state == coverage.NO_ROTA_YET and not before.exempt
    assert before.towns == () and before.pairs == ()
    assert (before.required, before.covered, before.coverage_pct) == (None, None, None)
    # The monthly report calls each week what the weekly report calls it: never exempt.
    for point in month.weeks:
        assert point.state == weekly[point.week].state
        assert not point.exempt and point.required is None and point.coverage_pct is None
    states = {p.week: p.state for p in month.weeks}
    assert states[str(W46)] == coverage.NO_ROTA_YET and states[str(W47)] == coverage.IN_PROGRESS
    assert month.required is None and month.best == () and month.worst == ()
    assert all(c is None for row in month.heat_map for c in row.cells)
    assert "各周均免于调度" not in month.narrative
    assert month.exempt_weeks == 0 and month.uncounted_weeks == len(month.weeks)


async def test_pages_and_api_agree(client: TestClient, cast: Cast, demo_settings: Settings) -> None:
    from test_web_auth import login

    build_mid_week(demo_settings)
    h = bearer(make_token(demo_settings, cast.district))
    rota = await (await client.get(f"/api/v1/rota?week={W47}", headers=h)).json()
    report = await (await client.get(f"/api/v1/reports/weekly?week={W47}", headers=h)).json()
    assert rota["workdays"] == report["workdays"] == ALL_DAYS
    assert rota["not_planned_days"] == report["not_planned_days"] == PASSED
    before = await (await client.get(f"/api/v1/reports/weekly?week={W46}", headers=h)).json()
    assert before["state"] == "no_rota_yet" and before["towns"] == []
    assert before["coverage_pct"] is None

    await login(client, cast.district, "district-demo-2026")
    html = await (await client.get(f"/rota?week={W47}")).text()
    assert html.count('data-testid="not-planned"') == 3
    assert html.count("建周前已过") == 3 and html.count("休息日") == 2  # Saturday, Sunday
    page = await (await client.get(f"/reports/weekly?week={W46}")).text()
    assert 'data-testid="no-rota-yet"' in page and "尚未排班" in page
    assert "各镇（街道）排名" not in page and "0.0%" not in page


async def test_the_current_week_is_in_progress(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    """Built today through the API: the week's report says in progress, and no pair
    whose slot is still ahead is missed."""
    h = bearer(make_token(demo_settings, cast.district))
    today = datetime.now(SHANGHAI).date()
    week = IsoWeek.containing(today)
    resp = await client.post("/api/v1/rota/build", json={"week": str(week)}, headers=h)
    assert resp.status in (200, 201), await resp.text()
    report = await (await client.get(f"/api/v1/reports/weekly?week={week}", headers=h)).json()
    if report["exempt"]:
        return  # a week without a working day: nothing to be in progress
    assert report["state"] == "in_progress"
    rota = await (await client.get(f"/api/v1/rota?week={week}", headers=h)).json()
    now = datetime.now(UTC)
    ahead = {s["id"] for s in rota["slots"]
             if datetime.fromisoformat(s["end"]) > now}  # fmt: skip
    for p in report["pairs"]:
        if set(p["slot_ids"]) & ahead or not p["slot_ids"]:
            assert p["status"] in ("pending", "covered"), p
    assert report["pending"] == sum(p["status"] == "pending" for p in report["pairs"])
    assert date.fromisoformat(report["workdays"][0]) >= week.monday


def test_files_of_a_week_in_progress_say_pending(demo_settings: Settings) -> None:
    import csv
    import io

    from logs import report_files

    district = build_mid_week(demo_settings)
    db = Database(demo_settings.db_url)
    with db.session() as s:
        report = coverage.weekly_report(
            s, district, W47, now=datetime(2026, 11, 18, 11, tzinfo=SHANGHAI)
        )
    db.close()
    rows = list(csv.DictReader(io.StringIO(report_files.weekly_file(report, "csv").decode(
        "utf-8-sig"))))  # fmt: skip
    assert rows and {r["结果"] for r in rows} == {"待调度"}
