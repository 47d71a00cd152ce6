"""Builds a district's rota for one week from what the database holds — active
centres, the policy in force, the working-day calendar, last week's rota — and stores it.
The placement itself is the pure `rota.build_rota`."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session

from dispatch import centres, clock
from dispatch.errors import InvalidInput

from . import plans, policy, rota, slots, workdays
from .workdays import IsoWeek

MAX_SEED = 2**31 - 1


def spot_check_seed(session: Session, district_code: str, week: IsoWeek) -> int:
    """The seed of a week's spot-check draw when none is given: the one the week was
    first built with (a rebuild draws the same checks), else a fresh one from the
    operating system's CSPRNG. Never derived from public facts (the district's code and
    the week), so nobody can work out next week's unannounced checks; it is recorded on
    the week (``RotaWeek.spot_check_seed``) so the draw can be reproduced afterwards,
    and no callee's view shows it."""
    stored = plans.get_week(session, district_code, week)
    if stored is not None:
        return stored.spot_check_seed
    return secrets.randbelow(MAX_SEED + 1)  # fits a signed 32-bit column


def district_towns(session: Session, district_code: str) -> list[slots.TownInput]:
    """Active towns with their active villages (one range scan of the district)."""
    below = centres.all_below(session, centres.get(session, district_code))
    villages: dict[str, list[str]] = {}
    for c in below:
        if c.level == "village" and c.active:
            villages.setdefault(c.parent_code or "", []).append(c.code)
    return [
        slots.TownInput(code=t.code, villages=tuple(sorted(villages.get(t.code, []))))
        for t in below
        if t.level == "town" and t.active
    ]


def build_week(
    session: Session,
    district_code: str,
    week: IsoWeek,
    *,
    seed: int | None = None,
    by: str = "",
    now: datetime | None = None,
    cal: workdays.WorkdayCalendar | None = None,
) -> plans.RotaWeek:
    """Build and store one district's week. Pass `cal` to share one calendar (and its
    per-year cache) across many districts."""
    district = centres.get_at_level(session, district_code, centres.Level.district, "district")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InvalidInput("seed", f"must be from 0 to {MAX_SEED}")
    cal = cal or workdays.load_calendar(session)
    days = cal.workdays(week)
    notes = [
        f"{zh} / {en}"
        for zh, en in zip(cal.warnings(week.days(), "zh"), cal.warnings(week.days()), strict=True)
    ]
    today = clock.today(now)
    if days and days[0] <= today <= week.days()[-1]:
        # A week that has begun is planned from the next working day: never in the past.
        days = [d for d in days if d > today]
        notes.append(
            f"{today} 在周中生成：从下一个工作日起安排 / "
            f"built during the week on {today}: planned from the next working day"
        )
    previous_week = plans.get_week(session, district.code, week.previous())
    previous = (
        [
            s.planned()
            for s in plans.week_slots(session, previous_week.id or 0)
            if s.kind != "makeup"
        ]
        if previous_week
        else []
    )
    result = rota.build_rota(
        week_start=week.monday,
        district=district.code,
        towns=district_towns(session, district.code) if district.active else [],
        bundle=policy.load_bundle(session, district.code),
        workdays=days,
        previous=previous,
        seed=spot_check_seed(session, district.code, week) if seed is None else seed,
        calendar_warnings=notes,
    )
    if result.exempt and cal.workdays(week):
        result = replace(result, exempt=False)  # working days exist; they have passed
    return plans.save_result(session, week, result, by, now=now)


def districts(session: Session) -> list[str]:
    return [c.code for c in centres.roots(session) if c.level == "district" and c.active]


def resolve_district(session: Session, code: str | None, field: str = "district") -> str:
    """The named district, or the only one there is."""
    if code:
        return centres.get_at_level(session, code, centres.Level.district, field).code
    found = districts(session)
    if len(found) != 1:
        raise InvalidInput(field, f"the database holds {len(found)} districts; name one")
    return found[0]
