"""The weekly rota builder: a pure function of (week, centres, policy, working days, last
week's rota, seed) → planned slots. No database, no clock, no I/O.

Time model: a day is an index into the week's sorted working days; a time of day is
whole minutes after local midnight in Asia/Shanghai; every call is the half-open
interval [start, end) on one day.

Hard constraints every placed slot meets (tests/test_rota.py checks them independently):
- it lies on a working day, inside one window of its caller, starting on the
  `slot_step_minutes` grid counted from that window's start;
- its console (1..consoles of the caller) is free for the whole slot;
- no centre is in two calls at once: a callee is in nothing else then (as callee or as
  caller), and a caller is not a callee then; only a caller's own calls on different
  consoles may overlap, which is what consoles are for;
- no participant has a blackout that day.
A required pair that cannot be placed becomes an `Unplaced` naming the shortfall.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput

from .policy import CallerConfig, Policy, PolicyBundle

TZ = SHANGHAI  # every time of the rota is Shanghai wall time
KINDS = (
    "district_meeting",
    "district_inspection",
    "town_patrol",
    "screening",
    "supervision",
    "spot_check",
    "makeup",
)
# Placement order: big and constrained calls first, so the small 1:1s fill around them.
PRIORITY = {
    "district_meeting": 0,
    "screening": 1,
    "supervision": 2,
    "district_inspection": 3,
    "town_patrol": 4,
    "spot_check": 5,
    "makeup": 6,
}
DISTRICT_KINDS = frozenset({"district_meeting", "district_inspection", "spot_check"})
KIND_ZH = {
    "district_meeting": "区级视频调度会",
    "district_inspection": "区级视频调度",
    "town_patrol": "镇级视频巡查",
    "screening": "矛盾纠纷排查调度会",
    "supervision": "督导调度",
    "spot_check": "视频抽查",
    "makeup": "补调度",
}
EXEMPT_WARNING = "本周无工作日，免于调度 / week has no working day: exempt"


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TownInput:
    code: str  # 12-digit
    villages: tuple[str, ...]  # active village codes of this town, sorted


@dataclass(frozen=True)
class PlannedSlot:
    kind: str  # one of KINDS
    caller: str  # caller centre code
    callees: tuple[str, ...]  # sorted codes
    start: datetime  # timezone-aware, Asia/Shanghai
    end: datetime
    console: int  # 1..consoles of the caller
    reserve: bool = False  # placed inside the make-up reserve
    hidden: bool = False  # spot checks: not shown to the callee before it rings


@dataclass(frozen=True)
class Unplaced:
    caller: str
    callee: str
    kind: str
    reason: str  # human readable, includes the shortfall in slot-minutes
    shortfall_minutes: int


@dataclass(frozen=True)
class RotaResult:
    week_start: date  # the Monday
    district: str
    workdays: tuple[date, ...]
    exempt: bool  # no working day in the week
    slots: tuple[PlannedSlot, ...]  # sorted by (start, caller, console)
    unplaced: tuple[Unplaced, ...]
    warnings: tuple[str, ...]
    seed: int
    spot_check_seed: int  # the seed actually used to draw spot checks (for audit)


# ------------------------------------------------------------------ busy structures


class _Intervals:
    """Busy [start, end) minute intervals of one resource (a centre, a console) on one day.

    Invariant: the intervals never overlap and `starts` is sorted, hence `ends` is sorted
    too — so one bisect on `ends` finds the only interval that can meet a new one first.
    """

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def clash(self, start: int, end: int) -> int | None:
        """The end of the first interval overlapping [start, end), or None when free."""
        i = bisect_right(self.ends, start)
        if i < len(self.starts) and self.starts[i] < end:
            return self.ends[i]
        return None

    def add(self, start: int, end: int) -> None:
        i = bisect_left(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)


@dataclass
class _Caller:
    """A caller centre's capacity and load for the week.

    The reserve is everything from minute `reserve_minute` of day `reserve_day` to the end
    of the week (on every console); `reserve_day == n` means no reserve.
    """

    code: str
    consoles: int
    windows: tuple[tuple[int, int], ...]  # sorted, non-overlapping minutes of the day
    rot: int  # tie-break offset: equal-load days rotate between callers
    reserve_day: int
    reserve_minute: int
    regular_cap: list[int]  # console-minutes per day outside the reserve
    full_cap: list[int]  # console-minutes per day
    load: list[int]  # minutes per day this centre spends in calls (either role)


@dataclass
class _Board:
    """Who is busy when during one week. Every placed slot is recorded here exactly once."""

    days: tuple[date, ...]
    step: int
    callers: dict[str, _Caller]
    blocked: dict[str, frozenset[int]]  # centre → day indices it is blacked out
    busy: dict[str, list[_Intervals]] = field(default_factory=dict)  # as a callee, per day
    consoles: dict[str, list[list[_Intervals]]] = field(default_factory=dict)  # [console][day]


@dataclass(frozen=True)
class _Demand:
    """One call the week needs. `first_day` is the earliest day index (a due day)."""

    kind: str
    caller: str
    callees: tuple[str, ...]
    minutes: int
    first_day: int = 0
    hidden: bool = False
    round: int = 0
    chain: bool = False  # town patrols: placed back to back per (caller, round)

    def sort_key(self) -> tuple[int, int, int, int, str, int, tuple[str, ...]]:
        """Fewest possible days first (a late due day), then by PRIORITY, biggest first."""
        return (
            -self.first_day,
            PRIORITY[self.kind],
            -len(self.callees),
            -self.minutes,
            self.caller,
            self.round,
            self.callees,
        )


Spot = tuple[int, int, int]  # (day index, start minute, console)


# --------------------------------------------------------------------- the board


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


def _config(bundle: PolicyBundle, code: str, level: str) -> CallerConfig:
    return bundle.policy.caller_config(level, bundle.callers.get(code))


def _reserve_cut(
    windows: tuple[tuple[int, int], ...], consoles: int, n: int, fraction: float, step: int
) -> tuple[int, int]:
    """(day, minute) where the reserve starts, filled from the end of the week backwards.

    The cut lies on the grid of its window, rounded down, so the reserve is never smaller
    than `fraction` of the week's console capacity.
    """
    total = n * consoles * sum(we - ws for ws, we in windows)
    need = math.ceil(fraction * total - 1e-9)
    if need <= 0:
        return n, 0
    acc = 0
    for d in reversed(range(n)):
        for ws, we in reversed(windows):
            cap = (we - ws) * consoles
            if acc + cap >= need:
                cut = we - -(-(need - acc) // consoles)
                return d, ws + (cut - ws) // step * step
            acc += cap
    return 0, windows[0][0]


def _regular_minutes(c: _Caller, d: int) -> int:
    if d > c.reserve_day:
        return 0
    if d < c.reserve_day:
        return sum(we - ws for ws, we in c.windows)
    return sum(max(0, min(we, c.reserve_minute) - ws) for ws, we in c.windows)


def _make_caller(code: str, cfg: CallerConfig, rot: int, n: int, policy: Policy) -> _Caller:
    windows = tuple(sorted((_minute(w.start), _minute(w.end)) for w in cfg.windows))
    r_day, r_min = _reserve_cut(
        windows, cfg.consoles, n, policy.reserve_fraction, policy.slot_step_minutes
    )
    c = _Caller(code, cfg.consoles, windows, rot, r_day, r_min, [], [], [0] * n)
    c.regular_cap = [_regular_minutes(c, d) * cfg.consoles for d in range(n)]
    c.full_cap = [sum(we - ws for ws, we in windows) * cfg.consoles] * n
    return c


def _make_board(
    days: tuple[date, ...], bundle: PolicyBundle, callers: Sequence[tuple[str, str]]
) -> _Board:
    """`callers` are (code, level) pairs in a stable order (their rotation offsets)."""
    n = len(days)
    policy = bundle.policy
    board = _Board(days, policy.slot_step_minutes, {}, _blackout_days(days, bundle))
    for rot, (code, level) in enumerate(callers):
        c = _make_caller(code, _config(bundle, code, level), rot, n, policy)
        board.callers[code] = c
        board.consoles[code] = [[_Intervals() for _ in days] for _ in range(c.consoles)]
    return board


def _blackout_days(days: tuple[date, ...], bundle: PolicyBundle) -> dict[str, frozenset[int]]:
    out: dict[str, set[int]] = {}
    for b in bundle.blackouts:
        hit = {d for d, day in enumerate(days) if b.blocks(day)}
        if hit:
            out.setdefault(b.centre, set()).update(hit)
    return {code: frozenset(v) for code, v in out.items()}


def _busy_of(board: _Board, code: str) -> list[_Intervals]:
    per_day = board.busy.get(code)
    if per_day is None:
        per_day = board.busy[code] = [_Intervals() for _ in board.days]
    return per_day


def _bad_days(board: _Board, caller: str, callees: tuple[str, ...]) -> frozenset[int]:
    if not board.blocked:
        return frozenset()
    bad: set[int] = set(board.blocked.get(caller, ()))
    for v in callees:
        bad.update(board.blocked.get(v, ()))
    return frozenset(bad)


# ------------------------------------------------------------------ constraint checks


def _clash(
    board: _Board, caller: str, callees: tuple[str, ...], d: int, s: int, e: int
) -> int | None:
    """Minute from which [s, e) might be free for every participant, or None if free now.

    The caller must not be a callee then; a callee must be in no call at all then.
    """
    busy = board.busy.get(caller)
    if busy is not None and (j := busy[d].clash(s, e)) is not None:
        return j
    for v in callees:
        busy = board.busy.get(v)
        if busy is not None and (j := busy[d].clash(s, e)) is not None:
            return j
        for console in board.consoles.get(v, ()):
            if (j := console[d].clash(s, e)) is not None:
                return j
    return None


def _free_console(
    board: _Board, caller: str, d: int, s: int, e: int, prefer: int = 1
) -> tuple[int, int]:
    """(console, 0) for a free console, `prefer` first; else (0, earliest minute one frees)."""
    consoles = board.consoles[caller]
    order = sorted(range(1, len(consoles) + 1), key=lambda k: k != prefer)
    jump = math.inf
    for k in order:
        j = consoles[k - 1][d].clash(s, e)
        if j is None:
            return k, 0
        jump = min(jump, j)
    return 0, int(jump)


def _bounds(c: _Caller, d: int, ws: int, we: int, mode: str) -> tuple[int, int]:
    """The part of window [ws, we) on day d a slot may use: `regular` keeps out of the
    reserve, `reserve` keeps inside it, `any` is the whole window."""
    if mode == "regular":
        if d > c.reserve_day:
            return ws, ws
        if d == c.reserve_day:
            return ws, min(we, c.reserve_minute)
    elif mode == "reserve":
        if d < c.reserve_day:
            return we, we
        if d == c.reserve_day:
            return max(ws, c.reserve_minute), we
    return ws, we


def _align(x: int, ws: int, step: int) -> int:
    """The first grid minute (ws + k·step) at or after x."""
    return ws if x <= ws else ws + -(-(x - ws) // step) * step


# ------------------------------------------------------------------------ placement


def _scan(board: _Board, dem: _Demand, d: int, lo: int, hi: int, ws: int) -> tuple[int, int] | None:
    """Earliest (start, console) for `dem` on day d within [lo, hi) of the window at ws.

    Jumps past each clash to the clashing interval's end, so the scan costs one probe per
    obstacle, not one per grid step.
    """
    step = board.step
    s = _align(lo, ws, step)
    while s + dem.minutes <= hi:
        e = s + dem.minutes
        jump = _clash(board, dem.caller, dem.callees, d, s, e)
        if jump is None:
            k, jump = _free_console(board, dem.caller, d, s, e)
            if k:
                return s, k
        s = _align(jump, ws, step)
    return None


def _search(
    board: _Board,
    dem: _Demand,
    order: Sequence[int],
    mode: str,
    bad: frozenset[int],
    not_before: tuple[int, int] | None = None,
) -> Spot | None:
    """The first feasible spot, trying days in `order`, each from its earliest minute."""
    c = board.callers[dem.caller]
    nb_day, nb_min = not_before or (0, 0)
    for d in order:
        if d < dem.first_day or d < nb_day or d in bad:
            continue
        floor = nb_min if d == nb_day else 0
        for ws, we in c.windows:
            lo, hi = _bounds(c, d, ws, we, mode)
            hit = _scan(board, dem, d, max(lo, floor), hi, ws)
            if hit is not None:
                return d, hit[0], hit[1]
    return None


def _fits_at(
    board: _Board, dem: _Demand, d: int, s: int, mode: str, bad: frozenset[int], prefer: int = 1
) -> int:
    """The console on which `dem` can start exactly at minute s of day d, or 0."""
    if not 0 <= d < len(board.days) or d < dem.first_day or d in bad:
        return 0
    c = board.callers[dem.caller]
    e = s + dem.minutes
    for ws, we in c.windows:
        lo, hi = _bounds(c, d, ws, we, mode)
        if lo <= s and e <= hi and (s - ws) % board.step == 0:
            if _clash(board, dem.caller, dem.callees, d, s, e) is not None:
                return 0
            return _free_console(board, dem.caller, d, s, e, prefer)[0]
    return 0


def _day_order(c: _Caller, first_day: int, mode: str) -> list[int]:
    """Days by the caller's load relative to its capacity (even load), ties rotating."""
    n = len(c.load)
    caps = c.regular_cap if mode == "regular" else c.full_cap

    def key(d: int) -> tuple[float, int]:
        return (c.load[d] / caps[d] if caps[d] else math.inf, (d - c.rot) % n)

    return sorted(range(first_day, n), key=key)


