"""The weekly rota builder: every hard constraint checked independently on every build.

`violations` re-derives the rules from the policy (it shares no code with the builder):
coverage of every required pair (placed or named as unplaced), working days only,
windows and grid, consoles, no centre in two overlapping calls across levels, blackouts.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from dispatch.errors import InvalidInput
from schedules.policy import Blackout, CallerConfig, Policy, PolicyBundle, Window
from schedules.rota import build_rota, place_makeup
from schedules.slots import EXEMPT_WARNING, PlannedSlot, RotaResult, TownInput
from schedules.slots import KINDS as ROTA_KINDS

SH = ZoneInfo("Asia/Shanghai")
DISTRICT = "511703000000"
KINDS = set(ROTA_KINDS)
DISTRICT_COVERAGE = {"district_meeting", "district_inspection"}


# ------------------------------------------------------------------------- inputs


def make_towns(
    prefix: str = "511703", n_towns: int = 20, lo: int = 8, hi: int = 20, seed: int = 1
) -> list[TownInput]:
    rng = random.Random(seed)
    towns = []
    for t in range(1, n_towns + 1):
        n = rng.randint(lo, hi)
        villages = tuple(f"{prefix}{t:03d}{v:03d}" for v in range(1, n + 1))
        towns.append(TownInput(f"{prefix}{t:03d}000", villages))
    return towns


def weekdays(monday: date, n: int = 5) -> list[date]:
    return [monday + timedelta(days=i) for i in range(n)]


def build(
    monday: date,
    towns: Sequence[TownInput],
    bundle: PolicyBundle,
    workdays: Sequence[date] | None = None,
    **kw: object,
) -> RotaResult:
    days = weekdays(monday) if workdays is None else list(workdays)
    return build_rota(
        week_start=monday,
        district=DISTRICT,
        towns=towns,
        bundle=bundle,
        workdays=days,
        **kw,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------ the checker


def minute(t: datetime) -> int:
    local = t.astimezone(SH)
    return local.hour * 60 + local.minute


def due_date(target: date, monday: date, days: Sequence[date], held: bool | None) -> date | None:
    """When a call due on the first working day ≥ target goes in this week (or None).

    `held` says whether last week's rota had it (None: unknown, assume Mon–Fri worked)."""
    sunday = monday + timedelta(days=6)
    if monday <= target <= sunday:
        later = [d for d in days if d >= target]
        return min(later) if later else None
    if monday - timedelta(days=7) <= target < monday:
        if held is None:
            gap = [target + timedelta(days=i) for i in range((monday - target).days)]
            held = any(d.weekday() < 5 for d in gap)
        return None if held else min(days)
    return None


def earliest_due(
    day_numbers: Sequence[int],
    months_ok: set[int],
    monday: date,
    days: Sequence[date],
    previous: Sequence[PlannedSlot],
    kind: str,
    caller: str,
    member: str | None,
) -> date | None:
    found = []
    for anchor in (monday - timedelta(days=7), monday + timedelta(days=6)):
        if anchor.month not in months_ok:
            continue
        for n in day_numbers:
            target = date(anchor.year, anchor.month, n)
            held: bool | None = None
            if previous:
                held = any(
                    s.kind == kind
                    and s.caller == caller
                    and (member is None or member in s.callees)
                    and s.start.astimezone(SH).date() >= target
                    for s in previous
                )
            due = due_date(target, monday, days, held)
            if due is not None:
                found.append(due)
    return min(found) if found else None


def months_every(n: int) -> set[int]:
    return {m for m in range(1, 13) if n > 0 and (m - 1) % n == 0}


