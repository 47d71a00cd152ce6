"""The Chinese working-day calendar: ISO weeks, working days, administrator overrides.

Sources, in order of precedence:
1. an administrator's override of a single day (table `calendar_override`);
2. `chinese-calendar`, which carries the State Council's arrangement (statutory
   holidays, substituted days off and the adjusted working weekends, 调休);
3. for a year `chinese-calendar` does not know yet, the `holidays` package: statutory
   holidays and substituted days off, plus the adjusted working weekends it happens to
   know. Every such year yields a warning, so a person checks it and adds overrides.

Invariants:
- A `WorkdayCalendar` never changes what it answers: its overrides are a snapshot
  taken at construction and the libraries' answers are cached per year, each year
  computed at most once per calendar (a race between threads only computes the same
  value twice). To see new overrides, load a new calendar.
- `info` and `is_workday` never raise for a `date`; a year no library knows gets the
  weekend rule (Saturday and Sunday off) and a warning.
- An `IsoWeek` always names a week that exists.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import chinese_calendar
import holidays
from sqlmodel import Field, Session, SQLModel, col, select

from dispatch.centres import CONTROL_RE
from dispatch.clock import utcnow
from dispatch.errors import InvalidInput

log = logging.getLogger(__name__)

# Kinds of day. A day is off exactly when its kind is weekend, holiday or override_day_off.
WORKDAY = "workday"
WEEKEND = "weekend"
HOLIDAY = "holiday"
ADJUSTED_WORKDAY = "adjusted_workday"  # 调休: a Saturday or Sunday that is worked
OVERRIDE_WORKDAY = "override_workday"
OVERRIDE_DAY_OFF = "override_day_off"

SOURCE_CC = "chinese-calendar"
SOURCE_HOLIDAYS = "holidays"
SOURCE_OVERRIDE = "override"

# The statutory holidays: a lower-case fragment of the English name either library
# uses → (Chinese name, the English name chinese-calendar uses). Checked in order:
# "chinese new year" must match before "new year's day" ("Chinese New Year's Eve").
STATUTORY: tuple[tuple[str, str, str], ...] = (
    ("chinese new year", "春节", "Spring Festival"),
    ("spring festival", "春节", "Spring Festival"),
    ("new year's day", "元旦", "New Year's Day"),
    ("tomb", "清明节", "Tomb-sweeping Day"),
    ("labo", "劳动节", "Labour Day"),  # Labour (chinese-calendar) / Labor (holidays)
    ("dragon boat", "端午节", "Dragon Boat Festival"),
    ("mid-autumn", "中秋节", "Mid-autumn Festival"),
    ("national day", "国庆节", "National Day"),
)

MAX_DUE_SEARCH_DAYS = 60
WEEK_RE = re.compile(r"^([0-9]{4})-?[Ww]([0-9]{2})$")  # ASCII digits only


# --- ISO weeks -----------------------------------------------------------------------


def iso_weeks_in_year(year: int) -> int:
    """52 or 53: 28 December always lies in the last ISO week of its year."""
    return date(year, 12, 28).isocalendar().week


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO 8601 week (Monday to Sunday). Ordered by (year, week)."""

    year: int
    week: int

    def __post_init__(self) -> None:
        if not 1 <= self.year <= 9999 or not 1 <= self.week <= iso_weeks_in_year(self.year):
            raise InvalidInput("week", f"{self.year}-W{self.week:02d} does not exist")

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """Read "2026-W41", "2026W41" or "2026-w41" (surrounding spaces ignored)."""
        match = WEEK_RE.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise InvalidInput("week", f"an ISO week is written like 2026-W41, got {text!r}")
        year, week = int(match.group(1)), int(match.group(2))
        if year < 1 or not 1 <= week <= iso_weeks_in_year(year):
            raise InvalidInput("week", f"{year} has no ISO week {week}")
        return cls(year, week)

    @classmethod
    def containing(cls, day: date) -> IsoWeek:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    def __str__(self) -> str:
        return f"{self.year:04d}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def days(self) -> list[date]:
        """Monday to Sunday."""
        monday = self.monday
        return [monday + timedelta(days=i) for i in range(7)]

    def next(self) -> IsoWeek:
        return self._shift(7)

    def previous(self) -> IsoWeek:
        return self._shift(-7)

    def _shift(self, days: int) -> IsoWeek:
        try:
            return IsoWeek.containing(self.monday + timedelta(days=days))
        except OverflowError:
            raise InvalidInput("week", f"no week beyond {self}") from None


