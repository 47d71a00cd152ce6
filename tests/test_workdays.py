"""The working-day calendar against reality: chinese-calendar as the oracle for 2026,
the facts of DESIGN.md, the `holidays` fallback for 2027, and overrides in the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import chinese_calendar
import holidays
import pytest
from sqlmodel import Session, SQLModel

from dispatch.db import Database
from dispatch.errors import InvalidInput
from schedules import workdays
from schedules.workdays import (
    CalendarOverride,
    IsoWeek,
    WorkdayCalendar,
    clear_override,
    due_day,
    load_calendar,
    set_override,
)
from web.calendar_text import render_year
from web.columns import width

OCT = [date(2026, 10, d) for d in range(1, 8)]


@pytest.fixture
def libraries(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """`monkeypatch` for the calendar libraries: the years they gave before are forgotten
    (each is worked out once per process) while they are patched, and after."""
    workdays._library_year.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    workdays._library_year.cache_clear()


# --- ISO weeks -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-W41", "2026W41", "2026-w41", "2026w41", " 2026-W41 "])
def test_iso_week_parses_the_accepted_forms(text: str) -> None:
    week = IsoWeek.parse(text)
    assert week == IsoWeek(2026, 41)
    assert str(week) == "2026-W41"


@pytest.mark.parametrize(
    "text",
    ["", "2026", "2026-41", "2026-W1", "2026-W041", "W41", "26-W41", "2026-W00", "2026-W54",
     "2025-W53", "2027-W53", "2026-W41-1", "２０２６-W41"],
)  # fmt: skip
def test_iso_week_rejects_anything_else(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        IsoWeek.parse(text)
    assert err.value.field == "week"


def test_iso_week_rejects_a_non_string_and_a_bad_construction() -> None:
    with pytest.raises(InvalidInput):
        IsoWeek.parse(202641)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        IsoWeek(2025, 53)


def test_2026_is_a_long_iso_year() -> None:
    # 1 January 2026 is a Thursday, so 2026 has 53 ISO weeks; 2025 and 2027 have 52.
    assert date(2026, 1, 1).weekday() == 3
    assert date.fromisocalendar(2026, 53, 1) == date(2026, 12, 28)
    with pytest.raises(ValueError):
        date.fromisocalendar(2027, 53, 1)
    assert IsoWeek.parse("2026-W53").monday == date(2026, 12, 28)


def test_iso_week_days_neighbours_and_order() -> None:
    week = IsoWeek.parse("2026-W40")
    assert week.monday == date(2026, 9, 28)
    assert week.days() == [date(2026, 9, 28) + timedelta(days=i) for i in range(7)]
    assert [d.weekday() for d in week.days()] == list(range(7))
    assert week.next() == IsoWeek(2026, 41) and week.previous() == IsoWeek(2026, 39)
    assert IsoWeek(2026, 53).next() == IsoWeek(2027, 1)
    assert IsoWeek(2026, 1).previous() == IsoWeek(2025, 52)
    assert IsoWeek.containing(date(2027, 1, 3)) == IsoWeek(2026, 53)
    assert IsoWeek.containing(date(2025, 12, 29)) == IsoWeek(2026, 1)
    assert sorted([IsoWeek(2027, 1), IsoWeek(2026, 53), IsoWeek(2026, 2)]) == [
        IsoWeek(2026, 2),
        IsoWeek(2026, 53),
        IsoWeek(2027, 1),
    ]


# --- 2026 against chinese-calendar and DESIGN.md ---------------------------------------


def test_every_day_of_2026_matches_chinese_calendar() -> None:
    cal = WorkdayCalendar({})
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert cal.is_workday(day) == chinese_calendar.is_workday(day), day
        assert cal.info(day).source == "chinese-calendar"
        day += timedelta(days=1)
    assert cal.warnings([date(2026, 1, 1), date(2026, 12, 31)]) == []


def test_design_facts_national_day_2026() -> None:
    # DESIGN.md: "in 2026, 1–7 October are off and Saturday 10 October is a working day".
    cal = WorkdayCalendar({})
    for day in OCT:
        info = cal.info(day)
        assert not info.workday and info.kind == "holiday", day
        assert (info.name, info.name_en) == ("国庆节", "National Day")
    saturday = cal.info(date(2026, 10, 10))
    assert saturday.day.weekday() == 5
    assert saturday.workday and saturday.kind == "adjusted_workday"
    assert saturday.name == "国庆节"


def test_the_2026_adjusted_working_days_per_the_library() -> None:
    cal = WorkdayCalendar({})
    adjusted = [i.day for i in cal.year_days(2026) if i.kind == "adjusted_workday"]
    assert adjusted == [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ]
    assert all(d.weekday() >= 5 and chinese_calendar.is_workday(d) for d in adjusted)


def test_spring_festival_ordinary_days_and_weekends_2026() -> None:
    cal = WorkdayCalendar({})
    new_year = cal.info(date(2026, 2, 17))  # 正月初一
    assert (new_year.workday, new_year.kind, new_year.name) == (False, "holiday", "春节")
    assert new_year.name_en == "Spring Festival"
    assert cal.info(date(2026, 1, 1)).name == "元旦"
    tuesday = cal.info(date(2026, 3, 10))
    assert tuesday.day.weekday() == 1
    assert (tuesday.workday, tuesday.kind, tuesday.name) == (True, "workday", "")
    sunday = cal.info(date(2026, 3, 8))
    assert sunday.day.weekday() == 6
    assert (sunday.workday, sunday.kind) == (False, "weekend")


def test_workdays_of_2026_w40_and_w41() -> None:
    cal = WorkdayCalendar({})
    w40, w41 = IsoWeek.parse("2026-W40"), IsoWeek.parse("2026-W41")
    # The library is the oracle; the DESIGN facts pin the answer independently.
    assert cal.workdays(w40) == [d for d in w40.days() if chinese_calendar.is_workday(d)]
    assert cal.workdays(w40) == [date(2026, 9, 28), date(2026, 9, 29), date(2026, 9, 30)]
    assert cal.workdays(w41) == [d for d in w41.days() if chinese_calendar.is_workday(d)]
    assert cal.workdays(w41) == [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]


def test_a_week_overridden_to_days_off_has_no_workdays() -> None:
    # 2026 has no week made wholly of days off, so overrides make one.
    week = IsoWeek.parse("2026-W11")
    cal = WorkdayCalendar({d: (False, "防汛") for d in week.days()[:5]})
    assert cal.workdays(week) == []
    assert WorkdayCalendar({}).workdays(week) == week.days()[:5]


# --- 2027: the fallback ----------------------------------------------------------------


def test_2027_falls_back_to_holidays_with_one_warning() -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 1))  # the reason for the fallback
    cal = WorkdayCalendar({})
    new_year = cal.info(date(2027, 1, 1))
    assert (new_year.workday, new_year.kind, new_year.name) == (False, "holiday", "元旦")
    assert new_year.source == "holidays"
    monday = cal.info(date(2027, 1, 4))
    assert monday.day.weekday() == 0
    assert (monday.workday, monday.kind) == (True, "workday")
    assert date(2027, 2, 6) in holidays.China(years=2027)  # 正月初一
    assert cal.info(date(2027, 2, 8)).name == "春节"

    days = [date(2026, 12, 31)] + [date(2027, 1, 1) + timedelta(days=i) for i in range(40)]
    found = cal.warnings(days)
    assert len(found) == 1
    assert found[0].startswith("2027: chinese-calendar has no State Council arrangement")
    assert "adjusted working weekends (调休) are unknown until published" in found[0]
    assert "check and add overrides" in found[0]
    assert cal.warnings([date(2028, 5, 1), date(2027, 5, 1)])[0].startswith("2027:")
    assert len(cal.warnings([date(2028, 5, 1), date(2027, 5, 1)])) == 2


def test_the_fallback_agrees_with_chinese_calendar_on_2026(
    libraries: pytest.MonkeyPatch,
) -> None:
    # With chinese-calendar made blind, `holidays` (which knows 2026's 调休) must give
    # the same working days, and the warning says it lists the adjusted weekends.
    real = chinese_calendar.is_workday

    def blind(day: date) -> bool:
        raise NotImplementedError(f"no available data for year {day.year}")

    libraries.setattr(chinese_calendar, "is_workday", blind)
    cal = WorkdayCalendar({})
    for info in cal.year_days(2026):
        assert info.workday == real(info.day), info
        assert info.source == "holidays"
    assert cal.info(date(2026, 10, 10)).kind == "adjusted_workday"
    assert cal.info(date(2026, 10, 4)).name == "国庆节"  # a weekend inside the holiday
    (warning,) = cal.warnings([date(2026, 3, 1)])
    assert "adjusted working weekends (调休) it lists" in warning


def test_a_library_failure_never_crashes(libraries: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broken")

    libraries.setattr(holidays, "country_holidays", broken)
    cal = WorkdayCalendar({})
    assert cal.is_workday(date(2027, 1, 1))  # a Friday: only the weekend rule is left
    assert not cal.is_workday(date(2027, 1, 2))
    (warning,) = cal.warnings([date(2027, 1, 1)])
    assert "only Saturdays and Sundays are days off" in warning


def test_a_datetime_is_refused() -> None:
    with pytest.raises(TypeError):
        WorkdayCalendar({}).is_workday(datetime(2026, 10, 1))


# --- overrides -----------------------------------------------------------------------


def test_an_override_wins_both_ways() -> None:
    cal = WorkdayCalendar({date(2026, 10, 1): (True, "值班"), date(2026, 3, 10): (False, "")})
    on = cal.info(date(2026, 10, 1))
    assert (on.workday, on.kind, on.source, on.name) == (
        True,
        "override_workday",
        "override",
        "值班",
    )
    off = cal.info(date(2026, 3, 10))
    assert (off.workday, off.kind, off.source) == (False, "override_day_off", "override")
    assert cal.base_info(date(2026, 10, 1)).kind == "holiday"
    # Overrides win over the fallback as well.
    cal27 = WorkdayCalendar({date(2027, 1, 1): (True, "")})
    assert cal27.is_workday(date(2027, 1, 1))


def test_overrides_persist_through_the_database(db: Database) -> None:
    SQLModel.metadata.create_all(db.engine)
    with db.session() as s:
        row = set_override(s, date(2026, 10, 8), False, "台风停工", "admin")
        set_override(s, date(2026, 10, 11), True, "补班", "admin")
        assert row.set_at.tzinfo is not None
    with Session(db.engine) as s:
        cal = load_calendar(s)
        stored = s.get(CalendarOverride, date(2026, 10, 8))
        assert stored is not None and stored.set_by == "admin"
        assert stored.set_at.tzinfo is not None  # read back timezone-aware
    assert not cal.is_workday(date(2026, 10, 8))
    assert cal.is_workday(date(2026, 10, 11))
    assert cal.info(date(2026, 10, 8)).name == "台风停工"

    with db.session() as s:  # upsert: the same day again replaces the decision
        set_override(s, date(2026, 10, 8), True, "", "chen")
    with db.session() as s:
        assert load_calendar(s).is_workday(date(2026, 10, 8))
        assert s.get(CalendarOverride, date(2026, 10, 8)).set_by == "chen"  # type: ignore[union-attr]
        assert clear_override(s, date(2026, 10, 8)) is True
        assert clear_override(s, date(2026, 10, 8)) is False
    with db.session() as s:
        cal = load_calendar(s)
    assert cal.is_workday(date(2026, 10, 8))  # the library's answer again
    assert cal.overrides == {date(2026, 10, 11): (True, "补班")}


def test_set_override_validates(db: Database) -> None:
    SQLModel.metadata.create_all(db.engine)
    with db.session() as s:
        with pytest.raises(InvalidInput) as err:
            set_override(s, date(2026, 1, 5), False, "x" * 201, "admin")
        assert err.value.field == "note"
        with pytest.raises(InvalidInput):
            set_override(s, date(2026, 1, 5), False, "a\nb", "admin")
        with pytest.raises(InvalidInput) as err:
            set_override(s, date(2026, 1, 5), False, "", "")
        assert err.value.field == "set_by"


# --- the printed year ----------------------------------------------------------------


def _row_below(text: str, title: str, n: int) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if title in line)
    return lines[index + n]


def test_render_year_in_chinese() -> None:
    cal = WorkdayCalendar({date(2026, 11, 2): (False, "区委会议")})
    text = render_year(cal, 2026)
    assert "2026年10月" in text
    # 2026-10-01 is a Thursday: the first row of October ends with 1–4 October off.
    assert _row_below(text, "2026年10月", 2).endswith(" 1休  2休  3休  4休")
    assert "10班" in _row_below(text, "2026年10月", 3)
    assert "10月1日 – 10月7日" in text and "休 国庆节（7天）" in text
    assert "10月10日（周六）" in text and "国庆节调休上班" in text
    assert " 2* " in _row_below(text, "2026年11月", 3)
    assert "调整为休息日：区委会议" in text
    total = sum(1 for i in cal.year_days(2026) if i.workday)
    assert f"2026年共有工作日 {total} 天" in text
    assert "注意" not in text
    assert all(width(line) <= 80 for line in text.splitlines())


def test_render_year_in_english_with_the_2027_warning() -> None:
    text = render_year(WorkdayCalendar({}), 2027, lang="en")
    assert "October 2027" in text and " 1H " in text
    assert "New Year's Day" in text
    assert "2027: chinese-calendar has no State Council arrangement" in text
    assert all(width(line) <= 80 for line in text.splitlines())
    en26 = render_year(WorkdayCalendar({}), 2026, lang="en")
    assert "10W" in _row_below(en26, "October 2026", 3)
    assert "National Day (7 days)" in en26
    assert "2027" in render_year(WorkdayCalendar({}), 2027, lang="zh")
    with pytest.raises(InvalidInput):
        render_year(WorkdayCalendar({}), 2026, lang="fr")


def test_render_year_wraps_a_long_note_within_80_columns() -> None:
    note = "因防汛抗旱指挥部紧急会议全员停止视频调度" * 10  # 200 characters
    for lang in ("zh", "en"):
        text = render_year(WorkdayCalendar({date(2026, 11, 2): (False, note)}), 2026, lang)
        assert all(width(line) <= 80 for line in text.splitlines())
        assert note[:10] in text


# --- due days ------------------------------------------------------------------------


def test_due_day_skips_the_national_day_holiday() -> None:
    cal = WorkdayCalendar({})
    oracle = date(2026, 10, 1)
    while not chinese_calendar.is_workday(oracle):
        oracle += timedelta(days=1)
    assert due_day(cal, 2026, 10, 1) == oracle == date(2026, 10, 8)
    assert due_day(cal, 2026, 10, 10) == date(2026, 10, 10)  # the working Saturday
    assert due_day(cal, 2026, 3, 10) == date(2026, 3, 10)
    assert due_day(cal, 2026, 2, 16) == date(2026, 2, 24)  # after the Spring Festival


def test_due_day_gives_up_after_60_days() -> None:
    start = date(2026, 3, 1)
    cal = WorkdayCalendar({start + timedelta(days=i): (False, "") for i in range(60)})
    with pytest.raises(InvalidInput):
        due_day(cal, 2026, 3, 1)
    with pytest.raises(InvalidInput):
        due_day(WorkdayCalendar({}), 2026, 2, 30)


# --- many lookups (how fast: the benches; a timed assertion here is machine load) ------


def test_ten_thousand_lookups_answer() -> None:
    days = [date(2026, 1, 1) + timedelta(days=i % 730) for i in range(10_000)]
    cal = WorkdayCalendar({})
    count = sum(cal.is_workday(d) for d in days)
    assert 0 < count < len(days)