def _in_reserve(c: _Caller, d: int, end: int) -> bool:
    return d > c.reserve_day or (d == c.reserve_day and end > c.reserve_minute)


def _local(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=TZ)


def _occupy(
    board: _Board, caller: str, callees: tuple[str, ...], d: int, s: int, e: int, k: int
) -> None:
    board.consoles[caller][k - 1][d].add(s, e)
    for v in callees:
        _busy_of(board, v)[d].add(s, e)
    minutes = e - s
    board.callers[caller].load[d] += minutes
    for v in callees:
        if v in board.callers:
            board.callers[v].load[d] += minutes


def _place(board: _Board, dem: _Demand, spot: Spot) -> PlannedSlot:
    d, s, k = spot
    e = s + dem.minutes
    _occupy(board, dem.caller, dem.callees, d, s, e, k)
    day = board.days[d]
    return PlannedSlot(
        kind=dem.kind,
        caller=dem.caller,
        callees=dem.callees,
        start=_local(day, s),
        end=_local(day, e),
        console=k,
        reserve=_in_reserve(board.callers[dem.caller], d, e),
        hidden=dem.hidden,
    )


def _find(
    board: _Board, dem: _Demand, bad: frozenset[int], first: Sequence[int] = ()
) -> Spot | None:
    """Outside the reserve on the least-loaded day (days in `first` before the rest);
    inside it only when nothing else fits."""
    c = board.callers[dem.caller]
    for mode in ("regular", "any"):
        order = _day_order(c, dem.first_day, mode)
        order = [*first, *(d for d in order if d not in first)]
        spot = _search(board, dem, order, mode, bad)
        if spot is not None:
            return spot
    return None


