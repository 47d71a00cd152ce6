"""A first run that is alive: what `dispatch demo load --if-empty --history-weeks 8` (and
so `make serve` on an empty database) adds after the demo district, so that every page
shows something real — the weeks before this one played out (`logs.history`), the
district's journals signed and sealed, the weekly and monthly reports stored as the
scheduler would have stored them, and this week's rota built.

Invariants:
- Only ever on a database the demo was just loaded into: the caller checks it held no
  centre before (an existing database is never touched).
- History ends with last week (Asia/Shanghai) and nothing is dated after `now`.
- Sealed journals: every call the district itself launched in the history's weeks but
  the last, in the order the calls ended (so the chain runs in time order), signed by
  the account that launched it. The last week's and every town's journals stay unsigned:
  the journal list has something to sign. (Signing re-derives each journal, ~0.1 s for
  a meeting of a town and its villages; the town patrols are too many to seal here.)
- Stored reports: the weekly report of every history week, and the monthly report of
  every month whose weeks have all ended and that holds a history week — made as the
  scheduler makes them (`logs.report_jobs.BY`), read as of their periods' ends.
- This week's rota is built as the Friday job would have built it, from the next
  working day on (days already past read "not planned (built mid-week)").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlmodel import Session, col, select

from dispatch.calls import OPEN_STATES, Call
from dispatch.clock import SHANGHAI, utcnow
from schedules import planner, plans, workdays
from schedules.workdays import IsoWeek

from . import archive, periods, seal
from .history import DEFAULT_SEED, generate_history
from .report_jobs import BY

DEFAULT_WEEKS = 8
MAX_WEEKS = 52


@dataclass(frozen=True)
class FirstRunSummary:
    weeks: int
    first_week: str
    last_week: str
    calls: int
    events: int
    issues: int
    makeups: int
    sealed: int
    weekly_reports: int
    monthly_reports: int
    current_week: str
    current_slots: int
    seconds: float

    def lines(self) -> list[str]:
        """The summary as a person reads it (Chinese, then English)."""
        return [
            f"历史 / history: {self.weeks} 周 weeks, {self.first_week} – {self.last_week}",
            f"  调度 calls: {self.calls} ({self.makeups} 补调度 make-ups), "
            f"事件 events: {self.events}, 问题 issues: {self.issues}",
            f"  已签发封存的调度日志 signed and sealed journals: {self.sealed}",
            f"  已存报告 stored reports: {self.weekly_reports} 周报 weekly, "
            f"{self.monthly_reports} 月报 monthly",
            f"  本周排班 this week's rota: {self.current_week}, {self.current_slots} 个时段 slots",
            f"  用时 took {self.seconds:.1f} s",
        ]


def load_history(
    session: Session,
    *,
    weeks: int = DEFAULT_WEEKS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> FirstRunSummary:
    """Play out `weeks` weeks before this one for every district, seal, store reports and
    build this week (see the module docstring). Commits as it goes."""
    started = time.perf_counter()
    now = now or utcnow()
    today = now.astimezone(SHANGHAI).date()
    current = IsoWeek.containing(today)
    last = current.previous()
    history = generate_history(session, weeks=weeks, end_week=last, seed=seed,
                               commit=True, now=now, progress=progress)  # fmt: skip
    span = [last]
    while len(span) < weeks:
        span.insert(0, span[0].previous())
    say = progress or (lambda _line: None)
    say("签发封存调度日志 / signing and sealing the districts' journals …")
    sealed = _seal(session, span[0], last)
    session.commit()
    say(f"已封存 {sealed} / sealed {sealed}; 生成存档报告 / storing the reports …")
    weekly = monthly = 0
    cal = workdays.load_calendar(session)
    slots = 0
    for district in planner.districts(session):
        for week in span:
            archive.store_weekly(session, district, week, BY)
            weekly += 1
        for period in _ended_months(span, today):
            report = periods.period_report(session, district, period, now=now)
            archive.store(session, "monthly", period.code, district, report.as_dict(), BY)
            monthly += 1
        session.commit()
        if plans.get_week(session, district, current) is None:
            record = planner.build_week(session, district, current, by=BY, now=now, cal=cal)
            slots += len(plans.week_slots(session, record.id or 0))
            session.commit()
    return FirstRunSummary(
        weeks=len(span), first_week=str(span[0]), last_week=str(last),
        calls=history.calls, events=history.events, issues=history.issues,
        makeups=history.makeups, sealed=sealed, weekly_reports=weekly,
        monthly_reports=monthly, current_week=str(current), current_slots=slots,
        seconds=time.perf_counter() - started,
    )  # fmt: skip


def _seal(session: Session, first: IsoWeek, last: IsoWeek) -> int:
    """Sign off the districts' own calls launched from `first` up to (not including)
    `last`, in the order they ended."""
    start = datetime.combine(first.monday, datetime.min.time(), SHANGHAI)
    stop = datetime.combine(last.monday, datetime.min.time(), SHANGHAI)
    districts = planner.districts(session)
    stmt = (
        select(Call)
        .where(col(Call.caller_code).in_(districts))
        .where(Call.created_at >= start.astimezone(UTC), Call.created_at < stop.astimezone(UTC))
        .where(col(Call.state).not_in(OPEN_STATES))
        .order_by(col(Call.ended_at), col(Call.id))
    )
    found = [(c.id or 0, c.operator or c.caller_code) for c in session.exec(stmt)]
    for call_id, by in found:
        seal.sign_off(session, call_id, by)
    return len(found)


def _ended_months(span: list[IsoWeek], today: date) -> list[periods.Period]:
    """The months holding a week of `span` whose weeks have all ended by `today`."""
    found: list[periods.Period] = []
    for week in span:
        period = periods.month_of_week(week)
        if period in found:
            continue
        if period.weeks()[-1].days()[-1] < today:
            found.append(period)
    return found
