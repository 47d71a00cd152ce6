"""Reports produced on time by the scheduler: every Monday 08:00 (Asia/Shanghai) the
weekly coverage report of the week just ended, for every district.

Exactly once: each run stores through `archive.store_*`, which keeps the first report
of a period and ignores the rest; and on every start `catch_up` produces last week's
report if no run did (the server was down at 08:00, or a run was killed halfway —
APScheduler does not run a killed job again).
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session

from schedules import jobs, planner
from schedules.plans import SHANGHAI
from schedules.workdays import IsoWeek

from . import archive

log = logging.getLogger(__name__)
BY = "scheduler"


def install(scheduler: jobs.WeekScheduler) -> None:
    monday_8 = CronTrigger(day_of_week="mon", hour=8, timezone=SHANGHAI)
    scheduler.scheduler.add_job(
        "logs.report_jobs:weekly_reports", monday_8, id="weekly-reports",
        kwargs={"context": scheduler.name}, replace_existing=True,
    )  # fmt: skip


def last_week() -> IsoWeek:
    return IsoWeek.containing(datetime.now(SHANGHAI).date()).previous()


def _produce(session: Session, week: IsoWeek) -> int:
    made = 0
    for district in planner.districts(session):
        if archive.find(session, "weekly", str(week), district) is None:
            archive.store_weekly(session, district, week, BY)
            made += 1
    return made


async def weekly_reports(context: str) -> None:
    ctx = jobs.context(context)
    if ctx is None:
        return
    made = await ctx.db.write(_produce, last_week())
    log.info("weekly reports of %s: %d produced", last_week(), made)


async def catch_up(scheduler: jobs.WeekScheduler) -> int:
    """Last week's reports, if the Monday run has not produced them (after 08:00)."""
    now = datetime.now(SHANGHAI)
    if now.weekday() == 0 and now.hour < 8:
        return 0  # not due yet
    made: int = await scheduler.db.write(_produce, last_week())
    if made:
        log.info("caught up %d weekly report(s) of %s", made, last_week())
    return made