def _chain(
    board: _Board,
    group: list[tuple[int, _Demand]],
    near: dict[int, int],
    cursor: Spot | None,
) -> tuple[list[tuple[int, PlannedSlot]], list[_Demand]]:
    """A town's patrols of one round, back to back on one console where possible.

    `cursor` is where the next patrol would follow on (after the last one kept from last
    week), if anywhere. After each placed patrol the next one is tried right at its end
    (any remaining village that fits there); when none does, the first remaining one goes
    to the earliest free spot, on the same day if possible.
    """
    placed: list[tuple[int, PlannedSlot]] = []
    failed: list[_Demand] = []
    remaining = list(group)
    while remaining:
        pick: tuple[int, Spot] | None = None
        if cursor is not None:
            d, s, k = cursor
            for i, (_, dem) in enumerate(remaining):
                bad = _bad_days(board, dem.caller, dem.callees)
                console = _fits_at(board, dem, d, s, "regular", bad, prefer=k)
                if console:
                    pick = (i, (d, s, console))
                    break
        if pick is None:
            index, dem = remaining[0]
            if cursor is not None:
                first = [cursor[0]]
            else:
                first = [near[index]] if index in near else []
            spot = _find(board, dem, _bad_days(board, dem.caller, dem.callees), first)
            if spot is None:
                failed.append(remaining.pop(0)[1])
                continue
            pick = (0, spot)
        i, spot = pick
        index, dem = remaining.pop(i)
        placed.append((index, _place(board, dem, spot)))
        cursor = (spot[0], spot[1] + dem.minutes, spot[2])
    return placed, failed


