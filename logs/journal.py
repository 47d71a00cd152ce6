"""The dispatch journal (调度日志) of one call, derived from the rows the call left.

Invariants:
- A journal is a pure function of stored rows: the call, its invitations, its attendance
  events in id order, centre names, the rota slot and the journal entry (agenda, notes,
  sign-off). It is derived on demand, never stored half-built; only the sealed
  canonical text is stored (logs/seal.py).
- Every event of the call appears in `events`, in id order, whatever state the call
  ended in; an interrupted call is flagged, never trimmed.
- A centre's presence is a sequence of intervals: each `joined` opens one, the next
  `left` closes it, a later `joined` opens another. Nothing is overwritten.
- A `JournalEntry` with sealed = True and every `JournalAmendment` row are read-only; the
  database refuses UPDATE and DELETE of them (triggers installed by logs/seal.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import Column, Text, UniqueConstraint, and_, exists, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Field, Session, SQLModel, col, select

from dispatch import calls, centres
from dispatch.calls import AttendanceRow, Call, Invitation
from dispatch.centres import Centre
from dispatch.clock import SHANGHAI, as_utc, utcnow
from dispatch.errors import Conflict, InvalidInput
from schedules.plans import RotaSlot
from schedules.workdays import IsoWeek

ANSWERED, DECLINED, NOT_ANSWERED, PENDING = "answered", "declined", "not_answered", "pending"
WHY_NOT = {DECLINED: "declined", NOT_ANSWERED: "no answer"}
OFFLINE = "offline"  # answered, but never joined
MAX_AGENDA, MAX_NOTES = 2_000, 20_000


# --- stored: the journal entry and its amendments -------------------------------------


class JournalEntry(SQLModel, table=True):
    """Agenda, notes and sign-off of one call; once sealed, a link of its district's chain.

    Sealed rows carry seq (1, 2, 3 … per district, no gaps), prev_sha256 (the previous
    sealed journal's sha256, 64 zeros for seq 1), canonical (the sealed journal as
    canonical JSON) and sha256 = sha256(prev_sha256 + canonical). UNIQUE(district, seq)
    makes a race between two sign-offs fail instead of forking the chain.
    """

    __tablename__ = "journal"
    __table_args__ = (UniqueConstraint("district_code", "seq", name="uq_journal_district_seq"),)

    call_id: int = Field(
        foreign_key="call.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    district_code: str = Field(max_length=12, index=True)
    agenda: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    notes_by: str = Field(default="", max_length=64)  # who last edited agenda or notes
    signed_by: str | None = Field(default=None, max_length=64)
    signed_at: datetime | None = None
    sealed: bool = False
    seq: int | None = None
    sha256: str | None = Field(default=None, max_length=64)
    prev_sha256: str | None = Field(default=None, max_length=64)
    canonical: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class JournalAmendment(SQLModel, table=True):
    """A correction to a sealed journal: appended, never edited.

    Amendments of one journal form their own chain hanging off the journal's hash:
    amendment n has prev_sha256 = the sha256 of amendment n-1, or of the journal for
    n = 1, and sha256 = sha256(prev_sha256 + canonical amendment), where the canonical
    amendment is the JSON of {at, author, call_id, n, reason, text} (logs/seal.py).
    """

    __tablename__ = "journal_amendment"
    __table_args__ = (UniqueConstraint("call_id", "n", name="uq_journal_amendment_n"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="journal.call_id", index=True)
    n: int  # 1, 2, 3 … within the journal
    author: str = Field(max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(default_factory=utcnow)
    prev_sha256: str = Field(max_length=64)
    sha256: str = Field(max_length=64)


# --- derived: the journal ---------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """One stay of a centre in the call. `left` is None while (or if) it is still open."""

    joined: datetime
    left: datetime | None
    left_reason: str


@dataclass(frozen=True)
class CentreRecord:
    centre: str
    name: str
    rang_at: datetime | None
    answer: str  # answered / declined / not_answered / pending
    seconds_to_answer: float | None  # only for answered
    why_not: str  # "no answer", "declined", "offline" (answered, never joined) or ""
    intervals: tuple[Interval, ...]
    seconds_verified_video: float  # the most seconds of live video reported
    video_verified: bool
    max_faces: int
    snapshots: tuple[dict[str, Any], ...]  # {path, sha256, why, at}


@dataclass(frozen=True)
class SealInfo:
    seq: int
    sha256: str
    prev_sha256: str


@dataclass(frozen=True)
class Journal:
    call_id: int
    district: str
    caller: str
    caller_name: str
    operator: str
    kind: str
    slot_id: int | None
    slot_start: datetime | None
    slot_end: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    state: str
    end_reason: str
    interrupted: bool
    centres: tuple[CentreRecord, ...]
    agenda: str
    notes: str
    events: tuple[dict[str, Any], ...]  # every event: {id, kind, centre, at, data}
    signed_by: str | None
    signed_at: datetime | None
    # Not part of the sealed text: the seal itself and the amendments appended after it.
    seal: SealInfo | None = None
    amendments: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (times as UTC ISO 8601): what `journal show` prints."""
        return jsonable_dict(asdict(self))


