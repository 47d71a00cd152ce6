"""History generator: weeks of realistic past dispatch — rota, calls, attendance and
issues — for the reports' tests and benchmarks (`dispatch demo history --weeks 52`).

For every district and ISO week asked for, the week's rota is built by the planner
(`schedules.planner.build_week`) and then every slot is played out the way the live
system would have recorded it: a call with its invitations and attendance events (see
web/PROTOCOL.md §7), the slot closed held or missed, a make-up for about half of the
slots that left callees missed, and the issues raised in the week's calls with their escalations and
resolutions.

Invariants:
- Deterministic: each district-week draws from its own `random.Random` seeded with
  (seed, district, week), consumed in one fixed order (slots in (start, caller, console,
  uid) order, then make-ups, then issues). So the same seed gives the same rows, and
  extending a history to later weeks gives the calls and attendance one run over the
  whole span gives (the planner keeps each call near last week's time, so a week built
  without its predecessor may differ; issue histories stop at each run's `end_week`).
- History only: every week must have ended (`end_week` lies before today, Asia/Shanghai),
  and nothing generated happens after the end of `end_week` — an issue whose resolution
  would fall later is left unresolved.
- Never overwritten: a stored district-week is skipped when it has a call, a slot that
  is no longer planned, or no slot at all (exempt); a stored week whose slots are all
  still planned (built, never run) is played out on its stored slots; a missing week is
  built first.
- The rows obey the live rules: per call, events are inserted in time order (so id order
  is time order); invited and rang at the slot start; an answer only before
  `answer_deadline_seconds` (a ring still unanswered then is `not_answered` half a second
  later, so "late" answers lie between 3/4 of the deadline and the deadline); a call
  nobody answered ends by itself ("nobody answered") at the last refusal; `verified` only
  once a centre's cumulative live video reaches `min_verified_seconds`, and its
  `seconds_live` is at least that; a centre that leaves and comes back opens a second
  interval; an interrupted call keeps only the events before the cut, has no `ended`, and
  an `interrupted` event when the restarted server noticed. A major issue concerning a
  village is escalated before it is resolved; an escalation moves the holder one level up.
- Slots settle by the one coverage rule (`schedules.outcome`), as the scheduler's close
  does: held when its call covered at least one callee, else missed (a slot that was
  never launched has no call); a callee that neither this call nor an earlier call of
  the caller in the week covered is missed on its own. Make-ups are only made for regular
  slots that left callees missed — a held meeting's absent villages too — inviting only
  those callees, on a working day one or two days later in the same week at the same
  time of day, on the same console, and only where that console is free, the caller is
  not being called and no invited callee is in any call then (blackouts are not
  consulted).
- Every slot played out gets `reminded_at` and `closed_at` (end + 5 minutes) as the
  scheduler would have set them, so a server started later has nothing to close.
- Everything is written with bulk core INSERTs/UPDATEs through the given session and
  flushed per district-week; nothing is committed unless `commit=True`, which commits
  after every district-week (a killed run then resumes where it stopped).
- All timestamps are timezone-aware (UTC when stored).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import bindparam, func, insert, update
from sqlmodel import Session, col, select

from dispatch import calls, centres, clock, demo_words
from dispatch.calls import AttendanceRow, Call, Invitation
from dispatch.centres import Centre, Level
from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput
from schedules import outcome, planner, plans, policy, workdays
from schedules.plans import RotaSlot, RotaSlotCallee
from schedules.workdays import IsoWeek

from .issues import (
    ESCALATED,
    IN_PROGRESS,
    OPEN,
    RAISED,
    RESOLVED,
    RESOLVED_ACTION,
    STARTED,
    Category,
    Issue,
    IssueChange,
    Severity,
)

DEFAULT_SEED: Final = 2026
MAX_WEEKS: Final = 520
# The planner plans a week completely only when "now" lies before it.
PLAN_AS_OF: Final = datetime(2000, 1, 1, tzinfo=SHANGHAI)
CLOSE_DELAY: Final = timedelta(minutes=5)  # as the scheduler closes a slot (schedules/jobs.py)
SHORT_MIN_NEED: Final = 15.0  # below this a "short" stay cannot fall short: black instead
REJOIN_GRACE: Final = 30.0  # seconds a dropped connection may come back unrecorded
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()  # generated snapshots hold no picture
BUILT_BY: Final = "history"

# --- how often things happen ------------------------------------------------------------

# A regular slot: never launched / interrupted mid-call / some callee fails / all verified.
P_NOT_LAUNCHED: Final = 0.035
P_INTERRUPTED: Final = 0.012
P_TROUBLE: Final = 0.075
# A make-up call usually succeeds.
P_MAKEUP_NOT_LAUNCHED: Final = 0.02
P_MAKEUP_INTERRUPTED: Final = 0.01
P_MAKEUP_TROUBLE: Final = 0.07
P_MAKEUP: Final = 0.5  # share of missed regular slots that get a make-up
# How a failing callee fails (weights).
FAILURES: Final = (("not_answered", 30), ("declined", 12), ("black", 28), ("offline", 10),
                   ("short", 20))  # fmt: skip
# A centre that does attend.
P_LATE_ANSWER: Final = 0.12  # answers in the last quarter of the deadline
P_REJOIN: Final = 0.04  # its connection drops and it joins again: two intervals
P_STAYS_TO_END: Final = 0.2  # still in the call when the operator ends it (no `left`)
FACES: Final = ((1, 50), (2, 35), (3, 15))

# Issues.
ISSUES_PER_WEEK: Final = (2, 6)
CATEGORIES: Final = ((Category.dispute, 40), (Category.hazard, 25), (Category.lead, 10),
                     (Category.anomaly, 15), (Category.other, 10))  # fmt: skip
P_MAJOR: Final = 0.15
P_ESCALATE_GENERAL: Final = 0.06
P_ESCALATE_MAJOR_TOWN: Final = 0.5  # a major issue of a town goes to the district
P_ESCALATE_AGAIN: Final = 0.3  # a major village issue goes on from the town to the district
P_STARTED: Final = 0.7
P_OVERDUE: Final = 0.05  # left open past a short deadline
P_LINGERING: Final = 0.04  # open for long, within its deadline
RESOLVE_DAYS: Final = (1.0, 20.0)


@dataclass(frozen=True)
class HistorySummary:
    weeks: int  # ISO weeks asked for
    districts: int
    rota_weeks: int  # district-weeks played out by this run (built now or stored unplayed)
    calls: int
    events: int
    issues: int
    seconds: float
    skipped: int = 0  # district-weeks that already had history
    slots: int = 0  # slots played out, make-ups included
    makeups: int = 0

    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[str], None]


# --- simulated rows ---------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    id: int
    uid: str
    kind: str
    caller: str
    callees: tuple[str, ...]
    start: datetime  # UTC
    end: datetime
    console: int
    hidden: bool
    makeup_of: int | None = None
    status: str = plans.PLANNED


@dataclass(slots=True)
class _SimCall:
    """One call as it happened; event times are seconds after the slot start."""

    slot: _Slot
    state: str
    started: float | None
    ended: float
    end_reason: str
    invites: list[tuple[str, str, float | None]]  # centre, final state, answered offset
    events: list[tuple[float, str | None, str, dict[str, Any]]]  # at, centre, kind, data
    verified: set[str]
    stays: list[tuple[str, float, float]]  # callee, joined, left (or the end): first stays


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    events: int = 0
    issues: int = 0
    slots: int = 0
    makeups: int = 0


@dataclass(slots=True)
class _Rules:
    deadline: float
    min_verified: float
    reminder: timedelta


_Span = tuple[datetime, datetime]


@dataclass(slots=True)
class _Busy:
    """Who is in a call when, over one week, for placing make-ups without clashes."""

    console: dict[tuple[str, int], list[_Span]] = field(default_factory=dict)  # as caller
    calling: dict[str, list[_Span]] = field(default_factory=dict)  # as caller, any console
    called: dict[str, list[_Span]] = field(default_factory=dict)  # as callee

    def add(self, slot: _Slot) -> None:
        span = (slot.start, slot.end)
        self.console.setdefault((slot.caller, slot.console), []).append(span)
        self.calling.setdefault(slot.caller, []).append(span)
        for code in slot.callees:
            self.called.setdefault(code, []).append(span)

    def free(self, slot: _Slot, start: datetime, end: datetime) -> bool:
        """`slot`'s console is free in [start, end), its caller is not being called then
        (a caller with several consoles may run parallel calls), and no callee is in any
        call then."""
        groups = [self.console.get((slot.caller, slot.console), []),
                  self.called.get(slot.caller, [])]  # fmt: skip
        for code in slot.callees:
            groups += [self.called.get(code, []), self.calling.get(code, [])]
        return not any(s < end and start < e for group in groups for s, e in group)


@dataclass(frozen=True, slots=True)
class _WeekPlan:
    week_id: int
    workdays: frozenset[date]
    slots: list[_Slot]


# --- the entry point --------------------------------------------------------------------


def generate_history(
    session: Session,
    *,
    weeks: int,
    end_week: IsoWeek,
    seed: int = DEFAULT_SEED,
    districts: list[str] | None = None,
    progress: Progress | None = None,
    commit: bool = False,
    now: datetime | None = None,
) -> HistorySummary:
    """Fill `weeks` ISO weeks ending with `end_week` for every district (default: every
    active district) with rota, calls, attendance and issues. See the module docstring."""
    started = time.perf_counter()
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput("weeks", f"must be a whole number from 1 to {MAX_WEEKS}, got {weeks!r}")
    today = clock.today(now)
    if end_week.days()[-1] >= today:
        raise InvalidInput(
            "end_week", f"{end_week} has not ended yet ({today}): history ends with a past week"
        )
    span = [end_week]
    while len(span) < weeks:
        span.insert(0, span[0].previous())
    codes = _districts(session, districts)
    cal = workdays.load_calendar(session)  # one calendar (and its year cache) for all
    horizon = _local_midnight(end_week.days()[-1] + timedelta(days=1))
    total = _Tally()
    played = skipped = 0
    for n, district in enumerate(codes, start=1):
        district_started = time.perf_counter()
        before = total.calls
        centre_index = _centre_index(session, district)
        rules = _rules(session, district)
        done_here = 0
        for week in span:
            plan = _week_to_play(session, district, week, cal)
            if plan is None:
                skipped += 1
                continue
            rng = random.Random(f"{seed}:{district}:{week}")
            _play_week(session, rng, week, plan, rules, centre_index, horizon, total)
            played += 1
            done_here += 1
            session.flush()
            if commit:
                session.commit()
        if progress is not None:
            progress(
                f"{district} ({n}/{len(codes)}): {done_here} week(s), "
                f"{total.calls - before} calls, {time.perf_counter() - district_started:.1f} s"
            )
    return HistorySummary(
        weeks=len(span),
        districts=len(codes),
        rota_weeks=played,
        calls=total.calls,
        events=total.events,
        issues=total.issues,
        seconds=time.perf_counter() - started,
        skipped=skipped,
        slots=total.slots,
        makeups=total.makeups,
    )


def _districts(session: Session, asked: list[str] | None) -> list[str]:
    if asked is None:
        return planner.districts(session)
    return [centres.get_at_level(session, c, Level.district, "district").code for c in asked]


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(UTC)


def _rules(session: Session, district: str) -> _Rules:
    p = policy.policy_for(session, district)
    return _Rules(float(p.answer_deadline_seconds), float(p.min_verified_seconds),
                  timedelta(minutes=p.reminder_minutes))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Place:
    level: str
    parent: str | None


def _centre_index(session: Session, district: str) -> dict[str, _Place]:
    """Level and parent of every centre of the district (for escalation)."""
    root = centres.get(session, district)
    low, high = centres.below_range(root.path)
    rows = session.exec(
        select(Centre.code, Centre.level, Centre.parent_code).where(
            Centre.path >= low, Centre.path < high
        )
    ).all()
    index = {code: _Place(level, parent) for code, level, parent in rows}
    index[root.code] = _Place(root.level, root.parent_code)
    return index


def _week_to_play(
    session: Session, district: str, week: IsoWeek, cal: workdays.WorkdayCalendar
) -> _WeekPlan | None:
    """The week's slots to play out (building the week if it is missing), or None when
    the week already has history."""
    record = plans.get_week(session, district, week)
    if record is None:
        record = planner.build_week(session, district, week, by=BUILT_BY, now=PLAN_AS_OF, cal=cal)
    else:
        # Played already (or an exempt week, with nothing to play): a slot that has been
        # closed or held, or a call made in one of its slots.
        # Slots a rebuild dropped (cancelled) were never played: they count for nothing.
        n_slots, touched = session.exec(
            select(func.count(), func.count().filter(col(RotaSlot.status) != plans.PLANNED)).where(
                RotaSlot.week_id == record.id, RotaSlot.status != plans.CANCELLED
            )
        ).one()
        has_calls = session.exec(
            select(func.count())
            .select_from(Call)
            .join(RotaSlot, col(RotaSlot.id) == col(Call.slot_id))
            .where(RotaSlot.week_id == record.id)
        ).one()
        if not n_slots or touched or has_calls:
            return None
    # Ten columns: SQLAlchemy's select (sqlmodel's is typed up to four).
    rows = session.execute(
        sa.select(col(RotaSlot.id), col(RotaSlot.uid), col(RotaSlot.kind),
                  col(RotaSlot.caller_code), col(RotaSlot.callees), col(RotaSlot.start),
                  col(RotaSlot.end), col(RotaSlot.console), col(RotaSlot.hidden),
                  col(RotaSlot.makeup_of))
        .where(col(RotaSlot.week_id) == record.id, col(RotaSlot.status) != plans.CANCELLED)
        .order_by(col(RotaSlot.start), col(RotaSlot.caller_code), col(RotaSlot.console),
                  col(RotaSlot.uid))
    ).all()  # fmt: skip
    slots = [
        _Slot(id=r[0] or 0, uid=r[1], kind=r[2], caller=r[3], callees=tuple(r[4]), start=r[5],
              end=r[6], console=r[7], hidden=r[8], makeup_of=r[9])
        for r in rows
    ]  # fmt: skip
    days = frozenset(date.fromisoformat(d) for d in record.workdays)
    return _WeekPlan(record.id or 0, days, slots)


# --- one district-week --------------------------------------------------------------------


def _play_week(
    session: Session,
    rng: random.Random,
    week: IsoWeek,
    plan: _WeekPlan,
    rules: _Rules,
    index: dict[str, _Place],
    horizon: datetime,
    total: _Tally,
) -> None:
    slots = plan.slots
    busy = _Busy()
    for slot in slots:
        busy.add(slot)
    sims: list[_SimCall] = []
    missed: list[tuple[_Slot, tuple[str, ...]]] = []  # a regular slot and its missed callees
    week_covered: dict[str, set[str]] = {}  # caller: callees its calls so far covered
    for slot in slots:
        sim = _play_slot(rng, slot, rules, makeup=slot.kind == "makeup")
        if sim is not None:
            sims.append(sim)
        result = _settle(slot, sim, rules, week_covered)
        if result.missed and slot.kind != "makeup":
            missed.append((slot, result.missed))
    # Make-ups: about half of the slots that left callees missed, one or two days later,
    # for the missed callees only (a held meeting's absent villages too).
    last_day = week.days()[-1]
    wanted: list[_Slot] = []
    for slot, absent in missed:
        if rng.random() >= P_MAKEUP:
            continue
        shifts = [1, 2] if rng.random() < 0.6 else [2, 1]
        for days in shifts:
            start, end = slot.start + timedelta(days=days), slot.end + timedelta(days=days)
            day = start.astimezone(SHANGHAI).date()
            makeup = _Slot(id=0, uid="", kind="makeup", caller=slot.caller, callees=absent,
                           start=start, end=end, console=slot.console, hidden=slot.hidden,
                           makeup_of=slot.id)  # fmt: skip
            if day > last_day or day not in plan.workdays or not busy.free(makeup, start, end):
                continue
            busy.add(makeup)
            wanted.append(makeup)
            break
    _insert_makeups(session, plan.week_id, wanted, rules)
    for makeup in wanted:
        sim = _play_slot(rng, makeup, rules, makeup=True)
        if sim is not None:
            sims.append(sim)
        _settle(makeup, sim, rules, week_covered)
    _close_slots(session, [*slots, *wanted], rules)
    sims.sort(key=lambda s: (s.slot.start, s.slot.caller, s.slot.console, s.slot.uid))
    call_ids = _insert_calls(session, sims, rules, total)
    _insert_issues(session, rng, list(zip(call_ids, sims, strict=True)), index, horizon, total)
    total.slots += len(slots) + len(wanted)
    total.makeups += len(wanted)


def _settle(
    slot: _Slot, sim: _SimCall | None, rules: _Rules, week_covered: dict[str, set[str]]
) -> outcome.SlotOutcome:
    """The slot's status and missed callees by the one coverage rule, as the scheduler's
    close would find them: its own call, and the caller's calls played before it."""
    covered = _covered(sim, rules) if sim is not None else set()
    earlier = week_covered.setdefault(slot.caller, set())
    earlier |= covered
    result = outcome.slot_outcome(slot.callees, covered, earlier)
    slot.status = result.status
    return result