# ---------------------------------------------------------------------------- demands


def _coverage(policy: Policy, district: str, towns: Sequence[TownInput]) -> list[_Demand]:
    """District coverage of every town and village: a meeting per town, or 1:1 calls."""
    if policy.district_mode == "meeting":
        return [
            _Demand(
                "district_meeting",
                district,
                tuple(sorted((t.code, *t.villages))),
                policy.district_meeting_minutes,
            )
            for t in towns
        ]
    return [
        _Demand("district_inspection", district, (c,), policy.district_inspection_minutes)
        for t in towns
        for c in (t.code, *t.villages)
    ]


def _patrols(policy: Policy, towns: Sequence[TownInput]) -> list[_Demand]:
    return [
        _Demand("town_patrol", t.code, (v,), policy.town_patrol_minutes, round=r, chain=True)
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
        s.start.astimezone(TZ).date()
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


def _periodic(
    policy: Policy,
    district: str,
    towns: Sequence[TownInput],
    week_start: date,
    days: tuple[date, ...],
    previous: Sequence[PlannedSlot],
) -> list[_Demand]:
    """Dispute screening and supervision dispatches due this week."""
    out: list[_Demand] = []
    for t in towns:
        held = _held_rule(previous, week_start, "supervision", district, t.code)
        due = _due_index(
            (1,), _every(policy.supervision_district_every_months), week_start, days, held
        )
        if due is not None:
            out.append(_Demand("supervision", district, (t.code,), policy.supervision_minutes, due))
        if not t.villages:
            continue
        held = _held_rule(previous, week_start, "screening", t.code, None)
        due = _due_index(policy.screening_days, lambda m: True, week_start, days, held)
        if due is not None:
            out.append(_Demand("screening", t.code, t.villages, policy.screening_minutes, due))
        held = _held_rule(previous, week_start, "supervision", t.code, None)
        due = _due_index((1,), _every(policy.supervision_town_every_months), week_start, days, held)
        if due is not None:
            out.append(_Demand("supervision", t.code, t.villages, policy.supervision_minutes, due))
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


def _split_blacked_out(
    board: _Board, dems: list[_Demand], policy: Policy
) -> tuple[list[_Demand], list[str]]:
    """Meetings some callees cannot attend on any possible day (blackouts) are held
    without them; each left-out callee gets its own 1:1, so every pair keeps a demand."""
    result: list[_Demand] = []
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
            result.append(_Demand(dem.kind, dem.caller, tuple(keep), dem.minutes, dem.first_day))
        one_kind = "district_inspection" if dem.kind == "district_meeting" else dem.kind
        minutes = (
            policy.district_inspection_minutes
            if dem.kind == "district_meeting"
            else policy.town_patrol_minutes
        )
        result.extend(_Demand(one_kind, dem.caller, (v,), minutes, dem.first_day) for v in out)
        warnings.append(
            f"{dem.caller} 的{KIND_ZH[dem.kind]}不含 {'、'.join(out)}"
            f"（每个可开会的日子都不可调度），改为各自一对一{KIND_ZH[one_kind]} / "
            f"{dem.kind} {dem.caller} → {dem.callees[0]} and others: held without "
            f"{', '.join(out)} (blacked out on every day it could be held); each gets its own "
            f"1:1 {one_kind}"
        )
    return result, warnings


# ------------------------------------------------------------------------- diagnosis


def _diagnose(board: _Board, dem: _Demand, bad: frozenset[int]) -> tuple[str, str]:
    """Why `dem` found no slot, counted over the week's working days."""
    c = board.callers[dem.caller]
    if dem.minutes > max(we - ws for ws, we in c.windows):
        return (
            f"长于 {dem.caller} 的每个工作时段",
            f"longer than every working window of {dem.caller}",
        )
    not_due = blacked = full = busy = 0
    alone = _Demand(dem.kind, dem.caller, (), dem.minutes)
    for d in range(len(board.days)):
        if d < dem.first_day:
            not_due += 1
        elif d in bad:
            blacked += 1
        elif _search(board, alone, [d], "any", frozenset()) is None:
            full += 1
        else:
            busy += 1
    due = board.days[min(dem.first_day, len(board.days) - 1)]
    parts = [
        (not_due, f"{due} 前未到期", f"not due before {due}"),
        (blacked, "有参加方不可调度", "a participant is blacked out"),
        (full, "坐席已满", "console capacity exhausted"),
        (busy, "参加方另有调度", "participants busy in other calls"),
    ]
    zh = "；".join(f"{k} 个工作日{text}" for k, text, _en in parts if k)
    en = "; ".join(
        f"{text} on {k} working day{'s' if k > 1 else ''}" for k, _zh, text in parts if k
    )
    return zh, en


def _unplaced(board: _Board, dem: _Demand) -> list[Unplaced]:
    """One entry per (caller, callee) pair of a call that found no slot."""
    why_zh, why_en = _diagnose(board, dem, _bad_days(board, dem.caller, dem.callees))
    what = f" in the {dem.kind} of {len(dem.callees)} centres" if len(dem.callees) > 1 else ""
    return [
        Unplaced(
            caller=dem.caller,
            callee=v,
            kind=dem.kind,
            reason=(
                f"找不到 {dem.minutes} 分钟的空档：{dem.caller} → {v}"
                f"（缺 {dem.minutes} 时段分钟）：{why_zh}"
                f" / no free {dem.minutes}-minute slot for {dem.caller} → {v}{what} "
                f"(short by {dem.minutes} slot-minutes): {why_en}"
            ),
            shortfall_minutes=dem.minutes,
        )
        for v in dem.callees
    ]


# ------------------------------------------------------------------------ the builder


def _week_days(week_start: date, workdays: Sequence[date]) -> tuple[date, ...]:
    if week_start.weekday() != 0:
        raise InvalidInput("week_start", f"{week_start} is not a Monday")
    days = tuple(sorted(set(workdays)))
    for d in days:
        if not week_start <= d <= week_start + timedelta(days=6):
            raise InvalidInput("workdays", f"{d} is not in the week of {week_start}")
    return days


def _previous_spots(
    previous: Sequence[PlannedSlot],
) -> dict[tuple[str, str, tuple[str, ...]], list[tuple[int, int]]]:
    """(kind, caller, callees) → [(weekday, minute of day)] of last week, in time order."""
    out: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, int]]] = {}
    for s in sorted(previous, key=lambda s: (s.start, s.caller, s.console)):
        if s.hidden or s.kind == "makeup":
            continue
        local = s.start.astimezone(TZ)
        key = (s.kind, s.caller, s.callees)
        out.setdefault(key, []).append((local.weekday(), local.hour * 60 + local.minute))
    return out


