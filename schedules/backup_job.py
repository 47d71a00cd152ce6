"""The nightly backup: at 02:30 Asia/Shanghai, `dispatch.backup.create` into the backup
folder, then all but the newest DISPATCH_BACKUP_KEEP nightly backups are deleted.

Invariants: the backup runs on a worker thread (SQLite's backup and pg_dump block), so
the event loop and the calls go on; a failed backup is logged and deletes nothing, so
retention never leaves fewer good backups than there were.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from apscheduler.triggers.cron import CronTrigger

from dispatch import backup
from dispatch.clock import SHANGHAI, utcnow
from dispatch.errors import DispatchError, InvalidInput
from dispatch.settings import Settings

from .jobs import JobContext, WeekScheduler

log = logging.getLogger(__name__)
JOB_ID = "nightly-backup"


def install(scheduler: WeekScheduler, settings: Settings) -> None:
    """Add the nightly backup unless DISPATCH_BACKUP_KEEP is 0."""
    if settings.backup_keep < 0:
        raise InvalidInput("DISPATCH_BACKUP_KEEP", "expected 0 (no nightly backup) or more")
    if settings.backup_keep == 0:
        return
    trigger = CronTrigger(hour=2, minute=30, timezone=SHANGHAI)
    scheduler.add_job(functools.partial(nightly, settings), trigger, id=JOB_ID)


async def nightly(settings: Settings, _context: JobContext) -> None:
    folder = settings.backup_path
    target = folder / backup.nightly_name(utcnow())
    try:
        manifest = await asyncio.to_thread(
            backup.create, settings.db_url, settings.data_path, target
        )
    except (DispatchError, OSError) as exc:
        log.error("nightly backup to %s failed: %s", target, exc)
        return
    removed = await asyncio.to_thread(backup.prune, folder, settings.backup_keep)
    log.info("nightly backup %s written (%d files); %d older removed",
             target, manifest.files, len(removed))  # fmt: skip
