"""Dispute screening (矛盾纠纷排查): the ledgers a town keeps from its half-monthly
screening meeting with its villages (每半月开展一次矛盾纠纷排查和分析调度工作).

- The screening ledger (排查台账): every dispute about the town or its villages raised in
  the period, whatever became of it.
- The tracking ledger (重点关注持续跟踪的矛盾纠纷台账): the disputes still unresolved
  that need following: every major one, and general ones open for more than 15 days or
  past their deadline, with their tracking notes.

Invariants:
- A ledger is a read of the issue ledger (`logs.issues`): nothing here writes, and a
  ledger row is a pure function of one issue, its history and the day it is drawn up.
- Rows are dicts whose keys are exactly the ledger's columns, in column order; the XLSX
  and CSV writer (`dispatch.spreadsheets`) keeps that order and every text value stays
  text (a 12-digit code or a date never becomes a number).
- The days of a period are Asia/Shanghai days, both ends included.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from dispatch import centres, spreadsheets
from dispatch.accounts import Account, Scope
from dispatch.centres import Centre, Level
from dispatch.clock import SHANGHAI
from dispatch.db import in_batches
from dispatch.errors import InvalidInput

from .issues import (
    ACTION_LABELS,
    ASSIGNED,
    COMMENTED,
    ESCALATED,
    REOPENED,
    RESOLVED,
    RESOLVED_ACTION,
    STARTED,
    UNRESOLVED,
    Category,
    Issue,
    IssueChange,
    Severity,
    parse_day,
)

SCREENING_COLUMNS: tuple[str, ...] = (
    "序号",
    "排查日期",
    "所属村(社区)",
    "纠纷类别",
    "当事人",
    "纠纷简要情况",
    "风险等级",
    "化解措施/处理情况",
    "责任单位",
    "责任人",  # the responsible unit's director, with the phone number
    "化解时限",
    "状态",
    "备注",
)
TRACKING_COLUMNS: tuple[str, ...] = (*SCREENING_COLUMNS[:-1], "关注原因", "跟踪记录", "备注")
SCREENING_SHEET = "排查台账"
TRACKING_SHEET = "重点跟踪台账"
TRACK_AFTER_DAYS = 15  # a general dispute open longer than this is tracked
# Actions whose note says how the handling stands (化解措施/处理情况).
PROGRESS_ACTIONS = (STARTED, ASSIGNED, COMMENTED, ESCALATED, REOPENED, RESOLVED_ACTION)
FORMATS = ("xlsx", "csv")

Row = dict[str, Any]


def half_month(day: date) -> tuple[date, date]:
    """The screening period holding `day`: the 1st–15th or the 16th–end of the month."""
    if day.day <= 15:
        return day.replace(day=1), day.replace(day=15)
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=16), day.replace(day=last)


# --- the ledgers --------------------------------------------------------------------------


def screening_ledger(
    session: Session,
    scope: Scope,
    town_code: str,
    period_start: date | str,
    period_end: date | str,
) -> list[Row]:
    """排查台账: the disputes about the town or its villages raised in the period."""
    town = _town_in_scope(session, scope, town_code)
    start, end = _period(period_start, period_end)
    low, high = centres.below_range(town.path)
    stmt = (
        select(Issue)
        .join(Centre, col(Issue.centre_code) == col(Centre.code))
        .where(
            Centre.path >= low,
            Centre.path < high,
            Issue.category == Category.dispute.value,
            Issue.created_at >= _day_start(start),
            Issue.created_at < _day_start(end + timedelta(days=1)),
        )
        .order_by(col(Issue.created_at), col(Issue.id))
    )
    found = list(session.exec(stmt))
    ctx = _Context.load(session, found)
    return [
        dict(zip(SCREENING_COLUMNS, ctx.common(n, issue), strict=True))
        for n, issue in enumerate(found, 1)
    ]


def tracking_ledger(session: Session, scope: Scope, town_code: str, today: date | str) -> list[Row]:
    """重点关注持续跟踪台账: unresolved disputes about the town or its villages that are
    major, open more than 15 days, or past their deadline, oldest first."""
    town = _town_in_scope(session, scope, town_code)
    day = parse_day(today, "today")
    if day is None:
        raise InvalidInput("today", "must be a day as YYYY-MM-DD")
    low, high = centres.below_range(town.path)
    stmt = (
        select(Issue)
        .join(Centre, col(Issue.centre_code) == col(Centre.code))
        .where(
            Centre.path >= low,
            Centre.path < high,
            Issue.category == Category.dispute.value,
            col(Issue.state).in_(UNRESOLVED),
            Issue.created_at < _day_start(day + timedelta(days=1)),
        )
        .order_by(col(Issue.created_at), col(Issue.id))
    )
    tracked = [(i, r) for i in session.exec(stmt) if (r := _tracking_reasons(i, day))]
    ctx = _Context.load(session, [i for i, _ in tracked])
    rows = []
    for n, (issue, reasons) in enumerate(tracked, 1):
        *head, remark = ctx.common(n, issue)
        values = [*head, "; ".join(reasons), ctx.tracking_notes(issue), remark]
        rows.append(dict(zip(TRACKING_COLUMNS, values, strict=True)))
    return rows


def _tracking_reasons(issue: Issue, today: date) -> list[str]:
    """Why the dispute is tracked; empty when it is not."""
    reasons = []
    if issue.severity == Severity.major:
        reasons.append("重大矛盾纠纷")
    age = (today - issue.raised_on).days
    if age > TRACK_AFTER_DAYS:
        reasons.append(f"超过{TRACK_AFTER_DAYS}天未化解(已{age}天)")
    if issue.overdue(today) and issue.deadline is not None:
        reasons.append(f"已逾期(时限{issue.deadline.isoformat()})")
    return reasons


def _town_in_scope(session: Session, scope: Scope, town_code: str) -> Centre:
    town = centres.get_at_level(session, town_code, Level.town, "town")
    return scope.require(town)


def _period(period_start: date | str, period_end: date | str) -> tuple[date, date]:
    start = parse_day(period_start, "period_start")
    end = parse_day(period_end, "period_end")
    if start is None:
        raise InvalidInput("period_start", "must be a day as YYYY-MM-DD")
    if end is None:
        raise InvalidInput("period_end", "must be a day as YYYY-MM-DD")
    if end < start:
        raise InvalidInput("period_end", f"{end.isoformat()} is before {start.isoformat()}")
    return start, end


def _day_start(day: date) -> datetime:
    """Midnight at the start of an Asia/Shanghai day (compared with UTC timestamps)."""
    return datetime.combine(day, time(0), SHANGHAI)


class _Context:
    """Names and histories of a set of issues, read in bulk (not once per row)."""

    def __init__(
        self,
        names: dict[str, str],
        people: dict[str, str],
        changes: dict[int, list[IssueChange]],
        directors: dict[str, str] | None = None,
    ) -> None:
        self.names = names
        self.people = people
        self.changes = changes
        self.directors = directors or {}

    @classmethod
    def load(cls, session: Session, found: Sequence[Issue]) -> _Context:
        ids = [i.id or 0 for i in found]
        changes: dict[int, list[IssueChange]] = {i: [] for i in ids}
        for chunk in in_batches(ids):
            stmt = select(IssueChange).where(col(IssueChange.issue_id).in_(chunk))
            for ch in session.exec(stmt.order_by(col(IssueChange.id))):
                changes[ch.issue_id].append(ch)
        codes = {c for i in found for c in (i.centre_code, i.holder_code, i.assignee_code) if c}
        codes |= {c for chs in changes.values() for ch in chs
                  for c in (ch.from_holder, ch.to_holder, ch.to_assignee) if c}  # fmt: skip
        names: dict[str, str] = {}
        directors: dict[str, str] = {}
        for code_batch in in_batches(codes):
            for code, name, director, phone in session.exec(
                select(Centre.code, Centre.name, Centre.director_name, Centre.director_phone)
                .where(col(Centre.code).in_(code_batch))
            ):
                names[code] = name
                directors[code] = f"{director} {phone}".strip()
        users = {ch.by for chs in changes.values() for ch in chs}
        people: dict[str, str] = {}
        for user_batch in in_batches(users):
            for username, display in session.exec(
                select(Account.username, Account.display_name).where(
                    col(Account.username).in_(user_batch)
                )
            ):
                people[username] = display or username
        return cls(names, people, changes, directors)

    def name(self, code: str | None) -> str:
        return self.names.get(code, code) if code else ""

    def common(self, n: int, issue: Issue) -> list[Any]:
        """The screening ledger's columns for one issue (备注 last)."""
        return [
            n,
            issue.raised_on.isoformat(),
            self.name(issue.centre_code),
            issue.subcategory or Category(issue.category).zh,
            issue.parties,
            issue.description,
            Severity(issue.severity).zh,
            self.handling(issue),
            self.name(issue.assignee_code or issue.holder_code),
            self.directors.get(issue.assignee_code or issue.holder_code or "", ""),
            issue.deadline.isoformat() if issue.deadline else "",
            issue.status_zh,
            self.remark(issue),
        ]

    def handling(self, issue: Issue) -> str:
        """The resolution note when resolved, else the latest note on its handling."""
        for ch in reversed(self.changes.get(issue.id or 0, [])):
            if ch.action in PROGRESS_ACTIONS and ch.note:
                if issue.state == RESOLVED and ch.action != RESOLVED_ACTION:
                    continue
                return ch.note
        return ""

    def remark(self, issue: Issue) -> str:
        parts = [f"问题编号{issue.id}"]
        if issue.escalated:
            parts.append(f"已上报{self.name(issue.holder_code)}")
        if issue.raised_in_call is not None:
            parts.append(f"调度会话{issue.raised_in_call}登记")
        return "; ".join(parts)

    def tracking_notes(self, issue: Issue) -> str:
        """跟踪记录: one line per change, oldest first."""
        lines = []
        for ch in self.changes.get(issue.id or 0, []):
            when = ch.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
            what = ACTION_LABELS[ch.action][0]
            if ch.action == ESCALATED:
                what += f"{self.name(ch.from_holder)}→{self.name(ch.to_holder)}"
            elif ch.action == ASSIGNED:
                what += self.name(ch.to_assignee) or "(撤销)"
            line = f"{when} {what}({self.people.get(ch.by, ch.by)})"
            lines.append(f"{line}: {ch.note}" if ch.note else line)
        return "\n".join(lines)