def _keep_last_week(
    board: _Board,
    dems: list[_Demand],
    previous: Sequence[PlannedSlot],
    placed: dict[int, PlannedSlot],
) -> dict[int, int]:
    """Put each call at last week's weekday and time when that spot is still feasible.

    Returns demand index → day index of last week's weekday for the calls that could not
    keep their exact time there, so the general placement tries that day first.
    """
    near: dict[int, int] = {}
    spots = _previous_spots(previous)
    weekday_index = {day.weekday(): d for d, day in enumerate(board.days)}
    for i, dem in enumerate(dems):
        wanted = spots.get((dem.kind, dem.caller, dem.callees))
        if not wanted or dem.hidden:
            continue
        weekday, s = wanted.pop(0)
        d = weekday_index.get(weekday)
        if d is None:
            continue
        console = _fits_at(board, dem, d, s, "regular", _bad_days(board, dem.caller, dem.callees))
        if console:
            placed[i] = _place(board, dem, (d, s, console))
        else:
            near[i] = d
    return near


def _follow_on(board: _Board, slots: list[PlannedSlot]) -> Spot | None:
    """Right after the latest of `slots` (a chain's patrols kept from last week)."""
    if not slots:
        return None
    last = max(slots, key=lambda s: s.end)
    end = last.end.astimezone(TZ)
    return board.days.index(end.date()), _minute(end.time()), last.console


