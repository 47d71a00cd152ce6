"""`dispatch db upgrade|status`: the schema's version (dispatch/migrations).

These open the database without `open_database`, which refuses an older schema: they
are how an older schema is looked at and brought to head.
"""

from __future__ import annotations

import argparse
from typing import Any

from dispatch import migrations
from dispatch.db import Database
from dispatch.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", parents=[common], help="the database schema (migrations)")
    dsub = db.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser(
        "upgrade", parents=[common], help="bring the schema to this version's head (back up first)"
    )
    up.set_defaults(run=cmd_upgrade)
    status = dsub.add_parser("status", parents=[common], help="the schema's version and head")
    status.set_defaults(run=cmd_status)


def cmd_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.db_url)
    try:
        before, after = migrations.upgrade(db.engine)
    finally:
        db.close()
    if before.at_head:
        print(f"the schema is already at {after} (head)")
    else:
        print(f"schema upgraded from {_describe(before)} to {after} (head)")
    return 0


def cmd_status(_args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.db_url)
    try:
        found = migrations.state(db.engine)
    finally:
        db.close()
    print(f"current: {_describe(found)}\nhead: {found.head}")
    if found.at_head:
        print("up to date")
    elif found.empty:
        print("created at head when the service first opens it")
    elif found.current is None and found.head == migrations.INITIAL:
        print(f"stamped {migrations.INITIAL} when the service first opens it")
    else:
        print(f"needs `{migrations.UPGRADE_COMMAND}`")
    return 0


def _describe(found: migrations.SchemaState) -> str:
    if found.empty:
        return "an empty database"
    if found.current is None:
        return f"no version (made before migrations: the initial revision {migrations.INITIAL})"
    return found.current
