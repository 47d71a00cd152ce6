"""Retention of recordings (issue 13): the nightly job, run by a real APScheduler, removes
the expired files and only those — never one of a call an unresolved issue was raised
in — and records each removal: an amendment of a sealed journal, an event otherwise."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlmodel import Session, select

from dispatch import accounts, calls, recordings
from dispatch.centres import utcnow
from dispatch.events import EventBus
from dispatch.recordings import Recording
from dispatch.settings import Settings
from logs import issues, recording_retention, seal
from logs.journal import JournalAmendment
from schedules.jobs import WeekScheduler
from schedules.plans import SHANGHAI
from web.cli import main
from web.schema import open_database

from conftest import Cast


def scope_of(s: Session, username: str) -> accounts.Scope:
    account = s.exec(select(accounts.Account).where(accounts.Account.username == username)).one()
    return accounts.scope_for(s, account)


def recorded_call(
    s: Session, data: Path, scope: accounts.Scope, callee: str, ended_days_ago: float
) -> Recording:
    """An ended call of `scope`'s centre with `callee`, and one finished file of it."""
    launched = calls.launch(
        s,
        scope,
        [callee],
        kind="inspection",
        slot_id=None,
        answer_deadline_seconds=60,
        min_verified_seconds=0,
    )
    call_id = launched.call.id or 0
    calls.end(s, call_id, "test")
    path = f"{call_id}/{callee}-1.webm"
    file = data / "recordings" / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40)
    ended = utcnow() - timedelta(days=ended_days_ago)
    recordings.finished(
        s,
        call_id,
        callee,
        path,
        "audio+video",
        started_at=ended,
        ended_at=ended,
        size=file.stat().st_size,
        seconds=4.0,
        sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
        reason="left",
    )
    return recordings.of_call(s, call_id)[0]


async def test_the_nightly_job_removes_only_expired_files_and_records_each_removal(
    demo_settings: Settings, cast: Cast
) -> None:
    settings = demo_settings.with_(recording_keep_days=30)
    data = settings.data_path
    db = open_database(settings.db_url)
    try:
        with db.session() as s:
            town = scope_of(s, cast.town_a)
            old = recorded_call(s, data, town, cast.village_a1, 40)
            evidence = recorded_call(s, data, town, cast.village_a2, 40)
            recent = recorded_call(s, data, town, cast.village_a1, 10)
            sealed = recorded_call(s, data, town, cast.village_a2, 50)
            settled = recorded_call(s, data, town, cast.village_a1, 60)
            for row, resolve in ((evidence, False), (settled, True)):
                raised = issues.raise_issue(
                    s,
                    town,
                    centre=cast.village_a2 if row is evidence else cast.village_a1,
                    category="dispute",
                    severity="general",
                    parties="",
                    deadline=None,
                    description="a boundary dispute seen in the call",
                    call_id=row.call_id,
                )
                if resolve:
                    issues.resolve(s, town, raised.issue.id or 0, "mediated")
            seal.sign_off(s, sealed.call_id, cast.town_a)

        # A real scheduler runs the installed job, now instead of at 03:15.
        week = WeekScheduler(db, EventBus(), name="retention-test")
        ran: asyncio.Future[JobExecutionEvent] = asyncio.get_running_loop().create_future()
        week.scheduler.add_listener(
            lambda e: ran.done() or ran.set_result(e), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        week.scheduler.start()
        try:
            recording_retention.install(week, settings)
            job = week.scheduler.get_job(recording_retention.JOB_ID)
            assert job is not None and "hour='3', minute='15'" in str(job.trigger)
            job.modify(next_run_time=datetime.now(SHANGHAI))
            finished = await asyncio.wait_for(ran, 30)
            assert finished.exception is None, finished.traceback
        finally:
            week.shutdown()

        with db.session() as s:
            after = {r.id: r for r in s.exec(select(Recording))}
            removed = {i for i, r in after.items() if r.removed_at is not None}
            assert removed == {old.id, sealed.id, settled.id}
            for row in after.values():
                assert recordings.file_of(data, row).exists() == (row.id not in removed)
                assert row.sha256  # the hash stays as evidence of what the file was
            assert "DISPATCH_RECORDING_KEEP_DAYS" in after[old.id or 0].removed_reason
            # Unsealed journals: a rec_removed event; the sealed one: an amendment.
            kinds = {
                r.call_id: [e.kind for e in calls.events(s, r.call_id)] for r in after.values()
            }
            assert calls.RECORDING_REMOVED in kinds[old.call_id]
            assert calls.RECORDING_REMOVED in kinds[settled.call_id]
            assert calls.RECORDING_REMOVED not in kinds[sealed.call_id]
            amendment = s.exec(
                select(JournalAmendment).where(JournalAmendment.call_id == sealed.call_id)
            ).one()
            assert sealed.sha256 in amendment.text and amendment.author == "retention"
        assert main(["--db", settings.db_url, "journal", "verify"]) == 0

        # Once the issue is resolved, its call's file goes on the next run.
        with db.session() as s:
            town = scope_of(s, cast.town_a)
            issue = s.exec(
                select(issues.Issue).where(issues.Issue.raised_in_call == evidence.call_id)
            ).one()
            issues.resolve(s, town, issue.id or 0, "mediated")
        gone = await recording_retention.purge(db, data, 30)
        assert gone == [evidence.id]
        assert await recording_retention.purge(db, data, 30) == []  # nothing twice
        assert await recording_retention.purge(db, data, 0) == []  # 0 keeps everything
        assert recordings.file_of(data, recent).exists()
    finally:
        db.close()


def test_keep_days_0_installs_no_job(demo_settings: Settings) -> None:
    db = open_database(demo_settings.db_url)
    try:
        week = WeekScheduler(db, EventBus(), name="retention-none")
        recording_retention.install(week, demo_settings.with_(recording_keep_days=0))
        assert recording_retention.JOB_ID not in week.job_ids()
    finally:
        db.close()
