"""The weekly coverage compliance report (视频调度覆盖情况周报) of a district, as data.

Rules (a district's week is Monday 00:00 to the next Monday 00:00, Asia/Shanghai):

- Required pairs come from the database as `schedules.planner.district_towns` sees it:
  the district's active towns and, under each active town, its active villages (none
  at all when the district itself is inactive). Pairs: (district → town) and (district →
  village), kind "district"; (town → village), kind "patrol".
- An *attempt* is one call whose caller is the pair's caller, created in the week, with
  an invitation of the pair's callee. It *covers* the pair by the one coverage rule
  (`schedules.outcome.covers`): the callee has a `verified` event in it, or its live
  video (the largest `seconds_live` of its `verified` / `left` events) is positive and
  at least `policy.min_verified_seconds`; each invited centre of a meeting on its own.
  Any kind of call counts (a district meeting covers every invited centre verified in
  it; an ad-hoc inspection or a screening meeting counts too).
- Covered pair: the best attempt is the earliest covering one answered on time if
  there is any, else the earliest covering one. `makeup_used` is True when every
  covering attempt was launched for a rota slot whose `makeup_of` is set.
- Missed pair, with one reason: with attempts, the best is the one that got furthest —
  "no_video" (answered or joined, video not verified) over "declined" over "no_answer"
  (not answered, or never answered before the call ended) — the latest on a tie;
  without attempts, "never_launched" if a rota slot (any status but cancelled) of the
  week has this caller and this callee, else "not_scheduled" (no such slot or no rota).
- `answered_on_time`: the best attempt's `answered` event's `seconds_to_answer` (or the
  time since the ring when it carries none) is ≤ `policy.answer_deadline_seconds`;
  None when the best attempt was never answered (and for pairs without attempts).
  `seconds_verified` is the largest live-video reading over all the pair's attempts.
- Exempt week: the stored rota of (district, week) says exempt, or the working-day
  calendar has no working day in the week. Then there are no pairs and every coverage
  figure is None, never 0 %; issues and the chain head are still reported.
- The week's state: `exempt` (above); `no_rota_yet` — the district has no rota for the
  week and none for any earlier week (the system was not yet in use): nothing is counted
  or ranked, every figure is None (never 0 %), and only pairs already covered are listed;
  `in_progress` — the report was asked for with a clock reading `now` before the week's
  end: a pair not yet covered is *pending* (never missed) while a planned slot of its
  caller naming it is still ahead, or while no slot names it at all (an ad-hoc call can
  still cover it); it is missed only when every slot naming it has passed; else `ended`.
  Without `now` (stored reports, history) a week is read as ended.
- `not_planned_days`: working days of the week that had already passed when its rota
  was built (built mid-week): working days all the same, with nothing planned on them.
- Coverage % = covered / required × 100, rounded half up to one decimal; None when
  nothing is required. Towns are ranked by coverage % descending, then name, then code.
- Repeat misses (督导): a pair missed this week and in the week before is listed with
  `weeks_running`: this week plus the unbroken run of earlier weeks that did not cover
  it, looking back at most REPEAT_LOOKBACK_WEEKS weeks. Exempt weeks are skipped (they
  neither break nor extend a run); weeks before the district's first stored rota end the
  run (the system was not yet in use). `capped` says the run reached the look-back limit.
- Issues of the week concern centres in the report's view: raised = created in the
  week; escalated / resolved = distinct issues with an `escalated` / `resolved` history
  row (`IssueChange`) in the week. History rows are append-only, so a past week's figures
  never change when an issue is reopened later.
- Scope: a scope covering the district sees everything. A town operator's (or a
  village's) scope inside the district sees exactly the pairs whose callee it covers
  (for a town: district → town, district → its villages, town → its villages), and only
  its own issues; no other centre appears anywhere. A scope outside the district is
  refused. The district's journal chain head is public proof and shown to every scope.

Invariants:
- A pure read: nothing here writes, and the report reads no clock (the caller passes
  `now` or not), so the same rows and `now` give the same report, whenever it is run.
- Bulk reads only: one query per kind of row (centres, rota, calls, invitations,
  attendance, issues), never one per pair; IN lists are cut at IN_BATCH keys (SQLite's
  999-variable limit). Stored times are UTC; the week's bounds are passed in UTC.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import Session, col, select

from dispatch import calls, centres
from dispatch.accounts import Scope
from dispatch.calls import AttendanceRow, Call, Invitation
from dispatch.centres import Centre, Level
from dispatch.clock import SHANGHAI, as_utc
from dispatch.db import in_batches
from dispatch.errors import NotAuthorised
from schedules import outcome, plans, workdays
from schedules.plans import RotaSlot, RotaWeek
from schedules.policy import Policy, policy_for
from schedules.workdays import IsoWeek

from . import issue_history
from .issues import ESCALATED, RESOLVED_ACTION, Category, Severity
from .journal import jsonable_dict
from .seal import ChainHead, chain_head

DISTRICT_PAIR, PATROL_PAIR = "district", "patrol"
COVERED, MISSED, PENDING = "covered", "missed", "pending"
ENDED, IN_PROGRESS, NO_ROTA_YET, EXEMPT = "ended", "in_progress", "no_rota_yet", "exempt"
STATES = (ENDED, IN_PROGRESS, NO_ROTA_YET, EXEMPT)
NO_ANSWER, DECLINED, NO_VIDEO = "no_answer", "declined", "no_video"
NOT_SCHEDULED, NEVER_LAUNCHED = "not_scheduled", "never_launched"
REASONS = (NO_ANSWER, DECLINED, NO_VIDEO, NOT_SCHEDULED, NEVER_LAUNCHED)
# Why a pair was missed, as every report, file and page says it (Chinese, English).
REASON_LABELS: dict[str, tuple[str, str]] = {
    NO_ANSWER: ("无人接听", "No answer"),
    DECLINED: ("拒绝", "Declined"),
    NO_VIDEO: ("视频不足", "No video"),
    NOT_SCHEDULED: ("未排班", "Not scheduled"),
    NEVER_LAUNCHED: ("未发起", "Never launched"),
}
# How far an attempt got, for choosing the best of a missed pair's attempts.
_REACH = {NO_ANSWER: 0, DECLINED: 1, NO_VIDEO: 2}
EXEMPT_NO_WORKDAY = "本周无工作日（如春节），免于调度"
EXEMPT_BY_ROTA = "本周轮值表为免调度周，免于调度"
REPEAT_LOOKBACK_WEEKS = 8
# The attendance events coverage is read from; the others (rang, video, faces, …) are
# not needed and not loaded.
ATTENDANCE_KINDS = (
    calls.ANSWERED, calls.DECLINED, calls.NOT_ANSWERED, calls.JOINED, calls.VERIFIED, calls.LEFT,
)  # fmt: skip


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class PairResult:
    """One required pair (caller → callee) of the week and how it went."""

    caller: str
    caller_name: str
    callee: str
    callee_name: str
    callee_level: str  # "town" or "village"
    town: str  # the town the pair is counted under (the callee or its town)
    kind: str  # "district" or "patrol"
    status: str  # "covered", "missed" or (in a week in progress) "pending"
    reason: str | None  # for missed: one of REASONS
    answered_on_time: bool | None
    seconds_to_answer: float | None  # of the best attempt
    seconds_verified: float  # the most live video over all attempts
    makeup_used: bool
    calls: int  # attempts: calls of the caller in the week that invited the callee
    call_ids: tuple[int, ...]
    covered_by: int | None  # the best covering call
    slot_ids: tuple[int, ...]  # the week's rota slots of this caller naming this callee


@dataclass(frozen=True)
class TownFigures:
    rank: int  # 1 = best coverage
    code: str
    name: str
    required: int
    covered: int
    missed: int
    coverage_pct: float | None
    missed_by_reason: dict[str, int]  # every reason, zeros included
    makeups_used: int
    answered_on_time: int  # pairs whose best attempt was answered in time
    pending: int = 0  # in a week in progress: pairs that can still be covered


@dataclass(frozen=True)
class RepeatMiss:
    """A centre missed by one caller two or more weeks running (for supervision, 督导)."""

    centre: str
    centre_name: str
    caller: str
    caller_name: str
    kind: str
    town: str
    weeks_running: int  # this week included
    since: str  # the first week of the run, "2026-W45"
    capped: bool  # the run reached the look-back limit: it may be longer


@dataclass(frozen=True)
class IssueCounts:
    total: int
    by_category: dict[str, int]  # every category, zeros included
    by_severity: dict[str, int]  # every severity, zeros included


@dataclass(frozen=True)
class IssueFigures:
    raised: IssueCounts
    escalated: IssueCounts
    resolved: IssueCounts


@dataclass(frozen=True)
class WeeklyReport:
    district: str
    district_name: str
    week: str  # "2026-W46"
    starts: str  # Monday 00:00, ISO 8601 with +08:00
    ends: str  # the next Monday 00:00 (exclusive)
    view: str  # the centre whose subtree the figures cover (the district for a full report)
    view_name: str
    exempt: bool
    exempt_reason: str | None
    workdays: tuple[str, ...]
    has_rota: bool
    min_verified_seconds: int
    answer_deadline_seconds: int
    required: int | None  # None in an exempt week
    covered: int | None
    coverage_pct: float | None  # None in an exempt week or when nothing is required
    missed_by_reason: dict[str, int] | None
    makeups_used: int | None
    towns: tuple[TownFigures, ...]  # ranked
    pairs: tuple[PairResult, ...]  # by town code, then kind, then callee
    repeat_misses: tuple[RepeatMiss, ...]
    issues: IssueFigures
    chain_head: ChainHead | None
    notes: tuple[str, ...] = field(default=())
    state: str = ENDED  # one of STATES
    pending: int | None = None  # pairs still to come in a week in progress; None otherwise
    not_planned_days: tuple[str, ...] = ()  # working days already past when it was built

    @property
    def counted(self) -> bool:
        """Whether its figures count in a period's coverage (ended, not exempt)."""
        return self.state == ENDED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, the chain head an object (or null)."""
        return jsonable_dict(asdict(self))


def week_bounds(week: IsoWeek) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) in Asia/Shanghai, as UTC (no DST in China)."""
    start = datetime.combine(week.monday, time(), SHANGHAI).astimezone(UTC)
    return start, start + timedelta(days=7)


