"""The week's jobs with a real AsyncIOScheduler over the test's SQLite file.

Time runs at the real pace from a set moment (the scheduler's clock, `SetClock`: this
week's Wednesday morning, so the rest of the week has room for make-ups whatever the real
day and hour): slots are placed a few seconds ahead, and a "restart" is a scheduler shut
down while a slot ends and a new one started on the same database. The jobs live in the
scheduler's memory; what a restart keeps, it rebuilds from the tables.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlmodel import select

from dispatch import calls, centres
from dispatch.accounts import Account, scope_for
from dispatch.clock import SHANGHAI, Clock, SetClock, today
from dispatch.db import Database
from dispatch.events import Event, EventBus
from dispatch.settings import Settings
from dispatch.switchboard import Switchboard
from schedules import jobs, outcome, planner, plans, policy, slots, workdays
from schedules.plans import RotaSlot
from schedules.workdays import IsoWeek
from web.schema import open_database

from conftest import wait_for

# Wednesday 10:00 of the real week: the switchboard stamps calls by the real clock, and a
# call counts for the slots of the week it was made in, so the set clock stays in it.
WEDNESDAY = datetime.combine(
    IsoWeek.containing(today()).monday + timedelta(days=2), time(10), SHANGHAI
)


@pytest.fixture
def demo_db(demo_settings: Settings) -> Any:
    db = open_database(demo_settings.db_url)
    yield db
    db.close()


@pytest.fixture
def clock() -> SetClock:
    return SetClock(WEDNESDAY)


def open_the_rest_of_the_week(db: Database, clock: Clock) -> IsoWeek:
    """Every remaining day of this week a working day, windows all day: room for make-ups."""
    today = clock.today()
    week = IsoWeek.containing(today)
    with db.session() as s:
        for day in week.days():
            if day >= today:
                workdays.set_override(s, day, True, "test", "test")
        policy.set_policy(s, None, {"windows": [["00:00", "23:59"]], "slot_step_minutes": 1},
                          "test")  # fmt: skip
    return week


def add_slot(
    db: Database,
    week: IsoWeek,
    clock: Clock,
    *,
    starts_in: float,
    minutes: float = 1 / 60,
    kind: str = "town_patrol",
    hidden: bool = False,
) -> int:
    """One stored slot `starts_in` seconds from the clock's now, in a stored week of its own
    district."""
    with db.session() as s:
        district = centres.roots(s)[0]
        town = centres.children(s, district.code)[0]
        village = centres.children(s, town.code)[0]
        start = clock.local() + timedelta(seconds=starts_in)
        planned = slots.PlannedSlot(kind=kind, caller=town.code, callees=(village.code,),
                                    start=start, end=start + timedelta(minutes=minutes),
                                    console=1, hidden=hidden)  # fmt: skip
        record = plans.get_week(s, district.code, week)
        if record is None:
            result = slots.RotaResult(
                week_start=week.monday, district=district.code, workdays=tuple(week.days()),
                exempt=False, slots=(), unplaced=(), warnings=(), seed=0, spot_check_seed=0,
            )  # fmt: skip
            record = plans.save_result(s, week, result, "test")
        return plans.add_slot(s, record.id or 0, planned, makeup_of=None).id or 0


def recorder(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.subscribe(seen.append)
    return seen


def slot(db: Database, slot_id: int) -> RotaSlot:
    with db.session() as s:
        found = s.get(RotaSlot, slot_id)
        assert found is not None
        return found


def makeups(db: Database, slot_id: int) -> list[RotaSlot]:
    with db.session() as s:
        return list(s.exec(select(RotaSlot).where(RotaSlot.makeup_of == slot_id)))


def job_ids(scheduler: jobs.WeekScheduler) -> set[str]:
    return {job.id for job in scheduler.scheduler.get_jobs()}


async def test_jobs_survive_a_restart_and_a_missed_close_runs_once(
    demo_db: Database, clock: SetClock
) -> None:
    week = open_the_rest_of_the_week(demo_db, clock)
    slot_id = add_slot(demo_db, week, clock, starts_in=1.0)
    bus = EventBus()
    seen = recorder(bus)

    first = jobs.WeekScheduler(demo_db, bus, name="restart", close_delay=timedelta(0), clock=clock)
    await first.start()
    assert {f"remind:{slot_id}", f"close:{slot_id}", "build-next-week"} <= job_ids(first)
    await wait_for(lambda: any(isinstance(e, jobs.SlotReminder) for e in seen))
    first.shutdown()  # the server goes down before the slot ends …
    clock.advance(timedelta(seconds=3))  # … and is down when it ends
    assert slot(demo_db, slot_id).status == plans.PLANNED  # … and nothing closed it

    second = jobs.WeekScheduler(demo_db, bus, name="restart", close_delay=timedelta(0), clock=clock)
    await second.start()  # the missed close runs once, on start
    await wait_for(lambda: slot(demo_db, slot_id).status == plans.MISSED)
    await wait_for(lambda: any(isinstance(e, jobs.SlotMissed) for e in seen))
    second.shutdown()

    third = jobs.WeekScheduler(demo_db, bus, name="restart", close_delay=timedelta(0), clock=clock)
    await third.start()
    await asyncio.sleep(1.5)
    kept = job_ids(third)  # the restart's jobs, rebuilt from the tables
    third.shutdown()
    assert [type(e) for e in seen].count(jobs.SlotMissed) == 1
    assert [type(e) for e in seen].count(jobs.SlotReminder) == 1
    made = makeups(demo_db, slot_id)
    assert len(made) == 1
    missed = next(e for e in seen if isinstance(e, jobs.SlotMissed))
    assert missed.makeup_slot_id == made[0].id
    assert made[0].kind == "makeup" and made[0].callees == slot(demo_db, slot_id).callees
    assert made[0].start.astimezone(SHANGHAI) > slot(demo_db, slot_id).end.astimezone(SHANGHAI)
    assert {f"remind:{made[0].id}", f"close:{made[0].id}", "build-next-week"} <= kept
    assert not {f"remind:{slot_id}", f"close:{slot_id}"} & kept  # done: not again


async def test_a_held_slot_is_not_missed(demo_db: Database, clock: SetClock) -> None:
    week = open_the_rest_of_the_week(demo_db, clock)
    slot_id = add_slot(demo_db, week, clock, starts_in=0.5)
    # What an attended call records: the callee's video verified in the slot's call.
    board = Switchboard(demo_db, EventBus(), b"k" * 44)
    with demo_db.session() as s:
        planned = s.get(RotaSlot, slot_id)
        assert planned is not None
        caller, (callee,) = planned.caller_code, planned.callees
        operator = s.exec(select(Account).where(Account.username == caller)).one()
        scope = scope_for(s, operator)
    launched, _ = await board.launch(
        scope,
        [callee],
        kind="town_patrol",
        slot_id=slot_id,
        answer_deadline_seconds=60,
        min_verified_seconds=60,
    )
    call_id = launched.call.id or 0
    await board.answer(call_id, callee, accept=True)
    await board.record(call_id, calls.VERIFIED, callee, seconds_live=60, max_faces=1)
    await board.end(call_id, "done")
    board.close()
    assert await demo_db.write(outcome.record_verified, slot_id, callee)
    bus = EventBus()
    seen = recorder(bus)
    scheduler = jobs.WeekScheduler(demo_db, bus, name="held", close_delay=timedelta(0), clock=clock)
    await scheduler.start()
    await wait_for(lambda: slot(demo_db, slot_id).closed_at is not None)
    scheduler.shutdown()
    assert slot(demo_db, slot_id).status == plans.HELD
    assert makeups(demo_db, slot_id) == []
    assert not any(isinstance(e, jobs.SlotMissed) for e in seen)


async def test_a_spot_check_reminder_does_not_tell_the_callee(
    demo_db: Database, clock: SetClock
) -> None:
    week = open_the_rest_of_the_week(demo_db, clock)
    slot_id = add_slot(demo_db, week, clock, starts_in=60, kind="spot_check", hidden=True)
    bus = EventBus()
    seen = recorder(bus)
    scheduler = jobs.WeekScheduler(demo_db, bus, name="spot", close_delay=timedelta(0), clock=clock)
    await scheduler.start()
    await wait_for(lambda: bool(seen))
    scheduler.shutdown()
    (event,) = seen
    assert isinstance(event, jobs.SlotReminder) and event.slot_id == slot_id
    assert event.callees == () and event.centres == (slot(demo_db, slot_id).caller_code,)


async def test_next_week_is_built_once_by_the_friday_job(
    demo_db: Database, clock: SetClock
) -> None:
    bus = EventBus()
    seen = recorder(bus)
    scheduler = jobs.WeekScheduler(demo_db, bus, name="friday", clock=clock)
    await scheduler.start()
    job = scheduler.scheduler.get_job("build-next-week")
    assert job is not None
    fire = job.next_run_time.astimezone(SHANGHAI)
    assert (fire.weekday(), fire.hour, fire.minute) == (4, 16, 0)
    await scheduler.build_next_week()
    await scheduler.build_next_week()  # a second run finds the week built
    held = job_ids(scheduler)
    scheduler.shutdown()
    built = [e for e in seen if isinstance(e, jobs.RotaBuilt)]
    assert len(built) == 1 and built[0].slots > 0
    next_week = IsoWeek.containing(clock.today()).next()
    with demo_db.session() as s:
        record = plans.get_week(s, built[0].district, next_week)
        assert record is not None and record.revision == 1 and record.built_by == "scheduler"
        slots = plans.week_slots(s, record.id or 0)
    # Jobs exist for the calls of the next 36 hours; later ones get theirs as they near.
    soon = {f"close:{x.id}" for x in slots if x.start < clock.now() + jobs.HORIZON}
    later = {f"close:{x.id}" for x in slots} - soon
    assert soon <= held and not later & held


def test_slot_times_are_stored_in_utc(demo_db: Database, clock: SetClock) -> None:
    week = IsoWeek.containing(clock.today())
    slot_id = add_slot(demo_db, week, clock, starts_in=3600)
    stored = slot(demo_db, slot_id)
    assert stored.start.utcoffset() == timedelta(0) and stored.start.tzinfo is not None
    assert abs(stored.start - clock.now() - timedelta(hours=1)) < timedelta(minutes=1)


async def test_slots_without_jobs_are_closed_in_one_pass_on_start(
    demo_db: Database, clock: SetClock
) -> None:
    week = open_the_rest_of_the_week(demo_db, clock)
    ids = [add_slot(demo_db, week, clock, starts_in=-600 - 60 * i, minutes=5) for i in range(3)]
    bus = EventBus()
    seen = recorder(bus)
    scheduler = jobs.WeekScheduler(
        demo_db, bus, name="catch-up", close_delay=timedelta(0), clock=clock
    )
    await scheduler.start()  # no job ever existed for these: the horizon pass closes them
    scheduler.shutdown()
    assert all(slot(demo_db, i).status == plans.MISSED for i in ids)
    assert sorted(e.slot_id for e in seen if isinstance(e, jobs.SlotMissed)) == sorted(ids)


async def test_a_friday_build_missed_while_down_runs_on_start(
    demo_db: Database, clock: SetClock
) -> None:
    """The build time has passed this week (here: Monday 00:00) and next week has no rota:
    the start builds it, once, for a district already scheduled this week — not on a new
    database."""
    monday = {"day_of_week": "mon", "hour": 0, "minute": 0}
    bus = EventBus()
    seen = recorder(bus)
    fresh = jobs.WeekScheduler(demo_db, bus, name="fresh", build_at=monday, clock=clock)
    await fresh.start()
    fresh.shutdown()
    assert not any(isinstance(e, jobs.RotaBuilt) for e in seen)  # no rota this week yet

    this = IsoWeek.containing(clock.today())
    with demo_db.session() as s:
        district = centres.roots(s)[0].code
        planner.build_week(s, district, this, by="test", now=clock.now())
    for _ in range(2):  # a second restart finds next week built
        again = jobs.WeekScheduler(demo_db, bus, name="again", build_at=monday, clock=clock)
        await again.start()
        again.shutdown()
    built = [e for e in seen if isinstance(e, jobs.RotaBuilt)]
    assert [(e.district, e.week) for e in built] == [(district, str(this.next()))]
