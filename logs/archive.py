"""Reports as produced on time and kept: one row per (kind, period, district), holding
the report's canonical JSON and its sha256.

Invariant: a stored report is never replaced. Producing it again (a run the scheduler
missed, one killed halfway, a second server) finds the row and stops, so each period
has exactly one report; and because the JSON carries no production time, producing
it twice from the same data gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Column, Field, Session, SQLModel, col, select

from dispatch import centres
from dispatch.accounts import Scope
from dispatch.clock import SHANGHAI, utcnow
from dispatch.errors import NotFound
from schedules.workdays import IsoWeek

from . import coverage


class StoredReport(SQLModel, table=True):
    __tablename__ = "stored_report"
    __table_args__ = (UniqueConstraint("kind", "label", "district_code"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)  # weekly / monthly / quarterly / half-year
    label: str = Field(max_length=20)  # "2026-W47", "2026-11", "2026-Q4", "2026-H2"
    district_code: str = Field(foreign_key="centre.code", index=True)
    produced_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    sha256: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))

    def summary(self) -> dict[str, Any]:
        """The list entry; `created_at` in Asia/Shanghai (+08:00), like every shown time."""
        at = self.created_at if self.created_at.tzinfo else self.created_at.replace(tzinfo=UTC)
        return {"id": self.id, "kind": self.kind, "label": self.label,
                "district": self.district_code,
                "created_at": at.astimezone(SHANGHAI).isoformat(),
                "sha256": self.sha256}  # fmt: skip


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def find(session: Session, kind: str, label: str, district: str) -> StoredReport | None:
    stmt = select(StoredReport).where(
        StoredReport.kind == kind, StoredReport.label == label,
        StoredReport.district_code == district,
    )  # fmt: skip
    return session.exec(stmt).first()


def store(session: Session, kind: str, label: str, district: str, data: dict[str, Any],
          by: str) -> StoredReport:  # fmt: skip
    """Keep a produced report, unless this period's report is already kept."""
    existing = find(session, kind, label, district)
    if existing is not None:
        return existing
    body = canonical(data)
    row = StoredReport(kind=kind, label=label, district_code=district, produced_by=by,
                       sha256=hashlib.sha256(body.encode()).hexdigest(), body=body)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def store_weekly(session: Session, district: str, week: IsoWeek, by: str) -> StoredReport:
    existing = find(session, "weekly", str(week), district)
    if existing is not None:
        return existing
    report = coverage.weekly_report(session, district, week)
    return store(session, "weekly", str(week), district, report.as_dict(), by)


KIND_ORDER = ("half-year", "quarterly", "monthly", "weekly")


def period_start(row: StoredReport) -> date:
    """The first day of a stored report's period, from its label ("2026-W47", "2026-11",
    "2026-Q4@town", "2026-H2")."""
    label = row.label.partition("@")[0]
    if row.kind == "weekly":
        return IsoWeek.parse(label).monday
    year, _sep, rest = label.partition("-")
    if rest[:1] in "Qq":
        return date(int(year), (int(rest[1:]) - 1) * 3 + 1, 1)
    if rest[:1] in "Hh":
        return date(int(year), (int(rest[1:]) - 1) * 6 + 1, 1)
    return date(int(year), int(rest), 1)


def list_for(session: Session, scope: Scope) -> list[StoredReport]:
    """The stored reports of the districts in the scope, newest period first (the longer
    period first on the same day). A town or village reads its district's list, but of
    the towns' quarterly reports only its own town's; each report is cut to its scope
    when shown."""
    stmt = select(StoredReport).order_by(col(StoredReport.created_at).desc()).limit(500)
    rows = list(session.exec(stmt))
    if scope.root_path is not None:
        parts = scope.root_path.strip("/").split("/")
        town = parts[1] if len(parts) >= 2 else None
        rows = [
            r for r in rows
            if r.district_code == parts[0]
            and (town is None or "@" not in r.label or r.label.endswith("@" + town))
        ]  # fmt: skip
    rows.sort(key=lambda r: (period_start(r), -KIND_ORDER.index(r.kind)
                             if r.kind in KIND_ORDER else 0, r.label), reverse=True)  # fmt: skip
    return rows


def get(session: Session, scope: Scope, report_id: int) -> StoredReport:
    row = session.get(StoredReport, report_id)
    if row is None or (scope.root_path is not None
                       and not scope.root_path.startswith(row.district_code + "/")):  # fmt: skip
        raise NotFound("report", str(report_id))
    centres.get(session, row.district_code)
    return row
