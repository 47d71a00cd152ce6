"""One scheduler among many processes: a PostgreSQL advisory lock elects the leader.

Every `dispatch serve` with DISPATCH_SCHEDULER on runs a `Leadership`. On PostgreSQL it
holds a connection of its own and tries `pg_try_advisory_lock(LOCK_KEY)` on it every
`retry` seconds; the process that gets the lock runs the scheduled jobs, the others stand
by. The lock belongs to that connection's session: when the leader process dies its
connection closes (on a dead machine, TCP keepalives end it within a minute) and
PostgreSQL releases the lock, so a standby takes it at its next try. The leader checks
its connection at the same pace and stops its jobs when the connection is gone (the
lock went with it) before it tries again.

SQLite has one server by definition (one file, one machine, one writer): the
leadership is granted at once and never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from dispatch.db import make_engine

LOCK_KEY = 0x70696E67616F  # "pingao": the scheduler's lock (schema changes use ...616E)
# libpq: a dead peer's connection (the leader's machine gone) ends within about a minute.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 20, "keepalives_interval": 5,
              "keepalives_count": 4}  # fmt: skip

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class Leadership:
    """Elects this process to run the scheduled jobs, or keeps it on standby."""

    def __init__(self, db_url: str, retry: float = 5.0) -> None:
        self.retry = retry
        self.leader = False
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        engine = make_engine(db_url)
        if engine.dialect.name == "postgresql":
            self._engine = sa.create_engine(engine.url, poolclass=NullPool,
                                            connect_args=KEEPALIVES)  # fmt: skip
        engine.dispose()

    @property
    def shared(self) -> bool:
        """Whether other processes may share the database (PostgreSQL)."""
        return self._engine is not None

    async def step(self, elected: Hook, lost: Hook) -> None:
        """Once: on standby, try for the lock and call `elected` on getting it (if that
        fails on PostgreSQL the lock is given back, to be tried again; on SQLite the
        error is raised); as leader, check the lock's
        connection and call `lost` when it is gone."""
        if not self.leader:
            if await asyncio.to_thread(self._try_lock):
                self.leader = True
                log.info("this process runs the scheduled jobs")
                try:
                    await elected()
                except Exception:
                    await self._step_down(lost)
                    if not self.shared:
                        raise  # a lone server does not serve without its jobs
                    log.exception("the scheduler did not start; the lock is given back")
        elif not await asyncio.to_thread(self._still_held):
            log.warning("lost the scheduler's lock (its database connection is gone)")
            await self._step_down(lost)

    async def watch(self, elected: Hook, lost: Hook) -> None:
        """`step` every `retry` seconds until cancelled (PostgreSQL only)."""
        while self.shared:
            await asyncio.sleep(self.retry)
            await self.step(elected, lost)

    async def _step_down(self, lost: Hook) -> None:
        self.leader = False
        try:
            await lost()
        finally:
            await asyncio.to_thread(self._release)

    def _try_lock(self) -> bool:
        if self._engine is None:
            return True
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.OperationalError as exc:
            log.warning("cannot reach the database to elect the scheduler: %s", exc.orig)
            return False
        try:
            got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": LOCK_KEY}).scalar())  # fmt: skip
        except sa.exc.DBAPIError as exc:
            log.warning("cannot elect the scheduler: %s", exc.orig)
            got = False
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def _still_held(self) -> bool:
        if self._conn is None:
            return self._engine is None
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            return False
        return True

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()  # the session ends: PostgreSQL releases its advisory locks
        except sa.exc.DBAPIError:
            pass  # already gone, and the lock with it

    def dispose(self) -> None:
        self._release()
        if self._engine is not None:
            self._engine.dispose()