def _covered(sim: _SimCall, rules: _Rules) -> set[str]:
    """The callees the call covered, read from its events as the live record reads them."""
    verified: dict[str, bool] = {}
    live: dict[str, float] = {}
    for _at, code, kind, data in sim.events:
        if code is None or kind not in (calls.VERIFIED, calls.LEFT):
            continue
        verified[code] = verified.get(code, False) or kind == calls.VERIFIED
        seconds = data.get("seconds_live")
        if isinstance(seconds, int | float):
            live[code] = max(live.get(code, 0.0), float(seconds))
    need = rules.min_verified
    return {c for c in set(verified) | set(live)
            if outcome.covers(verified.get(c, False), live.get(c, 0.0), need)}  # fmt: skip


def _insert_makeups(session: Session, week_id: int, slots: list[_Slot], rules: _Rules) -> None:
    """Store make-up slots (ids come back in order) with their callee rows and the uid the
    scheduler gives a make-up (`makeup-{id}-of-{missed}`)."""
    if not slots:
        return
    rows = [
        {"week_id": week_id, "uid": f"history-pending-{s.makeup_of}", "kind": "makeup",
         "caller_code": s.caller, "callees": list(s.callees), "start": s.start, "end": s.end,
         "console": s.console, "reserve": False, "hidden": s.hidden, "status": plans.PLANNED,
         "sequence": 0, "makeup_of": s.makeup_of, "updated_at": s.start - rules.reminder}
        for s in slots
    ]  # fmt: skip
    stmt = insert(RotaSlot).returning(col(RotaSlot.id), sort_by_parameter_order=True)
    ids = [row[0] for row in session.execute(stmt, rows)]
    for slot, slot_id in zip(slots, ids, strict=True):
        slot.id = slot_id
        slot.uid = f"makeup-{slot_id}-of-{slot.makeup_of}@pingan-dispatch"
    conn = session.connection()
    conn.execute(
        insert(RotaSlotCallee),
        [{"slot_id": s.id, "centre_code": c} for s in slots for c in s.callees],
    )
    conn.execute(
        update(RotaSlot)
        .where(col(RotaSlot.id) == bindparam("b_id"))
        .values(uid=bindparam("b_uid")),
        [{"b_id": s.id, "b_uid": s.uid} for s in slots],
    )