def coverage_pct(covered: int, required: int) -> float | None:
    """Percent to one decimal, half up (so 2/3 → 66.7 and 1/8 → 12.5); None if 0 required."""
    if required <= 0:
        return None
    pct = (Decimal(covered) * 100 / Decimal(required)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )
    return float(pct)


def weekly_report(
    session: Session,
    district_code: str,
    week: IsoWeek,
    *,
    scope: Scope | None = None,
    now: datetime | None = None,
) -> WeeklyReport:
    """The weekly coverage compliance report of a district (see the module's rules).

    `scope` narrows it to the scope's part of the district; NotAuthorised if the scope
    holds no part of it. `now`: the clock reading that makes a week not yet ended
    "in progress" (without it the week is read as ended)."""
    district = centres.get_at_level(session, district_code, Level.district, "district")
    view = _view(session, district, scope)
    start, end = week_bounds(week)
    pol = policy_for(session, district.code)
    cal = workdays.load_calendar(session)
    days = cal.workdays(week)
    record = plans.get_week(session, district.code, week)
    exempt_reason = None
    if not days:
        exempt_reason = EXEMPT_NO_WORKDAY
    elif record is not None and record.exempt:
        exempt_reason = EXEMPT_BY_ROTA
    head = chain_head(session, district.code)
    issue_figures = _issues(session, view.path, start, end)
    base: dict[str, Any] = {
        "district": district.code,
        "district_name": district.name,
        "week": str(week),
        "starts": start.astimezone(SHANGHAI).isoformat(),
        "ends": end.astimezone(SHANGHAI).isoformat(),
        "view": view.code,
        "view_name": view.name,
        "workdays": tuple(d.isoformat() for d in days),
        "has_rota": record is not None,
        "min_verified_seconds": pol.min_verified_seconds,
        "answer_deadline_seconds": pol.answer_deadline_seconds,
        "issues": issue_figures,
        "chain_head": head,
        "not_planned_days": plans.not_planned_days(record, days),
    }
    if exempt_reason is not None:
        return WeeklyReport(
            **base, exempt=True, exempt_reason=exempt_reason, required=None, covered=None,
            coverage_pct=None, missed_by_reason=None, makeups_used=None, towns=(), pairs=(),
            repeat_misses=(), state=EXEMPT,
        )  # fmt: skip
    # The week is still going at `going_at`; None when it is over or read as over.
    going_at = as_utc(now) if now is not None and as_utc(now) < end else None
    going = going_at is not None

    tree = _Tree.load(session, district, view)
    required = tree.pairs()
    slots = plans.week_slots(session, record.id or 0) if record is not None else []
    scheduled: dict[tuple[str, str], list[int]] = defaultdict(list)
    for slot in slots:
        if slot.status == plans.CANCELLED:
            continue
        for callee in slot.callees:
            scheduled[(slot.caller_code, callee)].append(slot.id or 0)
    attempts = _attempts(
        session,
        callers={p.caller for p in required},
        callees={p.callee for p in required},
        start=start,
        end=end,
        policy=pol,
        slots={s.id or 0: s for s in slots},
    )
    pairs = tuple(
        _result(p, tree, attempts.get((p.caller, p.callee), []), scheduled, pol) for p in required
    )
    if going_at is not None:
        ahead = _slots_ahead(slots, going_at)
        pairs = tuple(_pending(p, ahead) for p in pairs)
    if record is None and _before_first_rota(session, district.code, week):
        return WeeklyReport(
            **base, exempt=False, exempt_reason=None, required=None, covered=None,
            coverage_pct=None, missed_by_reason=None, makeups_used=None, towns=(),
            pairs=tuple(p for p in pairs if p.status != MISSED) if going else (),
            repeat_misses=(), state=NO_ROTA_YET,
            notes=("本周尚未排班（系统启用前），不计覆盖率、不排名",),
        )  # fmt: skip
    notes = tuple(record.warnings) if record is not None else ()
    if record is None:
        notes += ("本周没有轮值表：未发起调度的对象均计为“未排入轮值表”",)
    return WeeklyReport(
        **base,
        exempt=False,
        exempt_reason=None,
        required=len(pairs),
        covered=sum(p.status == COVERED for p in pairs),
        coverage_pct=coverage_pct(sum(p.status == COVERED for p in pairs), len(pairs)),
        missed_by_reason=_by_reason(pairs),
        makeups_used=sum(p.makeup_used for p in pairs),
        towns=_towns(pairs, tree),
        pairs=pairs,
        repeat_misses=_repeat_misses(session, district, week, pairs, tree, pol, cal),
        notes=notes,
        state=IN_PROGRESS if going else ENDED,
        pending=sum(p.status == PENDING for p in pairs) if going else None,
    )


