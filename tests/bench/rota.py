"""Bench: one week's rota for the demo district and the synthetic province, against the
I/O floor measured in the same run.

Run:  .venv/bin/python tests/bench/rota.py      (≈1 min)

For each data set, REPEATS rounds, alternating, each on a fresh copy of the database:
- build   `planner.build_week` for every district of the week + commit: load the centres,
          policy and calendar, run the pure builder, store slots and callee rows.
- floor   the I/O alone: load the same centres (one range scan per district) and
          bulk-insert the same slot and callee rows (prepared before the clock starts)
          + commit.
- pure    `rota.build_rota` alone on inputs loaded before the clock starts.
It prints medians, the ratio build / floor, and peak Python memory of a build
(tracemalloc). Targets (issue 3): the province week under 10 s and within 3× the floor.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from dispatch import centres, demo  # noqa: E402
from schedules import planner, plans, policy, rota, workdays  # noqa: E402
from schedules.workdays import IsoWeek  # noqa: E402
from web.schema import open_database  # noqa: E402

WEEK = IsoWeek(2026, 50)
REPEATS = 3


def make_db(folder: Path, scale: str) -> Path:
    path = folder / f"{scale}.db"
    db = open_database(f"sqlite:///{path}")
    with db.session() as s:
        demo.load_demo(s, scale)
    db.close()
    return path


def fresh(template: Path, folder: Path, n: int) -> str:
    target = folder / f"run-{n}.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def build(url: str) -> None:
    db = open_database(url)
    with db.session() as s:
        cal = workdays.load_calendar(s)
        for district in planner.districts(s):
            planner.build_week(s, district, WEEK, cal=cal)
    db.close()


def slot_rows(url: str) -> tuple[list[dict[str, Any]], list[str]]:
    """What a build stores, as plain rows: built once, before any clock starts."""
    db = open_database(url)
    rows: list[dict[str, Any]] = []
    with db.session() as s:
        cal = workdays.load_calendar(s)
        districts = planner.districts(s)
        for district in districts:
            record = planner.build_week(s, district, WEEK, cal=cal)
            for slot in plans.week_slots(s, record.id or 0):
                row = slot.model_dump(exclude={"id"})
                row["uid"] = "floor-" + row["uid"]
                row["district"] = district  # popped before the insert
                rows.append(row)
    db.close()
    return rows, districts


def floor(url: str, rows: list[dict[str, Any]], districts: list[str]) -> None:
    db = open_database(url)
    with db.session() as s:
        for district in districts:
            root = centres.get(s, district)
            centres.all_below(s, root, include_self=True)
            s.add(plans.RotaWeek(district_code=district, week=str(WEEK), week_start=WEEK.monday,
                                 seed=0, spot_check_seed=0, exempt=False))  # fmt: skip
        s.flush()
        week_ids = {w.district_code: w.id for w in s.exec(plans.select(plans.RotaWeek))}
        for row in rows:
            row["week_id"] = week_ids[row.pop("district")]
        stmt = insert(plans.RotaSlot).returning(plans.RotaSlot.id, sort_by_parameter_order=True)
        ids = [r[0] for r in s.execute(stmt, rows)]
        s.execute(insert(plans.RotaSlotCallee),
                  [{"slot_id": i, "centre_code": c}
                   for i, row in zip(ids, rows, strict=True) for c in row["callees"]])  # fmt: skip
    db.close()


def pure_inputs(url: str) -> list[dict[str, Any]]:
    db = open_database(url)
    out = []
    with db.session() as s:
        cal = workdays.load_calendar(s)
        for district in planner.districts(s):
            out.append({
                "week_start": WEEK.monday, "district": district,
                "towns": planner.district_towns(s, district),
                "bundle": policy.load_bundle(s, district), "workdays": cal.workdays(WEEK),
            })  # fmt: skip
    db.close()
    return out


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(scale: str, folder: Path) -> None:
    template = make_db(folder, scale)
    rows, districts = slot_rows(fresh(template, folder, 0))
    inputs = pure_inputs(fresh(template, folder, 0))
    builds, floors, pures = [], [], []
    n = 1
    for _ in range(REPEATS):
        url = fresh(template, folder, n)
        builds.append(timed(lambda url=url: build(url)))  # type: ignore[misc]
        url = fresh(template, folder, n + 1)
        floors.append(timed(lambda url=url: floor(url, [dict(r) for r in rows], districts)))  # type: ignore[misc]
        pures.append(timed(lambda: [rota.build_rota(**i) for i in inputs]))
        n += 2
    tracemalloc.start()
    build(fresh(template, folder, n))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    b, f, p = (statistics.median(x) for x in (builds, floors, pures))
    print(f"\n{scale}: {len(districts)} district(s), {len(rows)} slots, week {WEEK}, "
          f"median of {REPEATS}")  # fmt: skip
    print(f"  {'part':<40}{'seconds':>9}{'× floor':>9}")
    print(f"  {'build + store (planner.build_week)':<40}{b:>9.3f}{b / f:>9.2f}")
    print(f"  {'floor: load centres + insert the slots':<40}{f:>9.3f}{1:>9.2f}")
    print(f"  {'pure builder (rota.build_rota)':<40}{p:>9.3f}{p / f:>9.2f}")
    print(f"  peak Python memory of a build: {peak:.1f} MiB")


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for scale in ("district", "province"):
            run(scale, Path(tmp))
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
