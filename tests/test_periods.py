"""Period reports (信息月报, quarterly and half-year analysis reports): periods parsed and
split into ISO weeks, and every figure of the November 2026 monthly report, an October
report and a town's fourth-quarter report checked against values worked out here
independently — from the weekly reports and straight from the issue tables — on nine
generated weeks of the demo district with one exempt week."""

from __future__ import annotations

import json
import shutil
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from dispatch import accounts, centres
from dispatch.centres import Centre, CentreClass, Level
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.errors import InvalidInput, NotAuthorised
from logs import coverage, periods
from logs.history import generate_history
from logs.issues import ESCALATED, OPEN, REOPENED, RESOLVED_ACTION, Issue, IssueChange
from logs.periods import Period, parse_half, parse_month, parse_quarter
from schedules import workdays
from schedules.workdays import IsoWeek
from web.schema import open_database

END_WEEK = IsoWeek(2026, 47)  # nine weeks: 2026-W39 … 2026-W47
EXEMPT = IsoWeek(2026, 46)  # every day off: an exempt week inside November
NOVEMBER, OCTOBER = parse_month("2026-11"), parse_month("2026-10")


def ended(week: IsoWeek) -> bool:
    """Whether the week is over: weeks still running are left out of period figures."""
    return coverage.week_bounds(week)[1] <= datetime.now(UTC)


