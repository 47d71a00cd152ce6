"""Backups: one tar.gz holding the database and the data folder's snapshots and recordings.

Archive layout (format 1):
  MANIFEST.json      {"format", "version", "created_at", "backend", "database",
                      "schema_revision", "files"}
  database.sqlite    SQLite's online backup of the database (one file, no WAL), or
  database.pgdump    `pg_dump --format=custom` of the PostgreSQL database
  data/snapshots/…   the data folder's snapshots (JPEGs named by the journal)
  data/recordings/…  and recordings, when that folder exists

Invariants:
- The database is copied first, then the folders. A snapshot file is written before the
  attendance row that names it commits, so every file the copied database names is in
  the archive; files newer than the copy are harmless extras.
- Taking a backup never stops the service: SQLite's backup API reads one WAL snapshot
  (writers go on), pg_dump one MVCC snapshot.
- The archive is written to FILE.part and renamed when whole: a FILE that exists is
  complete. Nothing else of the data folder (secret.key, exports, backups) is archived.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from dispatch.clock import utcnow

from .db import make_engine
from .errors import DispatchError, InvalidInput

FORMAT, VERSION = "pingan-dispatch-backup", 1
MANIFEST = "MANIFEST.json"
DATABASE = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
DATA_FOLDERS = ("snapshots", "recordings")
# Nightly backups are named so; retention deletes only files matching this.
NIGHTLY = re.compile(r"^dispatch-\d{8}T\d{6}Z\.tar\.gz$")


class BackupFailed(DispatchError):
    """A tool or the database could not make or restore a backup; the message says why."""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    backend: str
    schema_revision: str | None
    files: int

    def as_dict(self) -> dict[str, object]:
        return {"format": FORMAT, "version": VERSION, "created_at": self.created_at,
                "backend": self.backend, "database": DATABASE[self.backend],
                "schema_revision": self.schema_revision, "files": self.files}  # fmt: skip


def backend_of(db_url: str) -> str:
    try:
        backend = make_url(db_url).get_backend_name()
    except Exception:
        raise InvalidInput("db", f"not a database URL: {db_url!r}") from None
    if backend not in DATABASE:
        raise InvalidInput("db", f"cannot back up a {backend!r} database")
    return backend


def sqlite_path(db_url: str) -> Path:
    path = make_url(db_url).database
    if not path or path == ":memory:":
        raise InvalidInput("db", "an in-memory SQLite database has nothing to back up")
    return Path(path)


def libpq(db_url: str) -> tuple[str, dict[str, str]]:
    """The URL pg_dump/pg_restore understand, and an environment carrying the password
    (never on the command line, where `ps` shows it)."""
    parsed: URL = make_url(db_url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def run_tool(args: list[str], env: dict[str, str] | None = None) -> None:
    if shutil.which(args[0]) is None:
        raise BackupFailed(
            f"{args[0]} is not installed (Debian: apt-get install postgresql-client)"
        )
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupFailed(f"{args[0]} failed: {done.stderr.strip()[-2000:]}")


def create(db_url: str, data_dir: Path, target: Path) -> Manifest:
    """Write a backup of the database and the data folder's media to `target`."""
    backend = backend_of(db_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with tempfile.TemporaryDirectory(prefix="dispatch-backup-", dir=target.parent) as tmp:
        dump = Path(tmp) / DATABASE[backend]
        if backend == "sqlite":
            revision = _copy_sqlite(sqlite_path(db_url), dump)
        else:
            revision = _dump_postgresql(db_url, dump)
        try:
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(dump, arcname=dump.name)
                files = _add_data(tar, data_dir)
                manifest = Manifest(utcnow().isoformat(timespec="seconds"),
                                    backend, revision, files)  # fmt: skip
                _add_json(tar, MANIFEST, manifest.as_dict(), Path(tmp))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def _copy_sqlite(source: Path, dump: Path) -> str | None:
    if not source.is_file():
        raise InvalidInput("db", f"no SQLite database at {source}")
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(dump)
    try:
        src.backup(dst)  # one step: a consistent copy as of one read transaction
        dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
        if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupFailed(f"the copy of {source} fails SQLite's quick_check")
        return _sqlite_revision(dst)
    finally:
        dst.close()
        src.close()


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row else None


def _dump_postgresql(db_url: str, dump: Path) -> str | None:
    url, env = libpq(db_url)
    run_tool(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
              "--file", str(dump), "--dbname", url], env)  # fmt: skip
    return _pg_revision(db_url)


def _pg_revision(db_url: str) -> str | None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        return None  # no alembic_version: made before migrations
    finally:
        engine.dispose()


def _add_data(tar: tarfile.TarFile, data_dir: Path) -> int:
    count = 0
    for folder in DATA_FOLDERS:
        root = data_dir / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            # Regular files only: a symlink could point anywhere on the server.
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=f"data/{path.relative_to(data_dir).as_posix()}")
                count += 1
    return count


def _add_json(tar: tarfile.TarFile, name: str, body: dict[str, object], tmp: Path) -> None:
    path = tmp / name
    path.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
    tar.add(path, arcname=name)


def nightly_name(now: datetime) -> str:
    return f"dispatch-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar.gz"


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` nightly backups in `folder` (by their names, which
    sort by time); other files are never touched. Returns what was deleted."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and NIGHTLY.match(p.name))
    doomed = found[: max(len(found) - keep, 0)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
