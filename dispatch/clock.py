"""The service's one clock and one time zone.

The database stores UTC; people live in Asia/Shanghai (no daylight saving, UTC+8): a
day, a week or a month is always Shanghai's. Every module takes the zone, "now" and
the local date from here, so a fact about time is stated once.

What reads the time where it decides or records something — the scheduler's jobs and
reminders, the reports due and their bulletins' dates, the rota's "this week", the calls'
times and attendance events (the switchboard's clock), issues raised, acted on and
overdue, journals signed — is handed a `Clock` (the web application holds one,
`create_app(settings, clock=…)`), so a test sets the time (`SetClock`) instead of
waiting for it or skipping at the wrong hour. `SYSTEM` is the real one; the module's
`utcnow()` and `today()` read it: the command line's clock, and the default of a domain
function called without `now`. The real time stays where no business day is decided:
the expiry of sessions and join tokens, backups' file names, a record's `updated_at`
stamp of an edit, media timing.

Invariant: a clock's `now()` is timezone-aware UTC, and its `offset` is how far it runs
ahead of the real time — constant while nobody sets it, so something due at a clock's
moment `t` is due in real time at `t - offset` (the scheduler's timers run on real time).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def as_utc(moment: datetime) -> datetime:
    """Stored times are UTC; a naive one (a driver that drops the zone) is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def local_date(moment: datetime) -> date:
    """The Shanghai calendar day of ``moment`` (naive: UTC)."""
    return as_utc(moment).astimezone(SHANGHAI).date()


class Clock:
    """The real time. Subclasses change where `now` comes from; the rest follows."""

    @property
    def offset(self) -> timedelta:
        """How far this clock runs ahead of the real time."""
        return timedelta(0)

    def now(self) -> datetime:
        """Now, in UTC, timezone-aware."""
        return datetime.now(UTC)

    def local(self) -> datetime:
        """Now in Shanghai, timezone-aware."""
        return self.now().astimezone(SHANGHAI)

    def today(self) -> date:
        """Shanghai's date now."""
        return local_date(self.now())


class SetClock(Clock):
    """A clock set to a moment that runs on from there at the real pace: a test sets
    Sunday 23:30 and the scheduler's timers still fire a second after they are due.
    `set` and `advance` move it."""

    def __init__(self, at: datetime) -> None:
        self._offset = timedelta(0)
        self.set(at)

    @property
    def offset(self) -> timedelta:
        return self._offset

    def set(self, at: datetime) -> None:
        """From now on the clock reads `at` (naive: UTC), running on from it."""
        self._offset = as_utc(at) - datetime.now(UTC)

    def advance(self, by: timedelta) -> None:
        self._offset += by

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


SYSTEM: Final = Clock()


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware (the database stores UTC), by the real clock."""
    return SYSTEM.now()


def today(now: datetime | None = None) -> date:
    """Shanghai's date at ``now``, or now by the real clock."""
    return local_date(now or SYSTEM.now())