class SlotTimes(Protocol):
    """What the journal reads of a rota slot (a `RotaSlot` has both)."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def jsonable_dict(value: Mapping[Any, Any]) -> dict[str, Any]:
    """`jsonable` of a mapping (a dataclass's `asdict`): keys as strings."""
    return {str(k): jsonable(v) for k, v in value.items()}


def jsonable(value: Any) -> Any:
    """Tuples to lists, datetimes to UTC ISO strings, recursively."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return jsonable_dict(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass
class _Tally:
    """One invited centre's record while the events are replayed."""

    rang_at: datetime | None
    answer: str = ""
    seconds_to_answer: float | None = None
    intervals: list[list[Any]] = field(default_factory=list)  # [joined, left, reason]
    seconds: float = 0.0
    verified: bool = False
    faces: int = 0
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    def open_interval(self) -> list[Any] | None:
        last = self.intervals[-1] if self.intervals else None
        return last if last is not None and last[1] is None else None


def _number(value: Any, default: float = 0.0) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def build_journal(
    call: Call,
    invitations: Iterable[Invitation],
    events: Sequence[AttendanceRow],
    names: Mapping[str, str],
    slot: SlotTimes | None = None,
    entry: JournalEntry | None = None,
    *,
    district: str = "",
    amendments: Iterable[JournalAmendment] = (),
) -> Journal:
    """The journal of `call` from its rows; `events` in id order. Reads nothing else."""
    events = sorted(events, key=lambda r: r.id or 0)
    tallies: dict[str, _Tally] = {i.centre_code: _Tally(as_utc(i.rang_at)) for i in invitations}
    interrupted = call.state == calls.INTERRUPTED
    cut = False  # the interruption event has been replayed
    last_alive: datetime | None = None  # the last event before the interruption
    for row in events:
        at, data = as_utc(row.at), row.data or {}
        if row.kind == calls.CALL_INTERRUPTED:
            interrupted = cut = True
            continue
        if row.kind != calls.CALL_ENDED and not cut:
            last_alive = at
        if row.kind == calls.INVITED and row.centre_code and row.centre_code not in tallies:
            tallies[row.centre_code] = _Tally(at)
        tally = tallies.get(row.centre_code or "")
        if tally is None:
            continue  # call-wide events, and the caller's own joins: kept in `events`
        _replay(tally, row.kind, at, data)

    if call.ended_at is not None:
        # An interrupted call's ended_at is when the restarted server noticed, which may
        # be hours later: presence is only known up to the last event before it.
        close_at = (last_alive or as_utc(call.ended_at)) if interrupted else as_utc(call.ended_at)
        why = "server stopped" if interrupted else "call ended"
        for tally in tallies.values():
            stay = tally.open_interval()
            if stay is not None:
                stay[1], stay[2] = max(close_at, stay[0]), why
    records = tuple(
        _record(code, names.get(code, ""), tally, open_call=call.state in calls.OPEN_STATES)
        for code, tally in sorted(tallies.items())
    )
    seal = None
    if entry is not None and entry.sealed and entry.seq is not None:
        seal = SealInfo(entry.seq, entry.sha256 or "", entry.prev_sha256 or "")
    return Journal(
        call_id=call.id or 0,
        district=district or (entry.district_code if entry else ""),
        caller=call.caller_code,
        caller_name=names.get(call.caller_code, ""),
        operator=call.operator,
        kind=call.kind,
        slot_id=call.slot_id,
        slot_start=as_utc(slot.start) if slot else None,
        slot_end=as_utc(slot.end) if slot else None,
        created_at=as_utc(call.created_at),
        started_at=as_utc(call.started_at) if call.started_at else None,
        ended_at=as_utc(call.ended_at) if call.ended_at else None,
        state=call.state,
        end_reason=call.end_reason,
        interrupted=interrupted,
        centres=records,
        agenda=entry.agenda if entry else "",
        notes=entry.notes if entry else "",
        events=tuple(event_dict(r) for r in events),
        signed_by=entry.signed_by if entry else None,
        signed_at=as_utc(entry.signed_at) if entry and entry.signed_at else None,
        seal=seal,
        amendments=tuple(amendment_dict(a) for a in sorted(amendments, key=lambda a: a.n)),
    )


def event_dict(row: AttendanceRow) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "centre": row.centre_code, "at": as_utc(row.at),
            "data": dict(row.data or {})}  # fmt: skip