def _before_first_rota(session: Session, district: str, week: IsoWeek) -> bool:
    """No rota of the district for this week or any earlier one."""
    first = session.exec(
        select(func.min(RotaWeek.week_start)).where(RotaWeek.district_code == district)
    ).one()
    return first is None or week.monday < first


def _slots_ahead(slots: Iterable[RotaSlot], now: datetime) -> dict[tuple[str, str], bool]:
    """(caller, callee) → whether a planned slot naming it is still ahead (has not ended);
    False when every slot naming it is cancelled or over."""
    out: dict[tuple[str, str], bool] = {}
    for slot in slots:
        if slot.status == plans.CANCELLED:
            continue
        ahead = slot.status == plans.PLANNED and as_utc(slot.end) > now
        for callee in slot.callees:
            key = (slot.caller_code, callee)
            out[key] = out.get(key, False) or ahead
    return out


def _pending(pair: PairResult, ahead: Mapping[tuple[str, str], bool]) -> PairResult:
    """In a week in progress: a pair not covered is pending while a slot naming it is
    ahead or none names it."""
    if pair.status != MISSED or not ahead.get((pair.caller, pair.callee), True):
        return pair
    return replace(pair, status=PENDING, reason=None)


# --- centres and pairs --------------------------------------------------------------------


