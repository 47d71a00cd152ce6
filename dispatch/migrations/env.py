"""Alembic's environment, driven only from `dispatch.migrations` (no alembic.ini).

The caller hands over an open connection (`config.attributes["connection"]`) and, for
autogenerate, the models' metadata (`config.attributes["target_metadata"]`), so this
file imports nothing of the service and the revisions stay frozen text.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes["connection"]
ours = config.attributes.get("tables")


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Tables that are not ours (APScheduler's old job table, a DBA's own) are left alone.
    if type_ == "table" and reflected and compare_to is None and ours is not None:
        return name in ours
    return True


context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    # SQLite alters a table by copying it: later revisions use op.batch_alter_table.
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=include_object,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
