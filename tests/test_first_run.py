"""A first run that is alive (issue 10 item 8): the demo district with weeks of history,
sealed journals, stored weekly and monthly reports and this week's rota; and the rule
that a period's report is stored once its last week has ended."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from dispatch.calls import Call
from dispatch.clock import SHANGHAI
from dispatch.demo import DEMO_DISTRICT_CODE
from dispatch.settings import Settings
from logs import archive, first_run, periods, seal
from logs.bulletin import bulletin
from logs.journal import JournalEntry
from logs.report_jobs import due_periods
from schedules import plans
from schedules.workdays import IsoWeek
from web.cli import main
from web.reports import figures
from web.schema import open_database

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=SHANGHAI)  # Monday of 2026-W50


def test_due_periods_wait_for_the_last_week_of_the_period() -> None:
    # 2026-W49 (30 Nov – 6 Dec) is November's (its Monday): November is due on 7 December.
    assert periods.month_of_week(IsoWeek(2026, 49)).code == "2026-11"
    assert [p.code for p in due_periods(date(2026, 12, 7))] == ["2026-11"]
    assert due_periods(date(2026, 12, 1)) == []  # November's last week is still under way
    # 2026-W53 (28 Dec – 3 Jan) closes December, the fourth quarter and the second half.
    assert [p.code for p in due_periods(date(2027, 1, 4))] == ["2026-12", "2026-Q4", "2026-H2"]
    for kind in ("month", "quarter", "half"):  # each week in exactly one period of a kind
        week = IsoWeek(2026, 40)
        for _ in range(60):
            holders = [p for p in (periods.period_of_week(kind, week),) if week in p.weeks()]
            assert len(holders) == 1
            week = week.next()


def test_first_run_loads_history_seals_stores_and_builds_this_week(
    demo_template: Path, tmp_path: Path
) -> None:
    target = tmp_path / "dispatch.db"
    shutil.copyfile(demo_template, target)
    db = open_database(f"sqlite:///{target}")
    try:
        with db.session() as s:
            summary = first_run.load_history(s, weeks=3, now=NOW)
        assert (summary.first_week, summary.last_week, summary.current_week) == (
            "2026-W47", "2026-W49", "2026-W50")  # fmt: skip
        assert summary.calls > 100 and summary.sealed > 10 and summary.current_slots > 0
        assert any("sealed" in line for line in summary.lines())
        with db.session() as s:
            assert s.exec(select(func.count()).select_from(Call)).one() == summary.calls
            sealed = s.exec(select(func.count()).select_from(JournalEntry)
                            .where(JournalEntry.sealed)).one()  # fmt: skip
            assert sealed == summary.sealed
            assert seal.verify_chain(s).ok
            for week in ("2026-W47", "2026-W48", "2026-W49"):
                assert archive.find(s, "weekly", week, DEMO_DISTRICT_CODE) is not None
            november = archive.find(s, "monthly", "2026-11", DEMO_DISTRICT_CODE)
            assert november is not None  # its last week, W49, ended on 6 December
            states = {w["week"]: w["state"] for w in json.loads(november.body)["weeks"]}
            assert "in_progress" not in states.values() and states["2026-W49"] == "ended"
            assert archive.find(s, "monthly", "2026-12", DEMO_DISTRICT_CODE) is None
            # Read as an office issues it: body, date, problems, the units to rectify.
            stored = figures(json.loads(november.body))
            later = date(2026, 12, 20)
            zh, en = bulletin(stored, later), bulletin(stored, later, "en")
            assert zh.issuer == "达川区综治中心" and zh.issued == date(2026, 12, 7)
            assert zh.problems and zh.next_steps[-1].startswith("继续落实")
            low = [row for row in stored.heat_map if row.ranked and row.coverage_pct is not None
                   and row.coverage_pct < stored.standard_pct]  # fmt: skip
            assert [c for c, _n, _p in zh.rectify] == [r.code for r in sorted(
                low, key=lambda r: (r.coverage_pct, r.code))]  # fmt: skip
            if low:
                assert low[0].name in zh.next_steps[0] and "12月21日前" in zh.next_steps[0]
                assert "2026-12-21" in en.next_steps[0]
            assert not re.search(r"[：（）、，。；]", " ".join((*en.problems, *en.next_steps)))
            week = plans.get_week(s, DEMO_DISTRICT_CODE, IsoWeek(2026, 50))
            assert week is not None
            starts = {sl.start.date() for sl in plans.week_slots(s, week.id or 0)}
            assert min(starts) >= date(2026, 12, 7)  # planned from the next working day
    finally:
        db.close()


def test_weekly_report_and_history_read_on_a_terminal(
    demo_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dispatch.db"
    shutil.copyfile(demo_template, target)
    url = f"sqlite:///{target}"
    assert main(["--db", url, "demo", "history", "--weeks", "1", "--end-week", "2026-W49"]) == 0
    out = capsys.readouterr().out
    assert "history: 1 周 weeks (2026-W49 – 2026-W49)" in out and "调度 calls:" in out
    assert "HistorySummary(" not in out
    assert main(["--db", url, "report", "weekly", "--week", "2026-W49"]) == 0
    table = capsys.readouterr().out
    assert "周调度覆盖达标报告" in table and "已结束 ended" in table
    assert "镇/街道 town" in table and "三里桥街道" in table and "{" not in table
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("镇/街道 town"))
    assert set(lines[header + 1]) <= {"-", " "}  # a rule under the column heads
    assert main(["--db", url, "report", "weekly", "--week", "2026-W49", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["week"] == "2026-W49"
    assert main(["--db", url, "report", "weekly", "--week", "2026-W30"]) == 0
    assert "尚未排班 no rota yet" in capsys.readouterr().out


def test_an_existing_database_is_never_touched(
    demo_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        before = s.exec(select(func.count()).select_from(Call)).one()
    args = ["--db", demo_settings.db_url, "demo", "load", "--if-empty", "--history-weeks", "8"]
    assert main(args) == 0
    assert "nothing loaded" in capsys.readouterr().out
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(Call)).one() == before == 0
        assert plans.get_week(s, DEMO_DISTRICT_CODE, IsoWeek(2026, 50)) is None
    db.close()
    bad = ["--db", demo_settings.db_url, "demo", "load", "--history-weeks", "99"]
    assert main(bad) == 2 and "--history-weeks" in capsys.readouterr().err
