"""Bench: the weekly coverage report against a bare scan of the attendance table,
measured side by side in one run, on generated history.

Run:  .venv/bin/python tests/bench/report.py [--district-weeks 52] [--province-weeks 4]

Data: the demo district with `--district-weeks` of history, and the synthetic province
(178 districts) with `--province-weeks` (a full province year is ≈1.9 M calls, ≈45 M
event rows, ≈8 GB of SQLite and ≈20 minutes to generate; pass --province-weeks 52 to
measure it). For each data set, REPEATS rounds alternating:
- weekly   `coverage.weekly_report` of the last generated week, for one district;
- scan     a bare full scan of `attendance_event` (SELECT sum(length(kind)) — every row);
- week-scan the floor for one week of one district: the week's calls, invitations and
           events read with plain SQL (no Python figures).
It prints medians and the ratios. Target (issue 6): the weekly report under 2 s and
within 3× of the scan on the province.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from dispatch import demo  # noqa: E402
from logs import coverage, periods  # noqa: E402
from logs.history import generate_history  # noqa: E402
from schedules import planner  # noqa: E402
from schedules.workdays import IsoWeek  # noqa: E402
from web.schema import open_database  # noqa: E402

END = IsoWeek(2026, 47)
REPEATS = 5


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def week_floor(db, district: str) -> None:  # type: ignore[no-untyped-def]
    start, end = coverage.week_bounds(END)
    with db.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text(
            "SELECT c.id FROM call c JOIN centre x ON x.code = c.caller_code "
            "WHERE x.path >= :lo AND x.path < :hi AND c.created_at >= :s AND c.created_at < :e"),
            {"lo": district + "/", "hi": district + "0", "s": start, "e": end})]  # fmt: skip
        for i in range(0, len(ids), 900):
            chunk = ",".join(str(x) for x in ids[i : i + 900])
            list(conn.execute(text(f"SELECT * FROM call_invitation WHERE call_id IN ({chunk})")))
            list(conn.execute(text(f"SELECT * FROM attendance_event WHERE call_id IN ({chunk})")))


def bench(scale: str, weeks: int, folder: Path) -> None:
    db = open_database(f"sqlite:///{folder / (scale + '.db')}")
    with db.session() as s:
        demo.load_demo(s, scale)
    started = time.perf_counter()
    with db.session() as s:
        summary = generate_history(s, weeks=weeks, end_week=END, commit=True)
    made = time.perf_counter() - started
    with db.session() as s:
        district = planner.districts(s)[0]
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM attendance_event")).scalar_one()
    reports, scans, floors, months = [], [], [], []
    month = periods.parse_month("2026-11")
    for _ in range(REPEATS):
        with db.session() as s:
            reports.append(timed(lambda s=s: coverage.weekly_report(s, district, END)))
        with db.session() as s:
            months.append(timed(lambda s=s: periods.period_report(s, district, month)))
        with db.engine.connect() as conn:
            scans.append(timed(lambda conn=conn: conn.execute(
                text("SELECT sum(length(kind)) FROM attendance_event")).scalar_one()))  # fmt: skip
        floors.append(timed(lambda: week_floor(db, district)))
    db.close()
    r, sc, fl, mo = (statistics.median(x) for x in (reports, scans, floors, months))
    print(f"\n{scale}: {summary.districts} district(s), {weeks} week(s) of history "
          f"({summary.calls} calls, {rows} event rows, generated in {made:.0f} s)")  # fmt: skip
    print(f"  {'part':<52}{'seconds':>9}{'× scan':>8}{'× week floor':>14}")
    print(
        f"  {'weekly report, one district, ' + str(END):<52}{r:>9.3f}{r / sc:>8.2f}{r / fl:>14.2f}"
    )
    print(f"  {'monthly report 2026-11 (and October, compared)':<52}{mo:>9.3f}{mo / sc:>8.2f}"
          f"{mo / fl:>14.2f}")  # fmt: skip
    print(f"  {'bare scan of attendance_event (every row)':<52}{sc:>9.3f}{1:>8.2f}{sc / fl:>14.2f}")
    print(
        f"  {'floor: that week of that district, plain SQL':<52}{fl:>9.3f}{fl / sc:>8.2f}{1:>14.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--district-weeks", type=int, default=52)
    parser.add_argument("--province-weeks", type=int, default=4)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bench("district", args.district_weeks, Path(tmp))
        if args.province_weeks:
            bench("province", args.province_weeks, Path(tmp))
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
