"""What the issue ledger says about a subtree of centres over a span of time — the
queries the weekly report (`logs.coverage`) and the period reports (`logs.periods`)
share, so both count issues the same way.

Rules:
- An issue belongs to the subtree of the centre it concerns (`Issue.centre_code`),
  wherever it is held: one range scan on the centres' paths.
- Spans are half-open, [start, end), in UTC.
- The history rows (`IssueChange`) decide what happened when, never an issue's current
  state: they are append-only, so a past span's answers never change when an issue is
  edited, escalated or reopened later.

Invariant: a fixed number of queries per call, whatever the number of issues (IN lists
are cut by `dispatch.db.in_batches`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from dispatch import centres
from dispatch.centres import Centre
from dispatch.clock import as_utc
from dispatch.db import in_batches

from .issues import REOPENED, RESOLVED_ACTION, UNRESOLVED, Issue, IssueChange


def raised(session: Session, path: str, start: datetime, end: datetime) -> list[tuple[Issue, str]]:
    """Issues about centres at or below `path` created in [start, end), by id, each with
    the path of the centre it concerns."""
    low, high = centres.below_range(path)
    rows = session.exec(
        select(Issue, Centre.path)
        .join(Centre, col(Centre.code) == col(Issue.centre_code))
        .where(Centre.path >= low, Centre.path < high)
        .where(col(Issue.created_at) >= start, col(Issue.created_at) < end)
        .order_by(col(Issue.id))
    ).all()
    return [(issue, centre_path) for issue, centre_path in rows]


def changed(
    session: Session, path: str, start: datetime, end: datetime, actions: Sequence[str]
) -> dict[str, dict[int, tuple[str, str]]]:
    """For each of `actions`: the distinct issues about centres at or below `path` with a
    history row of that action in [start, end), as issue id → (category, severity)."""
    low, high = centres.below_range(path)
    out: dict[str, dict[int, tuple[str, str]]] = {action: {} for action in actions}
    for action, issue_id, category, severity in session.exec(
        select(IssueChange.action, IssueChange.issue_id, Issue.category, Issue.severity)
        .join(Issue, col(Issue.id) == col(IssueChange.issue_id))
        .join(Centre, col(Centre.code) == col(Issue.centre_code))
        .where(Centre.path >= low, Centre.path < high)
        .where(col(IssueChange.action).in_(actions))
        .where(col(IssueChange.at) >= start, col(IssueChange.at) < end)
    ):
        out[action][issue_id] = (category, severity)
    return out


def standing(rows: Iterable[tuple[int, str, datetime]]) -> dict[int, datetime]:
    """Issue → the moment of its resolution that still stands, from (issue id, action,
    at) rows of `resolved` / `reopened` history before a moment, in time order: each
    issue's last row decides."""
    last: dict[int, tuple[str, datetime]] = {}
    for issue_id, action, at in rows:
        last[issue_id] = (action, as_utc(at))
    return {i: at for i, (action, at) in last.items() if action == RESOLVED_ACTION}


def resolved_of_raised(
    session: Session, path: str, start: datetime, end: datetime
) -> dict[int, datetime]:
    """Of the issues `raised` in [start, end): those standing resolved at `end`, each
    with the moment of that resolution."""
    low, high = centres.below_range(path)
    return standing(
        session.exec(
            select(IssueChange.issue_id, IssueChange.action, IssueChange.at)
            .join(Issue, col(Issue.id) == col(IssueChange.issue_id))
            .join(Centre, col(Centre.code) == col(Issue.centre_code))
            .where(Centre.path >= low, Centre.path < high)
            .where(col(Issue.created_at) >= start, col(Issue.created_at) < end)
            .where(col(IssueChange.at) < end)
            .where(col(IssueChange.action).in_((RESOLVED_ACTION, REOPENED)))
            .order_by(col(IssueChange.at), col(IssueChange.id))
        ).all()
    )


def overdue(
    session: Session, path: str, end: datetime, due_before: date
) -> list[tuple[Issue, str]]:
    """Issues about centres at or below `path` raised before `end`, with a deadline
    before `due_before` (the issue's current deadline: edits keep no dated deadline) and
    not standing resolved at `end`, each with its centre's path.

    Candidates are those not resolved now or resolved only at or after `end` (a
    superset: an issue unresolved at `end` is either still unresolved or was last
    resolved later); their history before `end` decides."""
    low, high = centres.below_range(path)
    candidates = session.exec(
        select(Issue, Centre.path)
        .join(Centre, col(Centre.code) == col(Issue.centre_code))
        .where(Centre.path >= low, Centre.path < high, col(Issue.created_at) < end)
        .where(col(Issue.deadline).is_not(None), col(Issue.deadline) < due_before)
        .where(
            or_(
                col(Issue.state).in_(UNRESOLVED),
                col(Issue.resolved_at).is_(None),
                col(Issue.resolved_at) >= end,
            )
        )
    ).all()
    rows: list[tuple[datetime, int, int, str]] = []  # at, change id, issue id, action
    for chunk in in_batches(issue.id or 0 for issue, _path in candidates):
        rows += [
            (as_utc(at), change_id or 0, issue_id, action)
            for change_id, issue_id, action, at in session.exec(
                select(IssueChange.id, IssueChange.issue_id, IssueChange.action, IssueChange.at)
                .where(col(IssueChange.issue_id).in_(chunk), col(IssueChange.at) < end)
                .where(col(IssueChange.action).in_((RESOLVED_ACTION, REOPENED)))
            )
        ]
    rows.sort()  # time order; ties by change id, the order they were written
    resolved = standing((issue_id, action, at) for at, _id, issue_id, action in rows)
    return [(issue, p) for issue, p in candidates if (issue.id or 0) not in resolved]