# --- days ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DayInfo:
    """What one day is. `name` is the holiday's Chinese name where one is known (for an
    override: the administrator's note, else the underlying name); `name_en` its English
    name; both empty for an ordinary day."""

    day: date
    workday: bool
    kind: str
    name: str
    source: str
    name_en: str = ""


def statutory_names(english: str) -> tuple[str, str] | None:
    """(Chinese, English) of the statutory holiday an English name belongs to, if any."""
    lower = english.lower()
    for fragment, zh, en in STATUTORY:
        if fragment in lower:
            return zh, en
    return None


def _names_from_cc(english: str | None) -> tuple[str, str]:
    if not english:
        return "", ""
    known = statutory_names(english)
    if known:
        return known
    try:  # e.g. the 2015 Anti-Fascist 70th Day: the library has its Chinese name
        return chinese_calendar.constants.Holiday(english).chinese, english
    except ValueError:
        return english, english


def _plain(day: date, source: str) -> DayInfo:
    if day.weekday() >= 5:
        return DayInfo(day, False, WEEKEND, "", source)
    return DayInfo(day, True, WORKDAY, "", source)


def _all_days(year: int) -> list[date]:
    first = date(year, 1, 1)
    count = (date(year, 12, 31) - first).days + 1
    return [first + timedelta(days=i) for i in range(count)]


@dataclass(frozen=True)
class _Year:
    """One year's answers. `base` maps every day of the year (libraries only);
    `effective` is `base` with the calendar's overrides applied."""

    base: dict[date, DayInfo]
    effective: dict[date, DayInfo]
    warning_en: str | None
    warning_zh: str | None


