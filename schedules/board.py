"""Who is busy when during one rota week: the board every placed slot is recorded on, the
calls a week needs (`Demand`) and the checks a slot must pass before it is placed.

Time model: a day is an index into the week's sorted working days; a time of day is
whole minutes after local midnight in Asia/Shanghai; every call is the half-open
interval [start, end) on one day.

Hard constraints the checks here enforce for every placed slot (tests/test_rota.py
checks them independently):
- it lies on a working day, inside one window of its caller, starting on the
  `slot_step_minutes` grid counted from that window's start;
- its console (1..consoles of the caller) is free for the whole slot;
- no centre is in two calls at once: a callee is in nothing else then (as callee or as
  caller), and a caller is not a callee then; only a caller's own calls on different
  consoles may overlap, which is what consoles are for;
- no participant has a blackout that day.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from dispatch.clock import SHANGHAI

from .policy import CallerConfig, Policy, PolicyBundle

PRIORITY = {
    "district_meeting": 0,
    "screening": 1,
    "supervision": 2,
    "district_inspection": 3,
    "town_patrol": 4,
    "spot_check": 5,
    "makeup": 6,
}


class Intervals:
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
class Caller:
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
class Board:
    """Who is busy when during one week. Every placed slot is recorded here exactly once."""

    days: tuple[date, ...]
    step: int
    callers: dict[str, Caller]
    blocked: dict[str, frozenset[int]]  # centre → day indices it is blacked out
    busy: dict[str, list[Intervals]] = field(default_factory=dict)  # as a callee, per day
    consoles: dict[str, list[list[Intervals]]] = field(default_factory=dict)  # [console][day]


@dataclass(frozen=True)
class Demand:
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


def minute(t: time) -> int:
    return t.hour * 60 + t.minute


def local(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=SHANGHAI)


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


def _regular_minutes(c: Caller, d: int) -> int:
    if d > c.reserve_day:
        return 0
    if d < c.reserve_day:
        return sum(we - ws for ws, we in c.windows)
    return sum(max(0, min(we, c.reserve_minute) - ws) for ws, we in c.windows)


def _make_caller(code: str, cfg: CallerConfig, rot: int, n: int, policy: Policy) -> Caller:
    windows = tuple(sorted((minute(w.start), minute(w.end)) for w in cfg.windows))
    r_day, r_min = _reserve_cut(
        windows, cfg.consoles, n, policy.reserve_fraction, policy.slot_step_minutes
    )
    c = Caller(code, cfg.consoles, windows, rot, r_day, r_min, [], [], [0] * n)
    c.regular_cap = [_regular_minutes(c, d) * cfg.consoles for d in range(n)]
    c.full_cap = [sum(we - ws for ws, we in windows) * cfg.consoles] * n
    return c


def make_board(
    days: tuple[date, ...], bundle: PolicyBundle, callers: Sequence[tuple[str, str]]
) -> Board:
    """`callers` are (code, level) pairs in a stable order (their rotation offsets)."""
    n = len(days)
    policy = bundle.policy
    board = Board(days, policy.slot_step_minutes, {}, _blackout_days(days, bundle))
    for rot, (code, level) in enumerate(callers):
        c = _make_caller(code, _config(bundle, code, level), rot, n, policy)
        board.callers[code] = c
        board.consoles[code] = [[Intervals() for _ in days] for _ in range(c.consoles)]
    return board


def _blackout_days(days: tuple[date, ...], bundle: PolicyBundle) -> dict[str, frozenset[int]]:
    out: dict[str, set[int]] = {}
    for b in bundle.blackouts:
        hit = {d for d, day in enumerate(days) if b.blocks(day)}
        if hit:
            out.setdefault(b.centre, set()).update(hit)
    return {code: frozenset(v) for code, v in out.items()}


def _busy_of(board: Board, code: str) -> list[Intervals]:
    per_day = board.busy.get(code)
    if per_day is None:
        per_day = board.busy[code] = [Intervals() for _ in board.days]
    return per_day


def bad_days(board: Board, caller: str, callees: tuple[str, ...]) -> frozenset[int]:
    if not board.blocked:
        return frozenset()
    bad: set[int] = set(board.blocked.get(caller, ()))
    for v in callees:
        bad.update(board.blocked.get(v, ()))
    return frozenset(bad)


def clash(
    board: Board, caller: str, callees: tuple[str, ...], d: int, s: int, e: int
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


def free_console(
    board: Board, caller: str, d: int, s: int, e: int, prefer: int = 1
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


def bounds(c: Caller, d: int, ws: int, we: int, mode: str) -> tuple[int, int]:
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


def align(x: int, ws: int, step: int) -> int:
    """The first grid minute (ws + k·step) at or after x."""
    return ws if x <= ws else ws + -(-(x - ws) // step) * step


def in_reserve(c: Caller, d: int, end: int) -> bool:
    return d > c.reserve_day or (d == c.reserve_day and end > c.reserve_minute)


def occupy(
    board: Board, caller: str, callees: tuple[str, ...], d: int, s: int, e: int, k: int
) -> None:
    board.consoles[caller][k - 1][d].add(s, e)
    for v in callees:
        _busy_of(board, v)[d].add(s, e)
    minutes = e - s
    board.callers[caller].load[d] += minutes
    for v in callees:
        if v in board.callers:
            board.callers[v].load[d] += minutes
