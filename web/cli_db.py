"""`dispatch db upgrade|status`, `dispatch backup FILE`, `dispatch restore FILE`.

These open the database without `open_database`, which refuses an older schema: they
are how an older schema is looked at, kept and brought to head.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dispatch import backup, migrations, restore
from dispatch.db import Database
from dispatch.errors import InvalidInput
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

    back = sub.add_parser(
        "backup", parents=[common], help="the database and the media files in one archive"
    )
    back.add_argument("file", type=Path, help="the archive to write (.tar.gz); must not exist")
    back.set_defaults(run=cmd_backup)
    rest = sub.add_parser("restore", parents=[common], help="restore an archive from backup")
    rest.add_argument("file", type=Path)
    rest.add_argument("--force", action="store_true", help="replace a database that has tables")
    rest.set_defaults(run=cmd_restore)


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


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    target: Path = args.file
    if target.exists():
        raise InvalidInput("FILE", f"{target} exists; name a new file")
    try:
        made = backup.create(settings.db_url, settings.data_path, target)
    except OSError as exc:
        raise InvalidInput("FILE", f"cannot write {target}: {exc.strerror or exc}") from None
    print(
        f"backup written to {target}: {made.backend} database (schema "
        f"{made.schema_revision or 'without version'}), {made.files} media file(s)"
    )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    done = restore.restore(args.file, settings.db_url, settings.data_path, force=args.force)
    print(
        f"restored the {done.backend} database of {done.created_at} (schema "
        f"{done.schema_revision or 'without version'}) and {done.files} media file(s)"
    )
    db = Database(settings.db_url)
    try:
        found = migrations.state(db.engine)
    finally:
        db.close()
    if found.current is not None and not found.at_head:
        print(f"its schema is older than this version's: run `{migrations.UPGRADE_COMMAND}`")
    return 0