def _year_from_cc(year: int) -> dict[date, DayInfo] | None:
    """The year from chinese-calendar, or None if it has no data for the year."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return None
    except Exception:  # never crash on a library fault: fall back and warn instead
        log.exception("chinese-calendar failed for %s", year)
        return None
    out: dict[date, DayInfo] = {}
    for day in _all_days(year):
        workday = chinese_calendar.is_workday(day)
        _, english = chinese_calendar.get_holiday_detail(day)
        zh, en = _names_from_cc(english)
        weekend = day.weekday() >= 5
        if workday:
            kind = ADJUSTED_WORKDAY if weekend else WORKDAY
        else:
            kind = HOLIDAY if (english or not weekend) else WEEKEND
        if kind in (WORKDAY, WEEKEND):
            zh = en = ""  # an ordinary day carries no name
        out[day] = DayInfo(day, workday, kind, zh, SOURCE_CC, en)
    return out


def _year_from_holidays(year: int) -> tuple[dict[date, DayInfo], bool, bool]:
    """The year from the `holidays` package: (days, package worked, weekend workdays known)."""
    out = {day: _plain(day, SOURCE_HOLIDAYS) for day in _all_days(year)}
    try:
        english = holidays.country_holidays("CN", years=year, language="en_US")
        chinese = holidays.country_holidays("CN", years=year, language="zh_CN")
        # A set across all the years the package knows; keep this year's weekend days.
        extra = getattr(english, "weekend_workdays", None) or ()
        worked = {d for d in extra if d.year == year and d.weekday() >= 5}
    except Exception:  # never crash: the weekend rule alone, with a warning
        log.exception("the holidays package failed for China in %s", year)
        return out, False, False

    named: dict[date, tuple[str, str]] = {}
    for day, name in english.items():
        if day.year == year:
            named[day] = statutory_names(name) or (str(chinese.get(day) or name), name)
    recognised = {d: n for d, n in named.items() if statutory_names(n[1])}
    for day, (zh, en) in named.items():
        if day not in recognised:
            # A substituted day off ("Day off (substituted from …)") belongs to the
            # nearest statutory holiday within 4 days, which is its holiday period.
            near = [d for d in recognised if abs((d - day).days) <= 4]
            if near:
                zh, en = recognised[min(near, key=lambda d: (abs((d - day).days), d))]
        out[day] = DayInfo(day, False, HOLIDAY, zh, SOURCE_HOLIDAYS, en)
    for day in worked:
        out[day] = DayInfo(day, True, ADJUSTED_WORKDAY, "", SOURCE_HOLIDAYS)
    _extend_into_weekends(out)
    return out, True, bool(worked)


def _extend_into_weekends(days: dict[date, DayInfo]) -> None:
    """Name the weekends that touch a holiday as part of it, as chinese-calendar does
    (the `holidays` package lists only the paid days). Display only: a weekend is off
    either way. A weekend run takes the holiday before it, else the one after it."""
    one = timedelta(days=1)
    ordered = sorted(days)
    i = 0
    while i < len(ordered):
        if days[ordered[i]].kind != WEEKEND:
            i += 1
            continue
        j = i
        while j + 1 < len(ordered) and days[ordered[j + 1]].kind == WEEKEND:
            j += 1
        before, after = days.get(ordered[i] - one), days.get(ordered[j] + one)
        source = next((d for d in (before, after) if d and d.kind == HOLIDAY), None)
        if source is not None:
            for day in ordered[i : j + 1]:
                days[day] = DayInfo(
                    day, False, HOLIDAY, source.name, SOURCE_HOLIDAYS, source.name_en
                )
        i = j + 1


def _warnings(year: int, package_ok: bool, weekends_known: bool) -> tuple[str, str]:
    if not package_ok:
        return (
            f"{year}: neither chinese-calendar nor the `holidays` package has data for "
            "this year; only Saturdays and Sundays are days off — check and add overrides",
            f"{year}年：chinese-calendar 与 holidays 均无本年数据，仅按周六、周日休息"
            "——请核对并添加调整",
        )
    if weekends_known:
        scope_en = "statutory holidays and the adjusted working weekends (调休) it lists"
        scope_zh = "法定节假日及其已收录的调休上班日"
    else:
        scope_en = (
            "statutory holidays only; adjusted working weekends (调休) are unknown until published"
        )
        scope_zh = "仅含法定节假日；调休上班日在国务院公布前未知"
    return (
        f"{year}: chinese-calendar has no State Council arrangement for this year; "
        f"working days come from the `holidays` package ({scope_en}) — check and add "
        "overrides",
        f"{year}年：chinese-calendar 尚无本年国务院放假安排，工作日取自 holidays 包"
        f"（{scope_zh}）——请核对并添加调整",
    )


@functools.cache
def _library_year(year: int) -> tuple[dict[date, DayInfo], str | None, str | None]:
    """What the libraries say of every day of `year`, with the warnings (en, zh) when
    chinese-calendar does not know it. Their data ships with the installed packages, so
    each year is worked out once per process (a year takes ~0.1 s; a half-year report
    reads some 50 calendars). Shared by every calendar: read only."""
    base = _year_from_cc(year)
    if base is not None:
        return base, None, None
    base, package_ok, weekends_known = _year_from_holidays(year)
    return base, *_warnings(year, package_ok, weekends_known)


class WorkdayCalendar:
    """Working days: the libraries' answers with an administrator's overrides on top.

    `overrides` maps a day to (is it a working day, the note); an override always wins.
    """

    def __init__(self, overrides: Mapping[date, tuple[bool, str]] | None = None) -> None:
        self._overrides: dict[date, tuple[bool, str]] = {}
        for day, (workday, note) in (overrides or {}).items():
            self._overrides[_check_day(day)] = (bool(workday), note)
        self._years: dict[int, _Year] = {}

    @property
    def overrides(self) -> dict[date, tuple[bool, str]]:
        return dict(self._overrides)

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        base, warning_en, warning_zh = _library_year(year)
        effective = dict(base)
        for day, (workday, note) in self._overrides.items():
            if day.year == year:
                under = base[day]
                kind = OVERRIDE_WORKDAY if workday else OVERRIDE_DAY_OFF
                name, name_en = (note, note) if note else (under.name, under.name_en)
                effective[day] = DayInfo(day, workday, kind, name, SOURCE_OVERRIDE, name_en)
        built = _Year(base, effective, warning_en, warning_zh)
        self._years[year] = built
        return built

    def info(self, day: date) -> DayInfo:
        return self._year(_check_day(day).year).effective[day]

    def base_info(self, day: date) -> DayInfo:
        """What the libraries say of `day`, ignoring overrides."""
        return self._year(_check_day(day).year).base[day]

    def is_workday(self, day: date) -> bool:
        return self.info(day).workday

    def workdays(self, week: IsoWeek) -> list[date]:
        return [d for d in week.days() if self.is_workday(d)]

    def year_days(self, year: int) -> list[DayInfo]:
        """Every day of `year`, in order, overrides applied."""
        effective = self._year(year).effective
        return [effective[d] for d in sorted(effective)]

    def warnings(self, days: Iterable[date], lang: str = "en") -> list[str]:
        """One warning per year among `days` that chinese-calendar does not know."""
        out = []
        for year in sorted({_check_day(d).year for d in days}):
            data = self._year(year)
            text = data.warning_zh if lang == "zh" else data.warning_en
            if text:
                out.append(text)
        return out


def _check_day(day: Any) -> date:
    # A datetime is a date subclass but never equal to a date: as a key it would
    # silently miss every holiday and override.
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"expected a datetime.date, got {type(day).__name__}")
    return day


def due_day(cal: WorkdayCalendar, year: int, month: int, day_of_month: int) -> date:
    """The first working day on or after year-month-day (within 60 days)."""
    try:
        start = date(year, month, day_of_month)
    except (TypeError, ValueError):
        raise InvalidInput("day", f"no such date: {year}-{month}-{day_of_month}") from None
    for offset in range(MAX_DUE_SEARCH_DAYS):
        try:
            day = start + timedelta(days=offset)
        except OverflowError:
            break
        if cal.is_workday(day):
            return day
    raise InvalidInput(
        "day", f"no working day within {MAX_DUE_SEARCH_DAYS} days from {start.isoformat()}"
    )


# --- overrides in the database -------------------------------------------------------


class CalendarOverride(SQLModel, table=True):
    """An administrator's decision that one day is (or is not) a working day."""

    __tablename__ = "calendar_override"

    day: date = Field(primary_key=True)
    workday: bool
    note: str = Field(default="", max_length=200)
    set_by: str = Field(max_length=64)
    set_at: datetime = Field(default_factory=utcnow)


