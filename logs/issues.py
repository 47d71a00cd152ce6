"""The issue ledger (问题台账): disputes, hazards, leads and anomalies raised in a call or
afterwards, followed to their end, and escalated village → town → district when major.

Invariants:
- `holder_code` (the centre responsible now) is always the concerned centre
  (`centre_code`) or one of its ancestors. An issue starts held by the centre it
  concerns, and only `escalate` changes the holder, one level up at a time. Hence
  "held elsewhere than where it arose" means "arrived by escalation", and seeing the
  concerned centre is enough to see the issue wherever it is held.
- Every change appends exactly one `IssueChange` in the caller's transaction; changes
  are never updated or deleted, so a resolved issue keeps its whole history.
- Identity comes from the `Scope` only. Acting on an issue (start, assign, escalate,
  resolve, reopen, edit) needs a scope covering its holder; seeing and commenting need
  a scope covering the centre it concerns (a village keeps following its own issue after
  it was escalated above it).
- A major issue is never resolved while a village holds it: it must be reported one
  level up first (重大矛盾风险及时报告).
- Nothing here commits or publishes: each action returns an `Outcome` whose events the
  caller publishes after its commit. Input is checked in full before anything is
  written, so a refused action leaves the session untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, Session, SQLModel, col, select

from dispatch import calls, centres, clock
from dispatch.accounts import Scope
from dispatch.centres import Centre, Level
from dispatch.clock import SHANGHAI, utcnow
from dispatch.errors import Conflict, InvalidInput, NotAuthorised, NotFound
from dispatch.events import Event


class Category(StrEnum):
    dispute = "dispute"
    hazard = "hazard"
    lead = "lead"
    anomaly = "anomaly"
    other = "other"

    @property
    def zh(self) -> str:
        return CATEGORY_LABELS[self][0]


class Severity(StrEnum):
    general = "general"
    major = "major"

    @property
    def zh(self) -> str:
        return SEVERITY_LABELS[self][0]


# What ledgers, pages and reports call each category and severity (Chinese, English).
CATEGORY_LABELS: dict[Category, tuple[str, str]] = {
    Category.dispute: ("矛盾纠纷", "Dispute"),
    Category.hazard: ("隐患", "Hazard"),
    Category.lead: ("线索", "Lead"),
    Category.anomaly: ("异常情况", "Anomaly"),
    Category.other: ("其他", "Other"),
}
SEVERITY_LABELS: dict[Severity, tuple[str, str]] = {
    Severity.general: ("一般", "General"),
    Severity.major: ("重大", "Major"),
}
CATEGORY_ALIASES: dict[str, Category] = {c.value: c for c in Category} | {
    **{zh: c for c, (zh, _en) in CATEGORY_LABELS.items()},
    "纠纷": Category.dispute,
    "问题隐患": Category.hazard,
    "异常": Category.anomaly,
}
# The seed says 较大 at village level and 重大 at town level; both go one level up.
SEVERITY_ALIASES: dict[str, Severity] = {s.value: s for s in Severity} | {
    "一般": Severity.general,
    "重大": Severity.major,
    "较大": Severity.major,
}

OPEN, IN_PROGRESS, RESOLVED = "open", "in_progress", "resolved"
STATES = (OPEN, IN_PROGRESS, RESOLVED)
UNRESOLVED = (OPEN, IN_PROGRESS)
STATE_LABELS: dict[str, tuple[str, str]] = {
    OPEN: ("未化解", "open"),
    IN_PROGRESS: ("化解中", "in progress"),
    RESOLVED: ("已化解", "resolved"),
}
ESCALATED_ZH = "已上报"  # an unresolved issue held above the centre it concerns

RAISED, ASSIGNED, STARTED, ESCALATED = "raised", "assigned", "started", "escalated"
RESOLVED_ACTION, REOPENED, COMMENTED, EDITED = "resolved", "reopened", "commented", "edited"
ACTIONS = (RAISED, ASSIGNED, STARTED, ESCALATED, RESOLVED_ACTION, REOPENED, COMMENTED, EDITED)
# What an issue's history calls each step, in the ledgers and on the pages.
ACTION_LABELS: dict[str, tuple[str, str]] = {
    RAISED: ("登记", "raised"),
    ASSIGNED: ("交办", "assigned"),
    STARTED: ("开始化解", "started"),
    ESCALATED: ("上报", "escalated"),
    RESOLVED_ACTION: ("化解完成", "resolved"),
    REOPENED: ("重新打开", "reopened"),
    COMMENTED: ("跟踪记录", "commented"),
    EDITED: ("修改", "edited"),
}

# The lowest level allowed to resolve a major issue: a village must report it upward.
MAJOR_RESOLVED_FROM = Level.town
LEVEL_RANK = {Level.village: 0, Level.town: 1, Level.district: 2}

PARTIES_MAX = 500
DESCRIPTION_MAX = 2000
NOTE_MAX = 2000
SUBCATEGORY_MAX = 20
# Control characters other than tab and newline (free text may have several lines).
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
EDITABLE = frozenset({"category", "subcategory", "severity", "parties", "description", "deadline"})


class Issue(SQLModel, table=True):
    __tablename__ = "issue"
    # The escalation inbox: unresolved issues held by one centre.
    __table_args__ = (Index("ix_issue_holder_state", "holder_code", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    category: str = Field(max_length=10)
    # What kind of dispute (婚姻家庭, 邻里, 土地山林…): the ledger's 纠纷类别. Free text.
    subcategory: str = Field(default="", max_length=SUBCATEGORY_MAX)
    severity: str = Field(max_length=8)
    centre_code: str = Field(foreign_key="centre.code", index=True)
    holder_code: str = Field(foreign_key="centre.code")
    parties: str = Field(default="", max_length=PARTIES_MAX)
    description: str = Field(sa_column=Column(Text, nullable=False))
    deadline: date | None = None
    assignee_code: str | None = Field(default=None, foreign_key="centre.code")
    state: str = Field(default=OPEN, max_length=12)
    raised_by: str = Field(max_length=64)
    raised_in_call: int | None = Field(default=None, foreign_key="call.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None

    @property
    def escalated(self) -> bool:
        return self.holder_code != self.centre_code

    @property
    def status_zh(self) -> str:
        """未化解 / 化解中 / 已化解, or 已上报 while held above the centre it concerns."""
        if self.state != RESOLVED and self.escalated:
            return ESCALATED_ZH
        return STATE_LABELS[self.state][0]

    @property
    def raised_on(self) -> date:
        """The day it was raised, in Asia/Shanghai."""
        return self.created_at.astimezone(SHANGHAI).date()

    def overdue(self, today: date) -> bool:
        return self.state in UNRESOLVED and self.deadline is not None and self.deadline < today

    def as_dict(self, today: date | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "category_zh": Category(self.category).zh,
            "subcategory": self.subcategory,
            "severity": self.severity,
            "severity_zh": Severity(self.severity).zh,
            "centre": self.centre_code,
            "holder": self.holder_code,
            "escalated": self.escalated,
            "parties": self.parties,
            "description": self.description,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "assignee": self.assignee_code,
            "state": self.state,
            "status_zh": self.status_zh,
            "overdue": self.overdue(today) if today is not None else None,
            "raised_by": self.raised_by,
            "call_id": self.raised_in_call,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }


class IssueChange(SQLModel, table=True):
    """One change of an issue: who, when, what. Append-only."""

    __tablename__ = "issue_change"

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    by: str = Field(max_length=64)  # username
    action: str = Field(max_length=10)
    from_state: str | None = Field(default=None, max_length=12)
    to_state: str = Field(max_length=12)
    from_holder: str | None = Field(default=None, max_length=12)
    to_holder: str = Field(max_length=12)
    from_assignee: str | None = Field(default=None, max_length=12)
    to_assignee: str | None = Field(default=None, max_length=12)
    note: str = Field(default="", sa_column=Column(Text, nullable=False))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "issue_id": self.issue_id,
            "at": self.at.isoformat(),
            "by": self.by,
            "action": self.action,
            "action_zh": ACTION_LABELS[self.action][0],
            "from_state": self.from_state,
            "to_state": self.to_state,
            "from_holder": self.from_holder,
            "to_holder": self.to_holder,
            "from_assignee": self.from_assignee,
            "to_assignee": self.to_assignee,
            "note": self.note,
        }


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueRaised(Event):
    name: ClassVar[str] = "issue_raised"
    issue_id: int
    centre: str
    category: str
    severity: str
    by: str
    call_id: int | None = None

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.centre,)


@dataclass(frozen=True)
class IssueEscalated(Event):
    """A centre's escalation inbox has a new issue: tell the new holder."""

    name: ClassVar[str] = "issue_escalated"
    issue_id: int
    from_centre: str
    to_centre: str
    centre: str  # the centre the issue concerns
    category: str
    severity: str
    by: str
    note: str = ""

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.to_centre,)


