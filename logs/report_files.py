"""The weekly coverage report as rows for CSV and XLSX: one row per required pair, with
the columns a supervisor reads."""

from __future__ import annotations

from typing import Any

from dispatch import spreadsheets

from .coverage import REASON_LABELS, WeeklyReport

STATUS_ZH = {"covered": "已覆盖", "missed": "未覆盖", "pending": "待调度"}
COLUMNS = (
    "周", "镇(街道)", "发起单位", "被调度单位", "类型", "结果", "未完成原因", "按时接听",
    "接听用时(秒)", "有效视频(秒)", "补调度", "尝试次数",
)  # fmt: skip


def pair_rows(report: WeeklyReport, names: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    yes_no = {None: "", True: "是", False: "否"}
    for p in report.pairs:
        rows.append({
            "周": report.week, "镇(街道)": names.get(p.town, p.town), "发起单位": p.caller_name,
            "被调度单位": p.callee_name, "类型": "区级调度" if p.kind == "district" else "镇级巡查",
            "结果": STATUS_ZH.get(p.status, p.status),
            "未完成原因": REASON_LABELS.get(p.reason or "", ("", ""))[0],
            "按时接听": yes_no[p.answered_on_time],
            "接听用时(秒)": "" if p.seconds_to_answer is None else p.seconds_to_answer,
            "有效视频(秒)": round(p.seconds_verified), "补调度": "是" if p.makeup_used else "",
            "尝试次数": p.calls,
        })  # fmt: skip
    return rows


def weekly_file(report: WeeklyReport, fmt: str) -> bytes:
    names = {t.code: t.name for t in report.towns}
    rows = pair_rows(report, names)
    if fmt == "csv":
        return spreadsheets.csv_file(rows, COLUMNS)
    title = f"{report.view_name} {report.week} 视频调度覆盖情况"
    return spreadsheets.xlsx_ledger(rows, title, columns=COLUMNS, sheet="覆盖情况")


def period_file(report: Any, fmt: str) -> bytes:
    """A period report's heat map as a table: one row per town (or village), a column per
    week, then the period's coverage — what a supervisor pastes into a briefing."""
    weeks = [w.week for w in report.weeks]
    columns = ("单位", *weeks, "应调度", "已覆盖", "覆盖率(%)")
    rows = []
    for row in report.heat_map:
        cells = {w: ("" if c is None else c) for w, c in zip(weeks, row.cells, strict=True)}
        pct = "" if row.coverage_pct is None else row.coverage_pct
        rows.append({"单位": row.name, **cells, "应调度": row.required, "已覆盖": row.covered,
                     "覆盖率(%)": pct})  # fmt: skip
    if fmt == "csv":
        return spreadsheets.csv_file(rows, columns)
    title = f"{report.view_name} {report.title} {report.label}"
    return spreadsheets.xlsx_ledger(rows, title, columns=columns, sheet="覆盖率")
