"""Finding a place on the board for a call the week needs: the earliest feasible spot on
the least-loaded day, outside the make-up reserve while anything else fits, town patrols
back to back; and, for a call that found none, why — counted over the week's days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .board import (
    Board,
    Caller,
    Demand,
    Spot,
    align,
    bad_days,
    bounds,
    clash,
    free_console,
    in_reserve,
    local,
    occupy,
)
from .slots import PlannedSlot, Unplaced


def _scan(board: Board, dem: Demand, d: int, lo: int, hi: int, ws: int) -> tuple[int, int] | None:
    """Earliest (start, console) for `dem` on day d within [lo, hi) of the window at ws.

    Jumps past each clash to the clashing interval's end, so the scan costs one probe per
    obstacle, not one per grid step.
    """
    step = board.step
    s = align(lo, ws, step)
    while s + dem.minutes <= hi:
        e = s + dem.minutes
        jump = clash(board, dem.caller, dem.callees, d, s, e)
        if jump is None:
            k, jump = free_console(board, dem.caller, d, s, e)
            if k:
                return s, k
        s = align(jump, ws, step)
    return None


def search(
    board: Board,
    dem: Demand,
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
            lo, hi = bounds(c, d, ws, we, mode)
            hit = _scan(board, dem, d, max(lo, floor), hi, ws)
            if hit is not None:
                return d, hit[0], hit[1]
    return None


def fits_at(
    board: Board, dem: Demand, d: int, s: int, mode: str, bad: frozenset[int], prefer: int = 1
) -> int:
    """The console on which `dem` can start exactly at minute s of day d, or 0."""
    if not 0 <= d < len(board.days) or d < dem.first_day or d in bad:
        return 0
    c = board.callers[dem.caller]
    e = s + dem.minutes
    for ws, we in c.windows:
        lo, hi = bounds(c, d, ws, we, mode)
        if lo <= s and e <= hi and (s - ws) % board.step == 0:
            if clash(board, dem.caller, dem.callees, d, s, e) is not None:
                return 0
            return free_console(board, dem.caller, d, s, e, prefer)[0]
    return 0


def _day_order(c: Caller, first_day: int, mode: str) -> list[int]:
    """Days by the caller's load relative to its capacity (even load), ties rotating."""
    n = len(c.load)
    caps = c.regular_cap if mode == "regular" else c.full_cap

    def key(d: int) -> tuple[float, int]:
        return (c.load[d] / caps[d] if caps[d] else math.inf, (d - c.rot) % n)

    return sorted(range(first_day, n), key=key)


def place(board: Board, dem: Demand, spot: Spot) -> PlannedSlot:
    d, s, k = spot
    e = s + dem.minutes
    occupy(board, dem.caller, dem.callees, d, s, e, k)
    day = board.days[d]
    return PlannedSlot(
        kind=dem.kind,
        caller=dem.caller,
        callees=dem.callees,
        start=local(day, s),
        end=local(day, e),
        console=k,
        reserve=in_reserve(board.callers[dem.caller], d, e),
        hidden=dem.hidden,
    )


def find(board: Board, dem: Demand, bad: frozenset[int], first: Sequence[int] = ()) -> Spot | None:
    """Outside the reserve on the least-loaded day (days in `first` before the rest);
    inside it only when nothing else fits."""
    c = board.callers[dem.caller]
    for mode in ("regular", "any"):
        order = _day_order(c, dem.first_day, mode)
        order = [*first, *(d for d in order if d not in first)]
        spot = search(board, dem, order, mode, bad)
        if spot is not None:
            return spot
    return None


def chain(
    board: Board,
    group: list[tuple[int, Demand]],
    near: dict[int, int],
    cursor: Spot | None,
) -> tuple[list[tuple[int, PlannedSlot]], list[Demand]]:
    """A town's patrols of one round, back to back on one console where possible.

    `cursor` is where the next patrol would follow on (after the last one kept from last
    week), if anywhere. After each placed patrol the next one is tried right at its end
    (any remaining village that fits there); when none does, the first remaining one goes
    to the earliest free spot, on the same day if possible.
    """
    placed: list[tuple[int, PlannedSlot]] = []
    failed: list[Demand] = []
    remaining = list(group)
    while remaining:
        pick: tuple[int, Spot] | None = None
        if cursor is not None:
            d, s, k = cursor
            for i, (_, dem) in enumerate(remaining):
                bad = bad_days(board, dem.caller, dem.callees)
                console = fits_at(board, dem, d, s, "regular", bad, prefer=k)
                if console:
                    pick = (i, (d, s, console))
                    break
        if pick is None:
            index, dem = remaining[0]
            if cursor is not None:
                first = [cursor[0]]
            else:
                first = [near[index]] if index in near else []
            spot = find(board, dem, bad_days(board, dem.caller, dem.callees), first)
            if spot is None:
                failed.append(remaining.pop(0)[1])
                continue
            pick = (0, spot)
        i, spot = pick
        index, dem = remaining.pop(i)
        placed.append((index, place(board, dem, spot)))
        cursor = (spot[0], spot[1] + dem.minutes, spot[2])
    return placed, failed


def _diagnose(board: Board, dem: Demand, bad: frozenset[int]) -> tuple[str, str]:
    """Why `dem` found no slot, counted over the week's working days."""
    c = board.callers[dem.caller]
    if dem.minutes > max(we - ws for ws, we in c.windows):
        return (
            f"长于 {dem.caller} 的每个工作时段",
            f"longer than every working window of {dem.caller}",
        )
    not_due = blacked = full = busy = 0
    alone = Demand(dem.kind, dem.caller, (), dem.minutes)
    for d in range(len(board.days)):
        if d < dem.first_day:
            not_due += 1
        elif d in bad:
            blacked += 1
        elif search(board, alone, [d], "any", frozenset()) is None:
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


def unplaced_pairs(board: Board, dem: Demand) -> list[Unplaced]:
    """One entry per (caller, callee) pair of a call that found no slot."""
    why_zh, why_en = _diagnose(board, dem, bad_days(board, dem.caller, dem.callees))
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
