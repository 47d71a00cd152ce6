"""Schema migrations (issue 12 item 5): the initial revision is today's schema, triggers
included; a database filled before migrations existed is adopted with nothing lost; an
older schema is refused by `serve` and brought to head by `dispatch db upgrade`. On
SQLite always, on PostgreSQL when DISPATCH_TEST_PG_URL is set."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from dispatch import demo, migrations
from dispatch.clock import SHANGHAI
from dispatch.db import Database
from logs import first_run, seal
from web.cli import main
from web.schema import open_database

from conftest import PG_URL, wipe_pg

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=SHANGHAI)
SQLITE_TRIGGERS = {
    "journal_sealed_no_update", "journal_sealed_no_delete", "journal_amendment_no_update",
    "journal_amendment_no_delete", "attendance_sealed_no_update", "attendance_sealed_no_delete",
}  # fmt: skip
PG_TRIGGERS = {
    "journal_sealed_read_only", "journal_amendment_read_only", "attendance_sealed_read_only",
    "journal_no_truncate", "journal_amendment_no_truncate", "attendance_event_no_truncate",
}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="DISPATCH_TEST_PG_URL is not set"))])  # fmt: skip
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dispatch.db'}"
        return
    wipe_pg(PG_URL)
    yield PG_URL
    wipe_pg(PG_URL)


def schema_differences(engine: sa.Engine) -> list[object]:
    """What autogenerate would write for the database against the models: nothing, when
    the revisions and the models agree."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))


def triggers(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        return {row[0] for row in conn.execute(sa.text(sql))}


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in sorted(migrations.initial_columns())}  # fmt: skip


def create_as_before_migrations(db: Database) -> None:
    """What `create_all` made before migrations: the initial revision's tables only (the
    models of later revisions' tables did not exist yet)."""
    tables = [SQLModel.metadata.tables[t] for t in sorted(migrations.initial_columns())]
    SQLModel.metadata.create_all(db.engine, tables=tables)


def fill_as_before_migrations(url: str) -> None:
    """What `open_database` did before migrations (create_all + the sealing triggers),
    then the demo district and two weeks of history with sealed journals. Today's code
    fills it, reading later revisions' tables too (sign-off asks for unfinished
    recordings): those are made for the filling and dropped after, empty."""
    db = Database(url)
    db.create_schema()
    seal.install_triggers(db.engine)
    with db.session() as s:
        demo.load_demo(s, "district")
    with db.session() as s:
        first_run.load_history(s, weeks=2, now=NOW)
    initial = set(migrations.initial_columns())
    later = [t for name, t in SQLModel.metadata.tables.items() if name not in initial]
    SQLModel.metadata.drop_all(db.engine, tables=later)
    db.close()


def test_an_empty_database_is_created_at_head_equal_to_the_models(url: str) -> None:
    db = open_database(url)
    try:
        assert migrations.state(db.engine).at_head
        assert schema_differences(db.engine) == []
        expected = SQLITE_TRIGGERS if db.engine.dialect.name == "sqlite" else PG_TRIGGERS
        assert triggers(db.engine) == expected
    finally:
        db.close()


def test_the_initial_revision_is_what_create_all_made(url: str) -> None:
    """Column for column, type for type: the revision against a create_all database."""
    db = Database(url)
    db.create_schema()
    try:
        with db.engine.connect() as conn:
            made = {t: {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns(t)}
                    for t in migrations.initial_columns()}  # fmt: skip
        assert set(made) == set(migrations.initial_columns())
    finally:
        db.close()
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink()
    else:
        wipe_pg(url)
    db = open_database(url)
    try:
        with db.engine.connect() as conn:
            migrated = {t: {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns(t)}
                        for t in migrations.initial_columns()}  # fmt: skip
        assert migrated == made
    finally:
        db.close()


def test_a_database_filled_before_migrations_upgrades_with_nothing_lost(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_as_before_migrations(url)
    db = Database(url)
    before = counts(db.engine)
    db.close()
    assert before["journal"] > 10 and before["attendance_event"] > 100
    # Adopted on open (stamped as the initial revision), then refused as older than head.
    assert main(["--db", url, "journal", "verify"]) == 2
    assert f"at revision {migrations.INITIAL}" in capsys.readouterr().err

    assert main(["--db", url, "db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert f"upgraded from {migrations.INITIAL} to {migrations.head()}" in out
    db = Database(url)
    try:
        assert migrations.state(db.engine).at_head
        assert counts(db.engine) == before
        assert schema_differences(db.engine) == []
    finally:
        db.close()
    assert main(["--db", url, "journal", "verify"]) == 0
    assert "ok:" in capsys.readouterr().out


def test_db_upgrade_adopts_a_database_made_before_migrations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    create_as_before_migrations(db)  # no triggers, no version: what create_all alone made
    db.close()
    assert main(["--db", url, "db", "status"]) == 0
    assert "no version" in capsys.readouterr().out
    assert main(["--db", url, "db", "upgrade"]) == 0
    assert "upgraded from no version" in capsys.readouterr().out
    db = Database(url)
    try:
        assert migrations.state(db.engine).at_head
        assert triggers(db.engine) == SQLITE_TRIGGERS
    finally:
        db.close()


def test_tables_that_are_not_the_initial_schema_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    db = Database(url)
    db.create_schema()
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE journal_amendment"))
    db.close()
    assert main(["--db", url, "centres", "list"]) == 2
    err = capsys.readouterr().err
    assert "no schema version" in err and "journal_amendment is missing" in err


@pytest.fixture
def newer_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The revisions of a later version of the code: today's, plus one adding a column
    (numbered 9999, after whatever today's head is)."""
    today = migrations.head()
    scripts = tmp_path / "migrations"
    shutil.copytree(migrations.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_centre_note.py").write_text(
        '"""A later revision."""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "9999"\ndown_revision = "{today}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        '    with op.batch_alter_table("centre") as batch:\n'
        '        batch.add_column(sa.Column("note", sa.String(), nullable=True))\n\n\n'
        "def downgrade() -> None:\n"
        '    with op.batch_alter_table("centre") as batch:\n'
        '        batch.drop_column("note")\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(migrations, "SCRIPTS", scripts)
    return today, "9999"


def test_serve_refuses_an_older_schema_until_db_upgrade(
    demo_settings: object, newer_code: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = demo_settings.db_url  # type: ignore[attr-defined]
    today, later = newer_code
    db = Database(url)
    before = counts(db.engine)
    db.close()
    assert main(["--db", url, "serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f"at revision {today}" in err and f"needs {later}" in err
    assert "dispatch db upgrade" in err

    assert main(["--db", url, "db", "upgrade"]) == 0
    assert f"upgraded from {today} to {later}" in capsys.readouterr().out
    db = open_database(url)  # now at head: opens
    try:
        assert counts(db.engine) == before
        with db.engine.connect() as conn:
            assert "note" in {c["name"] for c in sa.inspect(conn).get_columns("centre")}
        assert triggers(db.engine) == SQLITE_TRIGGERS
    finally:
        db.close()


def test_two_processes_opening_one_empty_database_create_it_once(url: str) -> None:
    """The schema lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL): the
    second process waits, then finds the first one's schema instead of failing."""
    argv = [sys.executable, "-m", "web.cli", "--db", url, "centres", "list"]
    root = Path(__file__).resolve().parent.parent
    procs = [subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=100), p.stderr.read() if p.stderr else b"") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert [code for code, _ in results] == [0, 0], results
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [v[0] for v in versions] == [migrations.head()]
        assert schema_differences(db.engine) == []
    finally:
        db.close()
