"""The weekly rota builder: a pure function of (week, centres, policy, working days, last
week's rota, seed) → planned slots. No database, no clock, no I/O.

Every placed slot meets the hard constraints of `schedules.board`; a required pair that
cannot be placed becomes an `Unplaced` naming the shortfall. Calls keep last week's
weekday and time where that spot is still feasible. Make-ups for a missed slot are
placed against a week's stored slots by `place_makeup`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput

from .board import Board, Demand, Spot, bad_days, make_board, minute, occupy
from .demands import coverage, patrols, periodic, split_blacked_out
from .placement import chain, find, fits_at, place, search, unplaced_pairs
from .policy import Policy, PolicyBundle
from .slots import DISTRICT_KINDS, EXEMPT_WARNING, PlannedSlot, RotaResult, TownInput


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
        local = s.start.astimezone(SHANGHAI)
        key = (s.kind, s.caller, s.callees)
        out.setdefault(key, []).append((local.weekday(), local.hour * 60 + local.minute))
    return out


def _keep_last_week(
    board: Board,
    dems: list[Demand],
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
        console = fits_at(board, dem, d, s, "regular", bad_days(board, dem.caller, dem.callees))
        if console:
            placed[i] = place(board, dem, (d, s, console))
        else:
            near[i] = d
    return near


def _follow_on(board: Board, slots: list[PlannedSlot]) -> Spot | None:
    """Right after the latest of `slots` (a chain's patrols kept from last week)."""
    if not slots:
        return None
    last = max(slots, key=lambda s: s.end)
    end = last.end.astimezone(SHANGHAI)
    return board.days.index(end.date()), minute(end.time()), last.console


def _place_rest(
    board: Board, dems: list[Demand], placed: dict[int, PlannedSlot], near: dict[int, int]
) -> list[Demand]:
    """Place every demand not yet placed, in priority order, each on its `near` day first
    if it has one; return those that found no slot."""
    failed: list[Demand] = []
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
            got, lost = chain(board, todo, near, _follow_on(board, kept.get(key, [])))
            placed.update(got)
            failed.extend(lost)
            continue
        first = [near[i]] if i in near else []
        spot = find(board, dem, bad_days(board, dem.caller, dem.callees), first)
        if spot is None:
            failed.append(dem)
        else:
            placed[i] = place(board, dem, spot)
    return failed


def _spot_checks(
    board: Board, policy: Policy, district: str, towns: Sequence[TownInput], seed: int
) -> tuple[list[PlannedSlot], list[Demand], list[str]]:
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
        dem = Demand("spot_check", district, (v,), policy.spot_check_minutes, hidden=True)
        days = list(range(len(board.days)))
        rng.shuffle(days)
        ws, we = c.windows[rng.randrange(len(c.windows))]
        start = rng.randrange(ws, we)
        spot = _random_spot(board, dem, days, start)
        if spot is None:
            failed.append(dem)
        else:
            slots.append(place(board, dem, spot))
    return slots, failed, warnings


def _random_spot(board: Board, dem: Demand, days: list[int], start: int) -> Spot | None:
    bad = bad_days(board, dem.caller, dem.callees)
    for mode in ("regular", "any"):
        for d in days:
            spot = search(board, dem, [d], mode, bad, (d, start))
            spot = spot or search(board, dem, [d], mode, bad)
            if spot is not None:
                return spot
    return None


def _reserve_warnings(board: Board, slots: Sequence[PlannedSlot]) -> list[str]:
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
    board = make_board(days, bundle, callers)
    dems = coverage(policy, district, towns) + patrols(policy, towns)
    dems += periodic(policy, district, towns, week_start, days, previous)
    dems, split = split_blacked_out(board, dems, policy)
    warnings += split
    dems.sort(key=Demand.sort_key)

    placed: dict[int, PlannedSlot] = {}
    near = _keep_last_week(board, dems, previous, placed)
    failed = _place_rest(board, dems, placed, near)
    checks, lost, spot_warnings = _spot_checks(board, policy, district, towns, seed)
    failed += lost
    warnings += spot_warnings

    slots = sorted([*placed.values(), *checks], key=lambda s: (s.start, s.caller, s.console))
    unplaced = [
        u for dem in sorted(failed, key=Demand.sort_key) for u in unplaced_pairs(board, dem)
    ]
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


def _caller_level(code: str, slots: Sequence[PlannedSlot]) -> str:
    """District when it calls district kinds or has a county-level code (…000000)."""
    if code.endswith("000000") or any(s.caller == code and s.kind in DISTRICT_KINDS for s in slots):
        return "district"
    return "town"


def _board_from(
    slots: Sequence[PlannedSlot], extra: PlannedSlot, bundle: PolicyBundle, days: tuple[date, ...]
) -> Board:
    """A board holding every given slot that lies on one of `days`."""
    codes = sorted({s.caller for s in slots} | {extra.caller})
    board = make_board(days, bundle, [(code, _caller_level(code, slots)) for code in codes])
    index = {day: d for d, day in enumerate(days)}
    for s in slots:
        start, end = s.start.astimezone(SHANGHAI), s.end.astimezone(SHANGHAI)
        d = index.get(start.date())
        if d is not None:
            occupy(
                board, s.caller, s.callees, d, minute(start.time()), minute(end.time()), s.console
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
    nb = not_before.astimezone(SHANGHAI)
    later = [d for d, day in enumerate(days) if day >= nb.date()]
    if not later:
        return None
    board = _board_from(result_slots, missed, bundle, days)
    minutes = int((missed.end - missed.start).total_seconds()) // 60
    dem = Demand("makeup", missed.caller, missed.callees, minutes, hidden=missed.hidden)
    first = later[0]
    floor = minute(nb.time()) + (1 if nb.second or nb.microsecond else 0)
    not_before_spot = (first, floor if days[first] == nb.date() else 0)
    bad = bad_days(board, dem.caller, dem.callees)
    for mode in ("reserve", "any"):
        spot = search(board, dem, later, mode, bad, not_before_spot)
        if spot is not None:
            return place(board, dem, spot)
    return None