def _place_rest(
    board: _Board, dems: list[_Demand], placed: dict[int, PlannedSlot], near: dict[int, int]
) -> list[_Demand]:
    """Place every demand not yet placed, in priority order, each on its `near` day first
    if it has one; return those that found no slot."""
    failed: list[_Demand] = []
    chains: dict[tuple[str, int], list[int]] = {}
    kept: dict[tuple[str, int], list[PlannedSlot]] = {}
    for i, dem in enumerate(dems):
        if dem.chain:
            chains.setdefault((dem.caller, dem.round), []).append(i)
            if i in placed:
                kept.setdefault((dem.caller, dem.round), []).append(placed[i])
    done_chains: set[tuple[str, int]] = set()
    for i, dem in enumerate(dems):
        if i in placed:
            continue
        if dem.chain:
            key = (dem.caller, dem.round)
            if key in done_chains:
                continue
            done_chains.add(key)
            todo = [(j, dems[j]) for j in chains[key] if j not in placed]
            got, lost = _chain(board, todo, near, _follow_on(board, kept.get(key, [])))
            placed.update(got)
            failed.extend(lost)
            continue
        first = [near[i]] if i in near else []
        spot = _find(board, dem, _bad_days(board, dem.caller, dem.callees), first)
        if spot is None:
            failed.append(dem)
        else:
            placed[i] = _place(board, dem, spot)
    return failed


