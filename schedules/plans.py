"""Stored rotas: one `RotaWeek` per district and ISO week, its `RotaSlot`s, and who is
called in each (`RotaSlotCallee`, for "my next calls" and the calendar feeds).

Invariants:
- The tables are the truth; scheduler jobs are derived from them and can be rebuilt.
- A slot's `uid` depends only on (week, kind, caller, callees, n-th such call), so a
  rebuilt week keeps the uids of the calls it still holds; `sequence` goes up by one
  whenever a stored slot's time or console changes (RFC 5545 SEQUENCE).
- A week is rebuilt only while none of its slots has started or changed status:
  history is never overwritten.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import JSON, Column, UniqueConstraint, insert
from sqlmodel import Field, Session, SQLModel, col, select

from dispatch.clock import SHANGHAI, utcnow
from dispatch.errors import Conflict, NotFound

from .slots import PlannedSlot, RotaResult, Unplaced
from .workdays import IsoWeek

PLANNED, HELD, MISSED, CANCELLED = "planned", "held", "missed", "cancelled"
STATUSES = (PLANNED, HELD, MISSED, CANCELLED)
# What pages call a slot's status (Chinese, English).
STATUS_LABELS: dict[str, tuple[str, str]] = {
    PLANNED: ("待进行", "planned"),
    HELD: ("已完成", "held"),
    MISSED: ("未完成", "missed"),
    CANCELLED: ("已取消", "cancelled"),
}


class RotaWeek(SQLModel, table=True):
    __tablename__ = "rota_week"
    __table_args__ = (UniqueConstraint("district_code", "week"),)

    id: int | None = Field(default=None, primary_key=True)
    district_code: str = Field(foreign_key="centre.code", index=True)
    week: str = Field(max_length=8)  # "2026-W41"
    week_start: date
    seed: int
    spot_check_seed: int
    exempt: bool
    workdays: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    unplaced: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    revision: int = 1
    built_by: str = Field(default="", max_length=64)
    built_at: datetime = Field(default_factory=utcnow)


class RotaSlot(SQLModel, table=True):
    __tablename__ = "rota_slot"

    id: int | None = Field(default=None, primary_key=True)
    week_id: int = Field(foreign_key="rota_week.id", index=True)
    uid: str = Field(unique=True, max_length=120)
    kind: str = Field(max_length=24)
    caller_code: str = Field(foreign_key="centre.code", index=True)
    callees: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    start: datetime = Field(index=True)
    end: datetime
    console: int
    reserve: bool = False
    hidden: bool = False  # spot check: not shown to the callee before it rings
    status: str = Field(default=PLANNED, max_length=10, index=True)
    makeup_of: int | None = Field(default=None, foreign_key="rota_slot.id")
    sequence: int = 0
    reminded_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    def planned(self) -> PlannedSlot:
        return PlannedSlot(
            kind=self.kind,
            caller=self.caller_code,
            callees=tuple(self.callees),
            start=self.start.astimezone(SHANGHAI),
            end=self.end.astimezone(SHANGHAI),
            console=self.console,
            reserve=self.reserve,
            hidden=self.hidden,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.uid,
            "kind": self.kind,
            "caller": self.caller_code,
            "callees": list(self.callees),
            "start": self.start.astimezone(SHANGHAI).isoformat(),
            "end": self.end.astimezone(SHANGHAI).isoformat(),
            "console": self.console,
            "reserve": self.reserve,
            "hidden": self.hidden,
            "status": self.status,
            "makeup_of": self.makeup_of,
        }


class RotaSlotCallee(SQLModel, table=True):
    __tablename__ = "rota_slot_callee"

    slot_id: int = Field(foreign_key="rota_slot.id", primary_key=True)
    centre_code: str = Field(foreign_key="centre.code", primary_key=True, index=True)


def slot_uid(week: str, kind: str, caller: str, callees: tuple[str, ...], nth: int) -> str:
    digest = hashlib.sha256(",".join(callees).encode()).hexdigest()[:12]
    return f"{week}-{kind}-{caller}-{digest}-{nth}@pingan-dispatch"


def get_week(session: Session, district_code: str, week: IsoWeek) -> RotaWeek | None:
    stmt = select(RotaWeek).where(
        RotaWeek.district_code == district_code, RotaWeek.week == str(week)
    )
    return session.exec(stmt).first()


def require_week(session: Session, district_code: str, week: IsoWeek) -> RotaWeek:
    found = get_week(session, district_code, week)
    if found is None:
        raise NotFound("rota", f"{district_code} {week}")
    return found


def week_slots(session: Session, week_id: int, *, cancelled: bool = False) -> list[RotaSlot]:
    """The week's slots; those a rebuild dropped (CANCELLED) only when asked for (the
    calendar feeds keep them, marked cancelled)."""
    stmt = select(RotaSlot).where(RotaSlot.week_id == week_id)
    if not cancelled:
        stmt = stmt.where(RotaSlot.status != CANCELLED)
    order = (col(RotaSlot.start), col(RotaSlot.caller_code), col(RotaSlot.console))
    return list(session.exec(stmt.order_by(*order)))


def save_result(
    session: Session, week: IsoWeek, result: RotaResult, by: str, now: datetime | None = None
) -> RotaWeek:
    """Store a built rota, replacing an earlier build of the same week that has not begun.
    A slot of the earlier build that the new one keeps (same uid) is updated in place
    (SEQUENCE raised when it moves); one it drops is CANCELLED with SEQUENCE raised and
    closed, never deleted, so calendar feeds show it cancelled instead of losing it; a
    cancelled slot the new build brings back is planned again."""
    now = now or utcnow()
    record = get_week(session, result.district, week)
    old: dict[str, RotaSlot] = {}
    if record is not None:
        for stored in week_slots(session, record.id or 0, cancelled=True):
            if stored.status == CANCELLED:
                old[stored.uid] = stored
                continue
            if stored.status != PLANNED or stored.start <= now:
                raise Conflict(
                    f"rota {week} of {result.district} has begun (slot {stored.id} is "
                    f"{stored.status}, starting {stored.start.astimezone(SHANGHAI):%m-%d %H:%M}); "
                    "it cannot be rebuilt — missed calls get make-ups instead"
                )
            old[stored.uid] = stored
        record.revision += 1
    else:
        record = RotaWeek(
            district_code=result.district,
            week=str(week),
            week_start=week.monday,
            seed=result.seed,
            spot_check_seed=result.spot_check_seed,
            exempt=False,
        )
    record.seed, record.spot_check_seed = result.seed, result.spot_check_seed
    record.exempt = result.exempt
    record.workdays = [d.isoformat() for d in result.workdays]
    record.warnings = list(result.warnings)
    record.unplaced = [_unplaced_dict(u) for u in result.unplaced]
    record.built_by, record.built_at = by, now
    session.add(record)
    session.flush()

    seen: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
    kept: set[str] = set()
    fresh: list[dict[str, Any]] = []
    stamp = utcnow()
    for planned in result.slots:
        key = (planned.kind, planned.caller, planned.callees)
        seen[key] += 1
        uid = slot_uid(str(week), *key, seen[key])
        kept.add(uid)
        slot = old.get(uid)
        if slot is None:
            fresh.append({
                "week_id": record.id, "uid": uid, "kind": planned.kind,
                "caller_code": planned.caller, "callees": list(planned.callees),
                "start": planned.start, "end": planned.end, "console": planned.console,
                "reserve": planned.reserve, "hidden": planned.hidden, "status": PLANNED,
                "sequence": 0, "updated_at": stamp,
            })  # fmt: skip
            continue
        # The uid encodes the callees, so a kept slot's callee rows stay as they are.
        at = (planned.start, planned.end, planned.console)
        moved = (slot.start, slot.end, slot.console) != at
        if moved or slot.status == CANCELLED:
            slot.sequence += 1
        if slot.status == CANCELLED:
            slot.status, slot.closed_at = PLANNED, None
        slot.start, slot.end, slot.console = planned.start, planned.end, planned.console
        slot.reserve, slot.hidden, slot.updated_at = planned.reserve, planned.hidden, stamp
        session.add(slot)
    for uid, slot in old.items():
        if uid in kept or slot.status == CANCELLED:
            continue
        slot.status, slot.closed_at = CANCELLED, stamp  # closed: no job is given to it
        slot.sequence += 1
        slot.updated_at = stamp
        session.add(slot)
    _insert_slots(session, fresh)
    return record


def _insert_slots(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk-insert slots and their callee rows (a province week is ~35,000 slots);
    returns the new ids in the order of `rows`."""
    if not rows:
        return []
    stmt = insert(RotaSlot).returning(col(RotaSlot.id), sort_by_parameter_order=True)
    ids = [row[0] for row in session.execute(stmt, rows)]
    callees = [
        {"slot_id": slot_id, "centre_code": code}
        for slot_id, row in zip(ids, rows, strict=True)
        for code in row["callees"]
    ]
    session.execute(insert(RotaSlotCallee), callees)
    return ids


