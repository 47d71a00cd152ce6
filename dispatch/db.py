"""The database engine: SQLite (WAL, durable commits) by default, PostgreSQL by URL.

Invariant: every write goes through `Database.write`, which runs on one dedicated
thread, so SQLite sees a single writer and the event loop never blocks on I/O.
Reads run on a small pool. A write has committed when its awaitable returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

from .errors import InvalidInput

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K", int, str)

IN_BATCH = 900  # keys per IN (...) query: SQLite allows 999 bound variables by default


def in_batches(keys: Iterable[K], size: int = IN_BATCH) -> Iterator[list[K]]:
    """The distinct ``keys``, sorted, in lists of at most ``size``: one IN (...) each."""
    batch = sorted(set(keys))
    for i in range(0, len(batch), size):
        yield batch[i : i + size]


def make_engine(url: str) -> Engine:
    """Create the engine for `url`; for SQLite, create the folder and turn on WAL."""
    try:
        parsed = make_url(url)
    except Exception:
        raise InvalidInput("db", f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db_path = parsed.database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise InvalidInput("db", f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit
    # survive power loss, which attendance records need.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    """The engine plus the two executors that keep database work off the event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-write")
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="db-read")

    def create_schema(self) -> None:
        """Create every table whose module has been imported. Upper layers' tables are
        known once the composition root has imported them (`web/schema.py`)."""
        from . import accounts, calls, centres, recordings  # noqa: F401  (this layer's tables)

        SQLModel.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args)` on a reader thread."""
        return await self._run(self._readers, fn, args, kwargs)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args)` on the writer thread; committed when this returns."""
        return await self._run(self._writer, fn, args, kwargs)

    async def _run(
        self, pool: ThreadPoolExecutor, fn: Callable[..., T], args: Any, kwargs: Any
    ) -> T:
        def call() -> T:
            with self.session() as s:
                return fn(s, *args, **kwargs)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(call))

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    def ping(self, session: Session) -> bool:
        from sqlalchemy import text

        one: int = session.connection().execute(text("SELECT 1")).scalar_one()
        return one == 1