def slot_problems(
    s: PlannedSlot, days: set[date], bundle: PolicyBundle, level: dict[str, str]
) -> list[str]:
    policy = bundle.policy
    out = []
    name = f"{s.kind} {s.caller}→{','.join(s.callees)} at {s.start.isoformat()}"
    if s.kind not in KINDS:
        out.append(f"{name}: unknown kind")
    if s.start.utcoffset() != timedelta(hours=8) or s.end.utcoffset() != timedelta(hours=8):
        out.append(f"{name}: not in Asia/Shanghai")
    start, end = s.start.astimezone(SH), s.end.astimezone(SH)
    if start.date() not in days:
        out.append(f"{name}: not on a working day")
    if start.date() != end.date() or start >= end:
        out.append(f"{name}: bad interval")
    if list(s.callees) != sorted(set(s.callees)) or not s.callees or s.caller in s.callees:
        out.append(f"{name}: callees not sorted/unique or include the caller")
    cfg = policy.caller_config(level.get(s.caller, "town"), bundle.callers.get(s.caller))
    a, b = minute(s.start), minute(s.end)
    inside = [
        w
        for w in cfg.windows
        if w.start.hour * 60 + w.start.minute <= a and b <= w.end.hour * 60 + w.end.minute
    ]
    if not inside:
        out.append(f"{name}: outside every window of the caller")
    elif (a - (inside[0].start.hour * 60 + inside[0].start.minute)) % policy.slot_step_minutes:
        out.append(f"{name}: off the {policy.slot_step_minutes}-minute grid")
    if not 1 <= s.console <= cfg.consoles:
        out.append(f"{name}: console {s.console} of {cfg.consoles}")
    for bo in bundle.blackouts:
        if bo.centre in (s.caller, *s.callees) and bo.blocks(start.date()):
            out.append(f"{name}: {bo.centre} is blacked out ({bo.kind})")
    if s.hidden != (s.kind == "spot_check") and s.kind != "makeup":
        out.append(f"{name}: hidden={s.hidden}")
    return out


def console_problems(slots: Sequence[PlannedSlot]) -> list[str]:
    by_console: dict[tuple[str, int], list[PlannedSlot]] = defaultdict(list)
    for s in slots:
        by_console[(s.caller, s.console)].append(s)
    out = []
    for (caller, k), group in sorted(by_console.items()):
        group.sort(key=lambda s: s.start)
        for a, b in pairwise(group):
            if b.start < a.end:
                out.append(f"console {k} of {caller} double-booked at {b.start.isoformat()}")
    return out


def centre_problems(slots: Sequence[PlannedSlot]) -> list[str]:
    """No centre in two overlapping calls, except a caller's own calls (consoles)."""
    presence: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for s in slots:
        presence[s.caller].append((s.start, s.end, "caller"))
        for v in s.callees:
            presence[v].append((s.start, s.end, "callee"))
    out = []
    for code, items in sorted(presence.items()):
        items.sort()
        active: list[tuple[datetime, datetime, str]] = []
        for start, end, role in items:
            active = [x for x in active if x[1] > start]
            for other in active:
                if role == "callee" or other[2] == "callee":
                    out.append(f"{code} in two calls at once at {start.isoformat()}")
            active.append((start, end, role))
    return out


def coverage_problems(
    result: RotaResult,
    towns: Sequence[TownInput],
    bundle: PolicyBundle,
    days: Sequence[date],
    previous: Sequence[PlannedSlot],
) -> list[str]:
    policy = bundle.policy
    district = result.district
    got: Counter[tuple[str, str, str]] = Counter()
    when: dict[tuple[str, str, str], list[date]] = defaultdict(list)
    for s in result.slots:
        kind = "district" if s.kind in DISTRICT_COVERAGE else s.kind
        for v in s.callees:
            got[(kind, s.caller, v)] += 1
            when[(kind, s.caller, v)].append(s.start.astimezone(SH).date())
    for u in result.unplaced:
        kind = "district" if u.kind in DISTRICT_COVERAGE else u.kind
        got[(kind, u.caller, u.callee)] += 1
    need: Counter[tuple[str, str, str]] = Counter()
    not_before: dict[tuple[str, str, str], date] = {}
    monday = result.week_start

    def require(key: tuple[str, str, str], due: date | None, times: int = 1) -> None:
        need[key] += times
        if due is not None:
            not_before[key] = due

    for t in towns:
        for c in (t.code, *t.villages):
            require(("district", district, c), None)
        for v in t.villages:
            if policy.town_patrols_per_week:
                require(("town_patrol", t.code, v), None, policy.town_patrols_per_week)
        due = earliest_due(
            (1,), months_every(policy.supervision_district_every_months), monday, days,
            previous, "supervision", district, t.code,
        )  # fmt: skip
        if due is not None:
            require(("supervision", district, t.code), due)
        if not t.villages:
            continue
        due = earliest_due(
            policy.screening_days, set(range(1, 13)), monday, days, previous,
            "screening", t.code, None,
        )  # fmt: skip
        for v in t.villages if due is not None else ():
            require(("screening", t.code, v), due)
        due = earliest_due(
            (1,), months_every(policy.supervision_town_every_months), monday, days,
            previous, "supervision", t.code, None,
        )  # fmt: skip
        for v in t.villages if due is not None else ():
            require(("supervision", t.code, v), due)
    out = []
    for key in sorted(set(need) | {k for k in got if k[0] not in ("spot_check", "makeup")}):
        if got[key] != need[key]:
            out.append(f"{key}: {got[key]} slot(s) or unplaced, {need[key]} required")
        if key in not_before and any(d < not_before[key] for d in when[key]):
            out.append(f"{key}: placed before its due day {not_before[key]}")
    for u in result.unplaced:
        if (
            u.shortfall_minutes <= 0
            or f"short by {u.shortfall_minutes} slot-minutes" not in u.reason
        ):
            out.append(f"unplaced {u.caller}→{u.callee}: no shortfall in {u.reason!r}")
    out += spot_check_problems(result, towns, policy)
    return out


