"""Bench: the province demo load against the I/O floor, tree queries against a bare count.

Run:  .venv/bin/python tests/bench/demo.py      (≈10 s; prints one table per part)

Not a test: the file name does not match test_*.py and no function starts with test_, so
pytest never collects it. Each part uses a fresh SQLite file in a temporary folder, with
the service's own engine (WAL, synchronous=FULL, foreign keys on) and schema.

1. load   `load_demo(province)` + commit, split into hashing / generation / insert, versus
          the floor: the same number of centre and account rows, built before the clock
          starts, bulk-inserted with the DB-API's executemany into an identical schema.
2. query  children / all_below / path_up / counts_below on the loaded province versus a
          bare `SELECT count(*) FROM centre`; each the median of REPEATS runs, with the
          session's identity map emptied before every run so no run reuses loaded objects.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: make `dispatch` importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from dispatch import centres, demo  # noqa: E402
from dispatch.centres import Centre, Level  # noqa: E402
from dispatch.db import Database  # noqa: E402

REPEATS = 20
CENTRE_COLUMNS = (
    "code",
    "name",
    "level",
    "parent_code",
    "path",
    "centre_class",
    "target_year",
    "director_name",
    "director_phone",
    "grid_workers",
    "active",
    "updated_at",
)
ACCOUNT_COLUMNS = (
    "username",
    "display_name",
    "role",
    "centre_code",
    "password_hash",
    "active",
    "created_at",
)


def fresh_db(folder: Path, name: str) -> Database:
    db = Database(f"sqlite:///{folder / name}")
    db.create_schema()
    return db


def plain(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Rows as the DB-API takes them: JSON as text, datetimes as SQLite's text form."""
    out = []
    for row in rows:
        values = []
        for c in columns:
            v = row[c]
            if isinstance(v, list):
                v = json.dumps(v)
            elif hasattr(v, "isoformat"):
                v = v.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            values.append(v)
        out.append(tuple(values))
    return out


def raw_insert(engine: Engine, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    conn = engine.raw_connection()  # runs the same connect pragmas as the service
    try:
        cur = conn.cursor()
        cur.executemany(sql, rows)
        conn.commit()
    finally:
        conn.close()


def bench_load(folder: Path) -> Database:
    """Part 1; returns the database holding the loaded province for part 2."""
    db = fresh_db(folder, "province.db")
    started = time.perf_counter()
    with db.session() as s:
        summary = demo.load_demo(s, "province")
    t_load = time.perf_counter() - started
    n_centres = summary.districts + summary.towns + summary.villages

    # The same work piece by piece, off the clock of the full load.
    t = time.perf_counter()
    hashes = demo.role_hashes()
    t_hash = time.perf_counter() - t
    t = time.perf_counter()
    rows = demo.build_rows("province", hashes, centres.utcnow())
    t_gen = time.perf_counter() - t
    assert len(rows.centres) == n_centres

    # The floor: identical rows (plus the admin), pre-built, inserted as plainly as possible.
    centre_rows = plain(rows.centres, CENTRE_COLUMNS)
    admin = {
        **rows.accounts[0],
        "username": "admin",
        "role": "admin",
        "centre_code": None,
        "password_hash": hashes[demo.Role.admin],
    }
    account_rows = plain([admin, *rows.accounts], ACCOUNT_COLUMNS)
    floor_db = fresh_db(folder, "floor.db")
    t = time.perf_counter()
    raw_insert(floor_db.engine, "centre", CENTRE_COLUMNS, centre_rows)
    raw_insert(floor_db.engine, "account", ACCOUNT_COLUMNS, account_rows)
    t_floor = time.perf_counter() - t
    floor_db.close()

    print(
        f"province: {summary.districts} districts, {summary.towns} towns, "
        f"{summary.villages} villages, {summary.accounts} accounts"
    )
    print(f"{'part':<44}{'seconds':>9}{'× floor':>9}")
    for label, secs in (
        ("load_demo + commit (total)", t_load),
        ("  argon2: one hash per role (4)", t_hash),
        ("  generation of rows (no database)", t_gen),
        ("  bulk insert + commit (total − above)", t_load - t_hash - t_gen),
        ("floor: executemany of pre-built rows", t_floor),
    ):
        print(f"{label:<44}{secs:>9.3f}{secs / t_floor:>9.1f}")
    return db


def median_seconds(s: Session, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        s.expunge_all()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_queries(db: Database) -> None:
    with db.session() as s:
        district = s.exec(
            select(Centre).where(Centre.level == Level.district.value).order_by(Centre.code)
        ).first()
        assert district is not None
        town = centres.children(s, district.code)[0]
        village = centres.children(s, town.code)[0]
        d_code, d_path, v_code = district.code, district.path, village.code
        conn = s.connection()

        def bare_count() -> object:
            return conn.exec_driver_sql("SELECT count(*) FROM centre").scalar()

        def all_below_district() -> object:
            return centres.all_below(s, centres.get(s, d_code))

        def path_up_village() -> object:
            return centres.path_up(s, centres.get(s, v_code))

        cases: list[tuple[str, Callable[[], object]]] = [
            ("SELECT count(*) FROM centre (baseline)", bare_count),
            ("children(district)", lambda: centres.children(s, d_code)),
            ("all_below(district)", all_below_district),
            ("path_up(village)", path_up_village),
            ("counts_below(district)", lambda: centres.counts_below(s, d_path)),
            ("counts_below(None): whole province", lambda: centres.counts_below(s, None)),
        ]
        sizes = {
            "children(district)": len(centres.children(s, d_code)),
            "all_below(district)": len(centres.all_below(s, district)),
            "path_up(village)": len(centres.path_up(s, village)),
        }
        base = median_seconds(s, bare_count)
        print(f"\n{'query (median of ' + str(REPEATS) + ')':<44}{'ms':>9}{'× count':>9}  rows")
        for label, fn in cases:
            secs = base if fn is bare_count else median_seconds(s, fn)
            rows = sizes.get(label, "")
            print(f"{label:<44}{secs * 1000:>9.2f}{secs / base:>9.1f}  {rows}")


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pingan-bench-") as tmp:
        db = bench_load(Path(tmp))
        try:
            bench_queries(db)
        finally:
            db.close()
    print(f"\nbench took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