@dataclass(frozen=True)
class IssueResolved(Event):
    """Tell the holder and the centre the issue concerns (if it was escalated away)."""

    name: ClassVar[str] = "issue_resolved"
    issue_id: int
    centre: str
    holder: str
    by: str

    @property
    def centres(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.holder, self.centre)))


@dataclass(frozen=True)
class Outcome:
    """What an action did: the issue as it now stands, the history row it appended, and
    the events to publish once the transaction has committed."""

    issue: Issue
    change: IssueChange
    events: tuple[Event, ...] = ()


# --- parsing user input ------------------------------------------------------------------


def parse_category(value: Any, field: str = "category") -> Category:
    key = str(value or "").strip().lower()
    if key not in CATEGORY_ALIASES:
        raise InvalidInput(
            field, f"unknown category {value!r}: use dispute, hazard, lead, anomaly or other"
        )
    return CATEGORY_ALIASES[key]


def parse_severity(value: Any, field: str = "severity") -> Severity:
    key = str(value or "").strip().lower()
    if key not in SEVERITY_ALIASES:
        raise InvalidInput(field, f"unknown severity {value!r}: use general or major")
    return SEVERITY_ALIASES[key]


def parse_state(value: Any, field: str = "state") -> str:
    if value not in STATES:
        raise InvalidInput(field, f"unknown state {value!r}: use {', '.join(STATES)}")
    return str(value)