def _spot_checks(
    board: _Board, policy: Policy, district: str, towns: Sequence[TownInput], seed: int
) -> tuple[list[PlannedSlot], list[_Demand], list[str]]:
    """Unannounced 1:1 inspections of distinct villages at random days and times.

    All randomness comes from random.Random(seed): the draw, then each check's day order
    and the minute its search starts from.
    """
    villages = sorted(v for t in towns for v in t.villages)
    wanted = policy.spot_checks_per_week
    warnings = []
    if wanted > len(villages):
        warnings.append(
            f"抽查 {wanted} 次，但只有 {len(villages)} 个村，已全部抽取 / "
            f"spot checks: {wanted} wanted but only {len(villages)} villages; drew all"
        )
    rng = random.Random(seed)
    drawn = sorted(rng.sample(villages, min(wanted, len(villages))))
    c = board.callers[district]
    slots, failed = [], []
    for v in drawn:
        dem = _Demand("spot_check", district, (v,), policy.spot_check_minutes, hidden=True)
        days = list(range(len(board.days)))
        rng.shuffle(days)
        ws, we = c.windows[rng.randrange(len(c.windows))]
        start = rng.randrange(ws, we)
        spot = _random_spot(board, dem, days, start)
        if spot is None:
            failed.append(dem)
        else:
            slots.append(_place(board, dem, spot))
    return slots, failed, warnings


def _random_spot(board: _Board, dem: _Demand, days: list[int], start: int) -> Spot | None:
    bad = _bad_days(board, dem.caller, dem.callees)
    for mode in ("regular", "any"):
        for d in days:
            spot = _search(board, dem, [d], mode, bad, (d, start))
            spot = spot or _search(board, dem, [d], mode, bad)
            if spot is not None:
                return spot
    return None