# --- the files the pages and the CLI hand out ------------------------------------------------


def screening_file(
    session: Session,
    scope: Scope,
    town_code: str,
    period_start: date | str,
    period_end: date | str,
    fmt: str,
) -> bytes:
    """The screening ledger as XLSX or CSV, titled with the town and the period."""
    _check_format(fmt)
    rows = screening_ledger(session, scope, town_code, period_start, period_end)
    if fmt == "csv":
        return spreadsheets.csv_file(rows, SCREENING_COLUMNS)
    town = centres.get(session, town_code.strip())
    start, end = _period(period_start, period_end)
    title = f"{town.name}矛盾纠纷排查台账({start.isoformat()}至{end.isoformat()})"
    return spreadsheets.xlsx_ledger(rows, title, columns=SCREENING_COLUMNS, sheet=SCREENING_SHEET)


def tracking_file(
    session: Session, scope: Scope, town_code: str, today: date | str, fmt: str
) -> bytes:
    """The tracking ledger as XLSX or CSV, titled with the town and the day."""
    _check_format(fmt)
    rows = tracking_ledger(session, scope, town_code, today)
    if fmt == "csv":
        return spreadsheets.csv_file(rows, TRACKING_COLUMNS)
    town = centres.get(session, town_code.strip())
    title = f"{town.name}重点关注持续跟踪矛盾纠纷台账(截至{parse_day(today, 'today')})"
    return spreadsheets.xlsx_ledger(rows, title, columns=TRACKING_COLUMNS, sheet=TRACKING_SHEET)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput("format", f"unknown ledger format {fmt!r}: use xlsx or csv")
