"""Retention of recordings: a nightly job (03:15 Asia/Shanghai) removes the files whose
recording ended more than DISPATCH_RECORDING_KEEP_DAYS ago.

Invariants:
- A file of a call that an unresolved issue was raised in (未化解 or 化解中) is evidence
  of that issue and is never removed; it becomes removable once the issue is resolved.
- Each removal is recorded before the file is deleted, in one transaction: the row gets
  `removed_at` and `removed_reason` (its sha256 stays), and the call's journal is told —
  by an amendment when the journal is sealed (a sealed journal is append-only: a later
  fact reaches it only as an amendment, chained to its hash), else by a `rec_removed`
  event, which the seal then covers. Recording first means a crash between the two
  leaves a recorded removal of a file still on disk (deleted by the next run, which
  sweeps the last week's removals), never a file gone without a trace.
- keep_days 0 keeps every file: the job is not installed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session, col, select

from dispatch import calls, recordings
from dispatch.clock import SHANGHAI, utcnow
from dispatch.db import Database, in_batches
from dispatch.recordings import Recording
from dispatch.settings import Settings, recording_limits
from schedules.jobs import JobContext, WeekScheduler

from . import seal
from .issues import UNRESOLVED, Issue
from .journal import JournalEntry

log = logging.getLogger(__name__)
JOB_ID = "recording-retention"
BY = "retention"
REASON = "kept {days} days (DISPATCH_RECORDING_KEEP_DAYS)"
SWEEP_DAYS = 7  # removals this recent are checked again for a file left on disk


def install(scheduler: WeekScheduler, settings: Settings) -> None:
    """Add the nightly removal unless DISPATCH_RECORDING_KEEP_DAYS is 0."""
    keep_days, _ = recording_limits(settings)
    if keep_days == 0:
        return
    trigger = CronTrigger(hour=3, minute=15, timezone=SHANGHAI)
    scheduler.add_job(functools.partial(nightly, settings), trigger, id=JOB_ID)


async def nightly(settings: Settings, context: JobContext) -> None:
    keep_days, _ = recording_limits(settings)
    removed = await purge(context.db, settings.data_path, keep_days, context.clock.now())
    log.info("recording retention: %d file(s) older than %d days removed", len(removed),
             keep_days)  # fmt: skip


def removable(session: Session, before: datetime) -> list[Recording]:
    """Kept files that ended before `before`, less those of calls with an unresolved
    issue raised in them, oldest first."""
    rows = recordings.expired(session, before)
    held: set[int | None] = set()
    for batch in in_batches(r.call_id for r in rows):
        stmt = select(col(Issue.raised_in_call)).where(
            col(Issue.raised_in_call).in_(batch), col(Issue.state).in_(UNRESOLVED)
        )
        held.update(session.exec(stmt))
    return [r for r in rows if r.call_id not in held]


def mark_removed(
    session: Session, recording_id: int, reason: str, now: datetime | None = None
) -> Recording:
    """Record one removal at `now` (see the invariants); a removed row is left as it is."""
    row = recordings.get(session, recording_id)
    if row.removed_at is not None:
        return row
    now = now or utcnow()
    row.removed_at, row.removed_reason = now, reason[:200]
    session.add(row)
    entry = session.get(JournalEntry, row.call_id)
    if entry is not None and entry.sealed:
        text = (f"录像 {row.path} 已按保存期限删除 / recording {row.path} removed "
                f"(sha256 {row.sha256}, {row.bytes} bytes)")  # fmt: skip
        seal.amend(session, row.call_id, BY, f"recording removed: {reason}", text, now=now)
    else:
        call = calls.get_call(session, row.call_id)
        calls.record(session, call, calls.RECORDING_REMOVED, row.centre_code, at=now,
                     recording=row.id, file=row.path, sha256=row.sha256,
                     reason=row.removed_reason)  # fmt: skip
    session.flush()
    return row


async def purge(
    db: Database, data_dir: Path, keep_days: int, now: datetime | None = None
) -> list[int]:
    """Remove the files expired at `now` (see the invariants); their recording ids."""
    if keep_days <= 0:
        return []
    now = now or utcnow()
    before = now - timedelta(days=keep_days)
    reason = REASON.format(days=keep_days)
    removed = []
    for row in await db.read(removable, before):
        done = await db.write(mark_removed, row.id or 0, reason, now)
        removed.append(done.id or 0)
        await asyncio.to_thread(_delete, recordings.file_of(data_dir, done))
    since = now - timedelta(days=SWEEP_DAYS)
    for row in await db.read(_removed_since, since):  # a crash between mark and delete
        await asyncio.to_thread(_delete, recordings.file_of(data_dir, row))
    return removed


def _removed_since(session: Session, since: datetime) -> list[Recording]:
    stmt = select(Recording).where(col(Recording.removed_at) >= since)
    return list(session.exec(stmt))


def _delete(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.error("recording retention: cannot delete %s: %s", path, exc)
