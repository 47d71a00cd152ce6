"""One clock, one zone (issue 14 item 4): dispatch/clock.py states the zone once, and
the local day of a moment is Shanghai's."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dispatch import clock

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("media", "dispatch", "schedules", "logs", "web")


def test_the_zone_is_defined_in_one_place() -> None:
    made = re.compile(r"ZoneInfo\(\s*[\"']Asia/Shanghai[\"']\s*\)")
    places = [path.relative_to(ROOT).as_posix() for package in PACKAGES
              for path in (ROOT / package).rglob("*.py")
              if made.search(path.read_text(encoding="utf-8"))]  # fmt: skip
    assert places == ["dispatch/clock.py"]


def test_the_local_day_turns_at_shanghai_midnight() -> None:
    assert clock.local_date(datetime(2026, 12, 6, 15, 59, tzinfo=UTC)) == date(2026, 12, 6)
    assert clock.local_date(datetime(2026, 12, 6, 16, 0, tzinfo=UTC)) == date(2026, 12, 7)
    assert clock.local_date(datetime(2026, 12, 6, 16, 0)) == date(2026, 12, 7)  # naive: UTC
    assert clock.today(datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == date(2027, 1, 1)
    assert clock.as_utc(datetime(2026, 1, 1, 8, 0, tzinfo=clock.SHANGHAI)) == datetime(
        2026, 1, 1, 0, 0, tzinfo=UTC)  # fmt: skip


def test_a_set_clock_reads_its_moment_and_runs_on_at_the_real_pace() -> None:
    sunday_night = datetime(2026, 12, 13, 23, 30, tzinfo=clock.SHANGHAI)
    fixed = clock.SetClock(sunday_night)
    assert timedelta(0) <= fixed.now() - sunday_night < timedelta(minutes=1)
    assert fixed.today() == date(2026, 12, 13) and fixed.local().utcoffset() == timedelta(hours=8)
    fixed.advance(timedelta(hours=1))
    assert fixed.today() == date(2026, 12, 14)  # Monday in Shanghai
    # What is due at the clock's moment t is due in real time at t - offset.
    assert abs(fixed.now() - fixed.offset - datetime.now(UTC)) < timedelta(minutes=1)
    fixed.set(datetime(2027, 1, 1, 0, 0))  # naive: UTC
    assert fixed.today() == date(2027, 1, 1) and fixed.local().hour == 8
    assert clock.SYSTEM.offset == timedelta(0)
