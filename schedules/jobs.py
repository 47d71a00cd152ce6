"""The APScheduler jobs that drive the week, rebuilt from the rota tables on every start.

Jobs: build next week's rota (Friday 16:00, Asia/Shanghai); for every planned slot, a
reminder `reminder_minutes` before it and a close at its end (+ `close_delay`) that
settles it by the one coverage rule (`schedules.outcome`: held when its calls covered a
callee, missed when none) and places a make-up in the same week's reserve for the
callees the week has not covered.

Invariants:
- The rota tables are the truth and the jobs live only in memory (APScheduler's
  `MemoryJobStore`: no job store I/O on the event loop, nothing stored twice). Job ids
  derive from slot ids (`remind:42`, `close:42`); `plan_horizon` (on start and every 30
  minutes) gives the jobs to every open slot starting within the next 36 hours that
  lacks them and closes, in one pass, open slots whose close time passed with no job to
  do it — on start that is every slot that ended while the server was down. A reminder
  whose time passed while the server was down, for a slot not yet reminded, runs on
  start. A job whose slot is gone or already handled does nothing.
- Exactly once: a job may be lost (SIGKILL mid-job, a restart) or overlap the horizon
  pass. So each job checks and sets its own record of completion in the same
  transaction as its effect (`reminded_at`, `closed_at`, a make-up's `makeup_of`), on
  the database's one writer thread; runs missed while the loop was busy execute once
  (`coalesce=True`, `misfire_grace_time=None`).
- Next week's rota: the cron job builds it (Friday 16:00); on start, a district whose
  current week has a rota and whose next week has none gets it built when this week's
  build time has passed (the server was down at that time).
- Jobs are the `WeekScheduler`'s own bound methods, or functions of another layer
  added with `add_job`, which hands them the `JobContext`: they reach the database, the
  event bus and the clock through it, never through module state.
- Every decision about time reads the scheduler's `clock` (dispatch/clock.py): which
  week is this one, what is overdue, when a reminder or a close is due, where a make-up
  may go. APScheduler's timers run on the real time, so a reminder or a close due at
  the clock's moment `t` is given the real time `t - clock.offset`; the weekly cron jobs
  (Friday's build, Monday's reports) fire by the real time, and a start catches up on
  any whose time has passed by the clock. The same clock (the application's, handed to
  the switchboard and read by the handlers) stamps the calls and their attendance events,
  decides when an issue is overdue and dates a report's bulletin, so a call made under a
  set clock counts for the slots of the clock's week.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any, ClassVar

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, col, select

from dispatch.clock import SHANGHAI, SYSTEM, Clock
from dispatch.db import Database
from dispatch.events import Event, EventBus

from . import outcome, planner, plans, policy, rota, workdays
from .plans import RotaSlot
from .workdays import IsoWeek

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotReminder(Event):
    name: ClassVar[str] = "slot_reminder"
    slot_id: int
    kind: str
    caller: str
    callees: tuple[str, ...]  # empty for a spot check: the callee is not told
    start: str
    minutes_before: int

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.caller, *self.callees)


@dataclass(frozen=True)
class SlotMissed(Event):
    name: ClassVar[str] = "slot_missed"
    slot_id: int
    kind: str
    caller: str
    callees: tuple[str, ...]
    makeup_slot_id: int | None
    makeup_start: str | None
    held: bool = False  # the slot was held; `callees` are those it did not cover

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.caller, *self.callees)


@dataclass(frozen=True)
class RotaBuilt(Event):
    name: ClassVar[str] = "rota_built"
    district: str
    week: str
    slots: int
    unplaced: int

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.district,)


@dataclass
class JobContext:
    db: Database
    bus: EventBus
    scheduler: WeekScheduler

    @property
    def clock(self) -> Clock:
        return self.scheduler.clock


class WeekScheduler:
    """An AsyncIOScheduler with the week's jobs, kept in memory and rebuilt from the rota
    tables on start (`plan_horizon`)."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        name: str = "main",
        close_delay: timedelta = timedelta(minutes=5),
        build_at: dict[str, Any] | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db, self.bus, self.name, self.clock = db, bus, name, clock
        self.close_delay = close_delay
        self.build_at = build_at or {"day_of_week": "fri", "hour": 16, "minute": 0}
        self.context = JobContext(db, bus, self)
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=SHANGHAI,
        )

    async def start(self) -> None:
        """Start inside the running loop, then plan the horizon and build a next week
        whose build time passed while the server was down."""
        self.scheduler.start()
        self.scheduler.add_job(self.build_next_week, self._build_trigger(),
                               id="build-next-week", replace_existing=True)  # fmt: skip
        self.scheduler.add_job(self.plan_horizon, IntervalTrigger(minutes=30),
                               id="plan-horizon", replace_existing=True)  # fmt: skip
        await self.plan_horizon()
        await self._catch_up_build()

    async def stand_down(self) -> None:
        """Drop every job and stop (another process leads now); `start` may follow, with
        the same AsyncIOScheduler (its listeners kept)."""
        if self.scheduler.running:
            self.scheduler.remove_all_jobs()
        self.shutdown()
        await asyncio.sleep(0)  # AsyncIOScheduler stops on the loop's next turn

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def add_job(
        self, func: Callable[[JobContext], Awaitable[None]], trigger: BaseTrigger, id: str
    ) -> None:
        """A job of another layer: `func(context)` runs at each of `trigger`'s times."""
        self.scheduler.add_job(func, trigger, args=[self.context], id=id, replace_existing=True)

    def job_ids(self) -> set[str]:
        return {job.id for job in self.scheduler.get_jobs()}

    def _build_trigger(self) -> CronTrigger:
        return CronTrigger(timezone=SHANGHAI, **self.build_at)

    # -- slot jobs --------------------------------------------------------------------
    #
    # Slots get their own jobs only once they start within HORIZON, so the scheduler
    # holds about a day's calls, not every week built ahead. Slots whose close time has
    # passed without a close (the server was down, or they never had jobs) are closed
    # in one pass instead of one job each.

    async def plan_horizon(self) -> None:
        now = self.clock.now()
        have = self.job_ids()
        overdue, upcoming = await self.db.read(self._open_slots, now)
        # A close job already here runs on its own; the rest close in one pass.
        unscheduled = [slot_id for slot_id in overdue if f"close:{slot_id}" not in have]
        if unscheduled:
            closed = await self.db.write(_close_many, unscheduled, self)
            self.add_jobs([t for _event, times in closed for t in times])
            for event, _times in closed:
                self.bus.publish(event)
        missing = [t for t in upcoming if f"close:{t[0]}" not in have]
        self.add_jobs(missing)
        log.info("scheduler %s: %d overdue slot(s) closed, %d slot(s) given jobs",
                 self.name, len(overdue), len(missing))  # fmt: skip

    def _open_slots(self, session: Session, now: datetime) -> tuple[list[int], list[Times]]:
        stmt = select(RotaSlot).where(
            col(RotaSlot.closed_at).is_(None), col(RotaSlot.start) < now + HORIZON
        )
        slots = list(session.exec(stmt.order_by(col(RotaSlot.start))))
        overdue = [x.id or 0 for x in slots if x.end + self.close_delay <= now]
        ids = set(overdue)
        return overdue, self.times_for(session, [x for x in slots if x.id not in ids])

    def times_for(self, session: Session, slots: list[RotaSlot]) -> list[Times]:
        lead: dict[int, timedelta] = {}  # per week: its district's reminder lead time
        out = []
        for slot in slots:
            if slot.week_id not in lead:
                minutes = policy.policy_for(session, _district_of(session, slot)).reminder_minutes
                lead[slot.week_id] = timedelta(minutes=minutes)
            remind = None if slot.reminded_at else slot.start - lead[slot.week_id]
            out.append((slot.id or 0, remind, slot.start, slot.end + self.close_delay))
        return out

    def add_jobs(self, times: list[Times]) -> None:
        """Add the jobs of the slots in `times` (from `times_for`) that start within the
        horizon; later ones get theirs from `plan_horizon`. A reminder time already past
        runs at once. Call after the slots' transaction committed. On a standby (another
        process leads) nothing: the leader's `plan_horizon` adds them."""
        if not self.scheduler.running:
            return
        now, ahead = self.clock.now(), self.clock.offset
        for slot_id, remind_at, start, close_at in times:
            if start >= now + HORIZON or close_at <= now:
                continue  # later: `plan_horizon` adds them; overdue: it closes them in a pass
            if remind_at is not None:
                self.scheduler.add_job(self.remind, DateTrigger(remind_at - ahead),
                                       args=[slot_id], id=f"remind:{slot_id}",
                                       replace_existing=True)  # fmt: skip
            self.scheduler.add_job(self.close_slot, DateTrigger(close_at - ahead), args=[slot_id],
                                   id=f"close:{slot_id}", replace_existing=True)  # fmt: skip

    # -- the jobs ---------------------------------------------------------------------

    async def build_next_week(self, *, only_continuing: bool = False) -> None:
        """Build next week's rota for every district that lacks one (with
        `only_continuing`, only for districts whose current week has a rota)."""
        this = IsoWeek.containing(self.clock.today())
        cal = await self.db.read(workdays.load_calendar)  # one calendar for every district
        districts = await self.db.read(planner.districts)
        if only_continuing:
            districts = await self.db.read(_with_week, districts, this)
        for district in districts:
            await self.build_if_missing(district, this.next(), cal)

    async def _catch_up_build(self) -> None:
        """The Friday build missed while the server was down: due once this week's build
        time has passed; a district without this week's rota is not started by it (a
        new database, a district not yet scheduled)."""
        now = self.clock.local()
        monday = datetime.combine(IsoWeek.containing(now.date()).monday, time(0), SHANGHAI)
        due = self._build_trigger().get_next_fire_time(None, monday)
        if due is not None and due <= now:
            await self.build_next_week(only_continuing=True)

    async def build_if_missing(
        self, district: str, week: IsoWeek, cal: workdays.WorkdayCalendar | None = None
    ) -> plans.RotaWeek | None:
        """Build and schedule a week once; an existing build (by a person or a run) stays."""

        def run(session: Session) -> tuple[plans.RotaWeek, list[Any]] | None:
            if plans.get_week(session, district, week) is not None:
                return None
            record = planner.build_week(
                session, district, week, by="scheduler", cal=cal, now=self.clock.now()
            )
            return record, self.times_for(session, plans.week_slots(session, record.id or 0))

        built = await self.db.write(run)
        if built is None:
            return None
        record, times = built
        self.add_jobs(times)
        log.info("built rota %s for %s: %d slots", week, district, len(times))
        self.bus.publish(RotaBuilt(district, str(week), len(times), len(record.unplaced)))
        return record

    async def remind(self, slot_id: int) -> None:
        def run(session: Session) -> SlotReminder | None:
            slot = session.get(RotaSlot, slot_id)
            if slot is None or slot.reminded_at is not None or slot.status != plans.PLANNED:
                return None
            slot.reminded_at = self.clock.now()
            session.add(slot)
            return reminder_for(session, slot)

        event = await self.db.write(run)
        if event is not None:
            self.bus.publish(event)

    async def close_slot(self, slot_id: int) -> None:
        closed = await self.db.write(_close, slot_id, self)
        if closed is not None:
            event, times = closed
            self.add_jobs(times)
            self.bus.publish(event)