def spot_check_problems(
    result: RotaResult, towns: Sequence[TownInput], policy: Policy
) -> list[str]:
    villages = {v for t in towns for v in t.villages}
    checks = [s for s in result.slots if s.kind == "spot_check"]
    lost = [u for u in result.unplaced if u.kind == "spot_check"]
    drawn = [s.callees[0] for s in checks] + [u.callee for u in lost]
    out = []
    if len(drawn) != min(policy.spot_checks_per_week, len(villages)):
        out.append(f"{len(drawn)} spot checks drawn, {policy.spot_checks_per_week} wanted")
    if len(set(drawn)) != len(drawn) or not set(drawn) <= villages:
        out.append("spot checks repeat a village or check a non-village")
    for s in checks:
        if s.caller != result.district or len(s.callees) != 1 or not s.hidden:
            out.append(f"spot check {s} is not a hidden 1:1 by the district")
        if minute(s.end) - minute(s.start) != policy.spot_check_minutes:
            out.append(f"spot check {s} has the wrong length")
    return out


def violations(
    result: RotaResult,
    towns: Sequence[TownInput],
    bundle: PolicyBundle,
    workdays: Sequence[date],
    previous: Sequence[PlannedSlot] = (),
) -> list[str]:
    """Every broken hard constraint of `result`, as readable lines ([] when valid)."""
    days = sorted(set(workdays))
    if list(result.workdays) != days:
        return [f"workdays {result.workdays} != {days}"]
    if not days:
        ok = result.exempt and not result.slots and not result.unplaced
        return [] if ok else ["a week without working days must be exempt and empty"]
    out = [] if not result.exempt else ["exempt although it has working days"]
    level = {result.district: "district", **{t.code: "town" for t in towns}}
    for s in result.slots:
        out += slot_problems(s, set(days), bundle, level)
    if list(result.slots) != sorted(result.slots, key=lambda s: (s.start, s.caller, s.console)):
        out.append("slots not sorted by (start, caller, console)")
    out += console_problems(result.slots)
    out += centre_problems(result.slots)
    out += coverage_problems(result, towns, bundle, days, previous)
    return out


def pair_positions(result: RotaResult) -> dict[tuple[str, str, tuple[str, ...]], list[tuple]]:
    out: dict[tuple[str, str, tuple[str, ...]], list[tuple]] = defaultdict(list)
    for s in result.slots:
        if not s.hidden:
            local = s.start.astimezone(SH)
            out[(s.kind, s.caller, s.callees)].append((local.weekday(), local.time()))
    return out


def minutes_of(s: PlannedSlot) -> int:
    return int((s.end - s.start).total_seconds()) // 60


# ------------------------------------------------------------------------------ tests

DEFAULT = PolicyBundle(Policy())


@pytest.mark.parametrize(
    "monday",
    [date(2026, 3, 2), date(2026, 3, 30), date(2026, 11, 9), date(2026, 11, 16)],
)
def test_normal_week_covers_every_pair(monday: date) -> None:
    towns = make_towns()
    result = build(monday, towns, DEFAULT)
    assert violations(result, towns, DEFAULT, weekdays(monday)) == []
    assert result.unplaced == ()
    assert not result.exempt and result.warnings == ()
    assert not any(s.reserve for s in result.slots)
    kinds = Counter(s.kind for s in result.slots)
    assert kinds["district_meeting"] == 20
    assert kinds["town_patrol"] == sum(len(t.villages) for t in towns)


