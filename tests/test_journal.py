"""The dispatch journal: derived from a call's events, sealed by sign-off into its
district's hash chain, kept read-only by triggers, and checked by verify — which names
the exact sequence number of any tampering."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel

from dispatch import accounts, calls, demo
from dispatch.centres import Centre, utcnow
from dispatch.db import Database
from dispatch.errors import Conflict, InvalidInput
from dispatch.events import EventBus
from dispatch.settings import Settings
from dispatch.switchboard import Switchboard
from logs import journal, seal
from logs.journal import JournalEntry
from schedules.workdays import IsoWeek
from web.schema import open_database

from conftest import PG_URL, Cast, fresh_pg

SECRET = b"k" * 44
DISTRICT = demo.DEMO_DISTRICT_CODE


def prepare(db: Database) -> Database:
    # web/schema.py does not import logs yet, so the journal tables are created here.
    SQLModel.metadata.create_all(db.engine)
    seal.install_triggers(db.engine)
    seal.install_triggers(db.engine)  # idempotent
    return db


@pytest.fixture
def demo_db(demo_settings: Settings) -> Iterator[Database]:
    db = prepare(open_database(demo_settings.db_url))
    yield db
    db.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not PG_URL, reason="DISPATCH_TEST_PG_URL is not set"),
        ),
    ]
)
def store(request: pytest.FixtureRequest, demo_settings: Settings) -> Iterator[Database]:
    """The demo district on SQLite, and on PostgreSQL when a test server is given."""
    if request.param == "sqlite":
        db = open_database(demo_settings.db_url)
    else:
        db = fresh_pg(PG_URL)
        with db.session() as s:
            demo.load_demo(s, "district")
    yield prepare(db)
    db.close()


def scope_of(db: Database, username: str) -> accounts.Scope:
    with db.session() as s:
        account = s.exec(accounts.select(accounts.Account).where(
            accounts.Account.username == username)).one()  # fmt: skip
        return accounts.scope_for(s, account)


async def launch(board: Switchboard, who: str, callees: list[str], kind: str = "inspection") -> int:
    launched, _ = await board.launch(
        scope_of(board.db, who), callees, kind=kind, slot_id=None,
        answer_deadline_seconds=60, min_verified_seconds=60,
    )  # fmt: skip
    return launched.call.id or 0


async def ended_call(board: Switchboard, caller: str, callee: str) -> int:
    """A minimal attended call: answered, joined, verified, left, ended."""
    call_id = await launch(board, caller, [callee])
    await board.answer(call_id, callee, accept=True)
    await board.record(call_id, calls.JOINED, callee)
    await board.record(call_id, calls.VERIFIED, callee, seconds_live=61.0, max_faces=1)
    await board.record(call_id, calls.LEFT, callee, reason="left the call", seconds_live=62.5)
    await board.end(call_id, "done")
    return call_id


def load(db: Database, call_id: int) -> journal.Journal:
    with db.session() as s:
        return journal.load_journal(s, call_id)


def sign(db: Database, call_id: int, by: str = "operator") -> JournalEntry:
    with db.session() as s:
        return seal.sign_off(s, call_id, by)


def verify(db: Database, **kwargs: object) -> seal.VerifyReport:
    with db.session() as s:
        return seal.verify_chain(s, **kwargs)  # type: ignore[arg-type]


def run_sql(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def drop_triggers(db: Database, table: str) -> None:
    """What an attacker with database access does first."""
    if db.engine.dialect.name == "sqlite":
        for name, on, *_ in seal.SQLITE_TRIGGERS:
            if on == table:
                run_sql(db, f"DROP TRIGGER {name}")
    else:
        for name, on, _body in seal.PG_TRIGGERS:
            if on == table:
                run_sql(db, f"DROP TRIGGER {name} ON {on}")


# --- derivation -------------------------------------------------------------------------


async def test_a_meetings_journal_from_its_events(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    callees = [cast.town_a, cast.village_a1, cast.village_a2, cast.village_b1]
    call_id = await launch(board, cast.district, callees, kind="meeting")
    with demo_db.session() as s:
        journal.set_notes(s, call_id, "周调度", "各镇汇报本周矛盾纠纷排查情况", "district-op")
    await board.answer(call_id, cast.town_a, accept=True)
    await board.answer(call_id, cast.village_a1, accept=True)  # answers, never joins
    await board.answer(call_id, cast.village_a2, accept=False)
    await board.record(call_id, calls.JOINED, cast.district)  # the operator's own presence
    town = cast.town_a
    await board.record(call_id, calls.JOINED, town)
    await board.record(call_id, calls.VIDEO_LIVE, town)
    await board.record(call_id, calls.FACES_SEEN, town, faces=1)
    await board.record(call_id, calls.SNAPSHOT, town, why="answer", path="/s/answer.jpg",
                       sha256="ab" * 32, width=640, height=480)  # fmt: skip
    await board.record(call_id, calls.FACES_SEEN, town, faces=3)
    await board.record(call_id, calls.VERIFIED, town, seconds_live=61.0, max_faces=3)
    went = time.time()  # the connection went silent before the leave was recorded
    await board.record(call_id, calls.LEFT, town, reason="network", seconds_live=70.5, went_at=went)
    await board.record(call_id, calls.JOINED, town)  # a reload: a new interval
    await board.record(call_id, calls.FACES_SEEN, town, faces=2)
    await board.end(call_id, "done")  # the second stay is still open here
    board.close()

    j = load(demo_db, call_id)
    assert (j.caller, j.caller_name) == (cast.district, "达川区")
    assert (j.kind, j.state) == ("meeting", "ended")
    assert (j.agenda, j.notes, j.interrupted, j.district) == (
        "周调度", "各镇汇报本周矛盾纠纷排查情况", False, DISTRICT,
    )  # fmt: skip
    with demo_db.session() as s:
        stored = calls.events(s, call_id)
    assert [e["id"] for e in j.events] == [r.id for r in stored]
    by = {c.centre: c for c in j.centres}
    assert list(by) == sorted(callees)  # the caller is not an invited centre

    t = by[town]
    assert t.answer == "answered" and t.why_not == "" and t.name
    assert t.seconds_to_answer is not None and 0 <= t.seconds_to_answer < 5
    assert len(t.intervals) == 2
    first, second = t.intervals
    assert first.left == datetime.fromtimestamp(went, UTC) and first.left_reason == "network"
    assert second.joined >= first.joined and second.left == j.ended_at
    assert second.left_reason == "call ended"
    assert (t.video_verified, t.seconds_verified_video, t.max_faces) == (True, 70.5, 3)
    assert [(x["why"], x["path"], x["sha256"]) for x in t.snapshots] == [
        ("answer", "/s/answer.jpg", "ab" * 32)
    ]

    assert (by[cast.village_a1].answer, by[cast.village_a1].why_not) == ("answered", "offline")
    assert by[cast.village_a1].intervals == () and not by[cast.village_a1].video_verified
    assert (by[cast.village_a2].answer, by[cast.village_a2].why_not) == ("declined", "declined")
    assert by[cast.village_a2].seconds_to_answer is None
    assert (by[cast.village_b1].answer, by[cast.village_b1].why_not) == (
        "not_answered", "no answer",
    )  # fmt: skip
    assert json.loads(json.dumps(j.as_dict()))["centres"][0]["intervals"] is not None


async def test_an_interrupted_calls_journal_is_flagged_and_complete(
    demo_db: Database, cast: Cast
) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    call_id = await launch(board, cast.town_a, [cast.village_a1, cast.village_a2])
    await board.answer(call_id, cast.village_a1, accept=True)
    await board.record(call_id, calls.JOINED, cast.village_a1)
    last = await board.record(call_id, calls.VIDEO_LIVE, cast.village_a1)
    board.close()  # the server dies with the call open
    with demo_db.session() as s:
        calls.interrupt_open_calls(s)
    j = load(demo_db, call_id)
    assert j.interrupted and j.state == "interrupted"
    assert [e["kind"] for e in j.events] == [
        "invited", "rang", "invited", "rang", "answered", "joined", "video_live", "interrupted",
    ]  # fmt: skip
    (stay,) = {c.centre: c for c in j.centres}[cast.village_a1].intervals
    # Presence is known up to the last event before the crash, not up to the restart.
    assert stay.left == datetime.fromisoformat(last.at) and stay.left_reason == "server stopped"
    assert {c.centre: c for c in j.centres}[cast.village_a2].answer == "not_answered"
    entry = sign(demo_db, call_id)  # an interrupted call is signed off like an ended one
    assert json.loads(entry.canonical or "")["interrupted"] is True


async def test_an_open_interval_of_a_live_call_stays_open(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    call_id = await launch(board, cast.town_a, [cast.village_a1, cast.village_a2])
    await board.answer(call_id, cast.village_a1, accept=True)
    await board.record(call_id, calls.JOINED, cast.village_a1)
    board.close()
    by = {c.centre: c for c in load(demo_db, call_id).centres}
    assert by[cast.village_a1].intervals[0].left is None
    assert by[cast.village_a1].intervals[0].left_reason == "still open"
    assert by[cast.village_a2].answer == "pending"


# --- sign-off and amendments -----------------------------------------------------------


async def test_sign_off_only_after_the_end_and_only_once(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    call_id = await launch(board, cast.town_a, [cast.village_a1])
    with pytest.raises(Conflict, match="still ringing"):
        sign(demo_db, call_id)
    await board.answer(call_id, cast.village_a1, accept=True)
    with pytest.raises(Conflict, match="still live"):
        sign(demo_db, call_id)
    with pytest.raises(InvalidInput, match="by"):
        sign(demo_db, call_id, by=" ")
    await board.end(call_id, "done")
    board.close()
    with demo_db.session() as s:
        journal.set_notes(s, call_id, "巡查", "无异常", "town-op")
    entry = sign(demo_db, call_id, "town-op")
    assert (entry.sealed, entry.seq, entry.prev_sha256) == (True, 1, seal.GENESIS)
    assert entry.district_code == DISTRICT
    canonical = entry.canonical or ""
    assert entry.sha256 == hashlib.sha256((seal.GENESIS + canonical).encode()).hexdigest()
    parsed = json.loads(canonical)
    assert canonical == json.dumps(parsed, sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False)  # fmt: skip
    assert "无异常" in canonical and "seal" not in parsed and "amendments" not in parsed
    assert parsed["signed_by"] == "town-op" and parsed["signed_at"].endswith("+00:00")
    j = load(demo_db, call_id)
    assert seal.canonical_json(j) == canonical
    assert j.seal == journal.SealInfo(1, entry.sha256 or "", seal.GENESIS)
    with pytest.raises(Conflict, match="already signed off"):
        sign(demo_db, call_id)
    with pytest.raises(Conflict, match="sealed"), demo_db.session() as s:
        journal.set_notes(s, call_id, "巡查", "改写", "town-op")
    assert load(demo_db, call_id).notes == "无异常"


async def test_amendments_are_appended_with_reason_and_author(
    demo_db: Database, cast: Cast
) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    call_id = await ended_call(board, cast.town_a, cast.village_a1)
    board.close()
    with pytest.raises(Conflict, match="not signed off"), demo_db.session() as s:
        seal.amend(s, call_id, "town-op", "typo", "x")
    entry = sign(demo_db, call_id)
    with pytest.raises(InvalidInput, match="reason"), demo_db.session() as s:
        seal.amend(s, call_id, "town-op", "  ", "补充说明")
    with demo_db.session() as s:
        first = seal.amend(s, call_id, "town-op", "漏记参会人", "村网格员李四也参加")
        second = seal.amend(s, call_id, "district-op", "更正时间", "实际开始时间为9:05")
    assert (first.n, second.n) == (1, 2)
    assert first.prev_sha256 == entry.sha256 and second.prev_sha256 == first.sha256
    assert second.sha256 == seal.chain_hash(first.sha256, seal.canonical_amendment(second))
    j = load(demo_db, call_id)
    assert [(a["author"], a["reason"]) for a in j.amendments] == [
        ("town-op", "漏记参会人"), ("district-op", "更正时间"),
    ]  # fmt: skip
    assert seal.canonical_json(j) == entry.canonical  # amendments never change the seal
    for sql in ("UPDATE journal_amendment SET text = 'x' WHERE n = 1",
                "DELETE FROM journal_amendment WHERE n = 2"):  # fmt: skip
        with pytest.raises(IntegrityError, match="read-only"):
            run_sql(demo_db, sql)
    assert verify(demo_db).ok
    drop_triggers(demo_db, "journal_amendment")
    run_sql(demo_db, "UPDATE journal_amendment SET text = '改过' WHERE n = 1")
    (problem,) = verify(demo_db).problems
    assert problem.seq == 1
    assert problem.what == f"journal {call_id} amendment 1: sha256 does not match its text"


# --- the chain: triggers and tampering -------------------------------------------------


async def sealed_three(db: Database, cast: Cast) -> list[JournalEntry]:
    board = Switchboard(db, EventBus(), SECRET)
    entries = []
    for caller, callee in ((cast.town_a, cast.village_a1), (cast.district, cast.town_b),
                           (cast.town_b, cast.village_b1)):  # fmt: skip
        entries.append(sign(db, await ended_call(board, caller, callee)))
    board.close()
    return entries


async def test_three_sealed_journals_form_a_chain(store: Database, cast: Cast) -> None:
    one, two, three = await sealed_three(store, cast)
    assert [e.seq for e in (one, two, three)] == [1, 2, 3]
    assert (two.prev_sha256, three.prev_sha256) == (one.sha256, two.sha256)
    report = verify(store)
    assert report.ok and report.problems == []
    assert (report.districts, report.journals) == (1, 3)
    assert report.heads == {DISTRICT: seal.ChainHead(3, three.sha256 or "")}
    assert verify(store, district=DISTRICT, published={DISTRICT: (3, three.sha256)}).ok
    assert "head seq 3" in "\n".join(report.lines())


async def test_the_database_refuses_edits_of_sealed_rows(store: Database, cast: Cast) -> None:
    one, _two, _three = await sealed_three(store, cast)
    board = Switchboard(store, EventBus(), SECRET)
    open_id = await launch(board, cast.town_a, [cast.village_a2])
    board.close()
    refused = [
        "UPDATE journal SET canonical = '{}' WHERE seq = 2",
        "UPDATE journal SET sealed = false WHERE seq = 2",
        "DELETE FROM journal WHERE seq = 2",
        f"UPDATE attendance_event SET data = '{{}}' WHERE call_id = {one.call_id}",
        f"DELETE FROM attendance_event WHERE call_id = {one.call_id}",
    ]
    for sql in refused:
        with pytest.raises(IntegrityError, match="read-only"):
            run_sql(store, sql)
    # Rows of calls not yet sealed are not the triggers' business.
    with store.session() as s:
        journal.set_notes(s, open_id, "", "first draft", "town-op")
    run_sql(store, f"UPDATE journal SET notes = 'second draft' WHERE call_id = {open_id}")
    assert load(store, open_id).notes == "second draft"
    assert verify(store).ok


async def test_two_sign_offs_at_once_never_fork_the_chain(store: Database, cast: Cast) -> None:
    board = Switchboard(store, EventBus(), SECRET)
    first = await ended_call(board, cast.town_a, cast.village_a1)
    second = await ended_call(board, cast.town_b, cast.village_b1)
    board.close()
    failed: list[Exception] = []

    def other() -> None:
        try:
            sign(store, second)
        except (IntegrityError, OperationalError) as exc:
            failed.append(exc)

    with Session(store.engine) as s:
        seal.sign_off(s, first, "a")  # flushed, not committed: the other waits on it
        racer = threading.Thread(target=other)
        racer.start()
        await asyncio.sleep(0.5)
        s.commit()
    racer.join(30)
    seqs = sorted(e.seq or 0 for e in (load_entry(store, first), load_entry(store, second)) if e)
    if store.engine.dialect.name == "postgresql":
        # Both read max(seq) = 0; the unique (district, seq) index refuses the second.
        assert len(failed) == 1 and isinstance(failed[0], IntegrityError) and seqs == [1]
    else:
        # SQLite: the second writer waits for the lock, then reads the new head.
        assert failed == [] and seqs == [1, 2]
    assert verify(store).ok


def load_entry(db: Database, call_id: int) -> JournalEntry | None:
    with db.session() as s:
        entry = s.get(JournalEntry, call_id)
        return entry if entry is not None and entry.sealed else None


async def test_an_edited_sealed_text_is_found_at_its_seq(store: Database, cast: Cast) -> None:
    _one, two, _three = await sealed_three(store, cast)
    drop_triggers(store, "journal")
    forged = (two.canonical or "").replace('"done"', '"forged"')
    run_sql(store, "UPDATE journal SET canonical = :c WHERE seq = 2", c=forged)
    report = verify(store)
    assert not report.ok and {p.seq for p in report.problems} == {2}
    assert report.problems[0].what.startswith("broken link: sha256")
    # Recomputing the forged row's hash moves the break to the next link, and the
    # events still contradict the forged text.
    run_sql(store, "UPDATE journal SET sha256 = :h WHERE seq = 2",
            h=seal.chain_hash(two.prev_sha256 or "", forged))  # fmt: skip
    found = {(p.seq, p.what.split(":")[0]) for p in verify(store).problems}
    assert found == {(2, f"journal {two.call_id}"), (3, "broken link")}


async def test_a_deleted_sealed_journal_is_a_missing_seq(store: Database, cast: Cast) -> None:
    _one, two, three = await sealed_three(store, cast)
    drop_triggers(store, "journal")
    run_sql(store, "DELETE FROM journal WHERE seq = 2")
    report = verify(store)
    assert report.problems == [seal.Problem(DISTRICT, 2, "missing sequence number 2 (漏号)")]
    # Deleting the head leaves a consistent shorter chain: the published head shows it.
    run_sql(store, "DELETE FROM journal WHERE seq = 3")
    published = {DISTRICT: (3, three.sha256 or "")}
    problems = verify(store, published=published).problems
    assert seal.Problem(DISTRICT, 3, "the published head seq 3 is gone") in problems
    assert two.call_id  # the deleted journal's call and events are still there


async def test_an_edited_event_of_a_sealed_call_is_found(store: Database, cast: Cast) -> None:
    one, two, _three = await sealed_three(store, cast)
    with store.session() as s:
        answered = next(r for r in calls.events(s, two.call_id) if r.kind == calls.ANSWERED)
        joined = next(r for r in calls.events(s, one.call_id) if r.kind == calls.JOINED)
    drop_triggers(store, "attendance_event")
    run_sql(store, "UPDATE attendance_event SET data = :d WHERE id = :i",
            d=json.dumps({"seconds_to_answer": 0.1}), i=answered.id)  # fmt: skip
    (problem,) = verify(store).problems
    assert problem.seq == 2 and f"event {answered.id} edited" in problem.what
    run_sql(store, "DELETE FROM attendance_event WHERE id = :i", i=joined.id)
    problems = verify(store).problems
    assert [p.seq for p in problems] == [1, 2]
    assert f"event {joined.id} deleted" in problems[0].what


async def test_verify_checks_1000_sealed_journals(demo_db: Database, cast: Cast) -> None:
    started = utcnow() - timedelta(minutes=5)
    with demo_db.session() as s:
        for _ in range(1000):
            call = calls.Call(caller_code=cast.town_a, operator="town-op", kind="inspection",
                              state=calls.ENDED, started_at=started, ended_at=utcnow())  # fmt: skip
            s.add(call)
            s.flush()
            s.add(calls.Invitation(call_id=call.id or 0, centre_code=cast.village_a1))
            for kind in (calls.INVITED, calls.RANG, calls.ANSWERED, calls.JOINED, calls.LEFT):
                calls.record(s, call, kind, cast.village_a1)
            calls.record(s, call, calls.CALL_ENDED, None, reason="done")
            seal.sign_off(s, call.id or 0, "town-op")
    report = verify(demo_db)
    assert report.ok and report.journals == 1000 and report.heads[DISTRICT].seq == 1000


# --- listing ------------------------------------------------------------------------------


async def test_list_journals_by_scope_and_filters(demo_db: Database, cast: Cast) -> None:
    board = Switchboard(demo_db, EventBus(), SECRET)
    patrol = await ended_call(board, cast.town_a, cast.village_a1)
    meeting = await launch(board, cast.district, [cast.town_b, cast.village_a2], kind="meeting")
    board.close()
    with demo_db.session() as s:
        calls.interrupt_open_calls(s)
    sign(demo_db, patrol)

    def ids(**kw: object) -> list[int]:
        with demo_db.session() as s:
            return [x.call_id for x in journal.list_journals(s, **kw)]  # type: ignore[arg-type]

    def path(code: str) -> str:
        with demo_db.session() as s:
            return s.get(Centre, code).path  # type: ignore[union-attr]

    assert ids() == [meeting, patrol]
    assert ids(under_path=path(cast.village_a1)) == [patrol]
    assert ids(under_path=path(cast.village_a2)) == [meeting]  # invited, not the caller
    assert ids(under_path=path(cast.town_a)) == [meeting, patrol]
    assert ids(under_path=path(cast.village_b1)) == []
    assert ids(centre=cast.town_b) == [meeting]
    assert ids(interrupted=True) == [meeting] and ids(interrupted=False) == [patrol]
    assert ids(unsigned=True) == [meeting] and ids(unsigned=False) == [patrol]
    this_week = IsoWeek.containing(utcnow().astimezone(journal.SHANGHAI).date())
    assert ids(week=this_week) == [meeting, patrol] and ids(week=this_week.previous()) == []
    with demo_db.session() as s:
        summary = journal.list_journals(s, centre=cast.village_a1)[0]
    assert (summary.centres, summary.verified, summary.signed, summary.kind) == (
        1, 1, True, "inspection",
    )  # fmt: skip
