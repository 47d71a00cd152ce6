"""The weekly coverage compliance report: figures checked against values worked out by
hand from a small scenario played through real calls in a past week of the demo district
— covered, no answer, declined, no video, never launched, not scheduled, a make-up —
plus exempt weeks, misses running over weeks, scope, issues and the chain head."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

import pytest
from sqlmodel import col, delete, select

from dispatch import accounts, calls, centres
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.errors import InvalidInput, NotAuthorised
from dispatch.events import EventBus
from dispatch.settings import Settings
from dispatch.switchboard import Switchboard
from logs import coverage, issues, seal
from schedules import planner, plans, workdays
from schedules.plans import RotaSlot, RotaSlotCallee
from schedules.workdays import IsoWeek
from web.schema import open_database

from conftest import Cast

SECRET = b"k" * 44
W44, W45, W46 = IsoWeek(2026, 44), IsoWeek(2026, 45), IsoWeek(2026, 46)
BUILT_AT = datetime(2025, 1, 1, tzinfo=SHANGHAI)  # long before the weeks built
DEADLINE = 60  # the default policy's answer_deadline_seconds
MIN_VIDEO = 60  # and min_verified_seconds


@pytest.fixture
def db(demo_settings: Settings) -> Iterator[Database]:
    database = open_database(demo_settings.db_url)
    yield database
    database.close()


@pytest.fixture
def board(db: Database) -> Iterator[Switchboard]:
    switchboard = Switchboard(db, EventBus(), SECRET)
    yield switchboard
    switchboard.close()


def scope_of(db: Database, username: str) -> accounts.Scope:
    with db.session() as s:
        stmt = select(accounts.Account).where(accounts.Account.username == username)
        return accounts.scope_for(s, s.exec(stmt).one())


def build(db: Database, district: str, week: IsoWeek) -> int:
    with db.session() as s:
        return planner.build_week(s, district, week, now=BUILT_AT).id or 0


def at(week: IsoWeek, weekday: int, hour: int, minute: int = 0) -> datetime:
    """A moment in `week` (weekday 0 = Monday), Asia/Shanghai."""
    return datetime.combine(week.monday + timedelta(days=weekday), time(hour, minute), SHANGHAI)


def slots(db: Database, week_id: int) -> list[RotaSlot]:
    with db.session() as s:
        return plans.week_slots(s, week_id)


def slot_of(found: list[RotaSlot], kind: str, caller: str, callee: str) -> RotaSlot:
    (slot,) = [x for x in found if x.kind == kind and x.caller_code == caller
               and callee in x.callees]  # fmt: skip
    return slot


def move(db: Database, call_id: int, when: datetime) -> None:
    """Shift a call and everything it recorded so that it was launched at `when`."""
    with db.session() as s:
        call = calls.get_call(s, call_id)
        delta = when - call.created_at
        call.created_at += delta
        call.started_at = call.started_at + delta if call.started_at else None
        call.ended_at = call.ended_at + delta if call.ended_at else None
        s.add(call)
        for invite in calls.invitations(s, call_id):
            invite.rang_at += delta
            invite.answered_at = invite.answered_at + delta if invite.answered_at else None
            s.add(invite)
        for row in calls.events(s, call_id):
            row.at += delta
            s.add(row)


async def launch(board: Switchboard, who: str, callees: list[str], slot_id: int | None) -> int:
    """Launch a call now, ringing for up to 300 s (longer than the policy's deadline, so
    that a late answer can be recorded); `finish` moves it into the week."""
    launched, _tokens = await board.launch(
        scope_of(board.db, who), callees, kind="inspection" if slot_id is None else "slot",
        slot_id=slot_id, answer_deadline_seconds=300, min_verified_seconds=MIN_VIDEO,
    )  # fmt: skip
    return launched.call.id or 0


async def answer(board: Switchboard, call_id: int, centre: str, after: float = 5) -> None:
    """The centre answers `after` seconds of ringing."""
    with board.db.session() as s:
        invite = s.get(calls.Invitation, (call_id, centre))
        assert invite is not None
        invite.rang_at = centres.utcnow() - timedelta(seconds=after)
        s.add(invite)
    await board.answer(call_id, centre, accept=True)


async def attend(
    board: Switchboard, call_id: int, centre: str, *, after: float = 5,
    verified: float | None = None, left: float | None = None,
) -> None:  # fmt: skip
    """Answer, join, then a `verified` event and/or a `left` event with seconds of video."""
    await answer(board, call_id, centre, after)
    await board.record(call_id, calls.JOINED, centre)
    if verified is not None:
        await board.record(call_id, calls.VERIFIED, centre, seconds_live=verified, max_faces=1)
    if left is not None:
        await board.record(call_id, calls.LEFT, centre, reason="left", seconds_live=left)


async def finish(board: Switchboard, call_id: int, when: datetime) -> None:
    """End the call, then move it to `when` (the report is about a past week)."""
    await board.end(call_id, "done")
    move(board.db, call_id, when)


def report(db: Database, week: IsoWeek, who: str | None = None) -> coverage.WeeklyReport:
    scope = scope_of(db, who) if who else None
    with db.session() as s:
        district = centres.roots(s)[0].code
        return coverage.weekly_report(s, district, week, scope=scope)


@dataclass(frozen=True)
class Tree:
    district: str
    towns: dict[str, list[str]]  # town → its villages, code order
    names: dict[str, str]


def tree_of(db: Database) -> Tree:
    with db.session() as s:
        district = centres.roots(s)[0]
        towns = {t.code: [v.code for v in centres.children(s, t.code)]
                 for t in centres.children(s, district.code)}  # fmt: skip
        names = {c.code: c.name for c in centres.all_below(s, district, include_self=True)}
    return Tree(district.code, towns, names)


def all_pairs(tree: Tree) -> dict[tuple[str, str], str]:
    """Every required pair → the town it counts under (worked out from the hierarchy)."""
    out = {}
    for town, villages in tree.towns.items():
        out[(tree.district, town)] = town
        for v in villages:
            out[(tree.district, v)] = town
            out[(town, v)] = town
    return out


def pct(covered: int, required: int) -> float:
    return float(f"{100 * covered / required + 1e-9:.1f}")


# --- the scenario of week 2026-W46 ------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    tree: Tree
    town_a: str
    town_b: str
    town_c: str
    va: list[str]
    vb1: str
    expected: dict[tuple[str, str], tuple[str, str | None]]  # pair → (status, reason)
    on_time: dict[tuple[str, str], bool | None]
    makeups: set[tuple[str, str]]
    meeting_a: int  # call ids
    makeup_call: int
    patrol_slot_va1: int
    makeup_slot: int


async def play_w46(db: Database, board: Switchboard, cast: Cast) -> Scenario:
    tree = tree_of(db)
    d, ta, tb = tree.district, cast.town_a, cast.town_b
    tc = next(t for t in tree.towns if t not in (ta, tb))
    va, vb = tree.towns[ta], tree.towns[tb]
    assert cast.village_b1 == vb[0]
    week_id = build(db, d, W46)
    found = slots(db, week_id)
    meeting_a = slot_of(found, "district_meeting", d, ta)
    meeting_b = slot_of(found, "district_meeting", d, tb)
    assert sorted(meeting_a.callees) == sorted([ta, *va])

    # District meeting with town A and its villages, Monday 09:00.
    m_a = await launch(board, d, list(meeting_a.callees), meeting_a.id)
    await attend(board, m_a, ta, after=12, verified=75)  # covered, on time
    await attend(board, m_a, va[0], after=80, verified=64)  # covered, answered late
    await board.answer(m_a, va[1], accept=False)  # declined
    await attend(board, m_a, va[2], left=20)  # 20 s of video: no video
    await attend(board, m_a, va[3], left=90)  # no `verified` event, but 90 s of video
    await finish(board, m_a, at(W46, 0, 9))  # va[4:] never answer

    # District meeting with town B: the town declines, its first village has no video.
    m_b = await launch(board, d, list(meeting_b.callees), meeting_b.id)
    await board.answer(m_b, tb, accept=False)
    await attend(board, m_b, vb[0])
    await finish(board, m_b, at(W46, 1, 9))

    # An ad-hoc inspection of town C covers it without its slot.
    adhoc = await launch(board, d, [tc], None)
    await attend(board, adhoc, tc, verified=61)
    await finish(board, adhoc, at(W46, 2, 15))

    # Town A's patrols: va[0] covered; va[1] unanswered, then made up; va[2] joins
    # without video; va[3]'s slot is deleted (not scheduled); va[4:] never launched.
    p0 = slot_of(found, "town_patrol", ta, va[0])
    c = await launch(board, ta, [va[0]], p0.id)
    await attend(board, c, va[0], after=3, verified=60)
    await finish(board, c, at(W46, 1, 14, 30))
    p1 = slot_of(found, "town_patrol", ta, va[1])
    c = await launch(board, ta, [va[1]], p1.id)
    await finish(board, c, at(W46, 1, 15))
    with db.session() as s:
        missed = plans.get_slot(s, p1.id or 0)
        missed.status = plans.MISSED
        s.add(missed)
        makeup = plans.add_slot(s, week_id, replace(
            missed.planned(), kind="makeup", start=at(W46, 4, 16), end=at(W46, 4, 16, 10),
            reserve=True), makeup_of=p1.id)  # fmt: skip
        makeup_id = makeup.id or 0
    mk = await launch(board, ta, [va[1]], makeup_id)
    await attend(board, mk, va[1], after=30, verified=70)
    await finish(board, mk, at(W46, 4, 16))
    p2 = slot_of(found, "town_patrol", ta, va[2])
    c = await launch(board, ta, [va[2]], p2.id)
    await attend(board, c, va[2], after=61)
    await finish(board, c, at(W46, 1, 15, 30))
    p3 = slot_of(found, "town_patrol", ta, va[3])
    with db.session() as s:
        s.exec(delete(RotaSlotCallee).where(col(RotaSlotCallee.slot_id) == p3.id))
        s.exec(delete(RotaSlot).where(col(RotaSlot.id) == p3.id))

    # Worked out by hand. Everything not named was planned and never launched.
    expected: dict[tuple[str, str], tuple[str, str | None]] = {
        pair: ("missed", "never_launched") for pair in all_pairs(tree)
    }
    expected |= {
        (d, ta): ("covered", None),
        (d, va[0]): ("covered", None),
        (d, va[1]): ("missed", "declined"),
        (d, va[2]): ("missed", "no_video"),
        (d, va[3]): ("covered", None),
        **{(d, v): ("missed", "no_answer") for v in va[4:]},
        (d, tb): ("missed", "declined"),
        (d, vb[0]): ("missed", "no_video"),
        **{(d, v): ("missed", "no_answer") for v in vb[1:]},
        (d, tc): ("covered", None),
        (ta, va[0]): ("covered", None),
        (ta, va[1]): ("covered", None),
        (ta, va[2]): ("missed", "no_video"),
        (ta, va[3]): ("missed", "not_scheduled"),
    }
    on_time: dict[tuple[str, str], bool | None] = {
        (d, ta): True, (d, va[0]): False, (d, va[2]): True, (d, va[3]): True,
        (d, vb[0]): True, (d, tc): True, (ta, va[0]): True, (ta, va[1]): True,
        (ta, va[2]): False,
    }  # fmt: skip
    return Scenario(
        tree, ta, tb, tc, va, vb[0], expected, on_time, {(ta, va[1])}, m_a, mk, p1.id or 0,
        makeup_id,
    )  # fmt: skip


# --- tests ----------------------------------------------------------------------------------


async def test_pairs_and_figures_match_the_hand_count(
    db: Database, board: Switchboard, cast: Cast
) -> None:
    sc = await play_w46(db, board, cast)
    got = report(db, W46)
    assert not got.exempt and got.exempt_reason is None and got.has_rota
    assert got.week == "2026-W46" and got.starts == "2026-11-09T00:00:00+08:00"
    assert got.ends == "2026-11-16T00:00:00+08:00"
    assert got.workdays == tuple(f"2026-11-{d:02d}" for d in range(9, 14))

    pairs = {(p.caller, p.callee): p for p in got.pairs}
    assert set(pairs) == set(sc.expected) and len(got.pairs) == len(sc.expected)
    towns_of = all_pairs(sc.tree)
    for key, (status, reason) in sc.expected.items():
        p = pairs[key]
        assert (p.status, p.reason) == (status, reason), key
        assert p.town == towns_of[key], key
        assert p.kind == ("district" if key[0] == sc.tree.district else "patrol")
        assert p.answered_on_time == sc.on_time.get(key), key
        assert p.makeup_used == (key in sc.makeups), key

    d, ta, va = sc.tree.district, sc.town_a, sc.va
    assert pairs[(d, ta)].seconds_to_answer == pytest.approx(12, abs=0.5)
    assert pairs[(d, ta)].seconds_verified == 75 and pairs[(d, ta)].calls == 1
    assert pairs[(d, ta)].covered_by == sc.meeting_a
    assert pairs[(d, va[0])].seconds_to_answer == pytest.approx(80, abs=0.5)
    assert pairs[(d, va[1])].seconds_to_answer is None and pairs[(d, va[1])].calls == 1
    assert pairs[(d, va[2])].seconds_verified == 20
    assert pairs[(d, va[3])].seconds_verified == 90
    assert pairs[(d, va[4])].answered_on_time is None
    made_up = pairs[(ta, va[1])]
    assert made_up.calls == 2 and made_up.covered_by == sc.makeup_call
    assert made_up.slot_ids == tuple(sorted((sc.patrol_slot_va1, sc.makeup_slot)))
    assert made_up.seconds_to_answer == pytest.approx(30, abs=0.5)
    assert pairs[(ta, va[3])].slot_ids == () and pairs[(ta, va[3])].calls == 0
    assert pairs[(ta, va[4])].slot_ids != () and pairs[(ta, va[4])].calls == 0
    assert pairs[(d, sc.town_c)].slot_ids != () and pairs[(d, sc.town_c)].calls == 1

    # Figures, counted independently from the expectations.
    required = len(sc.expected)
    covered = sum(s == "covered" for s, _ in sc.expected.values())
    assert (required, covered) == (20 + 2 * 278, 6)
    assert (got.required, got.covered) == (required, covered)
    assert got.coverage_pct == pct(covered, required) == 1.0
    reasons = Counter(r for s, r in sc.expected.values() if s == "missed")
    assert got.missed_by_reason == {r: reasons.get(r, 0) for r in coverage.REASONS}
    assert got.makeups_used == 1

    towns = {t.code: t for t in got.towns}
    assert set(towns) == set(sc.tree.towns)
    a = towns[ta]
    # Town A: 1 + 9 + 9 pairs; covered: A itself, va0 and va3 by the district, va0 and
    # va1 (make-up) by patrol → 5/19 = 26.3 %.
    assert (a.required, a.covered, a.missed, a.coverage_pct) == (19, 5, 14, 26.3)
    assert a.missed_by_reason == {"no_answer": 5, "declined": 1, "no_video": 2,
                                  "not_scheduled": 1, "never_launched": 5}  # fmt: skip
    assert a.makeups_used == 1 and a.answered_on_time == 5
    for code, t in towns.items():
        mine = [k for k in sc.expected if towns_of[k] == code]
        n = sum(sc.expected[k][0] == "covered" for k in mine)
        assert (t.required, t.covered, t.coverage_pct) == (len(mine), n, pct(n, len(mine)))
    # Ranked by coverage, then name: A, then C, then the rest by name.
    order = [t.code for t in got.towns]
    assert order[:2] == [ta, sc.town_c]
    rest = sorted((t for t in got.towns[2:]), key=lambda t: t.name)
    assert [t.code for t in got.towns[2:]] == [t.code for t in rest]
    assert [t.rank for t in got.towns] == list(range(1, 21))

    # JSON-ready, and the same rows give the same bytes.
    text = json.dumps(got.as_dict(), ensure_ascii=False, sort_keys=True)
    assert text == json.dumps(report(db, W46).as_dict(), ensure_ascii=False, sort_keys=True)
    assert json.loads(text)["pairs"][0]["slot_ids"] == list(got.pairs[0].slot_ids)


async def test_a_town_operator_sees_only_its_own_town(
    db: Database, board: Switchboard, cast: Cast
) -> None:
    sc = await play_w46(db, board, cast)
    got = report(db, W46, who=sc.town_a)
    assert got.view == sc.town_a
    mine = {k: v for k, v in sc.expected.items() if all_pairs(sc.tree)[k] == sc.town_a}
    assert {(p.caller, p.callee) for p in got.pairs} == set(mine)
    assert [t.code for t in got.towns] == [sc.town_a] and got.towns[0].rank == 1
    assert (got.required, got.covered, got.coverage_pct) == (19, 5, 26.3)
    assert got.makeups_used == 1
    assert all(r.town == sc.town_a for r in got.repeat_misses)
    text = json.dumps(got.as_dict(), ensure_ascii=False)
    for town in sc.tree.towns:
        if town != sc.town_a:
            assert town not in text and sc.tree.names[town] not in text
            for village in sc.tree.towns[town]:
                assert village not in text
    # A village sees its own two pairs; an admin and the district see everything.
    village = report(db, W46, who=sc.va[0])
    assert {(p.caller, p.callee) for p in village.pairs} == {
        (sc.tree.district, sc.va[0]), (sc.town_a, sc.va[0])}  # fmt: skip
    assert (village.required, village.covered, village.coverage_pct) == (2, 2, 100.0)
    assert [t.code for t in village.towns] == [sc.town_a]
    assert report(db, W46, who="admin").required == 576
    assert report(db, W46, who=sc.tree.district).required == 576


async def test_scopes_outside_the_district_are_refused(db: Database, cast: Cast) -> None:
    elsewhere = accounts.Scope(0, "x", accounts.Role.town_operator, "511799001000",
                               "511799000000/511799001000/")  # fmt: skip
    with db.session() as s:
        with pytest.raises(NotAuthorised):
            coverage.weekly_report(s, cast.district, W46, scope=elsewhere)
        with pytest.raises(InvalidInput, match="not a district"):
            coverage.weekly_report(s, cast.town_a, W46)
    build(db, cast.district, W45)  # W46 comes after the first rota: its pairs count
    with db.session() as s:
        # A town operator asks for the whole district: it gets its own part only.
        part = coverage.weekly_report(s, cast.district, W46, scope=scope_of(db, cast.town_b))
        assert {p.town for p in part.pairs} == {cast.town_b}


async def test_no_rota_means_not_scheduled(db: Database, cast: Cast) -> None:
    # Before the district's first rota: "no rota yet" — nothing counted, nobody ranked.
    before = report(db, W46)
    assert before.state == coverage.NO_ROTA_YET and not before.exempt and not before.has_rota
    assert (before.required, before.covered, before.coverage_pct) == (None, None, None)
    assert before.towns == () and before.pairs == () and before.missed_by_reason is None
    # After it, a week without a rota counts every pair as not scheduled.
    build(db, cast.district, W45)
    got = report(db, W46)
    assert got.state == coverage.ENDED and not got.exempt and not got.has_rota
    assert got.required == 576
    assert got.missed_by_reason == {**dict.fromkeys(coverage.REASONS, 0), "not_scheduled": 576}
    assert got.coverage_pct == 0.0


async def test_an_exempt_week_says_so_and_is_skipped_by_runs(
    db: Database, board: Switchboard, cast: Cast
) -> None:
    tree = tree_of(db)
    with db.session() as s:
        for day in W45.days():
            workdays.set_override(s, day, False, "测试：全周放假", "admin")
    build(db, tree.district, W44)
    assert build(db, tree.district, W45)
    with db.session() as s:
        assert plans.get_week(s, tree.district, W45).exempt  # type: ignore[union-attr]
    build(db, tree.district, W46)
    got = report(db, W45)
    assert got.exempt and got.exempt_reason == "本周无工作日（如春节），免于调度"
    assert got.pairs == () and got.towns == () and got.repeat_misses == ()
    assert got.coverage_pct is None and got.required is None and got.covered is None
    assert got.missed_by_reason is None and got.makeups_used is None
    assert got.as_dict()["coverage_pct"] is None
    # Without any rota, a week without a working day is exempt too.
    with db.session() as s:
        for day in IsoWeek(2026, 50).days():
            workdays.set_override(s, day, False, "", "admin")
    assert report(db, IsoWeek(2026, 50)).exempt

    # W44 covered town A; W45 is exempt (skipped); in W46 nothing was done: town A's
    # district pair has missed one week only, everything else two (W44 and W46).
    c = await launch(board, tree.district, [cast.town_a], None)
    await attend(board, c, cast.town_a, verified=66)
    await finish(board, c, at(W44, 2, 10))
    runs = {(r.caller, r.centre): r for r in report(db, W46).repeat_misses}
    assert len(runs) == 575 and (tree.district, cast.town_a) not in runs
    assert {(r.weeks_running, r.since, r.capped) for r in runs.values()} == {(2, "2026-W44", False)}


async def test_misses_running_over_weeks(db: Database, board: Switchboard, cast: Cast) -> None:
    tree = tree_of(db)
    build(db, tree.district, W44)
    w45 = slots(db, build(db, tree.district, W45))
    va = tree.towns[cast.town_a]
    # W44: the district inspects va[5]; W45: town A patrols va[2].
    c = await launch(board, tree.district, [va[5]], None)
    await attend(board, c, va[5], verified=70)
    await finish(board, c, at(W44, 3, 10))
    p2 = slot_of(w45, "town_patrol", cast.town_a, va[2])
    c = await launch(board, cast.town_a, [va[2]], p2.id)
    await attend(board, c, va[2], verified=70)
    await finish(board, c, at(W45, 3, 10))
    sc = await play_w46(db, board, cast)

    got = report(db, W46)
    runs = {(r.caller, r.centre): r for r in got.repeat_misses}
    missed = {k for k, (s, _r) in sc.expected.items() if s == "missed"}
    d = tree.district
    # Missed in W46 and W45 — and in W44 too unless covered then; W43 has no rota (the
    # district's history starts in W44), so no run goes further back.
    assert set(runs) == missed - {(cast.town_a, va[2])}
    assert runs[(d, va[5])].weeks_running == 2 and runs[(d, va[5])].since == "2026-W45"
    others = [r for k, r in runs.items() if k != (d, va[5])]
    assert {(r.weeks_running, r.since, r.capped) for r in others} == {(3, "2026-W44", False)}
    assert got.repeat_misses[0].weeks_running == 3  # longest runs first
    r = runs[(cast.town_a, va[3])]
    assert (r.kind, r.town, r.centre_name) == ("patrol", cast.town_a, tree.names[va[3]])


async def test_issues_of_the_week(db: Database, cast: Cast) -> None:
    town_a, district = scope_of(db, cast.town_a), scope_of(db, cast.district)
    with db.session() as s:
        i1 = issues.raise_issue(s, town_a, centre=cast.village_a1, category="dispute",
                                severity="general", parties="甲; 乙", description="邻里纠纷",
                                deadline=None).issue  # fmt: skip
        issues.escalate(s, town_a, i1.id or 0, "需镇级协调")
        i2 = issues.raise_issue(s, district, centre=cast.village_b1, category="hazard",
                                severity="major", parties="", description="山体隐患",
                                deadline=None).issue  # fmt: skip
        i3 = issues.raise_issue(s, town_a, centre=cast.village_a2, category="lead",
                                severity="general", parties="", description="线索",
                                deadline=None).issue  # fmt: skip
        issues.resolve(s, town_a, i3.id or 0, "已核实")
        i4 = issues.raise_issue(s, town_a, centre=cast.town_a, category="anomaly",
                                severity="general", parties="", description="设备异常",
                                deadline=None).issue  # fmt: skip
        issues.escalate(s, town_a, i4.id or 0, "")  # escalated, but in W47
        ids = (i1.id, i2.id, i3.id, i4.id)
    # Raised: i1, i2 in W46, i3 in W45, i4 in W47; i1 escalated and i3 resolved in W46.
    raised_at = dict(zip(ids, (at(W46, 0, 10), at(W46, 2, 10), at(W45, 4, 10),
                               at(IsoWeek(2026, 47), 0, 10)), strict=True))  # fmt: skip
    with db.session() as s:
        for issue_id, when in raised_at.items():
            issue = s.get(issues.Issue, issue_id)
            assert issue is not None
            issue.created_at = when
            if issue.resolved_at is not None:
                issue.resolved_at = at(W46, 3, 11)
            s.add(issue)
            for ch in s.exec(select(issues.IssueChange).where(
                    issues.IssueChange.issue_id == issue_id)):  # fmt: skip
                ch.at = when if ch.action == "raised" else when + timedelta(days=1)
                if ch.action == "resolved":
                    ch.at = at(W46, 3, 11)
                s.add(ch)
    zeros_c = dict.fromkeys(("dispute", "hazard", "lead", "anomaly", "other"), 0)
    zeros_s = {"general": 0, "major": 0}
    whole = report(db, W46).issues
    assert whole.raised.total == 2
    assert whole.raised.by_category == {**zeros_c, "dispute": 1, "hazard": 1}
    assert whole.raised.by_severity == {"general": 1, "major": 1}
    assert whole.escalated.total == 1 and whole.escalated.by_category["dispute"] == 1
    assert whole.resolved.total == 1 and whole.resolved.by_category == {**zeros_c, "lead": 1}
    assert whole.resolved.by_severity == {**zeros_s, "general": 1}
    mine = report(db, W46, who=cast.town_a).issues
    assert mine.raised.total == 1 and mine.raised.by_category["hazard"] == 0
    assert mine.escalated.total == 1 and mine.resolved.total == 1
    assert report(db, W46, who=cast.town_b).issues.raised.by_category["hazard"] == 1
    w47 = report(db, IsoWeek(2026, 47)).issues
    assert (w47.raised.total, w47.escalated.total, w47.resolved.total) == (1, 1, 0)


async def test_the_chain_head_is_published(db: Database, board: Switchboard, cast: Cast) -> None:
    sc = await play_w46(db, board, cast)
    assert report(db, W46).chain_head is None
    with db.session() as s:
        entry = seal.sign_off(s, sc.meeting_a, "511703000000")
        head = (entry.seq, entry.sha256)
    for who in (None, cast.town_a, cast.village_b1):
        got = report(db, W46, who=who)
        assert got.chain_head is not None
        assert (got.chain_head.seq, got.chain_head.sha256) == head == (1, head[1])
        assert got.as_dict()["chain_head"] == {"seq": 1, "sha256": head[1]}


def test_coverage_percent_rounds_half_up() -> None:
    assert coverage.coverage_pct(2, 3) == 66.7
    assert coverage.coverage_pct(1, 8) == 12.5
    assert coverage.coverage_pct(1, 16) == 6.3  # 6.25 → 6.3, not banker's 6.2
    assert coverage.coverage_pct(0, 5) == 0.0
    assert coverage.coverage_pct(0, 0) is None


def test_week_bounds_are_shanghai_mondays() -> None:
    start, end = coverage.week_bounds(W46)
    assert start.astimezone(SHANGHAI) == datetime(2026, 11, 9, tzinfo=SHANGHAI)
    assert end - start == timedelta(days=7) and start.utcoffset() == timedelta(0)
    assert date(2026, 11, 9) == W46.monday
