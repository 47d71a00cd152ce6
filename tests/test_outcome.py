"""Coverage per pair, one rule (`schedules.outcome`): each invited centre of a meeting is
covered or missed on its own, and the live path, the scheduler's close and the weekly
report agree on it."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlmodel import select
from test_scheduler import WEDNESDAY, open_the_rest_of_the_week, slot

from dispatch import calls, centres
from dispatch.clock import SetClock
from dispatch.events import Event
from dispatch.settings import Settings
from logs import coverage
from schedules import jobs, outcome, plans, slots
from schedules.plans import RotaSlot
from schedules.workdays import IsoWeek
from web.app import create_app
from web.appkeys import BUS, SCHEDULER, SWITCHBOARD
from web.schema import open_database

from conftest import Cast, bearer, make_token, wait_for


def test_each_callee_is_covered_or_missed_on_its_own() -> None:
    one = outcome.slot_outcome(("t", "v1", "v2"), {"v1"})
    assert one.status == plans.HELD and one.covered == ("v1",) and one.missed == ("t", "v2")
    none = outcome.slot_outcome(("t", "v1"), set())
    assert none.status == plans.MISSED and none.missed == ("t", "v1")
    # Covered by another call of the caller's week: neither held here nor missed.
    elsewhere = outcome.slot_outcome(("v1", "v2"), set(), {"v2"})
    assert elsewhere.status == plans.MISSED
    assert elsewhere.elsewhere == ("v2",) and elsewhere.missed == ("v1",)
    assert outcome.slot_outcome(("v1",), {"v1"}).missed == ()


def test_the_rule_for_one_centre() -> None:
    assert outcome.covers(True, 0, 60)
    assert outcome.covers(False, 60, 60) and not outcome.covers(False, 59.9, 60)
    assert not outcome.covers(False, 0, 0)  # no video at all covers nothing


def town_meeting(
    settings: Settings, cast: Cast, villages: int, clock: SetClock
) -> tuple[int, list[str]]:
    """A dispute-screening meeting of town A with its first `villages` villages, starting
    now by `clock` and lasting ten minutes, in this week's stored rota."""
    db = open_database(settings.db_url)
    week = open_the_rest_of_the_week(db, clock)
    with db.session() as s:
        invited = tuple(v.code for v in centres.children(s, cast.town_a)[:villages])
        assert len(invited) == villages
        start = clock.local() + timedelta(seconds=1)
        planned = slots.PlannedSlot(kind="screening", caller=cast.town_a, callees=invited,
                                    start=start, end=start + timedelta(minutes=10), console=1)
        record = plans.get_week(s, cast.district, week)
        if record is None:
            result = slots.RotaResult(
                week_start=week.monday, district=cast.district, workdays=tuple(week.days()),
                exempt=False, slots=(), unplaced=(), warnings=(), seed=0, spot_check_seed=0,
            )  # fmt: skip
            record = plans.save_result(s, week, result, "test")
        slot_id = plans.add_slot(s, record.id or 0, planned, makeup_of=None).id or 0
    db.close()
    return slot_id, list(invited)


async def test_a_town_meeting_where_one_village_of_five_answers(
    aiohttp_client, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    clock = SetClock(WEDNESDAY)  # the rest of the week has room for the make-up
    slot_id, villages = town_meeting(demo_settings, cast, 5, clock)
    app = create_app(demo_settings, clock=clock)
    client: TestClient = await aiohttp_client(app)
    seen: list[Event] = []
    app[BUS].subscribe(seen.append)
    town = bearer(make_token(demo_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", json={"slot_id": slot_id}, headers=town)
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    present = villages[0]
    resp = await client.post(f"/api/v1/calls/{call_id}/accept",
                             headers=bearer(make_token(demo_settings, present)))  # fmt: skip
    assert resp.status == 200
    board = app[SWITCHBOARD]
    await board.record(call_id, calls.JOINED, present)
    # What the media room records once the village's video has been live long enough:
    await board.record(call_id, calls.VERIFIED, present, seconds_live=60, max_faces=1)

    db = open_database(demo_settings.db_url)
    try:
        # The live path: the meeting is held at the village's verified video …
        await wait_for(lambda: slot(db, slot_id).status == plans.HELD)
        await board.end(call_id, "done")
        # … and the scheduler's close (the job the scheduler runs at the slot's end)
        # keeps it held and books one make-up for the four villages that missed it.
        await app[SCHEDULER].close_slot(slot_id)
        assert slot(db, slot_id).status == plans.HELD and slot(db, slot_id).closed_at
        with db.session() as s:
            made = list(s.exec(select(RotaSlot).where(RotaSlot.makeup_of == slot_id)))
        (makeup,) = made
        assert makeup.kind == "makeup" and makeup.callees == villages[1:]
        assert makeup.caller_code == cast.town_a
        missed = [e for e in seen if isinstance(e, jobs.SlotMissed)]
        assert len(missed) == 1 and missed[0].held and missed[0].makeup_slot_id == makeup.id
        assert list(missed[0].callees) == villages[1:]
    finally:
        db.close()

    # The weekly report: that village covered; the other four still pending this week
    # (their make-up is ahead), and missed (no answer) once the week is read as ended.
    week = IsoWeek.containing(clock.today())
    resp = await client.get(f"/api/v1/reports/weekly?week={week}&format=json", headers=town)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["state"] == "in_progress"
    pairs = {(p["caller"], p["callee"]): p for p in report["pairs"]}
    assert pairs[(cast.town_a, present)]["status"] == "covered"
    for village in villages[1:]:
        assert pairs[(cast.town_a, village)]["status"] == "pending", village
        assert makeup.id in pairs[(cast.town_a, village)]["slot_ids"]
    db = open_database(demo_settings.db_url)
    try:
        with db.session() as s:
            ended = coverage.weekly_report(s, cast.district, week)
    finally:
        db.close()
    after = {(p.caller, p.callee): p for p in ended.pairs}
    assert after[(cast.town_a, present)].status == "covered"
    for village in villages[1:]:
        assert after[(cast.town_a, village)].status == "missed", village
        assert after[(cast.town_a, village)].reason == "no_answer"


async def test_a_meeting_nobody_attended_is_missed_with_a_makeup_for_all(
    aiohttp_client, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    clock = SetClock(WEDNESDAY)
    slot_id, villages = town_meeting(demo_settings, cast, 3, clock)
    app = create_app(demo_settings, clock=clock)
    await aiohttp_client(app)
    await app[SCHEDULER].close_slot(slot_id)
    db = open_database(demo_settings.db_url)
    try:
        assert slot(db, slot_id).status == plans.MISSED
        with db.session() as s:
            (makeup,) = s.exec(select(RotaSlot).where(RotaSlot.makeup_of == slot_id))
        assert makeup.callees == villages
    finally:
        db.close()
