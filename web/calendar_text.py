"""The working-day year as `dispatch calendar show --year` prints it on a terminal:
month grids two abreast, the special days, any warning and the count of working days.

Invariant: every line fits in 80 columns (wide characters counted twice), however long
an administrator's note is.
"""

from __future__ import annotations

import calendar as stdcal
import re
from collections.abc import Mapping
from datetime import date, timedelta

from dispatch.errors import InvalidInput
from schedules.workdays import (
    ADJUSTED_WORKDAY,
    HOLIDAY,
    OVERRIDE_DAY_OFF,
    OVERRIDE_WORKDAY,
    WEEKEND,
    WORKDAY,
    DayInfo,
    WorkdayCalendar,
)

from .columns import pad, width

MARKS = {
    "zh": {HOLIDAY: "休", ADJUSTED_WORKDAY: "班", OVERRIDE_WORKDAY: "*", OVERRIDE_DAY_OFF: "*"},
    "en": {HOLIDAY: "H", ADJUSTED_WORKDAY: "W", OVERRIDE_WORKDAY: "*", OVERRIDE_DAY_OFF: "*"},
}
WEEKDAYS = {
    "zh": ["一", "二", "三", "四", "五", "六", "日"],
    "en": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"],
}
CELL = 4  # display columns: two for the day number, two for the mark
GRID = 7 * CELL + 6  # seven cells, single spaces between
GUTTER = 6
LINE = 78  # under an 80-column terminal


def _wrap(text: str, indent: str, first: str | None = None) -> list[str]:
    """Wrap to LINE display columns, breaking at a space where there is one. The first
    line starts with `first` (default `indent`), the others with `indent`; every line
    holds at least one piece of the text, so wrapping always ends."""
    lines: list[str] = []
    current, placed = (indent if first is None else first), False
    for word in re.split(r"(?<= )", text):
        for piece in [word] if width(word) <= LINE - width(indent) else list(word):
            if placed and width(current) + width(piece.rstrip()) > LINE:
                lines.append(current.rstrip())
                current, placed = indent, False
            current += piece
            placed = True
    if placed:
        lines.append(current.rstrip())
    return lines


def _month_title(year: int, month: int, lang: str) -> str:
    if lang == "zh":
        return f"{year}年{month}月"
    return f"{stdcal.month_name[month]} {year}"


def _month_grid(days: Mapping[date, DayInfo], year: int, month: int, lang: str) -> list[str]:
    title = _month_title(year, month, lang)
    lines = [" " * ((GRID - width(title)) // 2) + title]
    lines.append(" ".join(pad(w, CELL) for w in WEEKDAYS[lang]).rstrip())
    for week in stdcal.Calendar(firstweekday=0).monthdatescalendar(year, month):
        cells = []
        for day in week:
            if day.month != month:
                cells.append(" " * CELL)
                continue
            mark = MARKS[lang].get(days[day].kind, "")
            cells.append(pad(f"{day.day:>2}{mark}", CELL))
        lines.append(" ".join(cells).rstrip())
    return lines


def _short_date(day: date, lang: str) -> str:
    if lang == "zh":
        return f"{day.month}月{day.day}日"
    return f"{stdcal.month_abbr[day.month]} {day.day}"


def _weekday(day: date, lang: str) -> str:
    if lang == "zh":
        return "周" + WEEKDAYS["zh"][day.weekday()]
    return stdcal.day_abbr[day.weekday()]


def _runs(infos: list[DayInfo]) -> list[list[DayInfo]]:
    """Consecutive special days of the same kind and name, in date order."""
    runs: list[list[DayInfo]] = []
    for info in infos:
        if info.kind in (WORKDAY, WEEKEND):
            continue
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.day + timedelta(days=1) == info.day
            and (last.kind, last.name) == (info.kind, info.name)
        ):
            runs[-1].append(info)
        else:
            runs.append([info])
    return runs


def _run_lines(run: list[DayInfo], lang: str) -> list[str]:
    first, last = run[0], run[-1]
    if len(run) == 1:
        when = f"{_short_date(first.day, lang)} ({_weekday(first.day, lang)})"
        if lang == "zh":
            when = f"{_short_date(first.day, lang)}（{_weekday(first.day, lang)}）"
    else:
        when = f"{_short_date(first.day, lang)} – {_short_date(last.day, lang)}"
    mark = MARKS[lang][first.kind]
    n = len(run)
    if lang == "zh":
        name = first.name or "调休"
        what = {
            HOLIDAY: f"{name}（{n}天）" if n > 1 else name,
            ADJUSTED_WORKDAY: f"{first.name}调休上班" if first.name else "调休上班",
            OVERRIDE_WORKDAY: f"调整为工作日：{first.name}" if first.name else "调整为工作日",
            OVERRIDE_DAY_OFF: f"调整为休息日：{first.name}" if first.name else "调整为休息日",
        }[first.kind]
    else:
        name = first.name_en or "day off"
        what = {
            HOLIDAY: f"{name} ({n} days)" if n > 1 else name,
            ADJUSTED_WORKDAY: (
                f"working day ({first.name_en})" if first.name_en else "adjusted working day"
            ),
            OVERRIDE_WORKDAY: (
                f"working day by override: {first.name_en}"
                if first.name_en
                else "working day by override"
            ),
            OVERRIDE_DAY_OFF: (
                f"day off by override: {first.name_en}" if first.name_en else "day off by override"
            ),
        }[first.kind]
    # A long override note wraps under its own column.
    return _wrap(what, " " * 25, first=f"  {pad(when, 20)}{pad(mark, 3)}")


def render_year(cal: WorkdayCalendar, year: int, lang: str = "zh") -> str:
    """The year as `dispatch calendar show --year` prints it: month grids two abreast,
    the special days, any warning and the count of working days. Every line fits in
    80 columns (wide characters counted twice)."""
    if lang not in ("zh", "en"):
        raise InvalidInput("lang", f"use zh or en, got {lang!r}")
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2199:
        raise InvalidInput("year", f"a year from 1900 to 2199, got {year!r}")
    infos = cal.year_days(year)
    days = {i.day: i for i in infos}
    out: list[str] = []
    if lang == "zh":
        out += [f"{year}年工作日历", "休 = 节假日休息  班 = 调休上班  * = 管理员调整", ""]
    else:
        out += [
            f"Working-day calendar {year}",
            "H = holiday, day off  W = adjusted working weekend day  * = override",
            "",
        ]
    for left in range(1, 13, 2):
        a = _month_grid(days, year, left, lang)
        b = _month_grid(days, year, left + 1, lang)
        rows = max(len(a), len(b))
        a += [""] * (rows - len(a))
        b += [""] * (rows - len(b))
        out += [(pad(x, GRID + GUTTER) + y).rstrip() for x, y in zip(a, b, strict=True)]
        out.append("")
    out.append("节假日与调休：" if lang == "zh" else "Holidays and adjusted working days:")
    runs = _runs(infos)
    for run in runs:
        out += _run_lines(run, lang)
    if not runs:
        out.append("  —")
    warnings = cal.warnings([date(year, 1, 1)], lang=lang)
    if warnings:
        out += ["", "注意：" if lang == "zh" else "Warning:"]
        for text in warnings:
            out += _wrap(text, "  ")
    total = sum(1 for i in infos if i.workday)
    out += ["", f"{year}年共有工作日 {total} 天" if lang == "zh" else f"Working days: {total}"]
    return "\n".join(out) + "\n"