def amendment_dict(a: JournalAmendment) -> dict[str, Any]:
    return {"n": a.n, "author": a.author, "reason": a.reason, "text": a.text,
            "at": as_utc(a.at), "sha256": a.sha256}  # fmt: skip


def _replay(tally: _Tally, kind: str, at: datetime, data: Mapping[str, Any]) -> None:
    if kind == calls.RANG:
        tally.rang_at = at
    elif kind == calls.ANSWERED:
        tally.answer = ANSWERED
        given = _number(data.get("seconds_to_answer"), -1.0)
        if given >= 0:
            tally.seconds_to_answer = given
        elif tally.rang_at is not None:
            tally.seconds_to_answer = round((at - tally.rang_at).total_seconds(), 1)
    elif kind in (calls.DECLINED, calls.NOT_ANSWERED):
        tally.answer = kind
    elif kind == calls.JOINED:
        stay = tally.open_interval()
        if stay is not None:  # joined twice without a leave: end the first stay there
            stay[1], stay[2] = at, "joined again"
        tally.intervals.append([at, None, ""])
    elif kind == calls.LEFT:
        stay = tally.open_interval()
        if stay is not None:
            went = _number(data.get("went_at"), -1.0)  # when it went silent, epoch seconds
            left = datetime.fromtimestamp(went, UTC) if went >= 0 else at
            stay[1], stay[2] = max(left, stay[0]), str(data.get("reason") or "left")
        tally.seconds = max(tally.seconds, _number(data.get("seconds_live")))
    elif kind == calls.VERIFIED:
        tally.verified = True
        tally.seconds = max(tally.seconds, _number(data.get("seconds_live")))
        tally.faces = max(tally.faces, int(_number(data.get("max_faces"))))
    elif kind == calls.FACES_SEEN:
        tally.faces = max(tally.faces, int(_number(data.get("faces"))))
    elif kind == calls.SNAPSHOT:
        tally.snapshots.append(
            {"path": data.get("path"), "sha256": data.get("sha256"), "why": data.get("why"),
             "at": at}
        )  # fmt: skip


def _record(code: str, name: str, tally: _Tally, *, open_call: bool) -> CentreRecord:
    # An invitation with no answer event: still ringing while the call is open, else
    # the call ended (or died) before it was answered.
    answer = tally.answer or (PENDING if open_call else NOT_ANSWERED)
    why_not = WHY_NOT.get(answer, "")
    if answer == ANSWERED and not tally.intervals:
        why_not = OFFLINE
    return CentreRecord(
        centre=code,
        name=name,
        rang_at=tally.rang_at,
        answer=answer,
        seconds_to_answer=tally.seconds_to_answer if answer == ANSWERED else None,
        why_not=why_not,
        intervals=tuple(
            Interval(j, left, reason if left is not None else "still open")
            for j, left, reason in tally.intervals
        ),
        seconds_verified_video=tally.seconds,
        video_verified=tally.verified,
        max_faces=tally.faces,
        snapshots=tuple(tally.snapshots),
    )


# --- loading --------------------------------------------------------------------------


def district_of(path: str) -> str:
    """The district of a centre: the first code of its path."""
    return path.split("/", 1)[0]


def load_journal(session: Session, call_id: int) -> Journal:
    """The journal of one call (NotFound names the call). Scope is the caller's to check
    (`dispatch.calls.require_visible`)."""
    call = calls.get_call(session, call_id)
    invites = calls.invitations(session, call_id)
    codes = {call.caller_code, *(i.centre_code for i in invites)}
    found = session.exec(select(Centre).where(col(Centre.code).in_(codes)))
    by_code = {c.code: c for c in found}
    slot = session.get(RotaSlot, call.slot_id) if call.slot_id is not None else None
    entry = session.get(JournalEntry, call_id)
    amendments = session.exec(
        select(JournalAmendment).where(JournalAmendment.call_id == call_id)
    ).all()
    district = entry.district_code if entry else district_of(by_code[call.caller_code].path)
    return build_journal(
        call, invites, calls.events(session, call_id), {c: x.name for c, x in by_code.items()},
        slot, entry, district=district, amendments=amendments,
    )  # fmt: skip


