"""Schema migrations (Alembic): the revisions in `versions/` are the schema's history.

Invariants:
- Every revision is frozen text: it imports nothing of the service, so a model changed
  later cannot change what an old revision does. A model change needs a new revision
  (`tests/test_migrations.py` fails while `head` and the models differ).
- `ensure_current` is the only way the service opens a schema: an empty database is
  created at head; a database made by `create_all` before migrations existed (today's
  tables, no `alembic_version`) is that initial revision, so it is stamped `INITIAL`
  after its tables and columns are checked against it; any other older schema is refused
  with `SchemaOutdated`, which names `dispatch db upgrade`. Nothing is altered silently.
- Tables that are not ours (e.g. an old `apscheduler_jobs`) are ignored and never dropped.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from ..errors import DispatchError

SCRIPTS = Path(__file__).resolve().parent
INITIAL = "0001"
UPGRADE_COMMAND = "dispatch db upgrade"
_LOCK_KEY = 0x70696E67616E  # "pingan": the advisory lock of schema changes
# Alembic's `op` and `context` are module globals: one migration run at a time in a
# process (threads included). Taken before any database lock, never inside one.
_RUNNING = threading.RLock()


class SchemaOutdated(DispatchError):
    """The database holds an older schema than this code needs."""


class SchemaUnknown(DispatchError):
    """The database holds tables of ours but no schema version, and they are not the
    initial revision's: not something to stamp or migrate automatically."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the alembic version; None when the database has none
    head: str
    tables: frozenset[str]  # the initial revision's tables present in the database

    @property
    def empty(self) -> bool:
        return not self.tables

    @property
    def at_head(self) -> bool:
        return self.current == self.head and not self.empty


def config(connection: Connection, target_metadata: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    cfg.attributes["target_metadata"] = target_metadata
    cfg.attributes["tables"] = set(initial_columns())
    return cfg


def head() -> str:
    return _head(str(SCRIPTS))


@functools.cache
def _head(scripts: str) -> str:
    # Cached: reading the revisions compiles every one of them (one process, one head).
    found = ScriptDirectory(scripts).get_current_head()
    assert found is not None, f"{scripts}/versions holds no revision"
    return found


def initial_columns() -> dict[str, frozenset[str]]:
    """Table → column names of the initial revision, read from the revision itself run
    on an in-memory SQLite database (so the check cannot drift from the revision)."""
    with _RUNNING:
        return _initial_columns()


@functools.cache
def _initial_columns() -> dict[str, frozenset[str]]:
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(SCRIPTS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, INITIAL)
            return _columns(conn, exclude={"alembic_version"})
    finally:
        engine.dispose()


def _columns(conn: Connection, exclude: set[str]) -> dict[str, frozenset[str]]:
    inspector = sa.inspect(conn)
    return {
        t: frozenset(c["name"] for c in inspector.get_columns(t))
        for t in inspector.get_table_names()
        if t not in exclude
    }


def state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return _state(conn)


def _state(conn: Connection) -> SchemaState:
    present = set(sa.inspect(conn).get_table_names()) & set(initial_columns())
    current = MigrationContext.configure(conn).get_current_revision()
    return SchemaState(current, head(), frozenset(present))


@contextmanager
def _locked(engine: Engine, *, foreign_keys_off: bool = False) -> Iterator[Connection]:
    """One real transaction holding the database's write lock, DDL included; committed
    when the block returns. Two processes opening one database thus create or upgrade it
    once: the second waits, then sees the first one's schema.

    pysqlite never begins a transaction before DDL (each CREATE would commit, and fsync,
    on its own, and a failure would leave half a schema), so on SQLite the connection is
    put in autocommit mode and BEGIN IMMEDIATE is sent by hand; PostgreSQL has
    transactional DDL and takes an advisory lock."""
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
                yield conn
            return
        raw = cast(sqlite3.Connection, conn.connection.dbapi_connection)  # the sqlite3 driver's
        legacy = raw.isolation_level
        raw.isolation_level = None
        try:
            if foreign_keys_off:
                # A batch migration copies a table and drops the old one; with foreign
                # keys on, that drop would cascade or fail. SQLite honours the pragma
                # only outside a transaction; the keys are checked before the commit.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
                if foreign_keys_off and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise SchemaUnknown("the upgrade broke a foreign key; nothing was changed")
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
            raw.isolation_level = legacy


def ensure_current(engine: Engine) -> SchemaState:
    """Create an empty database at head, adopt a pre-migration one, refuse an old one."""
    with engine.connect() as conn:
        found = _state(conn)  # the common case, at head, takes no lock
    if found.empty or found.current is None:
        with _RUNNING, _locked(engine) as conn:
            found = _state(conn)
            if found.empty or found.current is None:
                _to_head_or_adopt(conn, found)
                found = _state(conn)
    if not found.at_head:
        raise SchemaOutdated(
            f"the database schema is at revision {found.current}, this version of the "
            f"service needs {found.head}: back it up (dispatch backup FILE), then run "
            f"`{UPGRADE_COMMAND}`"
        )
    return found


def _to_head_or_adopt(conn: Connection, found: SchemaState) -> None:
    if found.empty:
        # No table of ours: a version row left behind (tables dropped) means nothing.
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        command.upgrade(config(conn), "head")
    else:
        _adopt(conn)


def _adopt(conn: Connection) -> None:
    """Stamp a database made by `create_all` before migrations as the initial revision,
    after checking it is exactly that schema; its sealing triggers are (re)installed
    (idempotent), since `create_all` alone never made them."""
    want = initial_columns()
    have = _columns(conn, exclude={"alembic_version"})
    problems = [f"table {t} is missing" for t in sorted(set(want) - set(have))]
    for table in sorted(set(want) & set(have)):
        if want[table] != have[table]:
            missing, extra = sorted(want[table] - have[table]), sorted(have[table] - want[table])
            what = ", ".join([*(f"no column {c}" for c in missing),
                              *(f"unknown column {c}" for c in extra)])  # fmt: skip
            problems.append(f"table {table}: {what}")
    if problems:
        raise SchemaUnknown(
            "the database has tables but no schema version, and they are not the initial "
            f"schema ({'; '.join(problems[:5])}); restore a backup or start a new database"
        )
    initial = ScriptDirectory(str(SCRIPTS)).get_revision(INITIAL)
    assert initial is not None
    initial.module.install_triggers(conn)
    command.stamp(config(conn), INITIAL)


def upgrade(engine: Engine) -> tuple[SchemaState, str]:
    """`dispatch db upgrade`: adopt a pre-migration database, then run every revision
    after its version, all in one transaction. Returns the state before and the
    version after."""
    with _RUNNING, _locked(engine, foreign_keys_off=True) as conn:
        before = _state(conn)
        if before.empty or before.current is None:
            _to_head_or_adopt(conn, before)
        command.upgrade(config(conn), "head")
        after = _state(conn)
    return before, after.current or ""
