"""The calls a rota week needs: the district's coverage of every town and village, the
towns' patrols, and the periodic calls (dispute screening, supervision) due this week —
a call due on a day of last week that last week did not hold is due from this Monday.
Meetings some callees can attend on no possible day are split into 1:1s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from dispatch.clock import SHANGHAI

from .board import Board, Demand
from .policy import Policy
from .slots import KIND_LABELS, PlannedSlot, TownInput


def coverage(policy: Policy, district: str, towns: Sequence[TownInput]) -> list[Demand]:
    """District coverage of every town and village: a meeting per town, or 1:1 calls."""
    if policy.district_mode == "meeting":
        return [
            Demand(
                "district_meeting",
                district,
                tuple(sorted((t.code, *t.villages))),
                policy.district_meeting_minutes,
            )
            for t in towns
        ]
    return [
        Demand("district_inspection", district, (c,), policy.district_inspection_minutes)
        for t in towns
        for c in (t.code, *t.villages)
    ]


def patrols(policy: Policy, towns: Sequence[TownInput]) -> list[Demand]:
    return [
        Demand("town_patrol", t.code, (v,), policy.town_patrol_minutes, round=r, chain=True)
        for t in towns
        for r in range(policy.town_patrols_per_week)
        for v in t.villages
    ]


def _months_near(week_start: date) -> list[tuple[int, int]]:
    """The months of the previous week and this one (a due date can lie in either)."""
    a, b = week_start - timedelta(days=7), week_start + timedelta(days=6)
    return sorted({(a.year, a.month), (b.year, b.month)})


Held = Callable[[date], bool]


def _due_date(target: date, week_start: date, days: tuple[date, ...], held: Held) -> date | None:
    """The day from which a call due on the first working day ≥ `target` goes in this week.

    Inside the week: the first working day ≥ target, if any (else a later week holds it).
    In the previous week: due now unless `held` says the previous week already had it.
    """
    if week_start <= target <= week_start + timedelta(days=6):
        return next((d for d in days if d >= target), None)
    if week_start - timedelta(days=7) <= target < week_start and not held(target):
        return days[0]
    return None


def _held_rule(
    previous: Sequence[PlannedSlot], week_start: date, kind: str, caller: str, member: str | None
) -> Held:
    """Whether the previous week already held a call due on/after a date of that week.

    With last week's rota at hand: it did iff it has a slot of this kind by this caller
    (with `member` among its callees) on or after the date. Without it: assume Mon–Fri
    were working days, so it did iff a weekday lies between the date and this Monday.
    """
    if not previous:
        return lambda target: any(
            (target + timedelta(days=i)).weekday() < 5 for i in range((week_start - target).days)
        )
    dates = [
        s.start.astimezone(SHANGHAI).date()
        for s in previous
        if s.kind == kind and s.caller == caller and (member is None or member in s.callees)
    ]
    return lambda target: any(d >= target for d in dates)


def _due_index(
    day_numbers: Sequence[int],
    month_ok: Callable[[int], bool],
    week_start: date,
    days: tuple[date, ...],
    held: Held,
) -> int | None:
    """Index of the earliest day a call due on any of `day_numbers` may take, or None."""
    dues = [
        due
        for y, m in _months_near(week_start)
        if month_ok(m)
        for n in day_numbers
        if (due := _due_date(date(y, m, n), week_start, days, held)) is not None
    ]
    return days.index(min(dues)) if dues else None


def _every(months: int) -> Callable[[int], bool]:
    return lambda m: months > 0 and (m - 1) % months == 0


def periodic(
    policy: Policy,
    district: str,
    towns: Sequence[TownInput],
    week_start: date,
    days: tuple[date, ...],
    previous: Sequence[PlannedSlot],
) -> list[Demand]:
    """Dispute screening and supervision dispatches due this week."""
    out: list[Demand] = []
    for t in towns:
        held = _held_rule(previous, week_start, "supervision", district, t.code)
        due = _due_index(
            (1,), _every(policy.supervision_district_every_months), week_start, days, held
        )
        if due is not None:
            out.append(Demand("supervision", district, (t.code,), policy.supervision_minutes, due))
        if not t.villages:
            continue
        held = _held_rule(previous, week_start, "screening", t.code, None)
        due = _due_index(policy.screening_days, lambda m: True, week_start, days, held)
        if due is not None:
            out.append(Demand("screening", t.code, t.villages, policy.screening_minutes, due))
        held = _held_rule(previous, week_start, "supervision", t.code, None)
        due = _due_index((1,), _every(policy.supervision_town_every_months), week_start, days, held)
        if due is not None:
            out.append(Demand("supervision", t.code, t.villages, policy.supervision_minutes, due))
    return out


def _who_can_meet(
    callees: tuple[str, ...], avail: dict[str, frozenset[int]]
) -> tuple[list[str], list[str]]:
    """(kept, left out): drop callees until the kept ones share a day; each drop is the
    callee whose absence leaves the most common days (ties: fewest own days, higher code —
    so a village goes before its town)."""

    def common(group: list[str]) -> frozenset[int]:
        out = frozenset.intersection(*(avail[v] for v in group)) if group else frozenset()
        return out

    keep, out = list(callees), []
    while keep and not common(keep):
        drop = max(
            keep,
            key=lambda v: (len(common([x for x in keep if x != v])), -len(avail[v]), v),
        )
        keep.remove(drop)
        out.append(drop)
    return keep, sorted(out)


def split_blacked_out(
    board: Board, dems: list[Demand], policy: Policy
) -> tuple[list[Demand], list[str]]:
    """Meetings some callees cannot attend on any possible day (blackouts) are held
    without them; each left-out callee gets its own 1:1, so every pair keeps a demand."""
    result: list[Demand] = []
    warnings: list[str] = []
    n = len(board.days)
    for dem in dems:
        possible = frozenset(range(dem.first_day, n)) - board.blocked.get(dem.caller, frozenset())
        if len(dem.callees) < 2 or not possible or not board.blocked:
            result.append(dem)
            continue
        avail = {v: possible - board.blocked.get(v, frozenset()) for v in dem.callees}
        keep, out = _who_can_meet(dem.callees, avail)
        if not out:
            result.append(dem)
            continue
        if keep:
            result.append(Demand(dem.kind, dem.caller, tuple(keep), dem.minutes, dem.first_day))
        one_kind = "district_inspection" if dem.kind == "district_meeting" else dem.kind
        minutes = (
            policy.district_inspection_minutes
            if dem.kind == "district_meeting"
            else policy.town_patrol_minutes
        )
        result.extend(Demand(one_kind, dem.caller, (v,), minutes, dem.first_day) for v in out)
        warnings.append(
            f"{dem.caller} 的{KIND_LABELS[dem.kind][0]}不含 {'、'.join(out)}"
            f"（每个可开会的日子都不可调度），改为各自一对一{KIND_LABELS[one_kind][0]} / "
            f"{dem.kind} {dem.caller} → {dem.callees[0]} and others: held without "
            f"{', '.join(out)} (blacked out on every day it could be held); each gets its own "
            f"1:1 {one_kind}"
        )
    return result, warnings