def _view(session: Session, district: Centre, scope: Scope | None) -> Centre:
    """The centre whose subtree the report covers: the district, or the scope's own
    centre when the scope is a part of the district."""
    if scope is None or scope.covers(district):
        return district
    if scope.root_path is not None and scope.centre_code is not None:
        if centres.in_subtree(district.path, scope.root_path):
            return centres.get(session, scope.centre_code)
    raise NotAuthorised(f"district {district.code} is outside your scope")


@dataclass(frozen=True)
class _Pair:
    caller: str
    callee: str
    kind: str
    town: str


@dataclass(frozen=True)
class _Tree:
    """The active towns and villages of a district that the view holds, as
    `planner.district_towns` lists them, plus the names of everyone named."""

    district: Centre
    view: Centre
    towns: tuple[Centre, ...]  # active towns, code order
    villages: dict[str, tuple[Centre, ...]]  # active villages of each active town
    names: dict[str, str]
    levels: dict[str, str]

    @classmethod
    def load(cls, session: Session, district: Centre, view: Centre) -> _Tree:
        # The view's subtree in one range scan, plus the view's ancestors (for a town or
        # village view: its district and town) in one more.
        found = {c.code: c for c in centres.all_below(session, view, include_self=True)}
        found.update({c.code: c for c in centres.path_up(session, view)})
        towns: list[Centre] = []
        if district.active:  # an inactive district plans nothing (planner.build_week)
            towns = sorted(
                (
                    c
                    for c in found.values()
                    if c.level == Level.town and c.active and c.parent_code == district.code
                ),
                key=lambda c: c.code,
            )
        town_codes = {t.code for t in towns}
        villages: dict[str, list[Centre]] = defaultdict(list)
        for c in found.values():
            if c.level == Level.village and c.active and c.parent_code in town_codes:
                villages[c.parent_code or ""].append(c)
        return cls(
            district=district,
            view=view,
            towns=tuple(towns),
            villages={t: tuple(sorted(v, key=lambda c: c.code)) for t, v in villages.items()},
            names={c.code: c.name for c in found.values()},
            levels={c.code: c.level for c in found.values()},
        )

    def in_view(self, path: str) -> bool:
        return centres.in_subtree(self.view.path, path)

    def pairs(self) -> list[_Pair]:
        """The required pairs whose callee lies in the view, by town, kind, callee."""
        out: list[_Pair] = []
        d = self.district.code
        for town in self.towns:
            vs = self.villages.get(town.code, ())
            town_pairs = [_Pair(d, town.code, DISTRICT_PAIR, town.code)]
            town_pairs += [_Pair(d, v.code, DISTRICT_PAIR, town.code) for v in vs]
            town_pairs += [_Pair(town.code, v.code, PATROL_PAIR, town.code) for v in vs]
            paths = {town.code: town.path} | {v.code: v.path for v in vs}
            out += [p for p in town_pairs if self.in_view(paths[p.callee])]
        return out


