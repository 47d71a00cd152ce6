"""The week's coverage as it stands, for a caller's console: every centre the caller must
cover this week (a district: its towns and villages; a town: its villages), each with
one state, grouped by town with progress, and who is still to be reached today.

States of a callee (the first that applies):
- `held` (已覆盖): the pair is covered this week — the one coverage rule
  (`schedules.outcome`), as the weekly report decides it.
- `reached` (已接通): answered in a call of the caller that is still open.
- `ringing` (呼叫中): being rung by a call of the caller right now.
- `makeup` (已排补调度): a make-up slot of the caller naming it is still ahead.
- `pending` (待调度): a slot of the caller naming it is still ahead or under way, or
  none was planned and the week is not over (an ad-hoc call can still cover it).
- `missed` (未覆盖): every slot of the caller naming it this week has passed.

Invariant: a pure read; the states come from the weekly report (`logs.coverage`), the
stored rota and the open calls, so the console and the report never disagree on what
is covered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from dispatch import calls, centres
from dispatch.calls import Call, Invitation
from dispatch.centres import Centre, Level
from dispatch.clock import SHANGHAI, SYSTEM
from schedules import plans
from schedules.plans import RotaSlot
from schedules.workdays import IsoWeek

from .coverage import COVERED, coverage_pct, weekly_report

HELD, REACHED, RINGING, MAKEUP, PENDING, MISSED = (
    "held", "reached", "ringing", "makeup", "pending", "missed",
)  # fmt: skip
STATES = (HELD, REACHED, RINGING, MAKEUP, PENDING, MISSED)


@dataclass(frozen=True)
class CentreState:
    code: str
    name: str
    level: str
    state: str
    next_start: str | None  # the next slot naming it, still ahead (ISO, +08:00)
    today: bool  # it has a slot today that has not ended


@dataclass(frozen=True)
class TownProgress:
    code: str
    name: str
    required: int
    covered: int
    coverage_pct: float | None
    counts: dict[str, int]  # every state, zeros included
    centres: tuple[CentreState, ...]  # the town first (when the caller is the district)


@dataclass(frozen=True)
class WeekProgress:
    caller: str
    week: str
    exempt: bool  # no working day this week: nothing is required
    required: int
    covered: int
    coverage_pct: float | None
    counts: dict[str, int]
    towns: tuple[TownProgress, ...]
    to_reach_today: tuple[CentreState, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Slot:
    start: datetime
    end: datetime
    makeup: bool
    status: str


def callee_state(
    covered: bool, open_invites: Iterable[str], slots: Sequence[_Slot], now: datetime
) -> str:
    """One callee's state (see the module's rules). `open_invites`: its invitation states
    in the caller's open calls."""
    if covered:
        return HELD
    invites = set(open_invites)
    if calls.ANSWERED in invites:
        return REACHED
    if calls.RANG in invites:
        return RINGING
    live = [s for s in slots if s.status != plans.CANCELLED]
    ahead = [s for s in live if s.end > now and s.status == plans.PLANNED]
    if any(s.makeup for s in ahead):
        return MAKEUP
    if ahead or not live:
        return PENDING
    return MISSED


def week_progress(
    session: Session, caller: Centre, now: datetime | None = None
) -> WeekProgress:
    """The caller's week as it stands at `now` (default: the clock)."""
    now = (now or SYSTEM.local()).astimezone(SHANGHAI)
    week = IsoWeek.containing(now.date())
    district_code = caller.path.split("/")[0]
    district = centres.get(session, district_code)
    report = weekly_report(session, district.code, week, now=now)
    pairs = [p for p in report.pairs if p.caller == caller.code]
    slots = _slots_by_callee(session, caller.code, week)
    invites = _open_invites(session, caller.code)
    today = now.date()
    by_town: dict[str, list[CentreState]] = {}
    covered_by_town: Counter[str] = Counter()
    for pair in pairs:
        mine = slots.get(pair.callee, [])
        ahead = sorted(s.start for s in mine if s.end > now and s.status == plans.PLANNED)
        state = callee_state(pair.status == COVERED, invites.get(pair.callee, ()), mine, now)
        is_today = any(s.start.astimezone(SHANGHAI).date() == today and s.end > now
                       and s.status == plans.PLANNED for s in mine)  # fmt: skip
        by_town.setdefault(pair.town, []).append(CentreState(
            code=pair.callee, name=pair.callee_name, level=pair.callee_level, state=state,
            next_start=ahead[0].astimezone(SHANGHAI).isoformat() if ahead else None,
            today=is_today,
        ))  # fmt: skip
        covered_by_town[pair.town] += pair.status == COVERED
    names = {p.callee: p.callee_name for p in pairs} | _names(session, by_town)
    towns = []
    for code in sorted(by_town):
        group = sorted(by_town[code], key=lambda c: (c.level != Level.town, c.code))
        towns.append(TownProgress(
            code=code, name=names.get(code, code), required=len(group),
            covered=covered_by_town[code], coverage_pct=coverage_pct(covered_by_town[code],
                                                                     len(group)),
            counts=_counts(c.state for c in group), centres=tuple(group),
        ))  # fmt: skip
    everyone = [c for t in towns for c in t.centres]
    covered = sum(covered_by_town.values())
    return WeekProgress(
        caller=caller.code, week=str(week), exempt=report.exempt, required=len(everyone),
        covered=covered,
        coverage_pct=coverage_pct(covered, len(everyone)),
        counts=_counts(c.state for c in everyone), towns=tuple(towns),
        to_reach_today=tuple(c for c in everyone if c.today and c.state not in (HELD, REACHED)),
    )  # fmt: skip


def _counts(states: Iterable[str]) -> dict[str, int]:
    found = Counter(states)
    return {s: found.get(s, 0) for s in STATES}


def _names(session: Session, codes: Mapping[str, Any]) -> dict[str, str]:
    stmt = select(Centre.code, Centre.name).where(col(Centre.code).in_(list(codes)))
    return {code: name for code, name in session.exec(stmt)}


def _slots_by_callee(session: Session, caller: str, week: IsoWeek) -> dict[str, list[_Slot]]:
    out: dict[str, list[_Slot]] = {}
    record = plans.get_week(session, _district_of(session, caller), week)
    if record is None:
        return out
    for slot in plans.week_slots(session, record.id or 0):
        if slot.caller_code != caller:
            continue
        for callee in slot.callees:
            out.setdefault(callee, []).append(_as_slot(slot))
    return out


def _as_slot(slot: RotaSlot) -> _Slot:
    return _Slot(start=slot.start.astimezone(SHANGHAI), end=slot.end.astimezone(SHANGHAI),
                 makeup=slot.makeup_of is not None, status=slot.status)  # fmt: skip


def _district_of(session: Session, code: str) -> str:
    return centres.get(session, code).path.split("/")[0]


def _open_invites(session: Session, caller: str) -> dict[str, list[str]]:
    stmt = (
        select(Invitation.centre_code, Invitation.state)
        .join(Call, col(Call.id) == col(Invitation.call_id))
        .where(Call.caller_code == caller, col(Call.state).in_(calls.OPEN_STATES))
    )
    out: dict[str, list[str]] = {}
    for code, state in session.exec(stmt):
        out.setdefault(code, []).append(state)
    return out