def add_slot(
    session: Session, week_id: int, planned: PlannedSlot, makeup_of: int | None
) -> RotaSlot:
    """Add one slot to a stored week (a make-up)."""
    row = {
        "week_id": week_id, "uid": f"pending-{uuid4()}", "kind": planned.kind,
        "caller_code": planned.caller, "callees": list(planned.callees),
        "start": planned.start, "end": planned.end, "console": planned.console,
        "reserve": planned.reserve, "hidden": planned.hidden, "status": PLANNED,
        "sequence": 0, "makeup_of": makeup_of, "updated_at": utcnow(),
    }  # fmt: skip
    (slot_id,) = _insert_slots(session, [row])
    slot = get_slot(session, slot_id)
    slot.uid = f"makeup-{slot_id}-of-{makeup_of}@pingan-dispatch"
    session.add(slot)
    session.flush()
    return slot


def _unplaced_dict(u: Unplaced) -> dict[str, Any]:
    return {
        "caller": u.caller,
        "callee": u.callee,
        "kind": u.kind,
        "reason": u.reason,
        "shortfall_minutes": u.shortfall_minutes,
    }


def not_planned_days(record: RotaWeek | None, workdays: Iterable[date]) -> tuple[str, ...]:
    """The week's working days (`workdays`, the calendar's) that had already passed when
    `record` was built mid-week: the builder planned nothing on them (they are not rest
    days). Empty without a record."""
    if record is None:
        return ()
    at = record.built_at
    built = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(SHANGHAI).date()
    planned = set(record.workdays)
    return tuple(
        d.isoformat() for d in sorted(workdays) if d <= built and d.isoformat() not in planned
    )