# --- attempts: the week's calls, invitations and attendance, read in bulk ------------------


@dataclass
class _Attempt:
    """One invited centre in one call, built up from its attendance events."""

    call_id: int
    created_at: datetime
    makeup: bool
    rang_at: datetime | None
    answered: bool = False
    seconds_to_answer: float | None = None
    declined: bool = False
    joined: bool = False
    verified: bool = False
    seconds_live: float = 0.0
    covered: bool = False

    @property
    def reach(self) -> str:
        if self.answered or self.joined:
            return NO_VIDEO
        return DECLINED if self.declined else NO_ANSWER

    def on_time(self, deadline: int) -> bool | None:
        if not self.answered or self.seconds_to_answer is None:
            return None
        return self.seconds_to_answer <= deadline


def _attempts(
    session: Session,
    *,
    callers: set[str],
    callees: set[str],
    start: datetime,
    end: datetime,
    policy: Policy,
    slots: Mapping[int, RotaSlot] | None = None,
) -> dict[tuple[str, str], list[_Attempt]]:
    """Every (caller, callee) attempt of calls by `callers` created in [start, end) that
    invited one of `callees`. `slots` (the week's rota) tells make-ups apart; slots of
    calls not in it are read in one more query."""
    found: dict[int, tuple[str, int | None, datetime]] = {}
    for caller_batch in in_batches(callers):
        stmt = select(Call.id, Call.caller_code, Call.slot_id, Call.created_at).where(
            col(Call.caller_code).in_(caller_batch),
            col(Call.created_at) >= start,
            col(Call.created_at) < end,
        )
        for call_id, caller, slot_id, created in session.exec(stmt):
            found[call_id or 0] = (caller, slot_id, as_utc(created))
    if not found:
        return {}
    makeup_of: dict[int, int | None] = {}
    if slots is not None:
        makeup_of = {sid: s.makeup_of for sid, s in slots.items()}
        missing = {s for _c, s, _t in found.values() if s is not None and s not in makeup_of}
        for chunk in in_batches(missing):
            stmt_s = select(RotaSlot.id, RotaSlot.makeup_of).where(col(RotaSlot.id).in_(chunk))
            makeup_of.update({sid or 0: of for sid, of in session.exec(stmt_s)})

    by_key: dict[tuple[int, str], _Attempt] = {}
    for chunk in in_batches(found):
        stmt_i = select(Invitation.call_id, Invitation.centre_code, Invitation.rang_at).where(
            col(Invitation.call_id).in_(chunk)
        )
        for call_id, centre, rang_at in session.exec(stmt_i):
            if centre not in callees:
                continue
            _caller, slot_id, created = found[call_id]
            made_up = slot_id is not None and makeup_of.get(slot_id) is not None
            by_key[(call_id, centre)] = _Attempt(
                call_id, created, made_up, as_utc(rang_at) if rang_at else None
            )
    for chunk in in_batches(found):
        # Five columns: SQLAlchemy's select (sqlmodel's is typed up to four).
        stmt_e = (
            sa.select(col(AttendanceRow.call_id), col(AttendanceRow.centre_code),
                      col(AttendanceRow.kind), col(AttendanceRow.at), col(AttendanceRow.data))
            .where(col(AttendanceRow.call_id).in_(chunk),
                   col(AttendanceRow.kind).in_(ATTENDANCE_KINDS))
            .order_by(col(AttendanceRow.id))
        )  # fmt: skip
        for call_id, centre, kind, at, data in session.execute(stmt_e):
            attempt = by_key.get((call_id, centre or ""))
            if attempt is not None:
                _apply(attempt, kind, as_utc(at), data or {})

    out: dict[tuple[str, str], list[_Attempt]] = defaultdict(list)
    for (call_id, centre), attempt in by_key.items():
        # The one coverage rule (schedules.outcome), per invited centre.
        attempt.covered = outcome.covers(
            attempt.verified, attempt.seconds_live, policy.min_verified_seconds
        )
        out[(found[call_id][0], centre)].append(attempt)
    for group in out.values():
        group.sort(key=lambda a: (a.created_at, a.call_id))
    return out


