"""Every table of every layer, imported in one place so `create_schema` knows them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlmodel import Session

from dispatch import accounts, calls, cameras, centres, logins, migrations, recordings  # noqa: F401
from dispatch.db import Database
from logs import archive, issues, journal, seal  # noqa: F401
from schedules import plans, policy, workdays  # noqa: F401

T = TypeVar("T")


def in_session(url: str, fn: Callable[[Session], T]) -> T:
    """Open the database, run `fn` in one transaction (committed if it returns), close."""
    db = open_database(url)
    try:
        with db.session() as s:
            return fn(s)
    finally:
        db.close()


def open_database(url: str) -> Database:
    """The database at `url` at the schema's head revision: an empty one is created (with
    the triggers that make sealed journals read-only), one made before migrations is
    stamped, an older one raises `SchemaOutdated` naming `dispatch db upgrade`."""
    db = Database(url)
    try:
        migrations.ensure_current(db.engine)
    except BaseException:
        db.close()
        raise
    return db
