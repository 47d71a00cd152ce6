"""The service's one clock and one time zone.

The database stores UTC; people live in Asia/Shanghai (no daylight saving, UTC+8): a
day, a week or a month is always Shanghai's. Every module takes the zone, "now" and
the local date from here, so a fact about time is stated once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware (the database stores UTC)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Stored times are UTC; a naive one (a driver that drops the zone) is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def local_date(moment: datetime) -> date:
    """The Shanghai calendar day of ``moment`` (naive: UTC)."""
    return as_utc(moment).astimezone(SHANGHAI).date()


def today(now: datetime | None = None) -> date:
    """Shanghai's date now, or at ``now``."""
    return local_date(now or utcnow())
