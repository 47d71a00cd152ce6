"""The weekly coverage report as a table a person reads on a terminal
(`dispatch report weekly`, the default format; `--format json` gives the JSON).

Columns line up with Chinese text: a wide (East Asian) character takes two cells.
Labels are Chinese first, English second, like the pages.
"""

from __future__ import annotations

from collections.abc import Sequence

from logs import coverage
from logs.coverage import WeeklyReport
from schedules.workdays import IsoWeek

from .columns import pad, width
from .i18n import MESSAGES

STATE_LABEL = {
    coverage.ENDED: "已结束 ended",
    coverage.IN_PROGRESS: "进行中 in progress",
    coverage.NO_ROTA_YET: "尚未排班 no rota yet",
    coverage.EXEMPT: "免于调度 exempt",
}


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> list[str]:
    """Columns as wide as their widest cell; columns from `numeric_from` right-aligned."""
    cols = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(pad(c, cols[i], i >= numeric_from) for i, c in enumerate(row)).rstrip()

    return [line(header), "  ".join("-" * c for c in cols), *(line(r) for r in rows)]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _reason(key: str) -> str:
    zh, en = MESSAGES.get(f"report.reason.{key}", (key, key))
    return f"{zh} {en}"


def weekly_table(report: WeeklyReport) -> str:
    days = IsoWeek.parse(report.week).days()
    lines = [
        f"{report.view_name} {report.week} 周调度覆盖达标报告 / weekly coverage report",
        f"状态 state: {STATE_LABEL.get(report.state, report.state)}    {days[0]} – {days[-1]}",
    ]
    if report.state == coverage.EXEMPT:
        lines.append(f"{report.exempt_reason or ''}")
        return "\n".join(lines) + "\n"
    if report.state == coverage.NO_ROTA_YET:
        lines.append(
            "本周早于首次排班：无数字、无排名 / before the first rota: no figures, no ranking"
        )
        return "\n".join(lines) + "\n"
    summary = (f"应调度 required {report.required}  已覆盖 covered {report.covered}  "
               f"覆盖率 coverage {_pct(report.coverage_pct)}")  # fmt: skip
    if report.pending is not None:
        summary += f" (至今 so far)  待调度 pending {report.pending}"
    lines += [summary, f"补调度 make-ups used: {report.makeups_used}"]
    missed = {k: v for k, v in (report.missed_by_reason or {}).items() if v}
    if missed:
        lines.append("未覆盖原因 missed by reason: "
                     + ", ".join(f"{_reason(k)} {v}" for k, v in missed.items()))  # fmt: skip
    if report.not_planned_days:
        passed = ", ".join(report.not_planned_days)
        lines.append(f"建周前已过 not planned (built mid-week): {passed}")
    lines.append("")
    header = ["镇/街道 town", "排名 rank", "应调度 required", "已覆盖 covered", "未覆盖 missed",
              "待调度 pending", "按时接听 on time", "覆盖率 coverage"]  # fmt: skip
    rows = [[t.name, str(t.rank), str(t.required), str(t.covered), str(t.missed),
             str(t.pending), str(t.answered_on_time), _pct(t.coverage_pct)]
            for t in report.towns]  # fmt: skip
    lines += table(header, rows)
    if report.repeat_misses:
        lines += ["", f"连续两周及以上未覆盖（督导） missed two or more weeks running: "
                      f"{len(report.repeat_misses)}"]  # fmt: skip
        rows = [[m.centre_name, m.caller_name, str(m.weeks_running), m.since]
                for m in report.repeat_misses]  # fmt: skip
        lines += table(["中心 centre", "调度方 caller", "周数 weeks", "起始 since"], rows, 2)
    issues = report.issues
    lines += ["", f"问题 issues: 新增 raised {issues.raised.total}, 上报 escalated "
                  f"{issues.escalated.total}, 办结 resolved {issues.resolved.total}"]  # fmt: skip
    if report.chain_head is not None:
        head = report.chain_head
        lines.append(f"日志链 journal chain head: {head.seq} {head.sha256}")
    return "\n".join(lines) + "\n"