@pytest.fixture(scope="module")
def db(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The demo district with nine weeks of history, shared by the module (read only)."""
    path = tmp_path_factory.mktemp("periods") / "dispatch.db"
    shutil.copyfile(demo_template, path)
    database = open_database(f"sqlite:///{path}")
    with database.session() as s:
        for day in EXEMPT.days():
            workdays.set_override(s, day, False, "test", "test")
    with database.session() as s:
        generate_history(
            s, weeks=9, end_week=END_WEEK, now=datetime(2026, 12, 1, 9, tzinfo=SHANGHAI)
        )
    yield database
    database.close()


def district_of(s: Session) -> Centre:
    return centres.roots(s)[0]


def scope_of(s: Session, username: str) -> accounts.Scope:
    stmt = select(accounts.Account).where(accounts.Account.username == username)
    return accounts.scope_for(s, s.exec(stmt).one())


def mondays_in(start: date, end: date) -> list[IsoWeek]:
    days = (start + timedelta(days=i) for i in range((end - start).days))
    return [IsoWeek.containing(d) for d in days if d.weekday() == 0]


def bounds(period: Period) -> tuple[datetime, datetime]:
    return (
        datetime.combine(period.start, time(), SHANGHAI),
        datetime.combine(period.end, time(), SHANGHAI),
    )


def pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    return float((Decimal(part) * 100 / whole).quantize(Decimal("0.1"), ROUND_HALF_UP))


def local_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def resolved_by(issue: Issue, moment: datetime) -> bool:
    """Resolved before `moment` and still resolved (nothing here is ever reopened)."""
    return issue.resolved_at is not None and issue.resolved_at < moment


# --- periods ------------------------------------------------------------------------------


def test_periods_parse_and_step_back() -> None:
    nov = parse_month("2026-11")
    assert (nov.kind, nov.start, nov.end, nov.label, nov.code) == (
        "month", date(2026, 11, 1), date(2026, 12, 1), "2026年11月", "2026-11"
    )  # fmt: skip
    assert parse_month(" 2026-1 ") == Period.of("month", 2026, 1)
    assert nov.previous() == parse_month("2026-10")
    assert parse_month("2026-01").previous() == parse_month("2025-12")
    q4 = parse_quarter("2026-Q4")
    assert (q4.start, q4.end, q4.label, str(q4)) == (
        date(2026, 10, 1), date(2027, 1, 1), "2026年第四季度", "2026-Q4"
    )  # fmt: skip
    assert parse_quarter("2026q1").previous() == parse_quarter("2025-Q4")
    h2 = parse_half("2026-H2")
    assert (h2.start, h2.end, h2.label) == (date(2026, 7, 1), date(2027, 1, 1), "2026年下半年")
    assert h2.previous() == parse_half("2026-H1")
    assert parse_half("2026H1").previous() == parse_half("2025-H2")
    assert parse_half("2026-H1").label == "2026年上半年"
    assert periods.parse_period("quarter", "2026-Q3").label == "2026年第三季度"


@pytest.mark.parametrize(
    ("parser", "field", "text"),
    [
        (parse_month, "month", "2026-13"),
        (parse_month, "month", "2026-00"),
        (parse_month, "month", "2026/11"),
        (parse_month, "month", "26-11"),
        (parse_month, "month", "２０２６-11"),  # full-width digits
        (parse_month, "month", "2026-11-01"),
        (parse_month, "month", ""),
        (parse_month, "month", None),
        (parse_quarter, "quarter", "2026-Q5"),
        (parse_quarter, "quarter", "2026-Q0"),
        (parse_quarter, "quarter", "2026-4"),
        (parse_half, "half", "2026-H3"),
        (parse_half, "half", "2026-H0"),
        (parse_half, "half", "2026-Q2"),
    ],
)
def test_bad_periods_are_refused(parser: Callable[[str], Period], field: str, text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parser(text)
    assert err.value.field == field


def test_a_period_is_always_aligned() -> None:
    with pytest.raises(InvalidInput):
        Period("quarter", date(2026, 11, 1), date(2027, 2, 1), "2026年第四季度")
    with pytest.raises(InvalidInput):
        Period("month", date(2026, 11, 1), date(2026, 12, 2), "2026年11月")
    with pytest.raises(InvalidInput):
        Period("month", date(2026, 11, 1), date(2026, 12, 1), "2026年12月")
    with pytest.raises(InvalidInput):
        Period("week", date(2026, 11, 1), date(2026, 12, 1), "x")


def test_weeks_are_those_whose_monday_falls_in_the_period() -> None:
    # November 2026 has five Mondays: the 2nd, 9th, 16th, 23rd and 30th.
    assert NOVEMBER.weeks() == tuple(IsoWeek(2026, w) for w in range(45, 50))
    # 2026 has 53 ISO weeks; W53 (28 Dec – 3 Jan) is December's and Q4's.
    assert parse_month("2026-12").weeks() == tuple(IsoWeek(2026, w) for w in range(50, 54))
    assert parse_month("2027-01").weeks()[0] == IsoWeek(2027, 1)
    assert len(parse_quarter("2026-Q4").weeks()) == 13
    # Every ISO week belongs to exactly one month, quarter and half.
    for kind, first in (("month", parse_month("2025-01")), ("quarter", parse_quarter("2025-Q1")),
                        ("half", parse_half("2025-H1"))):  # fmt: skip
        assert first.kind == kind
        seen: list[IsoWeek] = []
        p = first
        while p.start < date(2028, 1, 1):
            seen += p.weeks()
            p = Period.of(kind, p.end.year, (p.end.month - 1) // periods.MONTHS_IN[kind] + 1)
        expected = [IsoWeek.containing(date(2025, 1, 6))]
        while expected[-1] != seen[-1]:
            expected.append(expected[-1].next())
        assert seen == expected


# --- the monthly report -------------------------------------------------------------------


def test_november_report_matches_independent_figures(db: Database) -> None:
    with db.session() as s:
        district = district_of(s)
        report = periods.period_report(s, district.code, NOVEMBER)
        weekly = {w: coverage.weekly_report(s, district.code, w) for w in NOVEMBER.weeks()}
        october = [coverage.weekly_report(s, district.code, w) for w in OCTOBER.weeks()]
        names = {c.code: c for c in centres.all_below(s, district, include_self=True)}
        start, end = bounds(NOVEMBER)
        raised = s.exec(select(Issue).where(col(Issue.created_at) >= start,
                                            col(Issue.created_at) < end)).all()  # fmt: skip
        escalated = set(
            s.exec(
                select(IssueChange.issue_id).where(
                    IssueChange.action == ESCALATED, col(IssueChange.at) >= start,
                    col(IssueChange.at) < end,
                )
            )
        )  # fmt: skip
        everything = s.exec(select(Issue)).all()
        o_start, o_end = bounds(OCTOBER)
        raised_in_october = s.exec(
            select(Issue).where(col(Issue.created_at) >= o_start, col(Issue.created_at) < o_end)
        ).all()

    assert report.kind == "month" and report.issue_number == "2026年第11期"
    assert report.title == "信息月报" and report.label == "2026年11月"
    assert report.view == district.code and report.unit_level == "town"
    assert report.starts == "2026-11-01T00:00:00+08:00"
    assert report.ends == "2026-12-01T00:00:00+08:00"

    # The trend: the ISO weeks whose Monday is in November, each as its weekly report.
    weeks = mondays_in(date(2026, 11, 1), date(2026, 12, 1))
    assert [p.week for p in report.weeks] == [str(w) for w in weeks]
    for point, week in zip(report.weeks, weeks, strict=True):
        w = weekly[week]
        if not ended(week):  # in progress: left out, never counted as 0% and never exempt
            assert not point.exempt and point.state == coverage.IN_PROGRESS
            assert point.required is None and point.coverage_pct is None
            continue
        assert (point.exempt, point.required, point.covered, point.coverage_pct) == (
            w.exempt, w.required, w.covered, w.coverage_pct
        )  # fmt: skip
    assert weekly[IsoWeek(2026, 45)].required and weekly[IsoWeek(2026, 45)].covered
    counted = [w for k, w in weekly.items() if not w.exempt and ended(k)]
    required = sum(w.required or 0 for w in counted)
    covered = sum(w.covered or 0 for w in counted)
    assert (report.required, report.covered) == (required, covered)
    assert report.coverage_pct == pct(covered, required)

    # Heat map: one row per town, cells as the weekly reports' town figures.
    towns = {t.code for w in counted for t in w.towns}
    assert {r.code for r in report.heat_map} == towns and all(r.ranked for r in report.heat_map)
    town_totals: dict[str, list[int]] = {t: [0, 0] for t in towns}
    for row in report.heat_map:
        for cell, week in zip(row.cells, weeks, strict=True):
            figures = {t.code: t for t in weekly[week].towns}
            if weekly[week].exempt or not ended(week):
                assert cell is None
            else:
                assert cell == figures[row.code].coverage_pct
                town_totals[row.code][0] += figures[row.code].covered
                town_totals[row.code][1] += figures[row.code].required
        assert (row.covered, row.required) == tuple(town_totals[row.code])
        assert row.coverage_pct == pct(*town_totals[row.code])
    by_pct = {t: pct(*v) for t, v in town_totals.items()}
    best = sorted(towns, key=lambda t: (-(by_pct[t] or 0), names[t].name, t))[:5]
    worst = sorted(towns, key=lambda t: (by_pct[t] or 0, names[t].name, t))[:5]
    assert [r.code for r in report.best] == best and [r.rank for r in report.best] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert [r.code for r in report.worst] == worst
    assert report.best[0].coverage_pct >= report.best[-1].coverage_pct
    assert report.worst[0].coverage_pct <= report.worst[-1].coverage_pct

    # Issues, counted straight from the table.
    issues = report.issues
    assert issues.raised == len(raised) > 0
    assert issues.by_category == {
        c: sum(i.category == c for i in raised) for c in issues.by_category
    }
    assert sum(issues.by_category.values()) == len(raised)
    assert issues.by_severity == {
        "general": sum(i.severity == "general" for i in raised),
        "major": sum(i.severity == "major" for i in raised),
    }

    def town_of(code: str) -> str:
        c = names[code]
        return c.parent_code if c.level == Level.village else c.code  # type: ignore[return-value]

    per_town = Counter(town_of(i.centre_code) for i in raised)
    assert {u.code: u.raised for u in issues.by_unit if u.raised} == dict(per_town)
    assert issues.escalated == len(escalated)

    done = [i for i in raised if resolved_by(i, end)]
    assert issues.resolved == len(done)
    assert issues.resolution_rate == pct(len(done), len(raised))
    days = [
        (local_day(i.resolved_at) - local_day(i.created_at)).days for i in done if i.resolved_at
    ]
    assert issues.median_days_to_resolve == (float(statistics.median(days)) if days else None)
    overdue = [
        i.id or 0 for i in everything
        if i.created_at < end and i.deadline is not None
        and i.deadline < date(2026, 12, 1) and not resolved_by(i, end)
    ]  # fmt: skip
    assert sorted(o.id for o in issues.overdue_issues) == sorted(overdue)
    assert issues.overdue == len(overdue)

    # The comparison with October, from October's weekly reports and issues.
    prev = report.previous
    assert (prev.period, prev.label) == ("2026-10", "2026年10月")
    o_counted = [w for w in october if not w.exempt]
    o_pct = pct(sum(w.covered or 0 for w in o_counted), sum(w.required or 0 for w in o_counted))
    assert prev.coverage_pct.previous == o_pct and prev.coverage_pct.current == report.coverage_pct
    assert report.coverage_pct is not None and o_pct is not None
    assert prev.coverage_pct.change == float(
        Decimal(str(report.coverage_pct)) - Decimal(str(o_pct))
    )
    assert prev.issues_raised.previous == len(raised_in_october)
    assert prev.issues_raised.change == len(raised) - len(raised_in_october)
    o_done = [i for i in raised_in_october if resolved_by(i, o_end)]
    assert prev.resolution_rate.previous == pct(len(o_done), len(raised_in_october))

    # The narrative prints the figures.
    assert f"覆盖率{report.coverage_pct:.1f}%" in report.narrative
    assert f"共登记问题{issues.raised}件" in report.narrative
    assert f"应调度{required}次，实际覆盖{covered}次" in report.narrative
    assert "较上月下降" in report.narrative or "较上月上升" in report.narrative
    json.dumps(report.as_dict(), ensure_ascii=False)


def test_an_exempt_week_is_exempt_not_zero(db: Database) -> None:
    with db.session() as s:
        district = district_of(s)
        report = periods.period_report(s, district.code, NOVEMBER)
        exempt = coverage.weekly_report(s, district.code, EXEMPT)
    assert exempt.exempt
    (point,) = [p for p in report.weeks if p.week == str(EXEMPT)]
    assert point.exempt and point.exempt_reason == exempt.exempt_reason
    assert point.required is None and point.coverage_pct is None
    assert report.exempt_weeks == 1
    assert report.uncounted_weeks == 1 + sum(
        not ended(IsoWeek.parse(p.week)) for p in report.weeks
    )
    index = [p.week for p in report.weeks].index(str(EXEMPT))
    assert all(row.cells[index] is None for row in report.heat_map)
    # Counting the exempt week as 0 % would have added its pairs to `required`.
    others = [p for p in report.weeks if p.state == coverage.ENDED]
    assert report.required == sum(p.required or 0 for p in others)
    assert report.coverage_pct == pct(sum(p.covered or 0 for p in others), report.required or 0)
    assert f"{report.uncounted_weeks}周不计入覆盖率" in report.narrative


def test_class_progress_against_target_years(db: Database) -> None:
    with db.session() as s:
        district = district_of(s)
        report = periods.period_report(s, district.code, OCTOBER)
        weekly = [coverage.weekly_report(s, district.code, w) for w in OCTOBER.weeks()]
        below = centres.all_below(s, district)
    assert not any(w.exempt for w in weekly) and len(weekly) == 4
    tally: dict[str, list[int]] = {}
    for w in weekly:
        for p in w.pairs:
            t = tally.setdefault(p.callee, [0, 0])
            t[0] += p.status == coverage.COVERED
            t[1] += 1
    by_class = {c.centre_class: c for c in report.class_progress}
    assert list(by_class) == [c.value for c in CentreClass]
    for cls in CentreClass:
        members = [c for c in below if c.centre_class == cls.value and c.active]
        assessed = [c for c in members if c.code in tally]
        met = [c for c in assessed if tally[c.code][0] * 100 >= 90 * tally[c.code][1]]
        lagging = [c for c in assessed if c not in met and c.target_year < 2026 + 1]
        got = by_class[cls.value]
        assert (got.centres, got.assessed, got.met) == (len(members), len(assessed), len(met))
        assert [x.code for x in got.past_target_not_met] == sorted(c.code for c in lagging)
        assert got.target_years == tuple(sorted({c.target_year for c in members}))
        assert all(x.target_year == next(c for c in members if c.code == x.code).target_year
                   for x in got.past_target_not_met)  # fmt: skip
    assert sum(c.met for c in report.class_progress) > 0
    assert report.previous.period == "2026-09"


# --- a town's quarterly report ------------------------------------------------------------


def test_quarterly_report_of_one_town(db: Database) -> None:
    q4 = parse_quarter("2026-Q4")
    with db.session() as s:
        district = district_of(s)
        town, other = centres.children(s, district.code)[:2]
        villages = {c.code for c in centres.children(s, town.code)}
        report = periods.period_report(s, district.code, q4, town=town.code)
        as_operator = scope_of(s, town.code)
        weekly = [coverage.weekly_report(s, district.code, w, scope=as_operator)
                  for w in q4.weeks()]  # fmt: skip
        # The town's own operator gets the same report without naming the town.
        own = periods.period_report(s, district.code, q4, scope=as_operator)
        named = periods.period_report(s, district.code, q4, town=town.code, scope=as_operator)
        with pytest.raises(NotAuthorised):
            periods.period_report(s, district.code, q4, town=other.code, scope=as_operator)
        with pytest.raises(InvalidInput) as err:
            periods.period_report(s, district.code, q4, town=next(iter(villages)))
        assert err.value.field == "town"
        start, end = bounds(q4)
        below = {c.code for c in centres.all_below(s, town, include_self=True)}
        raised = [i for i in s.exec(select(Issue).where(col(Issue.created_at) >= start,
                                                        col(Issue.created_at) < end))
                  if i.centre_code in below]  # fmt: skip

    assert report.title == "2026年第四季度研判分析报告" and report.issue_number is None
    assert report.view == town.code and report.unit_level == "village"
    assert own.as_dict() == report.as_dict() == named.as_dict()
    rows = {r.code: r for r in report.heat_map}
    assert set(rows) == villages | {town.code}
    assert report.heat_map[0].code == town.code and not report.heat_map[0].ranked
    assert all(r.ranked for r in report.heat_map[1:])
    assert {r.code for r in report.best} <= villages and {r.code for r in report.worst} <= villages
    assert len(report.weeks) == 13
    for point, w in zip(report.weeks, weekly, strict=True):
        if ended(IsoWeek.parse(point.week)):
            assert (point.required, point.covered) == (w.required, w.covered)
        assert all(p.callee in below and p.callee != district.code for p in w.pairs)
    assert report.issues.raised == len(raised)
    assert {u.code for u in report.issues.by_unit} <= below
    assert report.previous.period == "2026-Q3"
    assert town.name in report.narrative and "本季度" in report.narrative
    classes = {c.centre_class: c.centres for c in report.class_progress}
    assert sum(classes.values()) == len(villages) + 1  # its villages and the town itself


def test_half_year_report_and_a_village_scope(db: Database) -> None:
    h2 = parse_half("2026-H2")
    with db.session() as s:
        district = district_of(s)
        report = periods.period_report(s, district.code, h2)
        assert report.title == "2026年下半年研判分析报告" and report.previous.period == "2026-H1"
        assert len(report.weeks) == 26 and report.weeks[0].week == "2026-W28"
        assert report.issues.raised == len(s.exec(select(Issue.id)).all())  # all in H2
        with pytest.raises(InvalidInput) as err:
            periods.period_report(s, "511703001000", h2)  # a town, not a district
        assert err.value.field == "district"
        town, other = centres.children(s, district.code)[:2]
        village = centres.children(s, town.code)[0]
        mine = periods.period_report(s, district.code, NOVEMBER, scope=scope_of(s, village.code))
        assert mine.view == village.code
        assert [r.code for r in mine.heat_map] == [village.code]
        with pytest.raises(NotAuthorised):
            periods.period_report(
                s, district.code, NOVEMBER, town=other.code, scope=scope_of(s, village.code)
            )


def test_history_decides_not_the_current_state(db: Database) -> None:
    """Reopening an issue after October leaves October's figures as they were; reopening
    it within October makes it unresolved at October's end. Rolled back afterwards."""
    with Session(db.engine) as s:
        district = district_of(s).code
        before = periods.period_report(s, district, OCTOBER).issues
        start, end = bounds(OCTOBER)
        issue = s.exec(
            select(Issue).where(col(Issue.created_at) >= start, col(Issue.created_at) < end,
                                col(Issue.resolved_at) < end).order_by(col(Issue.id))
        ).first()  # fmt: skip
        assert issue is not None and issue.resolved_at is not None
        resolved_at = issue.resolved_at

        def reopen(at: datetime) -> None:
            s.add(IssueChange(issue_id=issue.id or 0, at=at, by="test", action=REOPENED,
                              from_state="resolved", to_state=OPEN,
                              to_holder=issue.holder_code, note="test"))  # fmt: skip
            issue.state, issue.resolved_at = OPEN, None
            s.add(issue)
            s.flush()

        reopen(datetime(2026, 12, 1, 10, tzinfo=SHANGHAI))
        assert periods.period_report(s, district, OCTOBER).issues == before
        reopen(resolved_at + timedelta(minutes=1))
        after = periods.period_report(s, district, OCTOBER).issues
        assert after.resolved == before.resolved - 1 and after.raised == before.raised
        # Resolved again in October: it stands resolved at October's end once more.
        again_at = resolved_at + timedelta(minutes=2)
        s.add(IssueChange(issue_id=issue.id or 0, at=again_at, by="test", action=RESOLVED_ACTION,
                          from_state=OPEN, to_state="resolved", to_holder=issue.holder_code,
                          note="test"))  # fmt: skip
        s.flush()
        again = periods.period_report(s, district, OCTOBER).issues
        assert again.resolved == before.resolved
        s.rollback()
