"""The history generator (logs/history.py): a few weeks of the demo district, checked
for speed, plausibility, determinism, incremental runs and loadable journals."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from dispatch import calls
from dispatch.calls import AttendanceRow, Call, Invitation
from dispatch.centres import Centre
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.demo import DEMO_DISTRICT_CODE
from dispatch.errors import InvalidInput
from dispatch.settings import Settings
from logs import issues
from logs.history import HistorySummary, generate_history
from logs.journal import load_journal
from schedules import plans
from schedules.plans import RotaSlot, RotaSlotCallee, RotaWeek
from schedules.workdays import IsoWeek
from web.schema import open_database

END = IsoWeek(2026, 10)  # W05–W10 holds the Spring Festival week W08: no working day
WEEKS = 6
HORIZON = datetime(2026, 3, 9, tzinfo=SHANGHAI)  # the Monday after END


@dataclass
class Generated:
    db: Database
    summary: HistorySummary


def _fresh(template: Path, target: Path) -> Database:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return open_database(f"sqlite:///{target}")


def _generate(db: Database, **kwargs: Any) -> HistorySummary:
    with db.session() as s:
        return generate_history(s, **{"weeks": WEEKS, "end_week": END, **kwargs})


@pytest.fixture(scope="module")
def generated(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """Six weeks of the demo district, generated once for the read-only checks."""
    db = _fresh(demo_template, tmp_path_factory.mktemp("history") / "dispatch.db")
    lines: list[str] = []
    summary = _generate(db, progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith(DEMO_DISTRICT_CODE)
    yield Generated(db, summary)
    db.close()


def test_six_weeks_generate(generated: Generated) -> None:
    summary = generated.summary
    assert summary.weeks == WEEKS and summary.districts == 1 and summary.rota_weeks == WEEKS
    assert summary.calls > 1000 and summary.events > 20 * summary.calls // 2
    assert 12 <= summary.issues <= 36  # 2–6 a week, none in the exempt week


def test_the_counts_are_plausible(generated: Generated) -> None:
    with generated.db.session() as s:
        slots = s.exec(select(RotaSlot)).all()
        n_calls = s.exec(select(func.count()).select_from(Call)).one()
        weeks = {w.week: w for w in s.exec(select(RotaWeek)).all()}
    assert sorted(weeks) == [f"2026-W{w:02d}" for w in range(5, 11)]
    assert weeks["2026-W08"].exempt and not any(s.week_id == weeks["2026-W08"].id for s in slots)
    assert generated.summary.calls == n_calls and generated.summary.slots == len(slots)
    assert 0.8 <= n_calls / len(slots) <= 1.0
    statuses = Counter(s.status for s in slots)
    assert set(statuses) == {plans.HELD, plans.MISSED}
    assert 0.8 <= statuses[plans.HELD] / len(slots) <= 0.95
    # Every slot played out is reminded and closed, as the scheduler would have done.
    assert all(s.closed_at == s.end + timedelta(minutes=5) and s.reminded_at for s in slots)


def test_every_call_has_ordered_events_and_invitations(generated: Generated) -> None:
    with generated.db.session() as s:
        all_calls = {c.id: c for c in s.exec(select(Call)).all()}
        invites: dict[int, list[Invitation]] = defaultdict(list)
        for i in s.exec(select(Invitation)).all():
            invites[i.call_id].append(i)
        events: dict[int, list[AttendanceRow]] = defaultdict(list)
        for e in s.exec(select(AttendanceRow).order_by(col(AttendanceRow.id))).all():
            events[e.call_id].append(e)
        slots = {x.id: x for x in s.exec(select(RotaSlot)).all()}
    kinds: Counter[str] = Counter()
    for call_id, call in all_calls.items():
        slot = slots[call.slot_id]
        rows = events[call_id]
        assert call.operator == call.caller_code == slot.caller_code and call.kind == slot.kind
        assert call.created_at == slot.start and call.created_at.tzinfo is not None
        assert sorted(i.centre_code for i in invites[call_id]) == sorted(slot.callees)
        assert rows, call_id
        times = [e.at for e in rows]
        assert times == sorted(times), f"call {call_id}: events out of time order"
        assert times[0] == slot.start and all(t.tzinfo is not None for t in times)
        assert rows[-1].kind in (calls.CALL_ENDED, calls.CALL_INTERRUPTED)
        if call.state == calls.ENDED:
            assert call.ended_at == rows[-1].at and rows[-1].kind == calls.CALL_ENDED
            assert call.ended_at is not None and call.ended_at <= slot.end
        else:
            assert call.state == calls.INTERRUPTED and call.end_reason == "server stopped"
            assert calls.CALL_ENDED not in {e.kind for e in rows}
        for e in rows:
            kinds[e.kind] += 1
            if e.kind == calls.VERIFIED:
                assert e.data["seconds_live"] >= call.min_verified_seconds
            if e.kind == calls.ANSWERED:
                assert 0 < e.data["seconds_to_answer"] < call.answer_deadline_seconds
            if e.kind == calls.NOT_ANSWERED:
                assert e.data == {"deadline_seconds": call.answer_deadline_seconds}
    # Every kind of thing the reports must count shows up in six weeks.
    for kind in (calls.DECLINED, calls.NOT_ANSWERED, calls.VIDEO_LOST, calls.CALL_INTERRUPTED,
                 calls.SNAPSHOT, calls.FACES_SEEN, calls.LEFT):  # fmt: skip
        assert kinds[kind] > 0, kind
    late = [e for rows in events.values() for e in rows
            if e.kind == calls.ANSWERED and e.data["seconds_to_answer"] >= 45]  # fmt: skip
    assert late


def test_held_slots_have_a_callee_verified_and_missed_ones_have_none(
    generated: Generated,
) -> None:
    with generated.db.session() as s:
        slots = s.exec(select(RotaSlot)).all()
        by_slot = {c.slot_id: c.id for c in s.exec(select(Call)).all()}
        verified: dict[int, set[str]] = defaultdict(set)
        rows = s.exec(select(AttendanceRow).where(AttendanceRow.kind == calls.VERIFIED)).all()
        for e in rows:
            verified[e.call_id].add(e.centre_code or "")
        callee_rows = s.exec(select(RotaSlotCallee)).all()
    callees: dict[int, set[str]] = defaultdict(set)
    for row in callee_rows:
        callees[row.slot_id].add(row.centre_code)
    never_launched = 0
    for slot in slots:
        assert callees[slot.id or 0] == set(slot.callees)
        call_id = by_slot.get(slot.id)
        if call_id is None:
            never_launched += 1
            assert slot.status == plans.MISSED
            continue
        any_verified = bool(set(slot.callees) & verified[call_id])
        assert (slot.status == plans.HELD) == any_verified, slot.id
    assert never_launched > 0


def test_makeups_follow_missed_slots_in_the_same_week(generated: Generated) -> None:
    with generated.db.session() as s:
        slots = {x.id: x for x in s.exec(select(RotaSlot)).all()}
        weeks = {w.id: w for w in s.exec(select(RotaWeek)).all()}
        verified: dict[int, set[str]] = defaultdict(set)  # slot: callees its call verified
        rows = s.exec(
            select(Call.slot_id, AttendanceRow.centre_code)
            .join(AttendanceRow, col(AttendanceRow.call_id) == col(Call.id))
            .where(AttendanceRow.kind == calls.VERIFIED)
        ).all()
        for slot_id, centre in rows:
            verified[slot_id or 0].add(centre or "")
    makeups = [x for x in slots.values() if x.kind == "makeup"]
    assert makeups
    assert any(m.status == plans.HELD for m in makeups)
    # A held meeting's absent villages get make-ups too, each inviting only the missed.
    assert any(slots[m.makeup_of].status == plans.HELD for m in makeups)
    for m in makeups:
        original = slots[m.makeup_of]
        assert original.kind != "makeup"
        assert m.callees and set(m.callees) <= set(original.callees)
        assert not set(m.callees) & verified[original.id or 0]
        assert m.week_id == original.week_id
        assert m.caller_code == original.caller_code and m.console == original.console
        assert m.start - original.start in (timedelta(days=1), timedelta(days=2))
        assert m.end - m.start == original.end - original.start
        day = m.start.astimezone(SHANGHAI).date()
        assert day.isoformat() in weeks[m.week_id].workdays
        assert IsoWeek.containing(day) == IsoWeek.parse(weeks[m.week_id].week)
        assert m.uid == f"makeup-{m.id}-of-{m.makeup_of}@pingan-dispatch"
        # No clash: the console and every callee are free then.
        for other in slots.values():
            if other.id == m.id or not (other.start < m.end and m.start < other.end):
                continue
            same_console = (other.caller_code, other.console) == (m.caller_code, m.console)
            assert not same_console, (m.id, other.id)
            assert not set(m.callees) & {other.caller_code, *other.callees}, (m.id, other.id)
    assert len({m.makeup_of for m in makeups}) == len(makeups)


def test_issues_follow_the_ledger_rules(generated: Generated) -> None:
    with generated.db.session() as s:
        found = s.exec(select(issues.Issue).order_by(col(issues.Issue.id))).all()
        changes: dict[int, list[issues.IssueChange]] = defaultdict(list)
        rows = s.exec(select(issues.IssueChange).order_by(col(issues.IssueChange.id))).all()
        for c in rows:
            changes[c.issue_id].append(c)
        centre = {c.code: c for c in s.exec(select(Centre)).all()}
        call_of = {c.id: c for c in s.exec(select(Call)).all()}
        invited = {(i.call_id, i.centre_code) for i in s.exec(select(Invitation)).all()}
    assert found
    for issue in found:
        history = changes[issue.id or 0]
        call = call_of[issue.raised_in_call]
        assert issue.centre_code == call.caller_code or (call.id, issue.centre_code) in invited
        assert history[0].action == issues.RAISED and history[0].at == issue.created_at
        assert call.created_at <= issue.created_at <= (call.ended_at or HORIZON)
        times = [c.at for c in history]
        assert times == sorted(times) and times[-1] == issue.updated_at <= HORIZON
        holder = issue.centre_code
        for c in history[1:]:
            assert c.from_holder == holder
            if c.action == issues.ESCALATED:
                assert c.to_holder == centre[holder].parent_code
            holder = c.to_holder
        assert holder == issue.holder_code and history[-1].to_state == issue.state
        assert issue.deadline is not None and issue.deadline > issue.raised_on
        if issue.state == issues.RESOLVED:
            assert issue.resolved_at == history[-1].at
            if issue.severity == issues.Severity.major:
                assert centre[issue.holder_code].level != "village"
        else:
            assert issue.resolved_at is None
    assert {i.category for i in found} >= {"dispute", "hazard"}
    assert any(i.escalated for i in found)
    assert any(i.state == issues.RESOLVED for i in found)


def test_generated_journals_load(generated: Generated) -> None:
    with generated.db.session() as s:
        ids = s.exec(select(Call.id).order_by(col(Call.id))).all()
        interrupted = s.exec(select(Call.id).where(Call.state == calls.INTERRUPTED)).all()
        rejoined = s.exec(
            select(AttendanceRow.call_id).where(
                AttendanceRow.kind == calls.LEFT,
                col(AttendanceRow.data)["reason"].as_string().like("no packets%"),
            )
        ).all()
        sample = sorted({*ids[:: max(1, len(ids) // 60)], *interrupted[:5], *rejoined[:5]})
        assert interrupted and rejoined
        two_stays = 0
        for call_id in sample:
            journal = load_journal(s, call_id or 0)
            assert journal.interrupted == (call_id in interrupted)
            slot = s.get(RotaSlot, journal.slot_id)
            assert slot is not None
            for record in journal.centres:
                assert record.answer in ("answered", "declined", "not_answered")
                for stay in record.intervals:
                    assert stay.left is not None and stay.joined <= stay.left
                if record.video_verified:
                    assert record.seconds_verified_video >= 60 and record.answer == "answered"
                two_stays += len(record.intervals) >= 2
            if slot.status == plans.HELD:
                assert any(r.video_verified for r in journal.centres)
        assert two_stays > 0


def _fingerprint(db: Database) -> tuple[Any, ...]:
    with db.session() as s:
        counts = tuple(
            s.exec(select(func.count()).select_from(table)).one()
            for table in (Call, Invitation, AttendanceRow, RotaSlot, issues.Issue)
        )
        first = s.exec(select(AttendanceRow).order_by(col(AttendanceRow.id)).limit(100)).all()
        events = [(e.call_id, e.centre_code, e.kind, e.at, e.data) for e in first]
        statuses = s.exec(select(RotaSlot.uid, RotaSlot.status).order_by(RotaSlot.uid)).all()
    return counts, events, statuses


def test_the_same_seed_gives_the_same_history(
    generated: Generated, demo_template: Path, tmp_path: Path
) -> None:
    db = _fresh(demo_template, tmp_path / "again.db")
    try:
        summary = _generate(db)
        assert _fingerprint(db) == _fingerprint(generated.db)
        assert (summary.calls, summary.events, summary.issues) == (
            generated.summary.calls, generated.summary.events, generated.summary.issues,
        )  # fmt: skip
    finally:
        db.close()
    other = _fresh(demo_template, tmp_path / "other.db")
    try:
        _generate(other, seed=7)
        assert _fingerprint(other)[1] != _fingerprint(generated.db)[1]
    finally:
        other.close()


def _per_week(db: Database) -> dict[str, tuple[int, int]]:
    """Calls and events per ISO week."""
    with db.session() as s:
        rows = s.exec(
            select(RotaWeek.week, func.count(func.distinct(Call.id)), func.count(AttendanceRow.id))
            .join(RotaSlot, col(RotaSlot.week_id) == col(RotaWeek.id))
            .join(Call, col(Call.slot_id) == col(RotaSlot.id))
            .join(AttendanceRow, col(AttendanceRow.call_id) == col(Call.id))
            .group_by(RotaWeek.week)
        ).all()
    return {week: (n_calls, n_events) for week, n_calls, n_events in rows}


def test_more_weeks_only_adds_the_new_weeks(
    generated: Generated, demo_template: Path, tmp_path: Path
) -> None:
    db = _fresh(demo_template, tmp_path / "grow.db")
    try:
        first = _generate(db, weeks=3, end_week=IsoWeek(2026, 7))  # W05–W07
        assert first.rota_weeks == 3
        before = _per_week(db)
        with db.session() as s:
            max_call = s.exec(select(func.max(Call.id))).one()
        grown = _generate(db)  # W05–W10: only W08–W10 are new
        assert (grown.rota_weeks, grown.skipped) == (3, 3)
        after = _per_week(db)
        assert {w: after[w] for w in before} == before
        with db.session() as s:
            new_calls = s.exec(select(Call).where(col(Call.id) > max_call)).all()
        assert len(new_calls) == grown.calls > 0
        assert min(c.created_at for c in new_calls) >= datetime(2026, 2, 16, tzinfo=SHANGHAI)
        # Weeks are drawn each from their own seed: grown step by step or in one run, the
        # calls and attendance are the same.
        assert after == _per_week(generated.db)
        again = _generate(db)
        assert (again.rota_weeks, again.calls, again.skipped) == (0, 0, WEEKS)
    finally:
        db.close()


def test_a_week_built_but_never_run_is_played_out(demo_template: Path, tmp_path: Path) -> None:
    from schedules import planner

    db = _fresh(demo_template, tmp_path / "built.db")
    try:
        with db.session() as s:
            planner.build_week(s, DEMO_DISTRICT_CODE, END, now=datetime(2000, 1, 1, tzinfo=UTC))
            planned = s.exec(select(func.count()).select_from(RotaSlot)).one()
        summary = _generate(db, weeks=1)
        assert summary.rota_weeks == 1 and summary.calls > 0
        assert summary.slots == planned + summary.makeups
    finally:
        db.close()


def test_bad_arguments_are_refused(demo_settings: Settings) -> None:
    db = open_database(demo_settings.db_url)
    try:
        with db.session() as s:
            with pytest.raises(InvalidInput, match="not ended"):
                generate_history(s, weeks=1, end_week=IsoWeek(2026, 10),
                                 now=datetime(2026, 3, 8, 12, tzinfo=SHANGHAI))  # fmt: skip
            with pytest.raises(InvalidInput):
                generate_history(s, weeks=0, end_week=END)
            with pytest.raises(InvalidInput):
                generate_history(s, weeks=1, end_week=END, districts=["511703001000"])
            assert s.exec(select(func.count()).select_from(RotaWeek)).one() == 0
    finally:
        db.close()
