"""Backup and restore (issue 12 item 6): `dispatch backup` while the server serves and
writes, `dispatch restore` into an empty database (or over one with --force), `journal
verify` on the restored copy, bad archives refused with exit code 2, and the nightly
job with retention run by the app's real APScheduler. SQLite always; PostgreSQL when
DISPATCH_TEST_PG_URL is set."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from sqlmodel import Session, select

from dispatch import accounts, backup, demo
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from dispatch.events import EventBus
from dispatch.settings import Settings
from logs import first_run
from schedules import backup_job, jobs
from web.app import create_app
from web.appkeys import DB, SCHEDULER
from web.cli import main
from web.schema import open_database

from conftest import PG_URL, wipe_pg

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=SHANGHAI)
KEPT_TABLES = ("centre", "account", "call", "attendance_event", "journal", "journal_amendment")


def with_history(url: str) -> None:
    db = open_database(url)
    with db.session() as s:
        if not s.exec(select(accounts.Account)).first():
            demo.load_demo(s, "district")
    with db.session() as s:
        first_run.load_history(s, weeks=2, now=NOW)
    db.close()


def media(data: Path) -> None:
    (data / "snapshots" / "7").mkdir(parents=True)
    (data / "snapshots" / "7" / "12.jpg").write_bytes(b"\xff\xd8jpeg")
    (data / "recordings").mkdir()
    (data / "recordings" / "7.webm").write_bytes(b"webm")


def counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                    for t in KEPT_TABLES}  # fmt: skip
    finally:
        db.close()


def issue_token(s: Session) -> None:
    account = s.exec(select(accounts.Account)).first()
    assert account is not None
    accounts.issue_token(s, account, 3600, "during backup")


async def test_backup_while_serving_restores_with_journals_verified(
    aiohttp_client, demo_settings: Settings, tmp_path: Path,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    with_history(demo_settings.db_url)
    media(demo_settings.data_path)
    client = await aiohttp_client(create_app(demo_settings))
    assert backup_job.JOB_ID in client.app[SCHEDULER].job_ids()  # registered with the app
    archive = tmp_path / "backup.tar.gz"
    argv = ["--db", demo_settings.db_url, "--data-dir", demo_settings.data_dir, "backup",
            str(archive)]  # fmt: skip

    task = asyncio.ensure_future(asyncio.to_thread(main, argv))
    writes = 0
    while not task.done():  # the server's writer commits while the backup reads
        await client.app[DB].write(issue_token)
        writes += 1
    assert await task == 0 and writes > 0
    assert "backup written" in capsys.readouterr().out
    assert (await client.get("/healthz")).status == 200  # still serving
    before = counts(demo_settings.db_url)

    target = f"sqlite:///{tmp_path / 'restored' / 'dispatch.db'}"
    data = tmp_path / "restored-data"
    assert await asyncio.to_thread(main, ["--db", target, "--data-dir", str(data),
                                          "restore", str(archive)]) == 0  # fmt: skip
    assert "restored the sqlite database" in capsys.readouterr().out
    restored = counts(target)
    assert restored == before
    assert restored["journal"] > 0
    assert await asyncio.to_thread(main, ["--db", target, "journal", "verify"]) == 0
    assert "ok:" in capsys.readouterr().out
    assert (data / "snapshots" / "7" / "12.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert (data / "recordings" / "7.webm").read_bytes() == b"webm"
    assert not (data / "secret.key").exists()


def test_restore_refuses_a_database_with_tables_unless_forced(
    demo_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "b.tar.gz"
    assert main(["--db", demo_settings.db_url, "backup", str(archive)]) == 0
    assert main(["--db", demo_settings.db_url, "backup", str(archive)]) == 2  # exists
    other = f"sqlite:///{tmp_path / 'other.db'}"
    open_database(other).close()  # an empty schema still has tables
    assert main(["--db", other, "restore", str(archive)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["--db", other, "restore", str(archive), "--force"]) == 0
    assert counts(other) == counts(demo_settings.db_url)


def tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def manifest(**changes: object) -> bytes:
    body = {"format": backup.FORMAT, "version": backup.VERSION, "created_at": "2026-12-07",
            "backend": "sqlite", "database": "database.sqlite", "schema_revision": "0001",
            "files": 0, **changes}  # fmt: skip
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("members", "says"),
    [
        (None, "not a backup archive"),
        ({"x.txt": b"x"}, "not a Pingan Dispatch backup"),
        ({"MANIFEST.json": manifest(version=9), "database.sqlite": b""}, "format version 9"),
        ({"MANIFEST.json": manifest()}, "holds no database.sqlite"),
        ({"MANIFEST.json": manifest(), "database.sqlite": b"", "../evil": b"x"}, "unexpected"),
        (
            {"MANIFEST.json": manifest(), "database.sqlite": b"", "data/snapshots/../../x": b"x"},
            "unexpected",
        ),
        ({"MANIFEST.json": manifest(), "database.sqlite": b"not sqlite"}, "damaged"),
        (
            {
                "MANIFEST.json": manifest(backend="postgresql", database="database.pgdump"),
                "database.pgdump": b"",
            },
            "holds a postgresql database",
        ),
    ],
)
def test_restore_refuses_bad_archives_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], members: dict[str, bytes] | None,
    says: str,
) -> None:  # fmt: skip
    path = tmp_path / "in.tar.gz"
    if members is None:
        path.write_bytes(b"plain text, not a tar")
    else:
        tar_with(path, members)
    target = tmp_path / "t.db"
    assert main(["--db", f"sqlite:///{target}", "restore", str(path)]) == 2
    assert says in capsys.readouterr().err
    assert not target.exists() or target.stat().st_size == 0  # nothing restored


def test_restore_into_the_wrong_kind_of_database_is_refused(
    demo_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "b.tar.gz"
    assert main(["--db", demo_settings.db_url, "backup", str(archive)]) == 0
    url = "postgresql://nobody@127.0.0.1:1/nothing"  # never reached: refused first
    assert main(["--db", url, "restore", str(archive)]) == 2
    assert "holds a sqlite database" in capsys.readouterr().err
    assert main(["--db", demo_settings.db_url, "restore", str(tmp_path / "none.tgz")]) == 2


async def test_nightly_backup_job_keeps_the_newest(demo_settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    for name in ("dispatch-20200101T000000Z.tar.gz", "dispatch-20200102T000000Z.tar.gz",
                 "notes.txt"):  # fmt: skip
        (folder / name).write_text("old")
    settings = demo_settings.with_(backup_dir=str(folder), backup_keep=2)
    db = open_database(settings.db_url)
    scheduler = jobs.WeekScheduler(db, EventBus(), name="backup-test")
    await scheduler.start()
    try:
        backup_job.install(scheduler, settings)
        job = scheduler.scheduler.get_job(backup_job.JOB_ID)
        first = job.next_run_time.astimezone(SHANGHAI)
        assert (first.hour, first.minute) == (2, 30)
        ran = asyncio.Event()
        scheduler.scheduler.add_listener(
            lambda event: ran.set() if event.job_id == backup_job.JOB_ID else None,
            EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
        )
        job.modify(next_run_time=datetime.now(SHANGHAI))  # the real scheduler runs it now
        await ran.wait()
    finally:
        scheduler.shutdown()
        db.close()
    names = sorted(p.name for p in folder.iterdir())
    assert names[0] == "dispatch-20200102T000000Z.tar.gz" and "notes.txt" in names
    new = folder / names[1]  # the one just written
    assert main(["--db", f"sqlite:///{tmp_path / 'n.db'}", "restore", str(new)]) == 0


def test_no_nightly_backup_when_keep_is_0(demo_settings: Settings) -> None:
    db = open_database(demo_settings.db_url)
    try:
        scheduler = jobs.WeekScheduler(db, EventBus(), name="no-backup")
        backup_job.install(scheduler, demo_settings.with_(backup_keep=0))
        assert backup_job.JOB_ID not in scheduler.job_ids()
    finally:
        db.close()


@pytest.mark.skipif(not PG_URL, reason="DISPATCH_TEST_PG_URL is not set")
def test_postgresql_backup_and_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wipe_pg(PG_URL)
    try:
        with_history(PG_URL)
        before = counts(PG_URL)
        archive = tmp_path / "pg.tar.gz"
        assert main(["--db", PG_URL, "--data-dir", str(tmp_path), "backup", str(archive)]) == 0
        assert main(["--db", PG_URL, "restore", str(archive)]) == 2  # it has tables
        assert "not empty" in capsys.readouterr().err
        assert main(["--db", PG_URL, "restore", str(archive), "--force"]) == 0
        assert counts(PG_URL) == before
        wipe_pg(PG_URL)
        assert main(["--db", PG_URL, "restore", str(archive)]) == 0
        assert counts(PG_URL) == before
        assert main(["--db", PG_URL, "journal", "verify"]) == 0
        assert "ok:" in capsys.readouterr().out
    finally:
        wipe_pg(PG_URL)