def test_holiday_week_with_three_working_days() -> None:
    # 2026: 1–7 October off, so the week of 28 September works Monday to Wednesday.
    monday = date(2026, 9, 28)
    days = weekdays(monday, 3)
    towns = make_towns()
    result = build(monday, towns, DEFAULT, days, calendar_warnings=["from chinese-calendar"])
    assert violations(result, towns, DEFAULT, days) == []
    assert result.unplaced == ()
    assert {s.start.date() for s in result.slots} <= set(days)
    assert result.warnings[0] == "from chinese-calendar"
    # 1 October falls on a holiday: the screening it starts is not due this week.
    assert not any(s.kind == "screening" for s in result.slots)


def test_adjusted_saturday_is_used() -> None:
    # The week of 5 October 2026: Mon–Wed off, Thu and Fri on, Saturday 10 October on (调休).
    monday = date(2026, 10, 5)
    days = [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
    towns = make_towns()
    result = build(monday, towns, DEFAULT, days)
    assert violations(result, towns, DEFAULT, days) == []
    assert result.unplaced == ()
    assert any(s.start.date() == date(2026, 10, 10) for s in result.slots)


def test_a_due_date_pushed_past_a_holiday_week_is_held_the_week_after() -> None:
    towns = make_towns(n_towns=6)
    first = build(date(2026, 9, 28), towns, DEFAULT, weekdays(date(2026, 9, 28), 3))
    days = [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
    second = build(date(2026, 10, 5), towns, DEFAULT, days, previous=first.slots)
    assert violations(second, towns, DEFAULT, days, previous=first.slots) == []
    kinds = Counter(s.kind for s in second.slots)
    assert kinds["screening"] == 6  # due 1 October, the first working day is 8 October
    assert kinds["supervision"] == 6  # the October quarter: district → each town


def test_exempt_week() -> None:
    towns = make_towns(n_towns=3)
    result = build(date(2026, 2, 16), towns, DEFAULT, [], calendar_warnings=["spring festival"])
    assert result.exempt
    assert result.slots == () and result.unplaced == ()
    assert result.warnings == ("spring festival", EXEMPT_WARNING)
    assert EXEMPT_WARNING.endswith(" / week has no working day: exempt")
    assert violations(result, towns, DEFAULT, []) == []


def test_week_start_must_be_a_monday() -> None:
    with pytest.raises(InvalidInput) as err:
        build(date(2026, 3, 3), make_towns(n_towns=1), DEFAULT)
    assert err.value.field == "week_start"
    with pytest.raises(InvalidInput) as err:
        build(date(2026, 3, 2), make_towns(n_towns=1), DEFAULT, [date(2026, 3, 9)])
    assert err.value.field == "workdays"


def test_inspection_mode() -> None:
    bundle = PolicyBundle(Policy(district_mode="inspection"))
    towns = make_towns(n_towns=10, lo=8, hi=12)
    monday = date(2026, 3, 9)
    result = build(monday, towns, bundle)
    assert violations(result, towns, bundle, weekdays(monday)) == []
    assert result.unplaced == ()
    kinds = Counter(s.kind for s in result.slots)
    assert "district_meeting" not in kinds
    assert kinds["district_inspection"] == sum(1 + len(t.villages) for t in towns)


def test_undersized_capacity_names_every_unplaced_pair() -> None:
    policy = Policy(windows=(Window(time(9, 0), time(9, 30)),), district_consoles=1)
    bundle = PolicyBundle(policy)
    towns = make_towns(n_towns=4, lo=18, hi=20)
    monday = date(2026, 3, 9)
    result = build(monday, towns, bundle)
    assert violations(result, towns, bundle, weekdays(monday)) == []
    # A 40-minute meeting never fits a 30-minute window: one entry per callee pair.
    meetings = [u for u in result.unplaced if u.kind == "district_meeting"]
    assert len(meetings) == sum(1 + len(t.villages) for t in towns)
    assert all("longer than every working window" in u.reason for u in meetings)
    assert all(u.shortfall_minutes == 40 for u in meetings)
    # Patrols: 3 a day × 5 days per town, the rest named with their shortfall.
    patrols = [u for u in result.unplaced if u.kind == "town_patrol"]
    assert len(patrols) == sum(len(t.villages) - 15 for t in towns)
    u = patrols[0]
    english = u.reason.partition(" / ")[2]  # reasons read "中文 / English"
    assert english.startswith(f"no free 10-minute slot for {u.caller} → {u.callee} ")
    assert u.reason.startswith(f"找不到 10 分钟的空档：{u.caller} → {u.callee}")
    assert "(short by 10 slot-minutes)" in u.reason
    assert "console capacity exhausted on 5 working days" in u.reason
    assert any("reserve used" in w for w in result.warnings)
    assert any("could not be placed" in w for w in result.warnings)


def test_blackouts_are_respected() -> None:
    towns = make_towns(n_towns=8)
    t1, t2 = towns[0], towns[1]
    blackouts = (
        Blackout(t1.code, "weekday", weekday=0),
        *(Blackout(v, "market_days", day_digits=(1, 4, 7)) for v in t2.villages[:5]),
        Blackout(towns[2].villages[0], "date_range", start=date(2026, 3, 9), end=date(2026, 3, 11)),
        Blackout(DISTRICT, "weekday", weekday=1),
    )
    bundle = PolicyBundle(Policy(), blackouts=blackouts)
    monday = date(2026, 3, 9)
    result = build(monday, towns, bundle)
    assert violations(result, towns, bundle, weekdays(monday)) == []
    assert result.unplaced == ()
    assert not any(s.caller == DISTRICT and s.start.weekday() == 1 for s in result.slots)
    market = {date(2026, 3, 11), date(2026, 3, 14)}  # days ending in 1/4/7 this week
    for s in result.slots:
        if set(s.callees) & set(t2.villages[:5]):
            assert s.start.date() not in market


def test_meeting_is_split_around_a_village_blacked_out_on_its_possible_days() -> None:
    towns = make_towns(n_towns=3, lo=8, hi=8)
    town, out = towns[0].code, towns[0].villages[3]
    monday = date(2026, 3, 9)
    blackouts = (
        # The town cannot meet Thursday or Friday; the village only then.
        Blackout(town, "weekday", weekday=3),
        Blackout(town, "weekday", weekday=4),
        Blackout(out, "date_range", start=monday, end=monday + timedelta(days=2)),
    )
    bundle = PolicyBundle(Policy(), blackouts=blackouts)
    result = build(monday, towns, bundle)
    assert violations(result, towns, bundle, weekdays(monday)) == []
    # Town and village share no day, so the town's patrol of it cannot happen: named.
    assert [(u.kind, u.caller, u.callee) for u in result.unplaced] == [("town_patrol", town, out)]
    assert "a participant is blacked out on 5 working days" in result.unplaced[0].reason
    meeting = next(s for s in result.slots if s.kind == "district_meeting" and town in s.callees)
    assert out not in meeting.callees
    alone = [s for s in result.slots if s.kind == "district_inspection"]
    assert [s.callees for s in alone] == [(out,)]
    assert alone[0].start.weekday() == 3 or alone[0].reserve
    assert any("held without" in w and out in w for w in result.warnings)


def test_a_village_blacked_out_all_week_is_named_not_dropped() -> None:
    towns = make_towns(n_towns=2, lo=8, hi=8)
    gone = towns[1].villages[0]
    monday = date(2026, 3, 9)
    blackouts = (Blackout(gone, "date_range", start=monday, end=monday + timedelta(days=6)),)
    bundle = PolicyBundle(Policy(), blackouts=blackouts)
    result = build(monday, towns, bundle)
    assert violations(result, towns, bundle, weekdays(monday)) == []
    assert {(u.kind, u.callee) for u in result.unplaced} == {
        ("district_inspection", gone),
        ("town_patrol", gone),
    }
    assert all("blacked out on 5 working days" in u.reason for u in result.unplaced)
    meeting = next(s for s in result.slots if towns[1].code in s.callees)
    assert gone not in meeting.callees and len(meeting.callees) == 8


def test_reserve_is_kept_free_and_takes_a_makeup() -> None:
    towns = make_towns()
    monday = date(2026, 3, 9)
    days = weekdays(monday)
    result = build(monday, towns, DEFAULT)
    assert violations(result, towns, DEFAULT, days) == []
    friday_afternoon = datetime(2026, 3, 13, 14, 30, tzinfo=SH)
    assert not any(s.end > friday_afternoon for s in result.slots)

    missed = next(s for s in result.slots if s.kind == "town_patrol")
    makeup = place_makeup(
        result.slots, missed=missed, bundle=DEFAULT, workdays=days, not_before=missed.end
    )
    assert makeup is not None
    assert (makeup.kind, makeup.caller, makeup.callees) == ("makeup", missed.caller, missed.callees)
    assert makeup.reserve and makeup.start.date() == date(2026, 3, 13)
    assert minutes_of(makeup) == minutes_of(missed)
    with_makeup = sorted([*result.slots, makeup], key=lambda s: (s.start, s.caller, s.console))
    assert violations(replace(result, slots=tuple(with_makeup)), towns, DEFAULT, days) == []

    # A district meeting's make-up: the district's reserve, every participant free.
    meeting = next(s for s in result.slots if s.kind == "district_meeting")
    second = place_makeup(
        with_makeup, missed=meeting, bundle=DEFAULT, workdays=days, not_before=meeting.end
    )
    assert second is not None and second.reserve and second.callees == meeting.callees
    both = sorted([*with_makeup, second], key=lambda s: (s.start, s.caller, s.console))
    assert violations(replace(result, slots=tuple(both)), towns, DEFAULT, days) == []

    late = datetime(2026, 3, 13, 17, 25, tzinfo=SH)
    assert (
        place_makeup(result.slots, missed=missed, bundle=DEFAULT, workdays=days, not_before=late)
        is None
    )


def test_deterministic_and_the_seed_moves_spot_checks() -> None:
    bundle = PolicyBundle(Policy(spot_checks_per_week=6))
    towns = make_towns()
    monday = date(2026, 3, 9)
    a = build(monday, towns, bundle, seed=7)
    b = build(monday, towns, bundle, seed=7)
    c = build(monday, towns, bundle, seed=8)
    assert a == b
    assert a.seed == a.spot_check_seed == 7 and c.spot_check_seed == 8
    for r in (a, c):
        assert violations(r, towns, bundle, weekdays(monday)) == []
        assert r.unplaced == ()

    def checks(r: RotaResult) -> list[tuple[tuple[str, ...], datetime]]:
        return [(s.callees, s.start) for s in r.slots if s.kind == "spot_check"]

    assert len(checks(a)) == 6 and checks(a) != checks(c)
    assert all(s.hidden for s in a.slots if s.kind == "spot_check")
    # Spot checks are placed last, so the seed moves nothing else.
    assert [s for s in a.slots if not s.hidden] == [s for s in c.slots if not s.hidden]


def test_next_week_keeps_last_weeks_times() -> None:
    towns = make_towns()
    bundle = PolicyBundle(Policy(spot_checks_per_week=4))
    week1 = build(date(2026, 11, 9), towns, bundle)
    week2 = build(date(2026, 11, 16), towns, bundle, previous=week1.slots, seed=1)
    assert violations(week2, towns, bundle, weekdays(date(2026, 11, 16)), week1.slots) == []
    before, after = pair_positions(week1), pair_positions(week2)
    kept = sum(1 for key, spots in before.items() if after.get(key) == spots)
    assert kept / len(before) >= 0.8, f"{kept} of {len(before)} kept"


def test_even_load_for_the_district() -> None:
    towns = make_towns()
    policy = Policy()
    for monday in (date(2026, 3, 9), date(2026, 3, 30)):
        result = build(monday, towns, DEFAULT)
        assert violations(result, towns, DEFAULT, weekdays(monday)) == []
        load: Counter[date] = Counter()
        for s in result.slots:
            if s.caller == DISTRICT:
                load[s.start.date()] += minutes_of(s)
        regular_days = weekdays(monday)[:-1]  # Friday is the district's make-up reserve
        per_day = [load[d] for d in regular_days]
        assert max(per_day) - min(per_day) <= policy.district_meeting_minutes + 20, per_day


def test_town_patrols_run_back_to_back() -> None:
    towns = make_towns()
    monday = date(2026, 3, 9)
    result = build(monday, towns, DEFAULT)
    assert violations(result, towns, DEFAULT, weekdays(monday)) == []
    good = 0
    for t in towns:
        patrols = sorted(
            (s for s in result.slots if s.kind == "town_patrol" and s.caller == t.code),
            key=lambda s: s.start,
        )
        one_day = len({s.start.date() for s in patrols}) == 1
        # Back to back within each window: the next patrol starts where the last ended,
        # or after a window's end.
        gaps = [b.start - a.end for a, b in pairwise(patrols)]
        window_breaks = sum(1 for g in gaps if g > timedelta(0))
        good += one_day and window_breaks <= 1
    assert good >= 0.8 * len(towns), f"{good} of {len(towns)} towns back to back"


def test_screening_in_the_week_of_its_due_day() -> None:
    towns = make_towns(n_towns=5)
    due = build(date(2026, 11, 16), towns, DEFAULT)
    not_due = build(date(2026, 11, 9), towns, DEFAULT)
    for r in (due, not_due):
        assert violations(r, towns, DEFAULT, weekdays(r.week_start)) == []
    screenings = [s for s in due.slots if s.kind == "screening"]
    assert sorted(s.caller for s in screenings) == [t.code for t in towns]
    assert all(
        s.callees == t.villages
        for s, t in zip(sorted(screenings, key=lambda s: s.caller), towns, strict=True)
    )
    assert all(s.start.date() >= date(2026, 11, 16) for s in screenings)
    assert not any(s.kind == "screening" for s in not_due.slots)


def random_case(seed: int) -> tuple[date, list[TownInput], PolicyBundle, list[date]]:
    rng = random.Random(seed)
    prefix = f"51{rng.randint(1000, 9999)}"
    towns = make_towns(prefix, rng.randint(1, 5), 0, 7, seed)
    monday = date(2026, 1, 5) + timedelta(weeks=rng.randint(0, 50))
    week = [monday + timedelta(days=i) for i in range(7)]
    days = sorted(
        rng.sample(week[:5], rng.randint(0, 5)) + ([week[5]] if rng.random() < 0.2 else [])
    )
    windows = rng.choice(
        [
            (Window(time(9, 0), time(11, 30)), Window(time(14, 30), time(17, 30))),
            (Window(time(8, 0), time(9, 0)), Window(time(13, 0), time(13, 45))),
            (Window(time(10, 0), time(12, 0)),),
        ]
    )
    policy = Policy(
        district_mode=rng.choice(["meeting", "inspection"]),
        district_meeting_minutes=rng.choice([20, 40, 90]),
        town_patrols_per_week=rng.randint(0, 2),
        screening_days=rng.choice([(1, 16), (5,), (10, 20)]),
        supervision_district_every_months=rng.choice([0, 1, 3]),
        supervision_town_every_months=rng.choice([0, 1, 2]),
        district_consoles=rng.randint(1, 3),
        town_consoles=rng.randint(1, 2),
        windows=windows,
        slot_step_minutes=rng.choice([5, 10, 15]),
        reserve_fraction=rng.choice([0.0, 0.2, 0.5]),
        spot_checks_per_week=rng.randint(0, 4),
    )
    centres = [f"{prefix}000000"] + [c for t in towns for c in (t.code, *t.villages)]
    blackouts = []
    for _ in range(rng.randint(0, 5)):
        who = rng.choice(centres)
        kind = rng.choice(["weekday", "market_days", "date_range"])
        if kind == "weekday":
            blackouts.append(Blackout(who, "weekday", weekday=rng.randint(0, 6)))
        elif kind == "market_days":
            blackouts.append(Blackout(who, "market_days", day_digits=(1, 4, 7)))
        else:
            a = monday + timedelta(days=rng.randint(-2, 6))
            blackouts.append(
                Blackout(who, "date_range", start=a, end=a + timedelta(days=rng.randint(0, 3)))
            )
    callers = {}
    if towns and rng.random() < 0.3:
        callers[towns[0].code] = CallerConfig(2, (Window(time(15, 0), time(16, 0)),))
    return monday, towns, PolicyBundle(policy, callers, tuple(blackouts)), days


def test_random_districts_never_break_a_hard_constraint() -> None:
    for seed in range(200):
        monday, towns, bundle, days = random_case(seed)
        district = f"{towns[0].code[:6]}000000"
        previous: tuple[PlannedSlot, ...] = ()
        if seed % 3 == 0:
            last = monday - timedelta(days=7)
            previous = build_rota(
                week_start=last, district=district, towns=towns, bundle=bundle,
                workdays=weekdays(last), seed=seed,
            ).slots  # fmt: skip
        result = build_rota(
            week_start=monday, district=district, towns=towns, bundle=bundle,
            workdays=days, previous=previous, seed=seed,
        )  # fmt: skip
        assert violations(result, towns, bundle, days, previous) == [], f"seed {seed}"
        if result.slots:
            missed = random.Random(seed).choice(result.slots)
            makeup = place_makeup(
                result.slots, missed=missed, bundle=bundle, workdays=days,
                not_before=missed.start,
            )  # fmt: skip
            if makeup is not None:
                slots = sorted(
                    [*result.slots, makeup], key=lambda s: (s.start, s.caller, s.console)
                )
                again = replace(result, slots=tuple(slots))
                assert violations(again, towns, bundle, days, previous) == [], (
                    f"makeup, seed {seed}"
                )


def test_a_province_builds_every_district_whole() -> None:
    """How fast: tests/bench/rota.py (a timed assertion here failed on loaded machines)."""
    bundle = PolicyBundle(Policy(spot_checks_per_week=5))
    monday = date(2026, 3, 30)  # screening and district supervision due: a heavy week
    days = weekdays(monday)
    districts = [
        (f"91{i:04d}000000", make_towns(f"91{i:04d}", 20, 8, 20, seed=i)) for i in range(180)
    ]
    for code, towns in districts:
        result = build_rota(
            week_start=monday, district=code, towns=towns, bundle=bundle, workdays=days
        )
        assert result.unplaced == ()
    code, towns = districts[0]
    assert violations(build_rota(week_start=monday, district=code, towns=towns, bundle=bundle,
                                 workdays=days), towns, bundle, days) == []  # fmt: skip


def test_a_new_village_joins_the_end_of_its_towns_patrol_run() -> None:
    towns = make_towns(n_towns=6, lo=8, hi=12)
    week1 = build(date(2026, 3, 9), towns, DEFAULT)
    town = towns[2]
    new = f"{town.code[:9]}099"
    grown = [*towns[:2], TownInput(town.code, (*town.villages, new)), *towns[3:]]
    week2 = build(date(2026, 3, 16), grown, DEFAULT, previous=week1.slots)
    assert violations(week2, grown, DEFAULT, weekdays(date(2026, 3, 16)), week1.slots) == []
    patrols = sorted(
        (s for s in week2.slots if s.kind == "town_patrol" and s.caller == town.code),
        key=lambda s: s.start,
    )
    assert patrols[-1].callees == (new,)
    assert patrols[-1].start == patrols[-2].end


def test_the_checker_catches_broken_rotas() -> None:
    towns = make_towns(n_towns=3, lo=8, hi=8)
    monday = date(2026, 3, 9)
    days = weekdays(monday)
    result = build(monday, towns, DEFAULT)
    assert violations(result, towns, DEFAULT, days) == []
    meeting = next(s for s in result.slots if s.kind == "district_meeting")
    patrol = next(s for s in result.slots if s.caller == meeting.callees[0])
    moved = replace(patrol, start=meeting.start, end=meeting.start + timedelta(minutes=10))
    saturday = replace(patrol, start=patrol.start + timedelta(days=5 - patrol.start.weekday()))
    broken = {
        "in two calls at once": moved,
        "not on a working day": saturday,
        "console 3 of 1": replace(patrol, console=3),
        "off the 5-minute grid": replace(patrol, start=patrol.start + timedelta(minutes=1)),
    }
    for expected, bad in broken.items():
        slots = sorted(
            [bad if s is patrol else s for s in result.slots],
            key=lambda s: (s.start, s.caller, s.console),
        )
        found = violations(replace(result, slots=tuple(slots)), towns, DEFAULT, days)
        assert any(expected in line for line in found), (expected, found)
    dropped = replace(result, slots=tuple(s for s in result.slots if s is not patrol))
    assert any(
        "0 slot(s) or unplaced, 1 required" in x for x in violations(dropped, towns, DEFAULT, days)
    )
    blackout = PolicyBundle(
        Policy(),
        blackouts=(Blackout(patrol.callees[0], "weekday", weekday=patrol.start.weekday()),),
    )
    assert any("blacked out" in x for x in violations(result, towns, blackout, days))