def _close_slots(session: Session, slots: Sequence[_Slot], rules: _Rules) -> None:
    """Held or missed, reminded and closed as the scheduler would have done it."""
    if not slots:
        return
    session.connection().execute(
        update(RotaSlot)
        .where(col(RotaSlot.id) == bindparam("b_id"))
        .values(status=bindparam("b_status"), reminded_at=bindparam("b_reminded"),
                closed_at=bindparam("b_closed"), updated_at=bindparam("b_closed")),
        [{"b_id": s.id, "b_status": s.status, "b_reminded": s.start - rules.reminder,
          "b_closed": s.end + CLOSE_DELAY} for s in slots],
    )  # fmt: skip


def _insert_calls(
    session: Session, sims: list[_SimCall], rules: _Rules, total: _Tally
) -> list[int]:
    if not sims:
        return []
    call_rows = []
    for sim in sims:
        t0 = sim.slot.start
        call_rows.append({
            "caller_code": sim.slot.caller, "operator": sim.slot.caller, "kind": sim.slot.kind,
            "slot_id": sim.slot.id, "state": sim.state,
            "answer_deadline_seconds": int(rules.deadline),
            "min_verified_seconds": int(rules.min_verified), "created_at": t0,
            "started_at": None if sim.started is None else t0 + timedelta(seconds=sim.started),
            "ended_at": t0 + timedelta(seconds=sim.ended), "end_reason": sim.end_reason,
        })  # fmt: skip
    stmt = insert(Call).returning(col(Call.id), sort_by_parameter_order=True)
    ids = [row[0] for row in session.execute(stmt, call_rows)]
    invites: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for call_id, sim in zip(ids, sims, strict=True):
        t0 = sim.slot.start
        for code, state, answered in sim.invites:
            invites.append({
                "call_id": call_id, "centre_code": code, "state": state, "rang_at": t0,
                "answered_at": None if answered is None else t0 + timedelta(seconds=answered),
            })  # fmt: skip
        for at, who, kind, data in sim.events:  # who: None for the call's own events
            events.append({"call_id": call_id, "centre_code": who, "kind": kind,
                           "at": t0 + timedelta(seconds=at), "data": data})  # fmt: skip
    conn = session.connection()
    conn.execute(insert(Invitation), invites)
    conn.execute(insert(AttendanceRow), events)
    total.calls += len(ids)
    total.events += len(events)
    return ids