def _apply(attempt: _Attempt, kind: str, at: datetime, data: Mapping[str, Any]) -> None:
    if kind == calls.ANSWERED:
        attempt.answered = True
        given = outcome.as_number(data.get("seconds_to_answer"))
        if given is not None and given >= 0:
            attempt.seconds_to_answer = given
        elif attempt.rang_at is not None:
            attempt.seconds_to_answer = round((at - attempt.rang_at).total_seconds(), 1)
    elif kind == calls.DECLINED:
        attempt.declined = True
    elif kind == calls.JOINED:
        attempt.joined = True
    elif kind in (calls.VERIFIED, calls.LEFT):
        attempt.verified = attempt.verified or kind == calls.VERIFIED
        seconds = outcome.as_number(data.get("seconds_live"))
        if seconds is not None:
            attempt.seconds_live = max(attempt.seconds_live, seconds)
    # not_answered changes nothing: an attempt that was never answered is a no-answer.


def _result(
    pair: _Pair,
    tree: _Tree,
    attempts: Sequence[_Attempt],
    scheduled: Mapping[tuple[str, str], list[int]],
    policy: Policy,
) -> PairResult:
    slot_ids = tuple(sorted(scheduled.get((pair.caller, pair.callee), [])))
    deadline = policy.answer_deadline_seconds
    covering = [a for a in attempts if a.covered]
    best: _Attempt | None
    if covering:
        best = min(covering, key=lambda a: (a.on_time(deadline) is not True, a.created_at,
                                            a.call_id))  # fmt: skip
        status, reason = COVERED, None
        makeup = all(a.makeup for a in covering)
    elif attempts:
        best = max(attempts, key=lambda a: (_REACH[a.reach], a.created_at, a.call_id))
        status, reason, makeup = MISSED, best.reach, False
    else:
        best = None
        status, makeup = MISSED, False
        reason = NEVER_LAUNCHED if slot_ids else NOT_SCHEDULED
    return PairResult(
        caller=pair.caller,
        caller_name=tree.names.get(pair.caller, ""),
        callee=pair.callee,
        callee_name=tree.names.get(pair.callee, ""),
        callee_level=tree.levels.get(pair.callee, ""),
        town=pair.town,
        kind=pair.kind,
        status=status,
        reason=reason,
        answered_on_time=best.on_time(deadline) if best else None,
        seconds_to_answer=best.seconds_to_answer if best and best.answered else None,
        seconds_verified=max((a.seconds_live for a in attempts), default=0.0),
        makeup_used=makeup,
        calls=len(attempts),
        call_ids=tuple(a.call_id for a in attempts),
        covered_by=best.call_id if best and status == COVERED else None,
        slot_ids=slot_ids,
    )