Times = tuple[int, datetime | None, datetime, datetime]  # slot id, remind, start, close
HORIZON = timedelta(hours=36)


def _with_week(session: Session, districts: list[str], week: IsoWeek) -> list[str]:
    return [d for d in districts if plans.get_week(session, d, week) is not None]


def _district_of(session: Session, slot: RotaSlot) -> str:
    week = session.get(plans.RotaWeek, slot.week_id)
    return week.district_code if week else ""


def reminder_for(session: Session, slot: RotaSlot) -> SlotReminder:
    """The reminder of a slot, as the `remind` job publishes it (a spot check's callee
    is not told)."""
    minutes = policy.policy_for(session, _district_of(session, slot)).reminder_minutes
    return SlotReminder(
        slot_id=slot.id or 0,
        kind=slot.kind,
        caller=slot.caller_code,
        callees=() if slot.hidden else tuple(slot.callees),
        start=slot.start.astimezone(SHANGHAI).isoformat(),
        minutes_before=minutes,
    )


def reminders_due(session: Session, code: str, now: datetime) -> list[SlotReminder]:
    """The reminders already sent to centre `code` for slots that have not started yet
    at `now` (still planned): a page that connects late gets them (web/live.py). A
    hidden spot check counts only for its caller."""
    found = plans.slots_for_centre(session, code, now, now + HORIZON)
    return [reminder_for(session, s) for s in found
            if s.reminded_at is not None and s.status == plans.PLANNED]  # fmt: skip


