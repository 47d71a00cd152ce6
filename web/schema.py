"""Every table of every layer, imported in one place so `create_schema` knows them all."""

from __future__ import annotations

from dispatch import accounts, calls, centres  # noqa: F401
from dispatch.db import Database
from logs import archive, issues, journal, seal  # noqa: F401
from schedules import plans, policy, workdays  # noqa: F401


def open_database(url: str) -> Database:
    """The database at `url` with every table created."""
    db = Database(url)
    db.create_schema()
    # Sealed journals, their amendments and their calls' events refuse UPDATE/DELETE.
    seal.install_triggers(db.engine)
    return db