# --- figures ------------------------------------------------------------------------------


def _by_reason(pairs: Iterable[PairResult]) -> dict[str, int]:
    counted = Counter(p.reason for p in pairs if p.status == MISSED)
    return {r: counted.get(r, 0) for r in REASONS}


def _towns(pairs: Sequence[PairResult], tree: _Tree) -> tuple[TownFigures, ...]:
    grouped: dict[str, list[PairResult]] = defaultdict(list)
    for p in pairs:
        grouped[p.town].append(p)
    rows = []
    for code, group in grouped.items():
        covered = sum(p.status == COVERED for p in group)
        rows.append((code, tree.names.get(code, ""), group, covered))
    pct = {code: coverage_pct(covered, len(group)) for code, _n, group, covered in rows}
    rows.sort(key=lambda r: (-(pct[r[0]] or 0.0), r[1], r[0]))
    return tuple(
        TownFigures(
            rank=i,
            code=code,
            name=name,
            required=len(group),
            covered=covered,
            missed=sum(p.status == MISSED for p in group),
            coverage_pct=pct[code],
            missed_by_reason=_by_reason(group),
            makeups_used=sum(p.makeup_used for p in group),
            answered_on_time=sum(p.answered_on_time is True for p in group),
            pending=sum(p.status == PENDING for p in group),
        )
        for i, (code, name, group, covered) in enumerate(rows, start=1)
    )


