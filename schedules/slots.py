"""What a weekly rota is made of: the kinds of call, a planned slot, a pair that found no
slot, and one week's result (`schedules.rota` builds them).

Time model: every time of the rota is Shanghai wall time (dispatch.clock's `SHANGHAI`); a
slot is the half-open interval [start, end) on one working day, its ends timezone-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

KINDS = (
    "district_meeting",
    "district_inspection",
    "town_patrol",
    "screening",
    "supervision",
    "spot_check",
    "makeup",
)


DISTRICT_KINDS = frozenset({"district_meeting", "district_inspection", "spot_check"})


# What a kind of call is called everywhere: pages, files, calendar feeds (Chinese, English).
KIND_LABELS: dict[str, tuple[str, str]] = {
    "district_meeting": ("区级视频调度会", "District dispatch meeting"),
    "district_inspection": ("区级视频调度", "District inspection"),
    "town_patrol": ("镇级视频巡查", "Town patrol"),
    "screening": ("矛盾纠纷排查调度会", "Dispute screening meeting"),
    "supervision": ("督导调度", "Supervision dispatch"),
    "spot_check": ("视频抽查", "Spot check"),
    "makeup": ("补调度", "Make-up"),
}


EXEMPT_WARNING = "本周无工作日，免于调度 / week has no working day: exempt"


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
