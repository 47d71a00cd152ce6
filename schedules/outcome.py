"""Coverage per pair — the one rule for whether a call covered an invited centre and what
that means for a rota slot. The live path (web/calls.py), the scheduler's close
(schedules/jobs.py), the history generator (logs/history.py) and the reports
(logs/coverage.py) all decide through this module.

The rule:
- An invited centre is *covered* by a call when it has a `verified` event in it, or
  when its live video (the largest `seconds_live` of its `verified` / `left` events) is
  positive and at least `min_verified_seconds`. Each invited centre of a meeting is
  covered or missed on its own.
- A slot is *held* when a call launched for it covered at least one of its callees (the
  meeting took place), else *missed*.
- Each callee the week has not covered — no covering call by the slot's caller in the
  slot's week, through this slot or any other call — is *missed* and gets a make-up
  (unless the slot is itself a make-up), even when the slot was held. A callee covered
  by another call of the week is neither: its pair is covered already.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from dispatch import calls
from dispatch.calls import AttendanceRow, Call, Invitation
from dispatch.clock import SHANGHAI, utcnow
from dispatch.db import in_batches

from .plans import CANCELLED, HELD, MISSED, PLANNED, RotaSlot, RotaWeek
from .workdays import IsoWeek


def covers(verified: bool, seconds_live: float, min_verified_seconds: float) -> bool:
    """Did a call cover an invited centre? (See the module's rule.)"""
    return verified or (seconds_live > 0 and seconds_live >= min_verified_seconds)


@dataclass(frozen=True)
class SlotOutcome:
    """What a slot's calls did for each of its callees."""

    covered: tuple[str, ...]  # covered by a call of this slot
    elsewhere: tuple[str, ...]  # not in this slot, but by another call of the week
    missed: tuple[str, ...]  # not covered this week: each gets a make-up

    @property
    def status(self) -> str:
        return HELD if self.covered else MISSED


def slot_outcome(
    callees: Sequence[str], in_slot: Iterable[str], in_week: Iterable[str] = ()
) -> SlotOutcome:
    """The outcome of a slot from the callees covered by its own calls (`in_slot`) and
    by any call of its caller in its week (`in_week`; `in_slot` counts there too)."""
    mine = set(in_slot)
    week = set(in_week) | mine
    return SlotOutcome(
        covered=tuple(c for c in callees if c in mine),
        elsewhere=tuple(c for c in callees if c in week and c not in mine),
        missed=tuple(c for c in callees if c not in week),
    )


# --- reading the rule's inputs from the attendance record ---------------------------------


def as_number(value: Any) -> float | None:
    """A number stored in an event's JSON data, or None (booleans are not numbers)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def covered_by_calls(
    session: Session, call_ids: Iterable[int], min_verified_seconds: float
) -> dict[int, set[str]]:
    """{call id: the invited centres it covered} from the calls' attendance events."""
    verified: dict[tuple[int, str], bool] = defaultdict(bool)
    live: dict[tuple[int, str], float] = defaultdict(float)
    for chunk in in_batches(call_ids):
        stmt = select(
            AttendanceRow.call_id, AttendanceRow.centre_code, AttendanceRow.kind,
            AttendanceRow.data,
        ).where(col(AttendanceRow.call_id).in_(chunk),
                col(AttendanceRow.kind).in_((calls.VERIFIED, calls.LEFT)))  # fmt: skip
        for call_id, centre, kind, data in session.exec(stmt):
            if centre is None:
                continue
            key = (call_id, centre)
            verified[key] |= kind == calls.VERIFIED
            seconds = as_number((data or {}).get("seconds_live"))
            if seconds is not None:
                live[key] = max(live[key], seconds)
    out: dict[int, set[str]] = defaultdict(set)
    for key in set(verified) | set(live):
        if covers(verified[key], live[key], min_verified_seconds):
            out[key[0]].add(key[1])
    return out


def week_window(week: IsoWeek) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) in Asia/Shanghai, as UTC."""
    start = datetime.combine(week.monday, time(), SHANGHAI).astimezone(UTC)
    return start, start + timedelta(days=7)


def outcome_of(session: Session, slot: RotaSlot, min_verified_seconds: float) -> SlotOutcome:
    """The slot's outcome as the record stands now: its own calls, and every call of its
    caller created in its week that invited one of its callees."""
    record = session.get(RotaWeek, slot.week_id)
    mine: set[str] = set()
    week: set[str] = set()
    own = [c for c in session.exec(select(Call.id).where(Call.slot_id == slot.id))]
    ids: list[int] = [c for c in own if c is not None]
    if record is not None:
        start, end = week_window(IsoWeek.parse(record.week))
        stmt = (
            select(Call.id)
            .join(Invitation, col(Invitation.call_id) == col(Call.id))
            .where(Call.caller_code == slot.caller_code, col(Call.created_at) >= start,
                   col(Call.created_at) < end,
                   col(Invitation.centre_code).in_(list(slot.callees)))
        )  # fmt: skip
        ids += [c for c in session.exec(stmt) if c is not None]
    covered = covered_by_calls(session, ids, min_verified_seconds)
    for call_id, centres in covered.items():
        week |= centres
        if call_id in own:
            mine |= centres
    return slot_outcome(slot.callees, mine, week)


def record_verified(session: Session, slot_id: int, centre: str) -> bool:
    """The live path: a callee of the slot's call was verified — the slot is held by the
    rule (a planned or missed slot becomes held; a late make-up call counts too).
    Returns whether the slot changed."""
    slot = session.get(RotaSlot, slot_id)
    if slot is None or slot.status in (HELD, CANCELLED):
        return False
    if slot_outcome(slot.callees, {centre}).status != HELD:
        return False  # not one of its callees
    slot.status = HELD
    slot.updated_at = utcnow()
    session.add(slot)
    return True


def settle(slot: RotaSlot, outcome: SlotOutcome) -> None:
    """Set a closing slot's status from its outcome (a cancelled one stays cancelled)."""
    if slot.status in (PLANNED, HELD, MISSED):
        slot.status = outcome.status