# --- one call ---------------------------------------------------------------------------


def _play_slot(rng: random.Random, slot: _Slot, rules: _Rules, *, makeup: bool) -> _SimCall | None:
    """What happened in the slot: None when the call was never launched."""
    p_none, p_cut, p_trouble = (
        (P_MAKEUP_NOT_LAUNCHED, P_MAKEUP_INTERRUPTED, P_MAKEUP_TROUBLE)
        if makeup
        else (P_NOT_LAUNCHED, P_INTERRUPTED, P_TROUBLE)
    )
    roll = rng.random()
    if roll < p_none:
        return None
    interrupted = roll < p_none + p_cut
    failing: dict[str, str] = {}
    if p_none + p_cut <= roll < p_none + p_cut + p_trouble:
        n = len(slot.callees)
        k = 1 if n == 1 else min(n, 1 + (rng.random() < 0.3) + (rng.random() < 0.1))
        for code in sorted(rng.sample(slot.callees, k)):
            failing[code] = _weighted(rng, FAILURES)
    return _play_call(rng, slot, rules, failing, interrupted)


def _weighted(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    pick = rng.random() * sum(w for _, w in table)
    for value, weight in table:
        pick -= weight
        if pick < 0:
            return value
    return table[-1][0]


def _play_call(
    rng: random.Random,
    slot: _Slot,
    rules: _Rules,
    failing: dict[str, str],
    interrupted: bool,
) -> _SimCall:
    duration = (slot.end - slot.start).total_seconds()
    epoch0 = slot.start.timestamp()
    deadline, need = rules.deadline, rules.min_verified
    ev: list[tuple[float, str | None, str, dict[str, Any]]] = []
    for code in slot.callees:  # as `calls.launch` writes them: per callee, in code order
        ev.append((0.0, code, calls.INVITED, {}))
        ev.append((0.0, code, calls.RANG, {}))
    op_join = rng.uniform(0.5, 3.0)
    ev.append((op_join, slot.caller, calls.JOINED, {}))
    ev.append((op_join + rng.uniform(0.8, 2.5), slot.caller, calls.VIDEO_LIVE, {}))

    answers: dict[str, tuple[str, float]] = {}  # centre → (answer kind, offset)
    plans_: dict[str, str] = {}  # centre → what it does after answering
    for code in slot.callees:
        how = failing.get(code, "ok")
        if how == "not_answered":
            answers[code] = (calls.NOT_ANSWERED, deadline + 0.5)  # the expiry timer
        elif how == "declined":
            answers[code] = (calls.DECLINED, rng.uniform(2.0, min(30.0, deadline - 1)))
        else:
            late = rng.random() < P_LATE_ANSWER
            low, high = (
                (0.75 * deadline, deadline - 0.5) if late else (3.0, min(40.0, 0.66 * deadline))
            )
            answers[code] = (calls.ANSWERED, rng.uniform(low, high))
            plans_[code] = how
    # The operator ends the call at the slot end; a call nobody answered ends by itself.
    if plans_:
        end, reason = duration, f"ended by {slot.caller}"
        started: float | None = min(answers[c][1] for c in plans_)
    else:
        end, reason, started = max(at for _, at in answers.values()), "nobody answered", None
    cut = rng.uniform(0.25, 0.85) * duration if interrupted else None
    if cut is not None and cut >= end:
        cut = None  # it was over before the server died

    verified: set[str] = set()
    stays: list[tuple[str, float, float]] = []
    for code in slot.callees:
        kind, at = answers[code]
        if kind == calls.NOT_ANSWERED:
            ev.append((at, code, kind, {"deadline_seconds": int(deadline)}))
            continue
        ev.append((at, code, kind, {"seconds_to_answer": round(at, 1)}))
        if kind == calls.DECLINED:
            continue
        how = plans_[code]
        if how == "short" and need < SHORT_MIN_NEED:
            how = "black"  # a minimum too short to fall short of: no picture at all
        if how == "offline":
            continue  # answered, never connected
        joined = at + rng.uniform(1.5, 6.0)
        ev.append((joined, code, calls.JOINED, {}))
        if how == "black":
            ev.append((joined + rng.uniform(2.0, 5.0), code, calls.VIDEO_LOST, {"state": "black"}))
            gone = rng.uniform(min(joined + 60, end - 5), end - 5) if rng.random() < 0.6 else None
            if gone is not None:
                ev.append((gone, code, calls.LEFT, _left("left the call", 0.0, epoch0 + gone)))
            stays.append((code, joined, gone if gone is not None else end))
            continue
        live = joined + rng.uniform(1.0, 4.0)
        faces = _weighted(rng, FACES)
        first_faces = faces if rng.random() < 0.7 else 1
        ev.append((live, code, calls.VIDEO_LIVE, {}))
        ev.append((live + 0.2, code, calls.FACES_SEEN, {"faces": first_faces}))
        ev.append((live + 0.4, code, calls.SNAPSHOT, {"why": "answer", "path": "",
                                                      "sha256": EMPTY_SHA256, "width": 0,
                                                      "height": 0}))  # fmt: skip
        if how == "short":  # hangs up before its video counts (need ≥ SHORT_MIN_NEED)
            gone = live + rng.uniform(0.2, 0.9) * need
            if gone < end:
                ev.append((gone, code, calls.LEFT,
                           _left("left the call", gone - live, epoch0 + gone)))  # fmt: skip
            stays.append((code, joined, min(gone, end)))
            continue
        # Attends: live from `live`, perhaps with one dropped connection and a return.
        bump = live + rng.uniform(5.0, 40.0)
        if faces > first_faces:
            ev.append((bump, code, calls.FACES_SEEN, {"faces": faces}))
        leave = end - rng.uniform(5.0, 90.0) if rng.random() >= P_STAYS_TO_END else None
        spans: list[tuple[float, float]] = []  # spans of live video, in order
        first_stay_end = leave if leave is not None else end
        drop_hi = end - 240.0
        if rng.random() < P_REJOIN and drop_hi > bump + 1.0:
            drop = rng.uniform(bump + 1.0, drop_hi)  # after the faces were counted
            spans.append((live, drop))
            lost_at = drop + REJOIN_GRACE  # recorded once the grace has run out
            reason = f"no packets for {rng.uniform(3.0, 6.0):.1f} s"
            ev.append((lost_at, code, calls.LEFT, _left(reason, drop - live, epoch0 + drop)))
            first_stay_end = drop
            back = lost_at + rng.uniform(5.0, 60.0)
            ev.append((back, code, calls.JOINED, {}))
            live = back + rng.uniform(1.0, 3.0)
            ev.append((live, code, calls.VIDEO_LIVE, {}))
            if leave is not None and leave <= live + 5.0:
                leave = min(end - 1.0, live + rng.uniform(5.0, 30.0))
        spans.append((live, leave if leave is not None else end))
        at_verified = _verified_at(rng, spans, need)
        if at_verified is not None:
            at, seconds = at_verified
            seen = faces if faces == first_faces or bump <= at else first_faces
            ev.append((at, code, calls.VERIFIED, {"seconds_live": seconds, "max_faces": seen}))
            verified.add(code)
        if leave is not None:
            seconds = sum(b - a for a, b in spans)
            ev.append((leave, code, calls.LEFT, _left("left the call", seconds, epoch0 + leave)))
        stays.append((code, joined, first_stay_end))
    ev.sort(key=lambda e: e[0])  # stable: ties keep the order written above
    if cut is not None:
        ev = [e for e in ev if e[0] <= cut]
        restarted = cut + rng.uniform(60.0, 3 * 3600.0)
        ev.append((restarted, None, calls.CALL_INTERRUPTED, {}))
        verified = {c for _, c, k, _ in ev if k == calls.VERIFIED and c is not None}
        stays = [(c, j, min(left, cut)) for c, j, left in stays if j <= cut]
        state, ended_at, reason = calls.INTERRUPTED, restarted, "server stopped"
        if started is not None and started > cut:
            started = None
    else:
        ev = [e for e in ev if e[0] <= end]  # e.g. the operator's picture after a quick "no"
        ev.append((end, None, calls.CALL_ENDED, {"reason": reason}))
        state, ended_at = calls.ENDED, end
    # Invitation rows: the last answer before the end (or cut); still ringing otherwise.
    final: dict[str, tuple[str, float | None]] = {c: (calls.RANG, None) for c in slot.callees}
    for at, who, kind, _data in ev:
        if who in final and kind in (calls.ANSWERED, calls.DECLINED, calls.NOT_ANSWERED):
            final[who] = (kind, at if kind == calls.ANSWERED else None)
    invites = [(c, s, a) for c, (s, a) in sorted(final.items())]
    return _SimCall(slot=slot, state=state, started=started, ended=ended_at, end_reason=reason,
                    invites=invites, events=ev, verified=verified, stays=stays)  # fmt: skip


def _verified_at(
    rng: random.Random, spans: list[tuple[float, float]], need: float
) -> tuple[float, float] | None:
    """When the live spans (in order) first add up to `need` seconds — the check runs
    about once a second, so up to 1.5 s later — and the seconds then; None if never."""
    credited = 0.0
    for start, stop in spans:
        if credited + (stop - start) >= need:
            over = rng.uniform(0.0, min(1.5, stop - start - (need - credited)))
            return start + (need - credited) + over, round(need + over, 1)
        credited += stop - start
    return None


def _left(reason: str, seconds_live: float, went_at: float) -> dict[str, Any]:
    return {"reason": reason, "seconds_live": round(seconds_live, 1), "went_at": round(went_at, 3)}


# --- issues -----------------------------------------------------------------------------


def _insert_issues(
    session: Session,
    rng: random.Random,
    played: list[tuple[int, _SimCall]],
    index: dict[str, _Place],
    horizon: datetime,
    total: _Tally,
) -> None:
    """2–6 issues raised in the week's calls, each with its history up to `horizon`."""
    hosts = [(call_id, sim) for call_id, sim in played if sim.stays]
    if not hosts:
        return
    issue_rows: list[dict[str, Any]] = []
    histories: list[list[dict[str, Any]]] = []
    for _ in range(rng.randint(*ISSUES_PER_WEEK)):
        call_id, sim = hosts[rng.randrange(len(hosts))]
        code, joined, left = sim.stays[rng.randrange(len(sim.stays))]
        t0 = sim.slot.start
        caller_is_town = index.get(sim.slot.caller, _Place("", None)).level == Level.town
        if caller_is_town and rng.random() < 0.2:
            code = sim.slot.caller  # the town itself reports something
        raised_at = t0 + timedelta(seconds=joined + rng.uniform(0.2, 0.8) * (left - joined))
        by = code if code != sim.slot.caller and rng.random() < 0.5 else sim.slot.caller
        row, changes = _issue(rng, code, by, call_id, raised_at, index, horizon)
        issue_rows.append(row)
        histories.append(changes)
    stmt = insert(Issue).returning(col(Issue.id), sort_by_parameter_order=True)
    ids = [r[0] for r in session.execute(stmt, issue_rows)]
    change_rows = [
        {**change, "issue_id": issue_id}
        for issue_id, changes in zip(ids, histories, strict=True)
        for change in changes
    ]
    session.connection().execute(insert(IssueChange), change_rows)
    total.issues += len(ids)


def _issue(
    rng: random.Random,
    code: str,
    by: str,
    call_id: int,
    raised_at: datetime,
    index: dict[str, _Place],
    horizon: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One issue row and its changes: raised, perhaps escalated (once or twice), perhaps
    started, resolved unless it lingers, is overdue or its resolution lies past `horizon`."""
    category: Category = _weighted(rng, CATEGORIES)
    severity = Severity.major if rng.random() < P_MAJOR else Severity.general
    subcategory, description, parties = demo_words.issue_wording(rng, category.value)
    raised_day = raised_at.astimezone(SHANGHAI).date()
    fate = rng.random()
    overdue, lingering = fate < P_OVERDUE, P_OVERDUE <= fate < P_OVERDUE + P_LINGERING
    deadline = raised_day + timedelta(days=rng.randint(3, 10) if overdue else rng.randint(7, 30))
    state, holder = OPEN, code
    changes: list[dict[str, Any]] = []

    def change(at: datetime, actor: str, action: str, to_state: str, to_holder: str,
               note: str = "") -> None:  # fmt: skip
        changes.append({"at": at, "by": actor, "action": action,
                        "from_state": None if action == RAISED else state, "to_state": to_state,
                        "from_holder": None if action == RAISED else holder,
                        "to_holder": to_holder, "from_assignee": None, "to_assignee": None,
                        "note": note})  # fmt: skip

    change(raised_at, by, RAISED, OPEN, code)
    at = raised_at
    # Escalation: a major village issue must go to its town; others sometimes go up.
    level = index[code].level
    if severity == Severity.major:
        steps = 1 if level == Level.village else int(rng.random() < P_ESCALATE_MAJOR_TOWN)
        if level == Level.village and rng.random() < P_ESCALATE_AGAIN:
            steps = 2
    else:
        steps = int(rng.random() < P_ESCALATE_GENERAL)
    for _ in range(steps):
        parent = index[holder].parent
        if parent is None:
            break
        when = at + timedelta(hours=rng.uniform(1.0, 48.0))
        if when > horizon:
            break
        change(when, holder, ESCALATED, OPEN, parent, rng.choice(demo_words.ESCALATION_NOTES))
        state, holder, at = OPEN, parent, when
    must_go_up = severity == Severity.major and index[holder].level == Level.village
    if rng.random() < P_STARTED:
        when = at + timedelta(hours=rng.uniform(2.0, 72.0))
        if when <= horizon:
            change(when, holder, STARTED, IN_PROGRESS, holder)
            state, at = IN_PROGRESS, when
    resolved_at = None
    if not (overdue or lingering or must_go_up):
        days = min(rng.uniform(*RESOLVE_DAYS), rng.uniform(*RESOLVE_DAYS))  # mostly early
        when = max(raised_at + timedelta(days=days), at + timedelta(hours=1))
        if when <= horizon:
            change(when, holder, RESOLVED_ACTION, RESOLVED, holder,
                   rng.choice(demo_words.RESOLUTIONS[category.value]))  # fmt: skip
            state, at, resolved_at = RESOLVED, when, when
    row = {
        "category": category.value, "subcategory": subcategory, "severity": severity.value,
        "centre_code": code, "holder_code": holder, "parties": parties,
        "description": description, "deadline": deadline, "assignee_code": None,
        "state": state, "raised_by": by, "raised_in_call": call_id, "created_at": raised_at,
        "updated_at": at, "resolved_at": resolved_at,
    }  # fmt: skip
    return row, changes
