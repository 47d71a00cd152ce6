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
from datetime import date, datetime, time
from itertools import pairwise
from typing import Any, Literal, TypeGuard, get_args

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, col, select

from dispatch import centres
from dispatch.centres import Centre
from dispatch.clock import utcnow
from dispatch.errors import InvalidInput, NotFound

BlackoutKind = Literal["weekday", "market_days", "date_range"]
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def is_blackout_kind(value: str) -> TypeGuard[BlackoutKind]:
    return value in get_args(BlackoutKind)


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
    # District meetings are recorded from their start (the operator may stop it); any
    # other call is recorded when its operator starts it (dispatch/recordings.py).
    record_district_meetings: bool = True

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
    if name == "record_district_meetings":
        if not isinstance(value, bool):
            raise InvalidInput(name, "must be true or false")
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
        if (
            not isinstance(value, list | tuple)
            or not value
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 28 for d in value
            )
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


# --- storage ----------------------------------------------------------------------------
#
# The default policy is the record with key DEFAULT_KEY; a district's record holds only
# the fields it changes. Both store just the changed fields, so a new default reaches
# every district that did not change that field.

DEFAULT_KEY = "default"


class PolicyRecord(SQLModel, table=True):
    __tablename__ = "policy"

    key: str = Field(primary_key=True, max_length=12)  # DEFAULT_KEY or a district code
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class CallerRecord(SQLModel, table=True):
    __tablename__ = "caller_config"

    centre_code: str = Field(primary_key=True, foreign_key="centre.code")
    consoles: int
    windows: list[list[str]] = Field(sa_column=Column(JSON))
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)

    def config(self) -> CallerConfig:
        return CallerConfig(self.consoles, parse_windows(self.windows))


class BlackoutRecord(SQLModel, table=True):
    __tablename__ = "blackout"

    id: int | None = Field(default=None, primary_key=True)
    centre_code: str = Field(foreign_key="centre.code", index=True)
    kind: str = Field(max_length=12)
    weekday: int | None = None
    day_digits: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    start: date | None = None
    end: date | None = None
    note: str = Field(default="", max_length=200)
    created_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)

    def blackout(self) -> Blackout:
        """The stored row as the rule it holds (`add_blackout` stores only known kinds)."""
        if not is_blackout_kind(self.kind):
            raise ValueError(f"blackout {self.id} has the unknown kind {self.kind!r}")
        return Blackout(
            centre=self.centre_code,
            kind=self.kind,
            weekday=self.weekday,
            day_digits=tuple(self.day_digits),
            start=self.start,
            end=self.end,
            note=self.note,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "centre": self.centre_code,
            "kind": self.kind,
            "weekday": self.weekday,
            "day_digits": list(self.day_digits),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "note": self.note,
        }


def policy_for(session: Session, district_code: str | None) -> Policy:
    """The default policy with the stored default and district changes applied."""
    policy = Policy()
    for key in (DEFAULT_KEY, district_code):
        if key is None:
            continue
        record = session.get(PolicyRecord, key)
        if record is not None and record.data:
            policy = Policy.from_dict(_from_json(record.data), base=policy)
    return policy


def set_policy(
    session: Session, district_code: str | None, changes: dict[str, Any], by: str
) -> Policy:
    """Validate `changes` against the effective policy and store them."""
    if district_code is not None:
        centres.get_at_level(session, district_code, centres.Level.district, "district")
    base = policy_for(session, district_code)
    Policy.from_dict(_from_json(changes), base=base)  # raises, naming the bad field
    key = district_code or DEFAULT_KEY
    record = session.get(PolicyRecord, key) or PolicyRecord(key=key)
    record.data = {**record.data, **changes}
    record.updated_by, record.updated_at = by, utcnow()
    session.add(record)
    return policy_for(session, district_code)


def reset_policy(session: Session, district_code: str | None, names: list[str], by: str) -> Policy:
    """Forget stored changes of `names`, so the default (or the district's base) applies."""
    known = {f.name for f in fields(Policy)}
    for name in names:
        if name not in known:
            raise InvalidInput(name, "not a policy setting")
    record = session.get(PolicyRecord, district_code or DEFAULT_KEY)
    if record is not None:
        record.data = {k: v for k, v in record.data.items() if k not in names}
        record.updated_by, record.updated_at = by, utcnow()
        session.add(record)
    return policy_for(session, district_code)


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


