"""The dispatch policy: who covers whom, how often, how long, on which consoles and in
which working windows. Defaults come from the source document (see DESIGN.md); every
value is data, stored per district (and per caller centre for consoles and windows) and
editable by an admin.

Invariant: a `Policy` is immutable and always valid — `Policy.from_dict` validates every
field and names the bad one; nothing else constructs a Policy from user input.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, time
from itertools import pairwise
from typing import Any, Literal

from dispatch.errors import InvalidInput

BlackoutKind = Literal["weekday", "market_days", "date_range"]
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, order=True)
class Window:
    """A working window within a day, in Asia/Shanghai wall-clock time."""

    start: time
    end: time

    @property
    def minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)

    def as_list(self) -> list[str]:
        return [self.start.strftime("%H:%M"), self.end.strftime("%H:%M")]


DEFAULT_WINDOWS = (Window(time(9, 0), time(11, 30)), Window(time(14, 30), time(17, 30)))


@dataclass(frozen=True)
class CallerConfig:
    """A caller centre's parallel consoles and its working windows."""

    consoles: int
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class Blackout:
    """A time a centre cannot take or make calls.

    weekday: every `weekday` (0 = Monday); market_days: every day of the month whose
    last digit is in `day_digits` (赶场日, e.g. 1/4/7); date_range: `start`..`end`
    inclusive.
    """

    centre: str
    kind: BlackoutKind
    weekday: int | None = None
    day_digits: tuple[int, ...] = ()
    start: date | None = None
    end: date | None = None
    note: str = ""

    def blocks(self, day: date) -> bool:
        if self.kind == "weekday":
            return day.weekday() == self.weekday
        if self.kind == "market_days":
            return day.day % 10 in self.day_digits
        assert self.start is not None and self.end is not None
        return self.start <= day <= self.end


@dataclass(frozen=True)
class Policy:
    # How the district covers every town and village each week: "meeting" (one
    # dispatch meeting per town with the town and all its villages) or "inspection"
    # (one 1:1 call per centre).
    district_mode: Literal["meeting", "inspection"] = "meeting"
    district_meeting_minutes: int = 40
    district_inspection_minutes: int = 10
    # Town → village video patrols (视频巡查), 1:1.
    town_patrol_minutes: int = 10
    town_patrols_per_week: int = 1
    # Dispute screening (矛盾纠纷排查): town + all its villages, on the first working
    # day on or after each of these days of the month.
    screening_minutes: int = 60
    screening_days: tuple[int, ...] = (1, 16)
    # Supervision dispatch (督导调度): district → each town every N months, town → all
    # its villages every M months, on the first working day on or after the 1st of
    # the months that start such a period (N=3: Jan/Apr/Jul/Oct; M=2: Jan/Mar/…).
    supervision_district_every_months: int = 3
    supervision_town_every_months: int = 2
    supervision_minutes: int = 30
    # Caller capacity; a caller centre may override both.
    district_consoles: int = 2
    town_consoles: int = 1
    windows: tuple[Window, ...] = DEFAULT_WINDOWS
    # Slots start on this grid (minutes after a window opens).
    slot_step_minutes: int = 5
    # Share of each caller's weekly console capacity kept free, late in the week, for
    # make-ups of missed calls.
    reserve_fraction: float = 0.2
    # Unannounced 1:1 inspections (抽查) by the district per week.
    spot_checks_per_week: int = 0
    spot_check_minutes: int = 10
    # For the calls and the reports.
    answer_deadline_seconds: int = 60
    min_verified_seconds: int = 60
    reminder_minutes: int = 10

    def caller_config(self, level: str, override: CallerConfig | None = None) -> CallerConfig:
        if override is not None:
            return override
        consoles = self.district_consoles if level == "district" else self.town_consoles
        return CallerConfig(consoles, self.windows)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["windows"] = [w.as_list() for w in self.windows]
        data["screening_days"] = list(self.screening_days)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Policy | None = None) -> Policy:
        """`base` with the given fields changed; every value validated by name."""
        base = base or cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(unknown[0], "not a policy setting")
        changes: dict[str, Any] = {}
        for name, value in data.items():
            changes[name] = _validate(name, value)
        policy = replace(base, **changes)
        if policy.district_mode == "inspection" and policy.district_inspection_minutes <= 0:
            raise InvalidInput("district_inspection_minutes", "must be positive")
        return policy


INT_RANGES: dict[str, tuple[int, int]] = {
    "district_meeting_minutes": (5, 240),
    "district_inspection_minutes": (5, 120),
    "town_patrol_minutes": (5, 120),
    "town_patrols_per_week": (0, 5),
    "screening_minutes": (10, 240),
    "supervision_district_every_months": (0, 12),
    "supervision_town_every_months": (0, 12),
    "supervision_minutes": (10, 240),
    "district_consoles": (1, 50),
    "town_consoles": (1, 20),
    "slot_step_minutes": (1, 60),
    "spot_checks_per_week": (0, 500),
    "spot_check_minutes": (5, 60),
    "answer_deadline_seconds": (10, 600),
    "min_verified_seconds": (0, 3600),
    "reminder_minutes": (0, 120),
}


def _validate(name: str, value: Any) -> Any:
    if name in INT_RANGES:
        lo, hi = INT_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidInput(name, f"must be a whole number from {lo} to {hi}")
        return value
    if name == "district_mode":
        if value not in ("meeting", "inspection"):
            raise InvalidInput(name, "must be meeting or inspection")
        return value
    if name == "reserve_fraction":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 0.8:
            raise InvalidInput(name, "must be a number from 0 to 0.8")
        return float(value)
    if name == "screening_days":
        if not isinstance(value, list | tuple) or not value or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 28 for d in value
        ):
            raise InvalidInput(name, "must be a list of days of the month from 1 to 28")
        return tuple(sorted(set(value)))
    if name == "windows":
        return parse_windows(value, name)
    raise InvalidInput(name, "not a policy setting")


def parse_time(value: Any, name: str) -> time:
    match = TIME_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidInput(name, f"times are HH:MM, got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_windows(value: Any, name: str = "windows") -> tuple[Window, ...]:
    """[["09:00", "11:30"], ...] → sorted, non-overlapping windows."""
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(name, 'must be a list like [["09:00", "11:30"], ["14:30", "17:30"]]')
    windows = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise InvalidInput(name, "each window is [start, end]")
        w = Window(parse_time(item[0], name), parse_time(item[1], name))
        if w.minutes <= 0:
            raise InvalidInput(name, f"window {w.as_list()} ends before it starts")
        windows.append(w)
    windows.sort()
    for a, b in pairwise(windows):
        if b.start < a.end:
            raise InvalidInput(name, f"windows {a.as_list()} and {b.as_list()} overlap")
    return tuple(windows)


@dataclass(frozen=True)
class PolicyBundle:
    """Everything the rota builder needs to know of policy for one district."""

    policy: Policy
    callers: dict[str, CallerConfig] = field(default_factory=dict)  # overrides by code
    blackouts: tuple[Blackout, ...] = ()
