"""Reports produced on time by the scheduler (Asia/Shanghai): every Monday 08:00 the
weekly coverage report of the week just ended, for every district; every Monday 08:30
the report of each period whose last week is the week just ended — the monthly
information report, each town's quarterly analysis report, the district's half-year
analysis report. A week belongs to the period its Monday falls in
(`periods.period_of_week`), so a month's report waits for its last week to end (at most
six days into the next month) and no week is left out of every stored report, nor
stored as in progress.

Exactly once: each run stores through `archive.store_*`, which keeps the first report
of a period and ignores the rest; and on every start `catch_up` produces last week's
report if no run did (the server was down at 08:00, or a run was killed halfway —
APScheduler does not run a killed job again).

"Now" is the scheduler's clock (`JobContext.clock`), so a test sets the day instead of
waiting for Monday.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session

from dispatch.clock import SHANGHAI, local_date
from schedules import jobs, planner
from schedules.workdays import IsoWeek

from . import archive, periods

log = logging.getLogger(__name__)
BY = "scheduler"


def install(scheduler: jobs.WeekScheduler) -> None:
    monday_8 = CronTrigger(day_of_week="mon", hour=8, timezone=SHANGHAI)
    monday_830 = CronTrigger(day_of_week="mon", hour=8, minute=30, timezone=SHANGHAI)
    scheduler.add_job(weekly_reports, monday_8, id="weekly-reports")
    scheduler.add_job(period_reports, monday_830, id="period-reports")


def due_periods(today: date) -> list[periods.Period]:
    """The periods whose reports are due by `today`: those whose last week is the week
    before `today`'s (a month, and the quarter and half-year it closes)."""
    last = IsoWeek.containing(today).previous()
    due = []
    for kind in (periods.MONTH, periods.QUARTER, periods.HALF):
        period = periods.period_of_week(kind, last)
        if period.weeks()[-1] == last:
            due.append(period)
    return due


KIND_OF = {"month": "monthly", "quarter": "quarterly", "half": "half-year"}


def _produce_periods(session: Session, now: datetime) -> int:
    made = 0
    for period in due_periods(local_date(now)):
        kind = KIND_OF[period.kind]
        for district in planner.districts(session):
            towns = [t.code for t in planner.district_towns(session, district)]
            for town in towns if kind == "quarterly" else [None]:
                label = period.code if town is None else f"{period.code}@{town}"
                if archive.find(session, kind, label, district) is not None:
                    continue
                report = periods.period_report(session, district, period, town=town, now=now)
                archive.store(session, kind, label, district, report.as_dict(), BY)
                made += 1
    return made


async def period_reports(ctx: jobs.JobContext) -> None:
    made = await ctx.db.write(_produce_periods, ctx.clock.now())
    log.info("period reports: %d produced", made)


def last_week(today: date) -> IsoWeek:
    return IsoWeek.containing(today).previous()


def _produce(session: Session, week: IsoWeek) -> int:
    made = 0
    for district in planner.districts(session):
        if archive.find(session, "weekly", str(week), district) is None:
            archive.store_weekly(session, district, week, BY)
            made += 1
    return made


async def weekly_reports(ctx: jobs.JobContext) -> None:
    week = last_week(ctx.clock.today())
    made = await ctx.db.write(_produce, week)
    log.info("weekly reports of %s: %d produced", week, made)


async def catch_up(scheduler: jobs.WeekScheduler) -> int:
    """Last week's reports, if the Monday run has not produced them (after 08:00)."""
    now = scheduler.clock.local()
    if now.weekday() == 0 and now.hour < 8:
        return 0  # not due yet
    made: int = await scheduler.db.write(_produce, last_week(now.date()))
    if now.weekday() > 0 or now.hour >= 9:  # Monday's period run is due at 08:30
        made += await scheduler.db.write(_produce_periods, scheduler.clock.now())
    if made:
        log.info("caught up %d report(s)", made)
    return made