def all_workdays(record: RotaWeek, workdays: Iterable[date]) -> list[str]:
    """The week's working days: those planned and those already past when it was built."""
    return sorted(set(record.workdays) | set(not_planned_days(record, workdays)))


def week_json(
    record: RotaWeek,
    slots: list[RotaSlot],
    *,
    show_hidden: bool = True,
    workdays: Iterable[date] = (),
) -> dict[str, Any]:
    """The rota as the CLI and the API print it (times ISO 8601 with +08:00). `workdays`:
    the calendar's working days of the week, to tell days passed when it was built."""
    days = list(workdays)
    return {
        "week": record.week,
        "district": record.district_code,
        "workdays": all_workdays(record, days),
        "not_planned_days": list(not_planned_days(record, days)),
        "exempt": record.exempt,
        "revision": record.revision,
        "seed": record.seed,
        "spot_check_seed": record.spot_check_seed,
        "slots": [s.as_dict() for s in slots if show_hidden or not s.hidden],
        "unplaced": [
            {
                "caller": u["caller"],
                "callee": u["callee"],
                "reason": u["reason"],
                "kind": u["kind"],
                "shortfall_minutes": u["shortfall_minutes"],
            }
            for u in record.unplaced
        ],
        "warnings": list(record.warnings),
    }


def slots_for_centre(
    session: Session,
    code: str,
    start: datetime,
    end: datetime,
    *,
    as_callee_hidden: bool = False,
    cancelled: bool = False,
) -> list[RotaSlot]:
    """Slots in [start, end) where `code` calls or is called. Hidden spot checks count
    only as caller unless `as_callee_hidden` (the caller's own feed never hides them);
    slots a rebuild dropped only with `cancelled` (the calendar feed)."""
    as_caller = select(RotaSlot).where(
        RotaSlot.caller_code == code, RotaSlot.start >= start, RotaSlot.start < end
    )
    as_callee = (
        select(RotaSlot)
        .join(RotaSlotCallee, col(RotaSlotCallee.slot_id) == col(RotaSlot.id))
        .where(RotaSlotCallee.centre_code == code, RotaSlot.start >= start, RotaSlot.start < end)
    )
    if not cancelled:
        as_caller = as_caller.where(RotaSlot.status != CANCELLED)
        as_callee = as_callee.where(RotaSlot.status != CANCELLED)
    if not as_callee_hidden:
        as_callee = as_callee.where(col(RotaSlot.hidden).is_(False))
    found = {s.id: s for s in session.exec(as_caller)} | {s.id: s for s in session.exec(as_callee)}
    return sorted(found.values(), key=lambda s: (s.start, s.console, s.id or 0))


def get_slot(session: Session, slot_id: int) -> RotaSlot:
    slot = session.get(RotaSlot, slot_id)
    if slot is None:
        raise NotFound("rota slot", str(slot_id))
    return slot