def parse_day(value: date | str | None, field: str) -> date | None:
    """A day as a `date` or "YYYY-MM-DD"; None or "" for none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):  # a datetime is a date too; a day is wanted
        raise InvalidInput(field, "must be a day (YYYY-MM-DD), not a time")
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a day as YYYY-MM-DD, got {value!r}")
    text = value.strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, f"must be a day as YYYY-MM-DD, got {value!r}") from None


def parse_text(value: Any, field: str, max_len: int, *, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    text = value.strip()
    if required and not text:
        raise InvalidInput(field, "must not be empty")
    if len(text) > max_len:
        raise InvalidInput(field, f"longer than {max_len} characters")
    if CONTROL_RE.search(text):
        raise InvalidInput(field, "contains a control character")
    return text


def _parse_deadline(value: date | str | None, now: datetime) -> date | None:
    deadline = parse_day(value, "deadline")
    if deadline is not None and deadline < clock.local_date(now):
        raise InvalidInput("deadline", f"{deadline.isoformat()} is already past")
    return deadline


def _known_centre(session: Session, value: Any, field: str) -> Centre:
    code = centres.parse_code(value if isinstance(value, str) else str(value or ""), field)
    centre = session.get(Centre, code)
    if centre is None:
        raise InvalidInput(field, f"no centre has the code {code}")
    return centre


def _assignee_under(session: Session, value: Any, holder: Centre) -> Centre:
    """The assignee must lie in the holder's subtree (so in the actor's scope too)."""
    assignee = _known_centre(session, value, "assignee")
    if not centres.in_subtree(holder.path, assignee.path):
        raise InvalidInput(
            "assignee", f"{assignee.code} is outside the scope of the holder {holder.code}"
        )
    if not assignee.active:
        raise InvalidInput("assignee", f"centre {assignee.code} is inactive")
    return assignee


# --- raising -----------------------------------------------------------------------------


def raise_issue(
    session: Session,
    scope: Scope,
    *,
    centre: str,
    category: str,
    severity: str,
    parties: str,
    description: str,
    deadline: date | str | None,
    call_id: int | None = None,
    assignee: str | None = None,
    subcategory: str = "",
    now: datetime | None = None,
) -> Outcome:
    """Record an issue about `centre` (which the scope must cover), held by that centre,
    raised at `now` (the application's clock; default: the real time) — as every action
    below takes its `now`: the change's time, and the day a new deadline must not precede.

    With `call_id`, the call must exist, be visible to the scope, and `centre` must be
    its caller or one of its invited centres."""
    concerned = scope.require(_known_centre(session, centre, "centre"))
    category_ = parse_category(category)
    severity_ = parse_severity(severity)
    parties_ = parse_text(parties, "parties", PARTIES_MAX, required=False)
    description_ = parse_text(description, "description", DESCRIPTION_MAX, required=True)
    subcategory_ = parse_text(subcategory, "subcategory", SUBCATEGORY_MAX, required=False)
    now = now or utcnow()
    deadline_ = _parse_deadline(deadline, now)
    assignee_ = _assignee_under(session, assignee, concerned) if assignee else None
    if call_id is not None:
        _check_call(session, scope, call_id, concerned)
    issue = Issue(
        category=category_.value,
        subcategory=subcategory_,
        severity=severity_.value,
        centre_code=concerned.code,
        holder_code=concerned.code,
        parties=parties_,
        description=description_,
        deadline=deadline_,
        assignee_code=assignee_.code if assignee_ else None,
        raised_by=scope.username,
        raised_in_call=call_id,
        created_at=now,
        updated_at=now,
    )
    session.add(issue)
    session.flush()
    change = _append(session, scope, issue, RAISED, _Before(None, None, None), at=now)
    event = IssueRaised(issue.id or 0, concerned.code, issue.category, issue.severity,
                        scope.username, call_id)  # fmt: skip
    return Outcome(issue, change, (event,))


def _check_call(session: Session, scope: Scope, call_id: Any, concerned: Centre) -> None:
    if isinstance(call_id, bool) or not isinstance(call_id, int):
        raise InvalidInput("call_id", f"must be a call's number, got {call_id!r}")
    call = session.get(calls.Call, call_id)
    if call is None:
        raise InvalidInput("call_id", f"no call has the number {call_id}")
    if not calls.may_see(session, scope, call):
        raise NotAuthorised(f"call {call_id} is outside your scope")
    invited = session.get(calls.Invitation, (call_id, concerned.code)) is not None
    if concerned.code != call.caller_code and not invited:
        reason = f"centre {concerned.code} is neither the caller of call {call_id} nor invited"
        raise InvalidInput("centre", reason)


# --- actions on an issue ---------------------------------------------------------------


def _load(session: Session, issue_id: int, *, lock: bool = False) -> Issue:
    # FOR UPDATE (PostgreSQL) keeps two concurrent actions from both passing a state check.
    issue = session.get(Issue, issue_id, with_for_update=lock)
    if issue is None:
        raise NotFound("issue", str(issue_id))
    return issue


def _for_action(session: Session, scope: Scope, issue_id: int) -> tuple[Issue, Centre]:
    """The issue and its holder, if the scope may act on it (it covers the holder)."""
    issue = _load(session, issue_id, lock=True)
    holder = centres.get(session, issue.holder_code)
    if not scope.covers(holder):
        concerned = centres.get(session, issue.centre_code)
        if scope.covers(concerned):
            raise NotAuthorised(
                f"issue {issue_id} is now held by {holder.name} ({holder.code}); only that "
                "centre or one above it may act on it"
            )
        raise NotAuthorised(f"issue {issue_id} is outside your scope")
    return issue, holder


@dataclass(frozen=True)
class _Before:
    """What an action changes, as it was before (None for a new issue)."""

    state: str | None
    holder: str | None
    assignee: str | None


def _before(issue: Issue) -> _Before:
    return _Before(issue.state, issue.holder_code, issue.assignee_code)


def _append(
    session: Session,
    scope: Scope,
    issue: Issue,
    action: str,
    before: _Before,
    note: str = "",
    at: datetime | None = None,
) -> IssueChange:
    """Append the history row of a change already applied to `issue` (same transaction)."""
    at = at or utcnow()
    issue.updated_at = at
    session.add(issue)
    change = IssueChange(
        issue_id=issue.id or 0,
        at=at,
        by=scope.username,
        action=action,
        from_state=before.state,
        to_state=issue.state,
        from_holder=before.holder,
        to_holder=issue.holder_code,
        from_assignee=before.assignee,
        to_assignee=issue.assignee_code,
        note=note,
    )
    session.add(change)
    session.flush()
    return change


def _require_unresolved(issue: Issue, doing: str) -> None:
    if issue.state == RESOLVED:
        raise Conflict(f"issue {issue.id} is resolved; reopen it before you {doing} it")


def start(
    session: Session, scope: Scope, issue_id: int, note: str = "", *, now: datetime | None = None
) -> Outcome:
    """open → in_progress."""
    issue, _ = _for_action(session, scope, issue_id)
    note_ = parse_text(note, "note", NOTE_MAX, required=False)
    if issue.state != OPEN:
        raise Conflict(f"issue {issue_id} is {issue.state.replace('_', ' ')}, not open")
    before = _before(issue)
    issue.state = IN_PROGRESS
    return Outcome(issue, _append(session, scope, issue, STARTED, before, note_, now))


def assign(
    session: Session, scope: Scope, issue_id: int, assignee: str | None, note: str = "", *,
    now: datetime | None = None,
) -> Outcome:  # fmt: skip
    """Name the centre that is to act (within the holder's subtree); None clears it."""
    issue, holder = _for_action(session, scope, issue_id)
    target = _assignee_under(session, assignee, holder) if assignee else None
    note_ = parse_text(note, "note", NOTE_MAX, required=False)
    _require_unresolved(issue, "assign")
    code = target.code if target else None
    if code == issue.assignee_code:
        raise Conflict(f"issue {issue_id} is already assigned to {code or 'nobody'}")
    before = _before(issue)
    issue.assignee_code = code
    return Outcome(issue, _append(session, scope, issue, ASSIGNED, before, note_, now))


def resolve(
    session: Session, scope: Scope, issue_id: int, note: str, *, now: datetime | None = None
) -> Outcome:
    """Close the issue where it is held; `note` says how it was resolved (化解措施)."""
    issue, holder = _for_action(session, scope, issue_id)
    note_ = parse_text(note, "note", NOTE_MAX, required=True)
    _require_unresolved(issue, "resolve")
    rank = LEVEL_RANK[Level(holder.level)]
    if issue.severity == Severity.major and rank < LEVEL_RANK[MAJOR_RESOLVED_FROM]:
        raise Conflict(
            f"issue {issue_id} is a major issue held by the village {holder.code}: a village "
            "cannot resolve it; escalate it to its town (重大矛盾风险及时报告)"
        )
    before = _before(issue)
    now = now or utcnow()
    issue.state, issue.resolved_at = RESOLVED, now
    change = _append(session, scope, issue, RESOLVED_ACTION, before, note_, at=now)
    event = IssueResolved(issue.id or 0, issue.centre_code, issue.holder_code, scope.username)
    return Outcome(issue, change, (event,))


def escalate(
    session: Session, scope: Scope, issue_id: int, note: str = "", *, now: datetime | None = None
) -> Outcome:
    """Report the issue one level up: the parent of its holder holds it, open again, with
    nobody assigned until the new holder assigns it."""
    issue, holder = _for_action(session, scope, issue_id)
    note_ = parse_text(note, "note", NOTE_MAX, required=False)
    _require_unresolved(issue, "escalate")
    if holder.parent_code is None:
        raise Conflict(
            f"issue {issue_id} is held by {holder.name} ({holder.code}), the top of the "
            "hierarchy: it cannot be escalated further"
        )
    parent = centres.get(session, holder.parent_code)
    before = _before(issue)
    issue.state, issue.holder_code, issue.assignee_code = OPEN, parent.code, None
    change = _append(session, scope, issue, ESCALATED, before, note_, now)
    event = IssueEscalated(issue.id or 0, holder.code, parent.code, issue.centre_code,
                           issue.category, issue.severity, scope.username, note_)  # fmt: skip
    return Outcome(issue, change, (event,))


def reopen(
    session: Session, scope: Scope, issue_id: int, note: str, *, now: datetime | None = None
) -> Outcome:
    """resolved → open, at the level that holds it; `note` says why."""
    issue, _ = _for_action(session, scope, issue_id)
    note_ = parse_text(note, "note", NOTE_MAX, required=True)
    if issue.state != RESOLVED:
        raise Conflict(f"issue {issue_id} is not resolved")
    before = _before(issue)
    issue.state, issue.resolved_at = OPEN, None
    return Outcome(issue, _append(session, scope, issue, REOPENED, before, note_, now))


def comment(
    session: Session, scope: Scope, issue_id: int, note: str, *, now: datetime | None = None
) -> Outcome:
    """A tracking note (跟踪记录). Anyone who sees the issue may add one, also the village
    it concerns after it was escalated; a resolved issue takes notes too."""
    issue = get_issue(session, scope, issue_id)
    note_ = parse_text(note, "note", NOTE_MAX, required=True)
    return Outcome(issue, _append(session, scope, issue, COMMENTED, _before(issue), note_, now))


def edit(
    session: Session, scope: Scope, issue_id: int, changes: dict[str, Any], *,
    now: datetime | None = None,
) -> Outcome:  # fmt: skip
    """Correct the recorded facts (category, subcategory, severity, parties, description,
    deadline) of an unresolved issue; the note keeps the old and new values.

    A village account may not lower a major issue to general: that would let it resolve
    what it must report."""
    issue, _ = _for_action(session, scope, issue_id)
    unknown = sorted(set(changes) - EDITABLE)
    if unknown:
        raise InvalidInput(unknown[0], f"unknown or read-only field; editable: {sorted(EDITABLE)}")
    new: dict[str, Any] = {}
    if "category" in changes:
        new["category"] = parse_category(changes["category"]).value
    if "severity" in changes:
        new["severity"] = parse_severity(changes["severity"]).value
    if "subcategory" in changes:
        new["subcategory"] = parse_text(
            changes["subcategory"], "subcategory", SUBCATEGORY_MAX, required=False
        )
    if "parties" in changes:
        new["parties"] = parse_text(changes["parties"], "parties", PARTIES_MAX, required=False)
    if "description" in changes:
        new["description"] = parse_text(
            changes["description"], "description", DESCRIPTION_MAX, required=True
        )
    if "deadline" in changes:
        now = now or utcnow()
        new["deadline"] = _parse_deadline(changes["deadline"], now)
    _require_unresolved(issue, "edit")
    if (
        issue.severity == Severity.major
        and new.get("severity") == Severity.general
        and scope.role.level is Level.village
    ):
        raise NotAuthorised("a village centre cannot lower a major issue to general")
    diff = {k: (getattr(issue, k), v) for k, v in new.items() if getattr(issue, k) != v}
    if not diff:
        raise Conflict(f"issue {issue_id}: nothing to change")
    before = _before(issue)
    for key, (_old, value) in diff.items():
        setattr(issue, key, value)
    note = "\n".join(f"{k}: {_shown(old)} → {_shown(v)}" for k, (old, v) in sorted(diff.items()))
    return Outcome(issue, _append(session, scope, issue, EDITED, before, note, now))


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return value.isoformat() if isinstance(value, date) else str(value)


# --- queries -----------------------------------------------------------------------------


def get_issue(session: Session, scope: Scope, issue_id: int) -> Issue:
    """The issue if the scope covers the centre it concerns (wherever it is held now)."""
    issue = _load(session, issue_id)
    if not scope.covers(centres.get(session, issue.centre_code)):
        raise NotAuthorised(f"issue {issue_id} is outside your scope")
    return issue


def history(session: Session, scope: Scope, issue_id: int) -> list[IssueChange]:
    get_issue(session, scope, issue_id)
    stmt = select(IssueChange).where(IssueChange.issue_id == issue_id)
    return list(session.exec(stmt.order_by(col(IssueChange.id))))


def board(
    session: Session,
    scope: Scope,
    centre: str,
    *,
    state: str | None = None,
    overdue_only: bool = False,
    today: date,
) -> list[Issue]:
    """Issues concerning (hence also held by) centres in `centre`'s subtree, newest first.

    Holders are ancestors-or-self of the concerned centre, so an issue held in the subtree
    concerns the subtree too: one path-range scan over the concerned centre finds both."""
    root = scope.require(_known_centre(session, centre, "centre"))
    state_ = parse_state(state) if state is not None else None
    low, high = centres.below_range(root.path)
    stmt = (
        select(Issue)
        .join(Centre, col(Issue.centre_code) == col(Centre.code))
        .where(Centre.path >= low, Centre.path < high)
    )
    if state_ is not None:
        stmt = stmt.where(Issue.state == state_)
    if overdue_only:
        stmt = stmt.where(
            col(Issue.state).in_(UNRESOLVED),
            col(Issue.deadline).is_not(None),
            col(Issue.deadline) < today,
        )
    stmt = stmt.order_by(col(Issue.created_at).desc(), col(Issue.id).desc())
    return list(session.exec(stmt))


def inbox(session: Session, scope: Scope, centre: str) -> list[Issue]:
    """The escalation inbox: unresolved issues held by exactly `centre` that were raised
    about a centre below it (held elsewhere than where they arose = escalated), oldest
    update first."""
    holder = scope.require(_known_centre(session, centre, "centre"))
    stmt = (
        select(Issue)
        .where(
            Issue.holder_code == holder.code,
            col(Issue.state).in_(UNRESOLVED),
            col(Issue.centre_code) != holder.code,
        )
        .order_by(col(Issue.updated_at), col(Issue.id))
    )
    return list(session.exec(stmt))


def raised_in(session: Session, scope: Scope, call_id: int) -> list[Issue]:
    """The issues raised in one call that the scope may see (for the call's journal)."""
    stmt = select(Issue).where(Issue.raised_in_call == call_id).order_by(col(Issue.id))
    return [i for i in session.exec(stmt) if scope.covers(centres.get(session, i.centre_code))]
