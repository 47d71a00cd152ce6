"""The scheduled jobs in `dispatch serve`: started where this process leads.

With DISPATCH_SCHEDULER on, every process builds its WeekScheduler (so /metrics counts
its runs and /readyz sees it) but starts it only while it holds the scheduler's lock
(schedules/leader.py): on SQLite at once; on PostgreSQL the first process to take the
advisory lock, the others taking over, one of them, when it goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from logs import recording_retention, report_jobs
from schedules import backup_job
from schedules.jobs import WeekScheduler
from schedules.leader import Leadership

from .appkeys import BUS, CLOCK, DB, LEADERSHIP, SCHEDULER, SETTINGS


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the database (cleanup runs in reverse order)."""
    settings = app[SETTINGS]
    if not settings.scheduler:
        yield
        return
    week = WeekScheduler(app[DB], app[BUS], clock=app[CLOCK])
    leadership = Leadership(settings.db_url, retry=settings.scheduler_retry)
    app[SCHEDULER], app[LEADERSHIP] = week, leadership

    async def elected() -> None:
        try:
            await week.start()
            report_jobs.install(week)
            backup_job.install(week, settings)  # nightly, with retention
            recording_retention.install(week, settings)  # nightly, keeps issues' evidence
            await report_jobs.catch_up(week)
        except BaseException:
            await week.stand_down()
            raise

    await leadership.step(elected, week.stand_down)  # a lone server leads before serving
    watcher = asyncio.get_running_loop().create_task(leadership.watch(elected, week.stand_down))
    yield
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    week.shutdown()
    await asyncio.to_thread(leadership.dispose)  # the lock goes with its connection
