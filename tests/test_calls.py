"""Calls: who may launch whom, answers and deadlines, join tokens, events written before
they are published, and calls a dead server left open."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from dispatch import accounts, calls
from dispatch.db import Database
from dispatch.errors import Conflict, NotAuthenticated, NotAuthorised
from dispatch.events import Event, EventBus
from dispatch.settings import Settings
from dispatch.switchboard import Switchboard
from web.schema import open_database

from conftest import Cast, wait_for

SECRET = b"k" * 44


@pytest.fixture
def demo_db(demo_settings: Settings) -> Any:
    db = open_database(demo_settings.db_url)
    yield db
    db.close()


def scope_of(db: Database, username: str) -> accounts.Scope:
    with db.session() as s:
        account = s.exec(accounts.select(accounts.Account).where(
            accounts.Account.username == username)).one()  # fmt: skip
        return accounts.scope_for(s, account)


def rows(db: Database, call_id: int) -> list[tuple[str | None, str]]:
    with db.session() as s:
        return [(r.centre_code, r.kind) for r in calls.events(s, call_id)]


async def launch(
    board: Switchboard, db: Database, who: str, callees: list[str], deadline: int = 60
):  # type: ignore[no-untyped-def]
    scope = scope_of(db, who)
    return await board.launch(
        scope, callees, kind="inspection", slot_id=None,
        answer_deadline_seconds=deadline, min_verified_seconds=60,
    )  # fmt: skip


async def test_only_operators_call_centres_below_them(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    (_launched, tokens) = await launch(board, demo_db, cast.town_a, [cast.village_a1])
    assert set(tokens) == {cast.village_a1}
    for who, callees in ((cast.village_a1, [cast.village_a2]), (cast.town_a, [cast.village_b1]),
                         (cast.town_a, [cast.district]), (cast.town_b, [cast.town_b]),
                         ("admin", [cast.town_a])):  # fmt: skip
        with pytest.raises(NotAuthorised):
            await launch(board, demo_db, who, callees)
    with pytest.raises(Conflict, match="already in another call"):
        await launch(board, demo_db, cast.district, [cast.village_a1, cast.village_b1])
    board.close()


async def test_answer_decline_and_events_in_order(demo_db: Database, cast: Cast) -> None:
    bus = EventBus()
    seen: list[Event] = []
    committed: list[int] = []

    def check_committed(event: Event) -> None:
        # Published only after commit: a fresh connection already sees the row.
        if isinstance(event, calls.Attendance):
            with Session(demo_db.engine) as s:
                assert s.get(calls.AttendanceRow, event.event_id) is not None
                committed.append(event.event_id)
        seen.append(event)

    bus.subscribe(check_committed)
    board = Switchboard(demo_db, bus, SECRET)
    launched, _ = await launch(board, demo_db, cast.district, [cast.town_a, cast.village_b1])
    call_id = launched.call.id or 0
    ring = [e for e in seen if isinstance(e, calls.CallRinging)]
    assert {e.callee for e in ring} == {cast.town_a, cast.village_b1}
    await board.answer(call_id, cast.town_a, accept=True)
    await board.answer(call_id, cast.village_b1, accept=False)
    with pytest.raises(Conflict):
        await board.answer(call_id, cast.town_a, accept=True)
    with pytest.raises(NotAuthorised):
        await board.answer(call_id, cast.village_a1, accept=True)
    await board.end(call_id, "done")
    assert rows(demo_db, call_id) == [
        (cast.town_a, "invited"), (cast.town_a, "rang"),
        (cast.village_b1, "invited"), (cast.village_b1, "rang"),
        (cast.town_a, "answered"), (cast.village_b1, "declined"), (None, "ended"),
    ]  # fmt: skip
    answered = next(e for e in seen if isinstance(e, calls.Attendance) and e.kind == "answered")
    assert 0 <= answered.data["seconds_to_answer"] < 5
    assert len(committed) == 7
    with demo_db.session() as s:
        assert calls.get_call(s, call_id).state == calls.ENDED
    board.close()


async def test_a_ring_nobody_answers_ends_as_not_answered(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    launched, _ = await launch(board, demo_db, cast.town_a, [cast.village_a1], deadline=1)
    call_id = launched.call.id or 0
    await wait_for(lambda: rows(demo_db, call_id)[-1] == (None, "ended"), 15)  # deadline passed
    assert rows(demo_db, call_id)[-2:] == [(cast.village_a1, "not_answered"), (None, "ended")]
    with pytest.raises(Conflict):
        await board.answer(call_id, cast.village_a1, accept=True)
    board.close()


def test_join_tokens_are_bound_to_call_centre_and_time() -> None:
    token = calls.join_token(SECRET, 7, "511703001001", 60, now=1000)
    assert calls.check_join_token(SECRET, token, 7, now=1010) == "511703001001"
    with pytest.raises(NotAuthorised, match="not call 8"):
        calls.check_join_token(SECRET, token, 8, now=1010)
    with pytest.raises(NotAuthenticated, match="expired"):
        calls.check_join_token(SECRET, token, 7, now=1061)
    forged = token.replace("511703001001", "511703001002")
    with pytest.raises(NotAuthenticated, match="genuine"):
        calls.check_join_token(SECRET, forged, 7, now=1010)
    with pytest.raises(NotAuthenticated):
        calls.check_join_token(b"x" * 44, token, 7, now=1010)
    with pytest.raises(NotAuthenticated):
        calls.check_join_token(SECRET, "garbage", 7)


async def test_open_calls_are_interrupted_on_restart(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    launched, _ = await launch(board, demo_db, cast.town_a, [cast.village_a1])
    call_id = launched.call.id or 0
    await board.answer(call_id, cast.village_a1, accept=True)
    board.close()  # the process dies here
    after = Switchboard(demo_db, EventBus(), SECRET)
    assert await after.recover() == 1
    assert await after.recover() == 0
    with demo_db.session() as s:
        assert calls.get_call(s, call_id).state == calls.INTERRUPTED
    assert rows(demo_db, call_id)[-1] == (None, "interrupted")
    assert (cast.village_a1, "answered") in rows(demo_db, call_id)
