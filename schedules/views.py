"""What an account may see of a rota: the scope rule applied to slots.

Invariant: a slot is shown in full to an account whose scope covers its caller; to
others it is shown only if it is not a hidden spot check and some callee lies in their
scope — and then with only those callees (a village sees its own place in a district
meeting, never which other villages are called). The same holds for a pair that could
not be placed: an unplaced spot check is shown only to the caller's scope (the district),
never to the village drawn or its town.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from dispatch import centres
from dispatch.accounts import Scope
from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput, NotAuthorised

from . import planner, plans, workdays
from .plans import RotaSlot, RotaWeek
from .workdays import IsoWeek

HIDDEN_KINDS = frozenset({"spot_check"})  # unannounced: the callee's side never sees them


@dataclass(frozen=True)
class SlotView:
    slot: RotaSlot
    callees: tuple[str, ...]
    full: bool  # the viewer's scope covers the caller

    def as_dict(self) -> dict[str, Any]:
        data = self.slot.as_dict()
        data["callees"] = list(self.callees)
        return data


@dataclass
class WeekView:
    week: IsoWeek
    district: str
    record: RotaWeek | None
    slots: list[SlotView] = field(default_factory=list)
    unplaced: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    workdays: list[str] = field(default_factory=list)  # the week's working days
    not_planned: list[str] = field(default_factory=list)  # of them, past when it was built

    def as_dict(self) -> dict[str, Any]:
        if self.record is None:
            return {"week": str(self.week), "district": self.district, "built": False}
        return {
            "week": self.record.week,
            "district": self.district,
            "built": True,
            "workdays": list(self.workdays),
            "not_planned_days": list(self.not_planned),
            "exempt": self.record.exempt,
            "revision": self.record.revision,
            "slots": [v.as_dict() for v in self.slots],
            "unplaced": self.unplaced,
            "warnings": self.warnings,
        }


def district_of_scope(session: Session, scope: Scope, requested: str | None) -> str:
    """The district whose rota a scope looks at: its own, or the one named (admin)."""
    if scope.root_path is not None:
        own = scope.root_path.split("/")[0]
        if requested and requested != own:
            raise InvalidInput("district", f"{requested} is not your district")
        return own
    return planner.resolve_district(session, requested)


def _paths(session: Session, district: str) -> tuple[dict[str, str], dict[str, str]]:
    root = centres.get(session, district)
    rows = centres.all_below(session, root, include_self=True)
    return {c.code: c.path for c in rows}, {c.code: c.name for c in rows}


def _covers(scope: Scope, path: str | None) -> bool:
    return path is not None and (scope.root_path is None or path.startswith(scope.root_path))


def view_slot(scope: Scope, slot: RotaSlot, paths: dict[str, str]) -> SlotView | None:
    if _covers(scope, paths.get(slot.caller_code)):
        return SlotView(slot, tuple(slot.callees), True)
    if slot.hidden:
        return None
    mine = tuple(c for c in slot.callees if _covers(scope, paths.get(c)))
    return SlotView(slot, mine, False) if mine else None


def week_view(
    session: Session,
    scope: Scope,
    week: IsoWeek,
    district: str | None = None,
    centre: str | None = None,
) -> WeekView:
    """The week as `scope` may see it; `centre` narrows it to the calls that centre
    makes or takes."""
    code = district_of_scope(session, scope, district)
    paths, names = _paths(session, code)
    record = plans.get_week(session, code, week)
    view = WeekView(week, code, record, names=names)
    if record is None:
        return view
    days = workdays.load_calendar(session).workdays(week)
    view.workdays = plans.all_workdays(record, days)
    view.not_planned = list(plans.not_planned_days(record, days))
    for slot in plans.week_slots(session, record.id or 0):
        if centre is not None and slot.caller_code != centre and centre not in slot.callees:
            continue
        shown = view_slot(scope, slot, paths)
        if shown is not None:
            view.slots.append(shown)
    for u in record.unplaced:
        if _covers(scope, paths.get(u["caller"])) or (
            u["kind"] not in HIDDEN_KINDS and _covers(scope, paths.get(u["callee"]))
        ):
            view.unplaced.append(u)
    if _covers(scope, paths.get(code)):
        view.warnings = list(record.warnings)
    return view


def upcoming(session: Session, scope: Scope, now: datetime, days: int = 14) -> list[SlotView]:
    """The account's own centre's next calls (as caller or callee), hidden ones excluded."""
    if scope.centre_code is None:
        return []
    paths = {scope.centre_code: scope.root_path or ""}
    out = []
    for slot in plans.slots_for_centre(
        session, scope.centre_code, now - timedelta(hours=1), now + timedelta(days=days)
    ):
        if slot.end.astimezone(SHANGHAI) < now or slot.status == plans.CANCELLED:
            continue
        full = slot.caller_code == scope.centre_code
        callees = tuple(slot.callees) if full else tuple(c for c in slot.callees if c in paths)
        out.append(SlotView(slot, callees, full))
    return out


def slot_for_scope(session: Session, scope: Scope, slot_id: int) -> tuple[SlotView, dict[str, str]]:
    slot = plans.get_slot(session, slot_id)
    week = session.get(RotaWeek, slot.week_id)
    assert week is not None
    paths, names = _paths(session, week.district_code)
    shown = view_slot(scope, slot, paths)
    if shown is None:
        raise NotAuthorised(f"rota slot {slot_id} is outside your scope")
    return shown, names
