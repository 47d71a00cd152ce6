"""Period reports: the monthly information report (信息月报) of a district, the quarterly
analysis report (季度研判分析报告) of a town and the half-year analysis report (半年研判分析
报告) of a district — all one structure over a month, a quarter or a half-year.

Rules:

- A period is a calendar month, quarter or half-year in Asia/Shanghai: [start 00:00,
  end 00:00) with `end` exclusive. Its weeks are the ISO weeks whose Monday falls in
  [start, end) — each week belongs to exactly one month (and so one quarter and one
  half), the month its weekly report is counted in; a week that starts on 30 November
  and ends in December is November's (`month_of_week`). A period's report is stored
  once its last week has ended (`logs.report_jobs`: the Monday after), so every week
  is in exactly one stored report of each kind, and never as in progress.
- Coverage is the weekly reports' (`logs.coverage.weekly_report`), added up, never
  re-derived: a period's required / covered are the sums over its non-exempt weeks, and
  its coverage % is covered / required (`coverage.coverage_pct`). Only weeks whose
  weekly report is `ended` count; the others keep the weekly report's state — `exempt`,
  `in_progress` (not ended at `now`) or `no_rota_yet` (before the district's first
  rota) — shown as such, with no figures, counted neither way (never 0 %, and only an
  exempt week is called exempt). A week without a rota after the first one is counted:
  its weekly report counts its pairs as not scheduled.
- Area: the district, or one of its towns (`town=`), narrowed further by the caller's
  `scope` as the weekly report narrows it (a town operator sees its town only; a
  scope outside the district, or a town outside the caller's scope, is refused). The
  report's *units* are the centres one level below the area: towns in a district's
  report, villages in a town's report. A pair is counted under the unit its callee lies
  in (in a town's report, the district → town pair is the town's own row: shown in the
  heat map, not ranked). Best and worst five rank the units by period coverage % (best:
  highest first; worst: lowest first; ties by name, then code); with ten units or fewer
  the two lists may share units.
- Issues concern centres in the area (the concerned centre, wherever it is held):
  * raised: created in [start, end), by category, severity and unit (a unit's own issues
    and those of everything below it; the area centre's own issues under itself);
  * escalated / resolved in the period: distinct issues with an `escalated` / `resolved`
    history row in [start, end) — the weekly report's rule over the period;
  * resolved (of the raised) and the resolution rate: of the period's raised issues,
    those standing resolved at the period's end: their last `resolved` / `reopened` row
    before `end` is a resolution. Rate = resolved / raised, as a percent to one decimal;
  * median days to resolve, over those: the Asia/Shanghai calendar days from the day
    raised to the day of that resolution (resolved the same day = 0);
  * overdue at the period's end: raised before `end`, not standing resolved then, with a
    deadline before `end` (the issue's current deadline; edits keep no dated deadline).
  The history rows (`IssueChange`) decide, not the issue's current state: they are
  append-only, so a past period's figures never change when an issue is reopened later.
- Comparison with the previous period (same area, same rules): coverage %, issues
  raised, resolution rate and median days, each with the change; None when either side
  cannot be computed (nothing required, every week exempt, no issue raised or resolved).
- Progress against class target years: the area's active towns and villages, grouped
  by class. A centre is *assessed* when it was required in some non-exempt week of the
  period (it is the callee of at least one required pair), and *meets the standard*
  when its pairs were covered at least MEETS_STANDARD_PCT % of the time over the
  period's non-exempt weeks: covered × 100 ≥ 90 × required, compared exactly. A centre
  is past its target year when that year (its own `target_year`, which defaults to its
  class's year: 示范类 2022, 创建类 2023, 带动类 2024) has ended by the period's end;
  those of them assessed and not meeting the standard are listed by name.
- The narrative is built only from the figures above: every number in it is one of
  them, printed as in the report.

Invariants:
- A pure read: nothing here writes; the only clock reading is `now` (passed in, or read
  once), so the same rows and `now` give the same report (and the same `as_dict()`).
- Bulk reads only: one weekly report per week (each reads in bulk), one range scan of
  the area's centres, and a fixed handful of issue queries per period; never a query per
  pair, centre or issue (IN lists are cut at `dispatch.db.IN_BATCH` keys).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from dispatch import centres, clock
from dispatch.accounts import Role, Scope
from dispatch.centres import CLASS_LABELS, Centre, CentreClass, Level
from dispatch.clock import SHANGHAI, utcnow
from dispatch.errors import InvalidInput, NotAuthorised
from schedules.workdays import IsoWeek

from . import issue_history
from .coverage import (
    COVERED,
    REASONS,
    WeeklyReport,
    coverage_pct,
    weekly_report,
)
from .issues import ESCALATED, RESOLVED_ACTION, Category, Severity
from .journal import jsonable_dict

MONTH, QUARTER, HALF = "month", "quarter", "half"
KINDS = (MONTH, QUARTER, HALF)
MONTHS_IN = {MONTH: 1, QUARTER: 3, HALF: 6}
QUARTER_ZH = ("一", "二", "三", "四")
HALF_ZH = ("上", "下")
MEETS_STANDARD_PCT = 90
RANKED = 5  # best and worst five

MONTH_RE = re.compile(r"^([0-9]{4})-([0-9]{1,2})$")  # ASCII digits only
QUARTER_RE = re.compile(r"^([0-9]{4})-?[Qq]([0-9])$")
HALF_RE = re.compile(r"^([0-9]{4})-?[Hh]([0-9])$")


# --- periods ------------------------------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    """The first of the month `months` after (or before) `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise InvalidInput("period", "outside the years 1–9999")
    return date(year, month + 1, 1)


def _label(kind: str, start: date) -> str:
    if kind == MONTH:
        return f"{start.year}年{start.month}月"
    if kind == QUARTER:
        return f"{start.year}年第{QUARTER_ZH[(start.month - 1) // 3]}季度"
    return f"{start.year}年{HALF_ZH[(start.month - 1) // 6]}半年"


@dataclass(frozen=True)
class Period:
    """A calendar month, quarter or half-year: [start, end) in Asia/Shanghai.

    Invariant: always a real, aligned period — `start` is the first day of a month that
    begins a `kind` (January/April/July/October for a quarter, January/July for a half),
    `end` is the first day after it, and `label` is its Chinese name ("2026年11月",
    "2026年第四季度", "2026年下半年"). Build one with `of` or a parser."""

    kind: str
    start: date
    end: date  # exclusive
    label: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput("period", f"kind must be one of {', '.join(KINDS)}")
        n = MONTHS_IN[self.kind]
        if self.start.day != 1 or (self.start.month - 1) % n:
            raise InvalidInput(self.kind, f"{self.start} does not begin a {self.kind}")
        if self.end != _add_months(self.start, n):
            raise InvalidInput(self.kind, f"a {self.kind} from {self.start} ends on the "
                               f"{_add_months(self.start, n)}, not {self.end}")  # fmt: skip
        if self.label != _label(self.kind, self.start):
            raise InvalidInput(self.kind, f"the label of {self.code} is "
                               f"{_label(self.kind, self.start)!r}")  # fmt: skip

    @classmethod
    def of(cls, kind: str, year: int, number: int) -> Period:
        """Month 1–12, quarter 1–4 or half 1–2 of `year`."""
        if kind not in KINDS:
            raise InvalidInput("period", f"kind must be one of {', '.join(KINDS)}")
        n = MONTHS_IN[kind]
        if not 1 <= year <= 9999:
            raise InvalidInput(kind, f"year {year} is outside 1–9999")
        if not 1 <= number <= 12 // n:
            raise InvalidInput(kind, f"{year} has no {kind} {number}")
        start = date(year, (number - 1) * n + 1, 1)
        return cls(kind, start, _add_months(start, n), _label(kind, start))

    @property
    def year(self) -> int:
        return self.start.year

    @property
    def number(self) -> int:
        """The month (1–12), quarter (1–4) or half (1–2) within the year."""
        return (self.start.month - 1) // MONTHS_IN[self.kind] + 1

    @property
    def code(self) -> str:
        """The code the parsers read: "2026-11", "2026-Q4" or "2026-H2"."""
        if self.kind == MONTH:
            return f"{self.year:04d}-{self.number:02d}"
        return f"{self.year:04d}-{'Q' if self.kind == QUARTER else 'H'}{self.number}"

    def __str__(self) -> str:
        return self.code

    def previous(self) -> Period:
        """The period of the same kind just before this one."""
        start = _add_months(self.start, -MONTHS_IN[self.kind])
        return Period(self.kind, start, self.start, _label(self.kind, start))

    def weeks(self) -> tuple[IsoWeek, ...]:
        """The ISO weeks whose Monday falls in [start, end), in order: each ISO week
        belongs to exactly one period of each kind, as its weekly report is counted."""
        monday = self.start + timedelta(days=(7 - self.start.weekday()) % 7)
        out = []
        while monday < self.end:
            out.append(IsoWeek.containing(monday))
            monday += timedelta(days=7)
        return tuple(out)

    def bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00, end 00:00) in Asia/Shanghai, as UTC (no DST in China)."""
        return _midnight(self.start), _midnight(self.end)


def period_of_week(kind: str, week: IsoWeek) -> Period:
    """The one period of `kind` that counts `week`: the one its Monday falls in (the rule
    of `Period.weeks`). Its stored report is made once its last week has ended."""
    monday = week.monday
    return Period.of(kind, monday.year, (monday.month - 1) // MONTHS_IN[kind] + 1)


def month_of_week(week: IsoWeek) -> Period:
    """The month whose report counts `week`: the month of its Monday."""
    return period_of_week(MONTH, week)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


def _match(pattern: re.Pattern[str], text: Any, kind: str, example: str) -> tuple[int, int]:
    found = pattern.match(text.strip()) if isinstance(text, str) else None
    if not found:
        raise InvalidInput(kind, f"a {kind} is written like {example}, got {text!r}")
    return int(found.group(1)), int(found.group(2))


def parse_month(text: str) -> Period:
    """Read "2026-11" (or "2026-1"); InvalidInput("month", …) otherwise."""
    return Period.of(MONTH, *_match(MONTH_RE, text, MONTH, "2026-11"))


def parse_quarter(text: str) -> Period:
    """Read "2026-Q4" (or "2026Q4", "2026-q4"); InvalidInput("quarter", …) otherwise."""
    return Period.of(QUARTER, *_match(QUARTER_RE, text, QUARTER, "2026-Q4"))


def parse_half(text: str) -> Period:
    """Read "2026-H2" (or "2026H2", "2026-h2"); InvalidInput("half", …) otherwise."""
    return Period.of(HALF, *_match(HALF_RE, text, HALF, "2026-H2"))


def parse_period(kind: str, text: str) -> Period:
    parsers = {MONTH: parse_month, QUARTER: parse_quarter, HALF: parse_half}
    if kind not in parsers:
        raise InvalidInput("period", f"kind must be one of {', '.join(KINDS)}")
    return parsers[kind](text)


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekPoint:
    """One week of the coverage trend, as its weekly report gives it."""

    week: str  # "2026-W45"
    monday: str  # ISO date
    exempt: bool
    exempt_reason: str | None
    has_rota: bool
    state: str  # the weekly report's: ended, in_progress, no_rota_yet or exempt
    required: int | None  # None when exempt
    covered: int | None
    coverage_pct: float | None  # None when exempt or nothing was required


@dataclass(frozen=True)
class HeatRow:
    """A unit (or, in a town's report, the town's own row) across the period's weeks."""

    code: str
    name: str
    level: str
    ranked: bool  # a unit (ranked) or the area centre's own row (not ranked)
    cells: tuple[float | None, ...]  # coverage % by week, aligned with `weeks`
    required: int  # over the non-exempt weeks
    covered: int
    coverage_pct: float | None


@dataclass(frozen=True)
class RankedUnit:
    rank: int  # 1 = best in `best`, worst in `worst`
    code: str
    name: str
    required: int
    covered: int
    coverage_pct: float


@dataclass(frozen=True)
class UnitIssues:
    code: str
    name: str
    raised: int
    major: int


@dataclass(frozen=True)
class OverdueIssue:
    id: int
    centre: str
    centre_name: str
    unit: str
    category: str
    severity: str
    raised_on: str  # ISO date, Asia/Shanghai
    deadline: str
    days_overdue: int  # at the period's end: end − deadline


@dataclass(frozen=True)
class PeriodIssues:
    raised: int
    by_category: dict[str, int]  # every category, zeros included
    by_severity: dict[str, int]  # every severity, zeros included
    by_unit: tuple[UnitIssues, ...]  # every unit of the heat map and any other raised in
    escalated: int  # distinct issues escalated in the period
    resolved_in_period: int  # distinct issues resolved in the period, whenever raised
    resolved: int  # of the raised, standing resolved at the period's end
    resolution_rate: float | None  # resolved / raised, %; None when none was raised
    median_days_to_resolve: float | None  # of `resolved`; None when none
    overdue: int
    overdue_issues: tuple[OverdueIssue, ...]  # by deadline, then id


@dataclass(frozen=True)
class Change:
    current: float | None
    previous: float | None
    change: float | None  # current − previous; None when either is None


@dataclass(frozen=True)
class Comparison:
    period: str  # the previous period, "2026-10"
    label: str
    coverage_pct: Change  # the change in percentage points
    issues_raised: Change
    resolution_rate: Change
    median_days_to_resolve: Change


@dataclass(frozen=True)
class LaggingCentre:
    code: str
    name: str
    level: str
    target_year: int
    required: int
    covered: int
    coverage_pct: float | None


@dataclass(frozen=True)
class ClassProgress:
    centre_class: str
    class_zh: str
    default_target_year: int
    target_years: tuple[int, ...]  # the centres' own target years, distinct
    centres: int  # active towns and villages of the class in the area
    assessed: int  # of them, required in some non-exempt week of the period
    met: int  # of the assessed, covered ≥ MEETS_STANDARD_PCT %
    met_pct: float | None
    past_target: int  # assessed centres whose target year has ended by the period's end
    past_target_not_met: tuple[LaggingCentre, ...]  # of those, not meeting it; code order


@dataclass(frozen=True)
class PeriodReport:
    kind: str  # "month", "quarter" or "half"
    period: str  # "2026-11"
    label: str  # "2026年11月"
    title: str  # "信息月报", "2026年第四季度研判分析报告"
    issue_number: str | None  # monthly only: "2026年第11期"
    district: str
    district_name: str
    view: str  # the area's centre: the district, a town, or the caller's own centre
    view_name: str
    view_level: str
    unit_level: str  # the level of the ranked rows: "town" or "village"
    starts: str  # ISO 8601 with +08:00
    ends: str  # exclusive
    weeks: tuple[WeekPoint, ...]
    exempt_weeks: int
    uncounted_weeks: int  # exempt, in progress or before the first rota
    required: int | None  # over the counted weeks; None when no week is counted
    covered: int | None
    coverage_pct: float | None
    missed_by_reason: dict[str, int] | None
    makeups_used: int | None
    heat_map: tuple[HeatRow, ...]  # the area's own row first (if any), then code order
    best: tuple[RankedUnit, ...]
    worst: tuple[RankedUnit, ...]
    issues: PeriodIssues
    previous: Comparison
    class_progress: tuple[ClassProgress, ...]  # 示范类, 创建类, 带动类
    standard_pct: int
    narrative: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return jsonable_dict(asdict(self))


def period_report(
    session: Session,
    district_code: str,
    period: Period,
    *,
    town: str | None = None,
    scope: Scope | None = None,
    now: datetime | None = None,
) -> PeriodReport:
    """The report of `period` for a district, or for one of its towns (see the module's
    rules), as it stands at `now` (default: the clock). NotAuthorised when the scope
    holds no part of the district or not the town."""
    now = now or utcnow()
    district = centres.get_at_level(session, district_code, Level.district, "district")
    view, weekly_scope = _area(session, district, town, scope)
    area = _Area.load(session, view)
    current = _figures(session, district, period, weekly_scope, area, now)
    prev_period = period.previous()
    prev = _figures(session, district, prev_period, weekly_scope, area, now)
    heat = _heat_map(current, area)
    ranked = [r for r in heat if r.ranked and r.coverage_pct is not None]
    best = sorted(ranked, key=lambda r: (-(r.coverage_pct or 0.0), r.name, r.code))[:RANKED]
    worst = sorted(ranked, key=lambda r: (r.coverage_pct or 0.0, r.name, r.code))[:RANKED]
    issues = _issue_figures(current.issues, heat, area)
    comparison = Comparison(
        period=prev_period.code,
        label=prev_period.label,
        coverage_pct=_change(current.coverage_pct, prev.coverage_pct),
        issues_raised=_change(len(current.issues.raised), len(prev.issues.raised)),
        resolution_rate=_change(current.issues.resolution_rate, prev.issues.resolution_rate),
        median_days_to_resolve=_change(current.issues.median_days, prev.issues.median_days),
    )
    start, end = period.bounds()
    report = PeriodReport(
        kind=period.kind,
        period=period.code,
        label=period.label,
        title="信息月报" if period.kind == MONTH else f"{period.label}研判分析报告",
        issue_number=f"{period.year}年第{period.number}期" if period.kind == MONTH else None,
        district=district.code,
        district_name=district.name,
        view=view.code,
        view_name=view.name,
        view_level=view.level,
        unit_level=area.unit_level,
        starts=start.astimezone(SHANGHAI).isoformat(),
        ends=end.astimezone(SHANGHAI).isoformat(),
        weeks=tuple(_week_point(w) for w in current.weekly),
        exempt_weeks=sum(w.exempt for w in current.weekly),
        uncounted_weeks=sum(not w.counted for w in current.weekly),
        required=current.required,
        covered=current.covered,
        coverage_pct=current.coverage_pct,
        missed_by_reason=current.missed_by_reason,
        makeups_used=current.makeups_used,
        heat_map=heat,
        best=_ranked(best),
        worst=_ranked(worst),
        issues=issues,
        previous=comparison,
        class_progress=_class_progress(current, area, period),
        standard_pct=MEETS_STANDARD_PCT,
        narrative="",
    )
    return _with_narrative(report, period, prev_period)


# --- the area -----------------------------------------------------------------------------


def _area(
    session: Session, district: Centre, town: str | None, scope: Scope | None
) -> tuple[Centre, Scope | None]:
    """The area's centre and the scope to pass to `weekly_report` for it.

    The caller's own part of the district (all of it, unless its scope lies inside the
    district), then narrowed to `town` when one is named: the town must lie in the
    district, and the caller's part must hold it (a village's operator naming its own
    town keeps its village). The scope made for a town is the town operator's view,
    built from these arguments only — never from anything a request carries."""
    own = district
    if scope is not None and not scope.covers(district):
        if (
            scope.root_path is None
            or scope.centre_code is None
            or not centres.in_subtree(district.path, scope.root_path)
        ):
            raise NotAuthorised(f"district {district.code} is outside your scope")
        own = centres.get(session, scope.centre_code)
    own_scope = scope if own.code != district.code else None
    if town is None:
        return own, own_scope
    chosen = centres.get_at_level(session, town, Level.town, "town")
    if chosen.parent_code != district.code:
        raise InvalidInput("town", f"{chosen.code} is not a town of district {district.code}")
    if centres.in_subtree(chosen.path, own.path):  # the caller's part is the town or below
        return own, own_scope
    if not centres.in_subtree(own.path, chosen.path):
        raise NotAuthorised(f"town {chosen.code} is outside your scope")
    as_town = Scope(0, "", Role.town_operator, chosen.code, chosen.path)
    return chosen, as_town


@dataclass(frozen=True)
class _Area:
    """The area's centre and every centre below it (one range scan)."""

    view: Centre
    found: dict[str, Centre]

    @classmethod
    def load(cls, session: Session, view: Centre) -> _Area:
        rows = centres.all_below(session, view, include_self=True)
        return cls(view, {c.code: c for c in rows})

    @property
    def unit_level(self) -> str:
        return Level.town.value if self.view.level == Level.district else Level.village.value

    def unit_of_path(self, path: str) -> str:
        """The unit a centre at `path` (in the area) is counted under: its ancestor one
        level below the area's centre, or the area's centre itself."""
        codes = path.rstrip("/").split("/")
        return codes[min(self.view.depth + 1, len(codes) - 1)]

    def unit_of(self, code: str) -> str:
        centre = self.found.get(code)
        return self.unit_of_path(centre.path) if centre is not None else self.view.code

    def name(self, code: str) -> str:
        centre = self.found.get(code)
        return centre.name if centre is not None else ""

    def level(self, code: str) -> str:
        centre = self.found.get(code)
        return centre.level if centre is not None else ""


# --- coverage and issues of one period ----------------------------------------------------


@dataclass(frozen=True)
class _RaisedIssue:
    id: int
    category: str
    severity: str
    unit: str
    resolved_days: int | None  # None: not standing resolved at the period's end


@dataclass(frozen=True)
class _Issues:
    raised: tuple[_RaisedIssue, ...]
    escalated: int
    resolved_in_period: int
    overdue: tuple[OverdueIssue, ...]

    @property
    def resolved(self) -> int:
        return sum(i.resolved_days is not None for i in self.raised)

    @property
    def resolution_rate(self) -> float | None:
        return coverage_pct(self.resolved, len(self.raised))

    @property
    def median_days(self) -> float | None:
        days = [i.resolved_days for i in self.raised if i.resolved_days is not None]
        return float(statistics.median(days)) if days else None


@dataclass(frozen=True)
class _Figures:
    weekly: tuple[WeeklyReport, ...]
    # (unit, week index) and callee → [covered, required], over non-exempt weeks only.
    cells: dict[tuple[str, int], list[int]]
    by_centre: dict[str, list[int]]
    issues: _Issues

    @property
    def counted(self) -> list[WeeklyReport]:
        return [w for w in self.weekly if w.counted]

    @property
    def required(self) -> int | None:
        counted = self.counted
        return sum(w.required or 0 for w in counted) if counted else None

    @property
    def covered(self) -> int | None:
        counted = self.counted
        return sum(w.covered or 0 for w in counted) if counted else None

    @property
    def coverage_pct(self) -> float | None:
        if self.required is None or self.covered is None:
            return None
        return coverage_pct(self.covered, self.required)

    @property
    def missed_by_reason(self) -> dict[str, int] | None:
        counted = self.counted
        if not counted:
            return None
        return {r: sum((w.missed_by_reason or {}).get(r, 0) for w in counted) for r in REASONS}

    @property
    def makeups_used(self) -> int | None:
        counted = self.counted
        return sum(w.makeups_used or 0 for w in counted) if counted else None


def _figures(
    session: Session,
    district: Centre,
    period: Period,
    scope: Scope | None,
    area: _Area,
    now: datetime,
) -> _Figures:
    weekly = tuple(
        weekly_report(session, district.code, w, scope=scope, now=now) for w in period.weeks()
    )
    cells: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    by_centre: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, report in enumerate(weekly):
        if not report.counted:
            continue  # exempt, in progress or before the first rota: counted neither way
        for pair in report.pairs:
            hit = int(pair.status == COVERED)
            for tally in (cells[(area.unit_of(pair.callee), i)], by_centre[pair.callee]):
                tally[0] += hit
                tally[1] += 1
    return _Figures(weekly, dict(cells), dict(by_centre), _issues(session, area, period))


def _issues(session: Session, area: _Area, period: Period) -> _Issues:
    """The period's issue figures in five queries (the last cut in chunks)."""
    start, end = period.bounds()
    path = area.view.path
    standing = issue_history.resolved_of_raised(session, path, start, end)
    raised_rows = tuple(
        _RaisedIssue(
            id=issue.id or 0,
            category=issue.category,
            severity=issue.severity,
            unit=area.unit_of_path(centre_path),
            resolved_days=_days(issue.created_at, standing[issue.id or 0])
            if (issue.id or 0) in standing
            else None,
        )
        for issue, centre_path in issue_history.raised(session, path, start, end)
    )
    changed = issue_history.changed(session, path, start, end, (ESCALATED, RESOLVED_ACTION))
    return _Issues(
        raised=raised_rows,
        escalated=len(changed[ESCALATED]),
        resolved_in_period=len(changed[RESOLVED_ACTION]),
        overdue=_overdue(session, area, period),
    )


def _days(created: datetime, resolved: datetime) -> int:
    """Calendar days in Asia/Shanghai from the day raised to the day resolved."""
    return (clock.local_date(resolved) - clock.local_date(created)).days


def _overdue(session: Session, area: _Area, period: Period) -> tuple[OverdueIssue, ...]:
    """Issues raised before the period's end, past their deadline then and not standing
    resolved then, by deadline, then id."""
    _start, end = period.bounds()
    out = [
        OverdueIssue(
            id=issue.id or 0,
            centre=issue.centre_code,
            centre_name=area.name(issue.centre_code),
            unit=area.unit_of_path(centre_path),
            category=issue.category,
            severity=issue.severity,
            raised_on=clock.local_date(issue.created_at).isoformat(),
            deadline=issue.deadline.isoformat(),
            days_overdue=(period.end - issue.deadline).days,
        )
        for issue, centre_path in issue_history.overdue(session, area.view.path, end, period.end)
        if issue.deadline is not None
    ]
    out.sort(key=lambda o: (o.deadline, o.id))
    return tuple(out)


# --- figures of the report ----------------------------------------------------------------


def _week_point(report: WeeklyReport) -> WeekPoint:
    return WeekPoint(
        week=report.week,
        monday=report.starts[:10],
        exempt=report.exempt,
        exempt_reason=report.exempt_reason,
        has_rota=report.has_rota,
        state=report.state,
        required=report.required if report.counted else None,
        covered=report.covered if report.counted else None,
        coverage_pct=report.coverage_pct if report.counted else None,
    )


def _heat_map(figures: _Figures, area: _Area) -> tuple[HeatRow, ...]:
    """Every unit required in some week (and the area's own row), across all weeks."""
    units = {unit for unit, _week in figures.cells}
    rows = []
    for unit in units:
        cells: list[float | None] = []
        required = covered = 0
        for i, report in enumerate(figures.weekly):
            tally = figures.cells.get((unit, i))
            if not report.counted or tally is None:
                cells.append(None)  # not counted, or the unit had nothing required that week
                continue
            cells.append(coverage_pct(tally[0], tally[1]))
            covered, required = covered + tally[0], required + tally[1]
        rows.append(
            HeatRow(
                code=unit,
                name=area.name(unit),
                level=area.level(unit),
                ranked=unit != area.view.code or area.view.level == area.unit_level,
                cells=tuple(cells),
                required=required,
                covered=covered,
                coverage_pct=coverage_pct(covered, required),
            )
        )
    rows.sort(key=lambda r: (r.ranked, r.code))
    return tuple(rows)


def _ranked(rows: Sequence[HeatRow]) -> tuple[RankedUnit, ...]:
    return tuple(
        RankedUnit(i, r.code, r.name, r.required, r.covered, r.coverage_pct or 0.0)
        for i, r in enumerate(rows, start=1)
    )


def _issue_figures(issues: _Issues, heat: Sequence[HeatRow], area: _Area) -> PeriodIssues:
    cats = Counter(i.category for i in issues.raised)
    sevs = Counter(i.severity for i in issues.raised)
    per_unit = Counter(i.unit for i in issues.raised)
    major = Counter(i.unit for i in issues.raised if i.severity == Severity.major.value)
    units = sorted({r.code for r in heat} | set(per_unit))
    return PeriodIssues(
        raised=len(issues.raised),
        by_category={c.value: cats.get(c.value, 0) for c in Category},
        by_severity={s.value: sevs.get(s.value, 0) for s in Severity},
        by_unit=tuple(
            UnitIssues(u, area.name(u), per_unit.get(u, 0), major.get(u, 0)) for u in units
        ),
        escalated=issues.escalated,
        resolved_in_period=issues.resolved_in_period,
        resolved=issues.resolved,
        resolution_rate=issues.resolution_rate,
        median_days_to_resolve=issues.median_days,
        overdue=len(issues.overdue),
        overdue_issues=issues.overdue,
    )


def _change(current: float | None, previous: float | None) -> Change:
    if current is None or previous is None:
        return Change(current, previous, None)
    diff = Decimal(str(current)) - Decimal(str(previous))  # exact: 96.7 − 95.3 = 1.4
    return Change(current, previous, int(diff) if diff == diff.to_integral() else float(diff))


def _class_progress(figures: _Figures, area: _Area, period: Period) -> tuple[ClassProgress, ...]:
    out = []
    for cls in CentreClass:
        members = sorted(
            (
                c
                for c in area.found.values()
                if c.centre_class == cls.value
                and c.active
                and c.level in (Level.town.value, Level.village.value)
            ),
            key=lambda c: c.code,
        )
        assessed = [c for c in members if figures.by_centre.get(c.code, [0, 0])[1] > 0]

        def meets(c: Centre) -> bool:
            covered, required = figures.by_centre[c.code]
            return covered * 100 >= MEETS_STANDARD_PCT * required

        # The target year has ended by the period's end (`end` is the first of a month).
        past = [c for c in assessed if c.target_year < period.end.year]
        met = sum(meets(c) for c in assessed)
        out.append(
            ClassProgress(
                centre_class=cls.value,
                class_zh=cls.zh,
                default_target_year=cls.default_target_year,
                target_years=tuple(sorted({c.target_year for c in members})),
                centres=len(members),
                assessed=len(assessed),
                met=met,
                met_pct=coverage_pct(met, len(assessed)),
                past_target=len(past),
                past_target_not_met=tuple(
                    LaggingCentre(
                        code=c.code,
                        name=c.name,
                        level=c.level,
                        target_year=c.target_year,
                        required=figures.by_centre[c.code][1],
                        covered=figures.by_centre[c.code][0],
                        coverage_pct=coverage_pct(*figures.by_centre[c.code]),
                    )
                    for c in past
                    if not meets(c)
                ),
            )
        )
    return tuple(out)


# --- the narrative ------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:.1f}"


def _num(value: float) -> str:
    """3.0 → "3", 3.5 → "3.5"."""
    return f"{value:g}"


def _names(rows: Sequence[HeatRow], pct: float) -> str:
    """The rows at exactly `pct`, in the given order: up to three names, else the first
    three and how many there are."""
    names = [r.name for r in rows if r.coverage_pct == pct]
    return "、".join(names) if len(names) <= 3 else f"{'、'.join(names[:3])}等{len(names)}个"


def _with_narrative(report: PeriodReport, period: Period, prev: Period) -> PeriodReport:
    """A short paragraph whose every number is a figure of the report."""
    now_word, prev_word = {
        MONTH: ("本月", "上月"),
        QUARTER: ("本季度", "上季度"),
        HALF: (period.label, prev.label),
    }[period.kind]
    where = "全区" if report.view_level == Level.district.value else report.view_name
    unit_zh = "镇（街道）" if report.unit_level == Level.town.value else "村（社区）"
    parts: list[str] = []
    if report.required is None and report.exempt_weeks == len(report.weeks):
        parts.append(f"{now_word}{where}各周均免于调度，不计覆盖率。")
    elif report.required is None:
        parts.append(f"{now_word}{where}尚无已结束且已排班的周，暂不计覆盖率。")
    elif report.coverage_pct is None:
        parts.append(f"{now_word}{where}无应调度对象。")
    else:
        text = (
            f"{now_word}{where}应调度{report.required}次，实际覆盖{report.covered}次，"
            f"覆盖率{_pct(report.coverage_pct)}%"
        )
        change = report.previous.coverage_pct.change
        if change is not None:
            if change > 0:
                text += f"，较{prev_word}上升{_num(change)}个百分点"
            elif change < 0:
                text += f"，较{prev_word}下降{_num(-change)}个百分点"
            else:
                text += f"，与{prev_word}持平"
        if report.uncounted_weeks:
            text += f"（{report.uncounted_weeks}周不计入覆盖率：无工作日、尚未结束或系统启用前）"
        parts.append(text + "。")
    issues = report.issues
    text = f"共登记问题{issues.raised}件"
    if issues.raised:
        text += f"，其中重大{issues.by_severity[Severity.major.value]}件"
        text += f"，期末已化解{issues.resolved}件"
        if issues.resolution_rate is not None:
            text += f"，化解率{_pct(issues.resolution_rate)}%"
        if issues.median_days_to_resolve is not None:
            text += f"，化解用时中位数{_num(issues.median_days_to_resolve)}天"
    if issues.escalated:
        text += f"；{now_word}逐级上报{issues.escalated}件"
    if issues.overdue:
        text += f"；期末逾期未化解{issues.overdue}件"
    parts.append(text + "。")
    ranked = [r for r in report.heat_map if r.ranked and r.coverage_pct is not None]
    if len(ranked) >= 2 and report.best and report.worst:
        top, bottom = report.best[0].coverage_pct, report.worst[0].coverage_pct
        if top == bottom:
            parts.append(f"各{unit_zh}覆盖率均为{_pct(top)}%。")
        else:
            highest = sorted(ranked, key=lambda r: (r.name, r.code))  # as `best` orders ties
            parts.append(
                f"覆盖率最高的是{_names(highest, top)}（{_pct(top)}%），"
                f"最低的是{_names(highest, bottom)}（{_pct(bottom)}%）。"
            )
    classes = [c for c in report.class_progress if c.assessed]
    if classes:
        text = "按类别，" + "，".join(f"{c.class_zh}{c.assessed}个中达标{c.met}个" for c in classes)
        text += f"（达标：覆盖率不低于{MEETS_STANDARD_PCT}%）"
        lagging = sum(len(c.past_target_not_met) for c in classes)
        if lagging:
            text += f"；已过目标年度仍未达标{lagging}个"
        parts.append(text + "。")
    return replace(report, narrative="".join(parts))


# --- the report in English (pages in English; works on a report or its stored JSON) ------

MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")  # fmt: skip
TITLE_EN = {MONTH: "Monthly information report", QUARTER: "Quarterly analysis report",
            HALF: "Half-year analysis report"}  # fmt: skip


def _class_en(value: str) -> str:
    """A class as the English narrative says it, in lower case: "follow-on"."""
    known = {c.value: english for c, (_zh, english) in CLASS_LABELS.items()}
    return known[value].lower() if value in known else value


def label_en(kind: str, code: str) -> str:
    """ "2026-11" → "November 2026", "2026-Q4" → "Q4 2026", "2026-H2" → "H2 2026"."""
    period = parse_period(kind, code)
    if kind == MONTH:
        return f"{MONTHS_EN[period.number - 1]} {period.year}"
    return f"{'Q' if kind == QUARTER else 'H'}{period.number} {period.year}"


def title_en(kind: str, code: str) -> str:
    title = f"{TITLE_EN[kind]}, {label_en(kind, code)}"
    if kind == MONTH:
        period = parse_period(kind, code)
        title += f" (No. {period.number} of {period.year})"
    return title


def _names_en(rows: Sequence[Any], pct: float) -> str:
    names = [r.name for r in rows if r.coverage_pct == pct]
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:3])} and {len(names) - 3} more"


def narrative_en(report: Any) -> str:
    """The narrative of `_with_narrative` in English, from the same figures."""
    kind = report.kind
    this = {MONTH: "This month", QUARTER: "This quarter", HALF: "This half-year"}[kind]
    last = {MONTH: "last month", QUARTER: "last quarter", HALF: "the previous half-year"}[kind]
    where = "the district" if report.view_level == Level.district.value else report.view_name
    units = "towns" if report.unit_level == Level.town.value else "villages"
    parts: list[str] = []
    uncounted = getattr(report, "uncounted_weeks", report.exempt_weeks)
    if report.required is None and report.exempt_weeks == len(report.weeks):
        parts.append(f"{this}, every week in {where} was exempt: no coverage is counted.")
    elif report.required is None:
        parts.append(f"{this}, {where} has no week yet that has ended with a rota: "
                     "no coverage is counted.")  # fmt: skip
    elif report.coverage_pct is None:
        parts.append(f"{this}, nothing was required in {where}.")
    else:
        text = (f"{this}, {where} had {report.required} required dispatches, "
                f"{report.covered} covered: coverage {_pct(report.coverage_pct)}%")  # fmt: skip
        change = report.previous.coverage_pct.change
        if change is not None:
            if change > 0:
                text += f", up {_num(change)} points on {last}"
            elif change < 0:
                text += f", down {_num(-change)} points on {last}"
            else:
                text += f", the same as {last}"
        if uncounted:
            text += (f" ({uncounted} week(s) not counted: no working day, not yet ended "
                     "or before the first rota)")  # fmt: skip
        parts.append(text + ".")
    issues = report.issues
    text = f"{issues.raised} issue(s) were raised"
    if issues.raised:
        text += f", {issues.by_severity[Severity.major.value]} of them major"
        text += f"; {issues.resolved} resolved by the period's end"
        if issues.resolution_rate is not None:
            text += f" (resolution rate {_pct(issues.resolution_rate)}%)"
        if issues.median_days_to_resolve is not None:
            text += f", in a median of {_num(issues.median_days_to_resolve)} day(s)"
    if issues.escalated:
        text += f"; {issues.escalated} escalated"
    if issues.overdue:
        text += f"; {issues.overdue} overdue at the period's end"
    parts.append(text + ".")
    ranked = [r for r in report.heat_map if r.ranked and r.coverage_pct is not None]
    if len(ranked) >= 2 and report.best and report.worst:
        top, bottom = report.best[0].coverage_pct, report.worst[0].coverage_pct
        if top == bottom:
            parts.append(f"All {units} stand at {_pct(top)}%.")
        else:
            ordered = sorted(ranked, key=lambda r: (r.name, r.code))
            parts.append(f"Highest: {_names_en(ordered, top)} ({_pct(top)}%); "
                         f"lowest: {_names_en(ordered, bottom)} ({_pct(bottom)}%).")  # fmt: skip
    classes = [c for c in report.class_progress if c.assessed]
    if classes:
        text = "By class: " + "; ".join(
            f"{c.met} of {c.assessed} {_class_en(c.centre_class)} centres "
            "met the standard" for c in classes
        )
        text += f" (the standard: coverage of at least {MEETS_STANDARD_PCT}%)"
        lagging = sum(len(c.past_target_not_met) for c in classes)
        if lagging:
            text += f"; {lagging} past their target year and not meeting it"
        parts.append(text + ".")
    return " ".join(parts)