def set_caller_config(
    session: Session, code: str, consoles: int, windows: Any, by: str
) -> CallerRecord:
    centre = centres.get(session, centres.parse_code(code))
    if centre.level == "village":
        raise InvalidInput("centre", "villages do not call; consoles are for districts and towns")
    if isinstance(consoles, bool) or not isinstance(consoles, int) or not 1 <= consoles <= 50:
        raise InvalidInput("consoles", "must be a whole number from 1 to 50")
    parsed = parse_windows(windows)
    record = session.get(CallerRecord, centre.code) or CallerRecord(
        centre_code=centre.code, consoles=consoles, windows=[]
    )
    record.consoles, record.windows = consoles, [w.as_list() for w in parsed]
    record.updated_by, record.updated_at = by, utcnow()
    session.add(record)
    return record


def add_blackout(
    session: Session, centre_code: str, spec: dict[str, Any], by: str
) -> BlackoutRecord:
    """spec: {"kind": "weekday", "weekday": 0-6} | {"kind": "market_days", "day_digits":
    [1, 4, 7]} | {"kind": "date_range", "start": "2026-10-01", "end": "2026-10-03"}, "note"?"""
    centre = centres.get(session, centres.parse_code(centre_code, "centre"))
    kind = spec.get("kind")
    record = BlackoutRecord(centre_code=centre.code, kind=str(kind), created_by=by)
    if kind == "weekday":
        wd = spec.get("weekday")
        if isinstance(wd, bool) or not isinstance(wd, int) or not 0 <= wd <= 6:
            raise InvalidInput("weekday", "must be 0 (Monday) to 6 (Sunday)")
        record.weekday = wd
    elif kind == "market_days":
        digits = spec.get("day_digits")
        if (
            not isinstance(digits, list)
            or not digits
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 9 for d in digits
            )
        ):
            raise InvalidInput("day_digits", "a list of last digits 0–9, e.g. [1, 4, 7]")
        record.day_digits = sorted(set(digits))
    elif kind == "date_range":
        start, end = _parse_date(spec.get("start"), "start"), _parse_date(spec.get("end"), "end")
        if end < start:
            raise InvalidInput("end", "is before start")
        if (end - start).days > 366:
            raise InvalidInput("end", "a blackout lasts at most a year")
        record.start, record.end = start, end
    else:
        raise InvalidInput("kind", "must be weekday, market_days or date_range")
    note = spec.get("note", "")
    if not isinstance(note, str) or len(note) > 200:
        raise InvalidInput("note", "text of at most 200 characters")
    record.note = note
    session.add(record)
    session.flush()
    return record


def _parse_date(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(name, f"must be a date like 2026-10-01, got {value!r}") from None


def blackouts_under(session: Session, path: str | None) -> list[BlackoutRecord]:
    stmt = select(BlackoutRecord).join(Centre, col(BlackoutRecord.centre_code) == col(Centre.code))
    if path is not None:
        low, high = centres.below_range(path)
        stmt = stmt.where(Centre.path >= low, Centre.path < high)
    return list(session.exec(stmt.order_by(col(Centre.path), col(BlackoutRecord.id))))


def remove_blackout(session: Session, blackout_id: int) -> BlackoutRecord:
    record = session.get(BlackoutRecord, blackout_id)
    if record is None:
        raise NotFound("blackout", str(blackout_id))
    session.delete(record)
    return record


def load_bundle(session: Session, district_code: str) -> PolicyBundle:
    """The policy, caller overrides and blackouts in force for one district."""
    district = centres.get(session, district_code)
    low, high = centres.below_range(district.path)
    stmt = (
        select(CallerRecord)
        .join(Centre, col(CallerRecord.centre_code) == col(Centre.code))
        .where(Centre.path >= low, Centre.path < high)
    )
    callers = {r.centre_code: r.config() for r in session.exec(stmt)}
    blackouts = tuple(r.blackout() for r in blackouts_under(session, district.path))
    return PolicyBundle(policy_for(session, district.code), callers, blackouts)