@dataclass(frozen=True)
class JournalSummary:
    call_id: int
    date: str  # the day the call rang, Asia/Shanghai
    caller: str
    kind: str
    state: str
    centres: int  # invited
    verified: int  # invited centres with verified video
    interrupted: bool
    signed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_journals(
    session: Session,
    under_path: str | None = None,
    week: IsoWeek | None = None,
    centre: str | None = None,
    interrupted: bool | None = None,
    unsigned: bool | None = None,
    *,
    limit: int = 1000,
) -> list[JournalSummary]:
    """Journals newest first. `under_path` is a scope: a call is in it when its caller or
    any invited centre lies in that subtree (index range scans on `centre.path`)."""
    conds: list[Any] = []
    if under_path is not None:
        low, high = centres.below_range(under_path)
        caller, guest = aliased(Centre), aliased(Centre)
        conds.append(or_(
            exists().where(col(caller.code) == col(Call.caller_code), col(caller.path) >= low,
                           col(caller.path) < high),
            exists().where(col(Invitation.call_id) == col(Call.id),
                           col(guest.code) == col(Invitation.centre_code),
                           col(guest.path) >= low, col(guest.path) < high),
        ))  # fmt: skip
    if week is not None:
        start = datetime.combine(week.monday, time(), SHANGHAI).astimezone(UTC)
        conds += [col(Call.created_at) >= start, col(Call.created_at) < start + timedelta(7)]
    if centre is not None:
        conds.append(or_(
            col(Call.caller_code) == centre,
            exists().where(col(Invitation.call_id) == col(Call.id),
                           col(Invitation.centre_code) == centre),
        ))  # fmt: skip
    if interrupted is not None:
        is_it = Call.state == calls.INTERRUPTED
        conds.append(is_it if interrupted else ~is_it)
    if unsigned is not None:
        sealed = exists().where(col(JournalEntry.call_id) == col(Call.id), col(JournalEntry.sealed))
        conds.append(~sealed if unsigned else sealed)
    stmt = select(Call).where(and_(True, *conds))
    stmt = stmt.order_by(col(Call.created_at).desc(), col(Call.id).desc()).limit(limit)
    found = list(session.exec(stmt))
    ids = [c.id for c in found]
    invited: dict[int | None, int] = dict(session.exec(
        select(Invitation.call_id, func.count()).where(col(Invitation.call_id).in_(ids))
        .group_by(col(Invitation.call_id))
    ).all())  # fmt: skip
    verified: dict[int | None, int] = dict(session.exec(
        select(AttendanceRow.call_id, func.count(func.distinct(AttendanceRow.centre_code)))
        .where(col(AttendanceRow.call_id).in_(ids), AttendanceRow.kind == calls.VERIFIED)
        .group_by(col(AttendanceRow.call_id))
    ).all())  # fmt: skip
    signed = set(session.exec(
        select(JournalEntry.call_id).where(col(JournalEntry.call_id).in_(ids),
                                           col(JournalEntry.sealed))
    ).all())  # fmt: skip
    return [
        JournalSummary(
            call_id=c.id or 0,
            date=as_utc(c.created_at).astimezone(SHANGHAI).date().isoformat(),
            caller=c.caller_code,
            kind=c.kind,
            state=c.state,
            centres=int(invited.get(c.id, 0)),
            verified=int(verified.get(c.id, 0)),
            interrupted=c.state == calls.INTERRUPTED,
            signed=c.id in signed,
        )
        for c in found
    ]


def entry_for(session: Session, call: Call) -> JournalEntry:
    """The call's journal entry, created (unsealed, empty) if it has none yet."""
    entry = session.get(JournalEntry, call.id)
    if entry is None:
        caller = centres.get(session, call.caller_code)
        entry = JournalEntry(call_id=call.id or 0, district_code=district_of(caller.path))
        session.add(entry)
        session.flush()
    return entry


def set_notes(session: Session, call_id: int, agenda: str, notes: str, by: str) -> JournalEntry:
    """Write the agenda and notes of a journal; refused (Conflict) once it is sealed —
    corrections to a sealed journal are amendments (`logs.seal.amend`)."""
    agenda, notes = _text(agenda, "agenda", MAX_AGENDA), _text(notes, "notes", MAX_NOTES)
    entry = entry_for(session, calls.get_call(session, call_id))
    if entry.sealed:
        raise Conflict(
            f"journal {call_id} was signed off by {entry.signed_by} and is sealed; "
            "add an amendment instead"
        )
    entry.agenda, entry.notes, entry.notes_by = agenda, notes, by
    session.add(entry)
    session.flush()
    return entry


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(field, f"longer than {limit} characters")
    if any(ch < " " and ch not in "\n\t" for ch in value) or "\x7f" in value:
        raise InvalidInput(field, "contains a control character")
    return value