def _repeat_misses(
    session: Session,
    district: Centre,
    week: IsoWeek,
    pairs: Sequence[PairResult],
    tree: _Tree,
    policy: Policy,
    cal: workdays.WorkdayCalendar,
) -> tuple[RepeatMiss, ...]:
    """Walk back week by week over the pairs missed this week, reading only the calls of
    their callers, until each is covered, the look-back ends or history begins."""
    missed = {(p.caller, p.callee): p for p in pairs if p.status == MISSED}
    if not missed:
        return ()
    earlier: list[IsoWeek] = []
    for _ in range(REPEAT_LOOKBACK_WEEKS):
        earlier.append((earlier[-1] if earlier else week).previous())
    first_rota = session.exec(
        select(func.min(RotaWeek.week_start)).where(RotaWeek.district_code == district.code)
    ).one()
    exempt_rotas = set(
        session.exec(
            select(RotaWeek.week).where(
                RotaWeek.district_code == district.code,
                col(RotaWeek.week).in_([str(w) for w in earlier]),
                col(RotaWeek.exempt).is_(True),
            )
        )
    )
    runs = {key: [week] for key in missed}  # the missed weeks of each run, newest first
    open_keys = set(missed)  # runs still going back; left open at the end: capped
    for w in earlier:
        if not open_keys:
            break
        if first_rota is None or w.monday < first_rota:
            open_keys = set()  # before the system was in use: not a miss, the runs end
            break
        if str(w) in exempt_rotas or not cal.workdays(w):
            continue  # exempt: neither breaks nor extends a run
        start, end = week_bounds(w)
        attempts = _attempts(
            session,
            callers={c for c, _ in open_keys},
            callees={v for _, v in open_keys},
            start=start,
            end=end,
            policy=policy,
        )
        for key in sorted(open_keys):
            if any(a.covered for a in attempts.get(key, [])):
                open_keys.discard(key)
            else:
                runs[key].append(w)
    out = [
        RepeatMiss(
            centre=p.callee,
            centre_name=p.callee_name,
            caller=p.caller,
            caller_name=p.caller_name,
            kind=p.kind,
            town=p.town,
            weeks_running=len(runs[key]),
            since=str(runs[key][-1]),
            capped=key in open_keys,
        )
        for key, p in missed.items()
        if len(runs[key]) >= 2
    ]
    out.sort(key=lambda r: (-r.weeks_running, r.town, r.centre, r.kind))
    return tuple(out)


def _counts(rows: Iterable[tuple[str, str]]) -> IssueCounts:
    rows = list(rows)
    cats = Counter(c for c, _ in rows)
    sevs = Counter(s for _, s in rows)
    return IssueCounts(
        total=len(rows),
        by_category={c.value: cats.get(c.value, 0) for c in Category},
        by_severity={s.value: sevs.get(s.value, 0) for s in Severity},
    )


def _issues(session: Session, view_path: str, start: datetime, end: datetime) -> IssueFigures:
    """Issues about centres in the view's subtree: raised, escalated and resolved in
    [start, end) — two queries."""
    raised = issue_history.raised(session, view_path, start, end)
    changed = issue_history.changed(session, view_path, start, end, (ESCALATED, RESOLVED_ACTION))
    return IssueFigures(
        raised=_counts((issue.category, issue.severity) for issue, _path in raised),
        escalated=_counts(changed[ESCALATED].values()),
        resolved=_counts(changed[RESOLVED_ACTION].values()),
    )
