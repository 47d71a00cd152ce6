"""Restore a backup made by `dispatch.backup.create`: the database, then the media files.

Invariants:
- The archive is checked whole before anything is written: its manifest (format,
  version, backend), and every member — only the manifest, the database file and
  regular files under data/snapshots/ or data/recordings/, no absolute path, no `..`,
  no links or devices. A bad archive raises InvalidInput and changes nothing.
- A database that holds any table is replaced only with `force`.
- SQLite: the copy is written beside the target and renamed over it (after the old
  -wal/-shm go), so the target is the old database or the whole new one, never a mix.
  The server must be stopped: a running server keeps the old file open.
- PostgreSQL: pg_restore --clean in a single transaction: all of it or nothing.
- Media files from the archive are written into the data folder; files there that the
  archive does not hold are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import sqlalchemy as sa

from . import backup
from .db import make_engine
from .errors import InvalidInput


@dataclass(frozen=True)
class Restored:
    backend: str
    created_at: str
    schema_revision: str | None
    files: int


def restore(archive: Path, db_url: str, data_dir: Path, *, force: bool = False) -> Restored:
    backend = backup.backend_of(db_url)
    try:
        tar = tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise InvalidInput("FILE", f"no such file: {archive}") from None
    except (tarfile.TarError, OSError) as exc:
        why = type(exc).__name__
        raise InvalidInput("FILE", f"{archive} is not a backup archive ({why})") from None
    with tar, tempfile.TemporaryDirectory(prefix="dispatch-restore-") as tmp:
        manifest = _manifest(tar, archive)
        if manifest["backend"] != backend:
            raise InvalidInput(
                "FILE", f"{archive} holds a {manifest['backend']} database; the target is {backend}"
            )
        media = _checked_members(tar, archive, str(manifest["database"]))
        if not force and _has_tables(db_url):
            raise InvalidInput("db", "the database is not empty: restore over it with --force")
        dump = Path(tmp) / backup.DATABASE[backend]
        _extract(tar, str(manifest["database"]), dump, archive)
        if backend == "sqlite":
            _restore_sqlite(dump, backup.sqlite_path(db_url))
        else:
            _restore_postgresql(dump, db_url)
        for member in media:
            _extract(
                tar, member.name, data_dir / PurePosixPath(member.name).relative_to("data"), archive
            )
    revision = manifest.get("schema_revision")
    return Restored(
        backend, str(manifest["created_at"]), str(revision) if revision else None, len(media)
    )


def _manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, object]:
    try:
        fh = tar.extractfile(backup.MANIFEST)
        body = json.loads(fh.read().decode("utf-8")) if fh else None
    except (KeyError, ValueError, tarfile.TarError, OSError, EOFError):
        body = None
    if not isinstance(body, dict) or body.get("format") != backup.FORMAT:
        raise InvalidInput("FILE", f"{archive} is not a Pingan Dispatch backup (no manifest)")
    if body.get("version") != backup.VERSION:
        raise InvalidInput(
            "FILE",
            f"backup format version {body.get('version')!r} is not "
            f"{backup.VERSION}: restore it with the version that made it",
        )
    if body.get("backend") not in backup.DATABASE:
        raise InvalidInput("FILE", f"unknown database kind {body.get('backend')!r} in the manifest")
    if body.get("database") != backup.DATABASE[str(body["backend"])]:
        raise InvalidInput("FILE", "the manifest names an unexpected database file")
    return body


def _checked_members(tar: tarfile.TarFile, archive: Path, database: str) -> list[tarfile.TarInfo]:
    media, found = [], set()
    try:
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput("FILE", f"{archive} is damaged ({exc})") from None
    for m in members:
        path = PurePosixPath(m.name)
        safe = not path.is_absolute() and ".." not in path.parts
        if m.name in (backup.MANIFEST, database) and m.isfile():
            found.add(m.name)
        elif (
            safe
            and m.isfile()
            and len(path.parts) > 2
            and path.parts[0] == "data"
            and path.parts[1] in backup.DATA_FOLDERS
        ):
            media.append(m)
        elif not (safe and m.isdir()):
            raise InvalidInput("FILE", f"{archive} holds an unexpected entry {m.name!r}")
    if database not in found:
        raise InvalidInput("FILE", f"{archive} holds no {database}")
    return media


def _extract(tar: tarfile.TarFile, name: str, dest: Path, archive: Path) -> None:
    try:
        src = tar.extractfile(name)
        if src is None:
            raise InvalidInput("FILE", f"{archive}: {name} is not a file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput("FILE", f"{archive} is damaged: {name} ({exc})") from None


def _has_tables(db_url: str) -> bool:
    if backup.backend_of(db_url) == "sqlite":
        path = backup.sqlite_path(db_url)
        if not path.exists():
            return False
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return bool(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _restore_sqlite(dump: Path, target: Path) -> None:
    conn = sqlite3.connect(dump)
    try:
        ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except sqlite3.DatabaseError:
        ok = False
    finally:
        conn.close()
    if not ok:
        raise InvalidInput("FILE", "the backup's database is damaged (SQLite quick_check)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + ".restoring")
    shutil.copyfile(dump, staged)
    for suffix in ("-wal", "-shm"):  # the old database's log would be replayed on the new
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(staged, target)


def _restore_postgresql(dump: Path, db_url: str) -> None:
    url, env = backup.libpq(db_url)
    # --clean always: a database without tables may still hold our trigger functions,
    # and a forced restore replaces what the dump holds.
    args = ["pg_restore", "--no-owner", "--no-privileges", "--single-transaction",
            "--exit-on-error", "--clean", "--if-exists", "--dbname", url, str(dump)]  # fmt: skip
    backup.run_tool(args, env)