def _close_many(
    session: Session, slot_ids: list[int], scheduler: WeekScheduler
) -> list[tuple[SlotMissed, list[Any]]]:
    closed = (_close(session, slot_id, scheduler) for slot_id in slot_ids)
    return [c for c in closed if c is not None]


def _close(
    session: Session, slot_id: int, scheduler: WeekScheduler
) -> tuple[SlotMissed, list[Any]] | None:
    """Close a slot by the one coverage rule (`schedules.outcome`): held when its calls
    covered a callee, missed when they covered none; every callee the week has not
    covered gets a make-up, the callees of a held meeting too."""
    slot = session.get(RotaSlot, slot_id)
    if slot is None or slot.closed_at is not None:
        return None
    slot.closed_at = scheduler.clock.now()
    session.add(slot)
    if slot.status == plans.CANCELLED:
        return None
    minimum = policy.policy_for(session, _district_of(session, slot)).min_verified_seconds
    result = outcome.outcome_of(session, slot, minimum)
    outcome.settle(slot, result)
    if not result.missed:
        return None  # every callee covered: nothing to make up
    now = scheduler.clock.local()
    makeup = None if slot.kind == "makeup" else _place_makeup(session, slot, result.missed, now)
    times = scheduler.times_for(session, [makeup]) if makeup is not None else []
    log.info("slot %s %s, missed %s; make-up %s", slot_id, slot.status, ",".join(result.missed),
             makeup.id if makeup else "none")  # fmt: skip
    event = SlotMissed(
        slot_id=slot_id,
        kind=slot.kind,
        caller=slot.caller_code,
        callees=() if slot.hidden else result.missed,
        makeup_slot_id=makeup.id if makeup else None,
        makeup_start=makeup.start.astimezone(SHANGHAI).isoformat() if makeup else None,
        held=slot.status == plans.HELD,
    )
    return event, times


