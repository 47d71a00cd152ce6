"""A period report read as an office issues it: the issuing body, number and date, then
一、运行情况 (how the work ran), 二、存在问题 (problems) and 三、下步工作 (next steps),
naming the units that must rectify. Built only from the report's figures, for a live
report (`periods.PeriodReport`) and a stored one read back with attribute access alike.

Rules:
- Issued on the Monday after the period's last week — the day the scheduler stores it
  (`logs.report_jobs`) — or today, if that Monday is still ahead.
- Units that must rectify: the ranked units (towns of a district, villages of a town)
  whose period coverage is below the standard (`standard_pct`), lowest first; they are
  given until two weeks after the issue date.
- Every number printed is one of the report's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from schedules.workdays import IsoWeek

from .coverage import REASON_LABELS

RECTIFY_DAYS = 14


@dataclass(frozen=True)
class Bulletin:
    issuer: str
    issued: date
    deadline: date
    rectify: tuple[tuple[str, str, float], ...]  # code, name, coverage % (lowest first)
    problems: tuple[str, ...]
    next_steps: tuple[str, ...]


def issue_date(report: Any, today: date) -> date:
    weeks = list(report.weeks)
    if not weeks:
        return today
    after = IsoWeek.parse(weeks[-1].week).next().monday
    return min(after, today)


def bulletin(report: Any, today: date, lang: str = "zh") -> Bulletin:
    zh = lang == "zh"
    issued = issue_date(report, today)
    deadline = issued + timedelta(days=RECTIFY_DAYS)
    standard = report.standard_pct
    low = sorted(
        ((r.code, r.name, r.coverage_pct) for r in report.heat_map
         if r.ranked and r.coverage_pct is not None and r.coverage_pct < standard),
        key=lambda x: (x[2], x[0]),
    )  # fmt: skip
    sep = "、" if zh else ", "
    names = sep.join(f"{n}({p}%)" if not zh else f"{n}（{p}%）" for _c, n, p in low)
    lagging = [c for cls in report.class_progress for c in cls.past_target_not_met]
    overdue = report.issues.overdue
    overdue_n = overdue if isinstance(overdue, int) else len(overdue)
    problems: list[str] = []
    steps: list[str] = []
    if low:
        problems.append(
            f"{len(low)}个单位覆盖率低于{standard}%：{names}。" if zh
            else f"{len(low)} unit(s) below {standard}% coverage: {names}."
        )
        steps.append(
            f"请{sep.join(n for _c, n, _p in low)}对照本期未覆盖情况逐一整改，"
            f"于{deadline.month}月{deadline.day}日前完成补调度并书面报{report.view_name}综治中心。"
            if zh else
            f"{sep.join(n for _c, n, _p in low)} must rectify each missed call of the period "
            f"and report in writing to the {report.view_name} centre by {deadline.isoformat()}."
        )  # fmt: skip
    missed = {k: v for k, v in (report.missed_by_reason or {}).items() if v}
    if missed:
        top = sorted(missed.items(), key=lambda kv: -kv[1])
        text = sep.join(f"{_reason(k, zh)} {v}" for k, v in top)
        problems.append(f"未覆盖的原因：{text}（次）。" if zh
                        else f"Missed calls by reason: {text}.")  # fmt: skip
        if "never_launched" in missed:
            steps.append("调度员按排班准时发起调度，未发起的在本周预留时段补调度。" if zh else
                         "Operators launch every call on time; calls never launched are made up "
                         "in the week's reserve.")  # fmt: skip
        if "no_video" in missed or "no_answer" in missed:
            steps.append("各村（社区）确保值班人员在岗、摄像头在线，来电及时接听。" if zh else
                         "Villages keep someone on duty and the camera online, and answer "
                         "calls at once.")  # fmt: skip
    if overdue_n:
        problems.append(f"逾期未化解问题{overdue_n}件。" if zh else
                        f"{overdue_n} issue(s) overdue and not resolved.")  # fmt: skip
        steps.append("各责任单位对逾期问题逐件销号，重大矛盾风险及时报告。" if zh else
                     "Each responsible unit closes its overdue issues one by one and reports "
                     "major risks at once.")  # fmt: skip
    if lagging:
        shown = sep.join(c.name for c in lagging[:10]) + (" 等" if zh and len(lagging) > 10 else "")
        problems.append(f"已过目标年度仍未达标{len(lagging)}个：{shown}。" if zh else
                        f"{len(lagging)} centre(s) past their target year and below the "
                        f"standard: {shown}.")  # fmt: skip
        steps.append("已过目标年度仍未达标的中心列入重点督导。" if zh else
                     "Centres past their target year and below the standard are put under "
                     "supervision.")  # fmt: skip
    if not problems:
        problems.append("本期未发现突出问题。" if zh else "No notable problem this period.")
    steps.append("继续落实每周视频调度全覆盖，调度日志当日签发。" if zh else
                 "Keep the weekly video dispatch covering every centre, and sign each journal "
                 "off the same day.")  # fmt: skip
    issuer = f"{report.view_name}综治中心" if zh else f"{report.view_name} governance centre"
    return Bulletin(issuer, issued, deadline, tuple(low), tuple(problems), tuple(steps))


def _reason(reason: str, zh: bool) -> str:
    """A miss reason as the narrative says it: coverage's label (lower case in English)."""
    chinese, english = REASON_LABELS.get(reason, (reason, reason))
    return chinese if zh else english.lower()