def set_override(
    session: Session, day: date, workday: bool, note: str, set_by: str
) -> CalendarOverride:
    """Create or replace the override of `day`. The caller's session commits."""
    _check_day(day)
    if not isinstance(workday, bool):
        raise InvalidInput("workday", "must be true or false")
    note = (note or "").strip()
    if len(note) > 200 or CONTROL_RE.search(note):
        raise InvalidInput("note", "at most 200 characters, no control characters")
    set_by = (set_by or "").strip()
    if not set_by or len(set_by) > 64:
        raise InvalidInput("set_by", "a username of 1 to 64 characters")
    row = session.get(CalendarOverride, day)
    if row is None:
        row = CalendarOverride(day=day, workday=workday, note=note, set_by=set_by)
    else:
        row.workday, row.note, row.set_by, row.set_at = workday, note, set_by, utcnow()
    session.add(row)
    session.flush()
    return row


def clear_override(session: Session, day: date) -> bool:
    """Remove the override of `day`; False if there was none."""
    row = session.get(CalendarOverride, _check_day(day))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def list_overrides(session: Session) -> list[CalendarOverride]:
    return list(session.exec(select(CalendarOverride).order_by(col(CalendarOverride.day))))


def load_calendar(session: Session) -> WorkdayCalendar:
    return WorkdayCalendar({o.day: (o.workday, o.note) for o in list_overrides(session)})