def _place_makeup(
    session: Session, slot: RotaSlot, callees: tuple[str, ...], now: datetime
) -> RotaSlot | None:
    """A make-up of `slot` for `callees` in the slot's week, from `now` (Shanghai) on."""
    existing = session.exec(select(RotaSlot).where(RotaSlot.makeup_of == slot.id)).first()
    if existing is not None:
        return None
    week = session.get(plans.RotaWeek, slot.week_id)
    if week is None or now.date() > IsoWeek.parse(week.week).days()[-1]:
        return None  # the week is over: nothing to make up in it
    others = [s.planned() for s in plans.week_slots(session, week.id or 0) if s.id != slot.id]
    cal = workdays.load_calendar(session)
    planned = rota.place_makeup(
        others,
        missed=replace(slot.planned(), callees=callees),
        bundle=policy.load_bundle(session, week.district_code),
        workdays=cal.workdays(IsoWeek.parse(week.week)),
        not_before=now,
    )
    if planned is None:
        _note_no_room(week, slot.id or 0)
        return None
    return plans.add_slot(session, week.id or 0, planned, makeup_of=slot.id)


NO_ROOM = "本周已无空档补调度 / no room this week for a make-up of missed slot(s): "


def _note_no_room(week: plans.RotaWeek, slot_id: int) -> None:
    """One warning line per week listing the missed slots that found no make-up."""
    ids: list[str] = []
    for line in week.warnings:
        if line.startswith(NO_ROOM):
            ids = line.removeprefix(NO_ROOM).split(", ")
    ids.append(str(slot_id))
    others = [w for w in week.warnings if not w.startswith(NO_ROOM)]
    week.warnings = [*others, NO_ROOM + ", ".join(ids)]