def _reserve_warnings(board: _Board, slots: Sequence[PlannedSlot]) -> list[str]:
    used: dict[str, list[int]] = {}
    for s in slots:
        if s.reserve:
            used.setdefault(s.caller, []).append(int((s.end - s.start).total_seconds()) // 60)
    return [
        f"{code} 有 {len(m)} 个常规时段（{sum(m)} 分钟）占用了补调度预留 / "
        f"reserve used: {len(m)} regular slot(s) of {code} ({sum(m)} min) placed in the "
        "make-up reserve because nothing else fit"
        for code, m in sorted(used.items())
    ]


def build_rota(
    *,
    week_start: date,
    district: str,
    towns: Sequence[TownInput],
    bundle: PolicyBundle,
    workdays: Sequence[date],
    previous: Sequence[PlannedSlot] = (),
    seed: int = 0,
    calendar_warnings: Sequence[str] = (),
) -> RotaResult:
    """The week's rota for one district. Same inputs → identical result."""
    days = _week_days(week_start, workdays)
    warnings = list(calendar_warnings)
    if not days:
        return RotaResult(
            week_start, district, days, True, (), (), (*warnings, EXEMPT_WARNING), seed, seed
        )
    policy = bundle.policy
    towns = sorted(
        (TownInput(t.code, tuple(sorted(t.villages))) for t in towns), key=lambda t: t.code
    )
    callers = [(district, "district"), *((t.code, "town") for t in towns)]
    board = _make_board(days, bundle, callers)
    dems = _coverage(policy, district, towns) + _patrols(policy, towns)
    dems += _periodic(policy, district, towns, week_start, days, previous)
    dems, split = _split_blacked_out(board, dems, policy)
    warnings += split
    dems.sort(key=_Demand.sort_key)

    placed: dict[int, PlannedSlot] = {}
    near = _keep_last_week(board, dems, previous, placed)
    failed = _place_rest(board, dems, placed, near)
    checks, lost, spot_warnings = _spot_checks(board, policy, district, towns, seed)
    failed += lost
    warnings += spot_warnings

    slots = sorted([*placed.values(), *checks], key=lambda s: (s.start, s.caller, s.console))
    unplaced = [u for dem in sorted(failed, key=_Demand.sort_key) for u in _unplaced(board, dem)]
    warnings += _reserve_warnings(board, slots)
    if unplaced:
        short = sum(u.shortfall_minutes for u in unplaced)
        warnings.append(
            f"{len(unplaced)} 对未能安排，缺 {short} 时段分钟 / "
            f"{len(unplaced)} pair(s) could not be placed, short by {short} slot-minutes"
        )
    return RotaResult(
        week_start=week_start,
        district=district,
        workdays=days,
        exempt=False,
        slots=tuple(slots),
        unplaced=tuple(unplaced),
        warnings=tuple(warnings),
        seed=seed,
        spot_check_seed=seed,
    )


# ---------------------------------------------------------------------------- make-ups


def _caller_level(code: str, slots: Sequence[PlannedSlot]) -> str:
    """District when it calls district kinds or has a county-level code (…000000)."""
    if code.endswith("000000") or any(s.caller == code and s.kind in DISTRICT_KINDS for s in slots):
        return "district"
    return "town"


def _board_from(
    slots: Sequence[PlannedSlot], extra: PlannedSlot, bundle: PolicyBundle, days: tuple[date, ...]
) -> _Board:
    """A board holding every given slot that lies on one of `days`."""
    codes = sorted({s.caller for s in slots} | {extra.caller})
    board = _make_board(days, bundle, [(code, _caller_level(code, slots)) for code in codes])
    index = {day: d for d, day in enumerate(days)}
    for s in slots:
        start, end = s.start.astimezone(TZ), s.end.astimezone(TZ)
        d = index.get(start.date())
        if d is not None:
            _occupy(
                board, s.caller, s.callees, d, _minute(start.time()), _minute(end.time()), s.console
            )
    return board


def place_makeup(
    result_slots: Sequence[PlannedSlot],
    *,
    missed: PlannedSlot,
    bundle: PolicyBundle,
    workdays: Sequence[date],
    not_before: datetime,
) -> PlannedSlot | None:
    """A make-up for a missed slot (same caller, callees and duration; kind "makeup") in the
    same week, at/after `not_before`, in the reserve if it fits there, else anywhere free;
    every hard constraint holds against `result_slots`. None when nothing fits."""
    days = tuple(sorted(set(workdays)))
    nb = not_before.astimezone(TZ)
    later = [d for d, day in enumerate(days) if day >= nb.date()]
    if not later:
        return None
    board = _board_from(result_slots, missed, bundle, days)
    minutes = int((missed.end - missed.start).total_seconds()) // 60
    dem = _Demand("makeup", missed.caller, missed.callees, minutes, hidden=missed.hidden)
    first = later[0]
    floor = _minute(nb.time()) + (1 if nb.second or nb.microsecond else 0)
    not_before_spot = (first, floor if days[first] == nb.date() else 0)
    bad = _bad_days(board, dem.caller, dem.callees)
    for mode in ("reserve", "any"):
        spot = _search(board, dem, later, mode, bad, not_before_spot)
        if spot is not None:
            return _place(board, dem, spot)
    return None
