"""Calls (调度会话) and the attendance they record.

A call is made by an operator from a rota slot or ad hoc, within its scope: an
inspection (one callee) or a meeting (many). States: ringing → live → ended, or
interrupted when the server died with the call open.

Invariants:
- Attendance events are facts of record: each is written (committed) to
  `attendance_event` before it is published or acknowledged, so a crash loses none.
  Rows are only ever appended.
- A join token is bound to one call and one centre and expires; it is an HMAC over
  those, so it needs no table and cannot be altered.
- Identity comes from the session or the token: the callee of an answer is the
  token's or the account's centre, never a field of the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, col, select

from . import centres
from .accounts import Scope
from .clock import as_utc, utcnow
from .errors import Conflict, InvalidInput, NotAuthenticated, NotAuthorised, NotFound
from .events import Event

RINGING, LIVE, ENDED, INTERRUPTED = "ringing", "live", "ended", "interrupted"
STATES = (RINGING, LIVE, ENDED, INTERRUPTED)
OPEN_STATES = (RINGING, LIVE)
# What pages call a call's state (Chinese, English).
STATE_LABELS: dict[str, tuple[str, str]] = {
    RINGING: ("呼叫中", "ringing"),
    LIVE: ("进行中", "live"),
    ENDED: ("已结束", "ended"),
    INTERRUPTED: ("已中断", "interrupted"),
}
# The kinds of an ad-hoc call; a call of the rota takes its slot's kind (schedules.slots).
INSPECTION, MEETING = "inspection", "meeting"
AD_HOC_KINDS = (INSPECTION, MEETING)
AD_HOC_KIND_LABELS: dict[str, tuple[str, str]] = {
    INSPECTION: ("视频调度", "Video dispatch"),
    MEETING: ("视频调度会", "Dispatch meeting"),
}

# What an invited centre did, in the order it can happen.
INVITED, RANG, ANSWERED, DECLINED, NOT_ANSWERED = (
    "invited", "rang", "answered", "declined", "not_answered",
)  # fmt: skip
JOINED, LEFT = "joined", "left"
VIDEO_LIVE, VIDEO_LOST, FACES_SEEN, SNAPSHOT = "video_live", "video_lost", "faces_seen", "snapshot"
FLOOR, CALL_ENDED, CALL_INTERRUPTED, VERIFIED = "floor", "ended", "interrupted", "verified"
# The call's recording turned on or off (call-wide); a recorded file closed, with its
# sha256 (the publisher's centre); a file removed by retention (dispatch/recordings.py).
RECORDING, RECORDED, RECORDING_REMOVED = "recording", "recorded", "rec_removed"
EVENT_KINDS = (
    INVITED, RANG, ANSWERED, DECLINED, NOT_ANSWERED, JOINED, LEFT, VIDEO_LIVE, VIDEO_LOST,
    FACES_SEEN, SNAPSHOT, FLOOR, VERIFIED, CALL_ENDED, CALL_INTERRUPTED, RECORDING, RECORDED,
    RECORDING_REMOVED,
)  # fmt: skip


class Call(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    caller_code: str = Field(foreign_key="centre.code", index=True)
    operator: str = Field(max_length=64)  # username of the account that launched it
    kind: str = Field(max_length=24)  # "inspection", "meeting" or the rota slot's kind
    slot_id: int | None = Field(default=None, index=True)  # the rota slot, if any
    state: str = Field(default=RINGING, max_length=12, index=True)
    answer_deadline_seconds: int = 60
    min_verified_seconds: int = 60
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = Field(default="", max_length=200)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "caller": self.caller_code,
            "operator": self.operator,
            "kind": self.kind,
            "slot_id": self.slot_id,
            "state": self.state,
            "answer_deadline_seconds": self.answer_deadline_seconds,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "end_reason": self.end_reason,
        }


class Invitation(SQLModel, table=True):
    """One invited centre of a call and where its answer stands."""

    __tablename__ = "call_invitation"

    call_id: int = Field(foreign_key="call.id", primary_key=True)
    centre_code: str = Field(foreign_key="centre.code", primary_key=True, index=True)
    state: str = Field(default=RANG, max_length=14)  # rang/answered/declined/not_answered
    rang_at: datetime = Field(default_factory=utcnow)
    answered_at: datetime | None = None


class AttendanceRow(SQLModel, table=True):
    """An attendance event as stored: append-only."""

    __tablename__ = "attendance_event"

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    centre_code: str | None = Field(default=None, max_length=12, index=True)
    kind: str = Field(max_length=14)
    at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


@dataclass(frozen=True)
class Attendance(Event):
    """Published after the row is committed. `centre` is None for call-wide events."""

    name: ClassVar[str] = "attendance"
    call_id: int
    kind: str
    centre: str | None
    at: str  # ISO 8601, UTC
    data: dict[str, Any]
    caller: str = ""
    slot_id: int | None = None
    event_id: int = 0

    @property
    def centres(self) -> tuple[str, ...]:
        return tuple(c for c in (self.caller, self.centre) if c)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.name, **asdict(self)}


@dataclass(frozen=True)
class CallRinging(Event):
    """Tells an invited centre's open page to ring."""

    name: ClassVar[str] = "call_ringing"
    call_id: int
    caller: str
    caller_name: str
    kind: str
    callee: str
    deadline_seconds: int

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.callee,)


def record(
    session: Session, call: Call, kind: str, centre: str | None, *, at: datetime | None = None,
    **data: Any,
) -> Attendance:  # fmt: skip
    """Append one event row (flushed now, committed with the caller's transaction), stamped
    `at` (the switchboard's clock; default: the real time)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown attendance event {kind!r}")
    row = AttendanceRow(call_id=call.id or 0, centre_code=centre, kind=kind, at=at or utcnow(),
                        data=data)  # fmt: skip
    session.add(row)
    session.flush()
    return Attendance(call_id=call.id or 0, kind=kind, centre=centre, at=row.at.isoformat(),
                      data=data, caller=call.caller_code, slot_id=call.slot_id,
                      event_id=row.id or 0)  # fmt: skip


def get_call(session: Session, call_id: int) -> Call:
    call = session.get(Call, call_id)
    if call is None:
        raise NotFound("call", str(call_id))
    return call


def invitations(session: Session, call_id: int) -> list[Invitation]:
    stmt = select(Invitation).where(Invitation.call_id == call_id)
    return list(session.exec(stmt.order_by(Invitation.centre_code)))


def events(session: Session, call_id: int) -> list[AttendanceRow]:
    stmt = select(AttendanceRow).where(AttendanceRow.call_id == call_id)
    return list(session.exec(stmt.order_by(col(AttendanceRow.id))))


# --- launching and answering -----------------------------------------------------------


@dataclass(frozen=True)
class Launched:
    call: Call
    invites: list[Invitation]
    recorded: list[Attendance]
    ringing: list[CallRinging]


def launch(
    session: Session,
    scope: Scope,
    callees: list[str],
    *,
    kind: str,
    slot_id: int | None,
    answer_deadline_seconds: int,
    min_verified_seconds: int,
    now: datetime | None = None,
) -> Launched:
    """Create a call from the scope's own centre to centres strictly below it, at `now`
    (the switchboard's clock; default: the real time)."""
    if scope.centre_code is None or scope.role.value not in ("district_operator", "town_operator"):
        raise NotAuthorised("only a district or town operator launches calls")
    if not callees:
        raise InvalidInput("callees", "name at least one centre to call")
    if len(set(callees)) != len(callees):
        raise InvalidInput("callees", "a centre is named twice")
    caller = centres.get(session, scope.centre_code)
    for code in callees:
        target = centres.get(session, centres.parse_code(code, "callees"))
        if not scope.may_manage(target):
            raise NotAuthorised(f"centre {code} is not below yours")
        if not target.active:
            raise InvalidInput("callees", f"centre {code} is inactive")
    busy = session.exec(
        select(Invitation.centre_code)
        .join(Call, col(Call.id) == col(Invitation.call_id))
        .where(
            col(Call.state).in_(OPEN_STATES),
            col(Invitation.centre_code).in_(callees),
            col(Invitation.state).in_((RANG, ANSWERED)),
        )
    ).first()
    if busy:
        raise Conflict(f"centre {busy} is already in another call")
    now = now or utcnow()
    call = Call(caller_code=caller.code, operator=scope.username, kind=kind, slot_id=slot_id,
                answer_deadline_seconds=answer_deadline_seconds,
                min_verified_seconds=min_verified_seconds, created_at=now)  # fmt: skip
    session.add(call)
    session.flush()
    invites, recorded, ringing = [], [], []
    for code in sorted(callees):
        invite = Invitation(call_id=call.id or 0, centre_code=code, rang_at=now)
        session.add(invite)
        invites.append(invite)
        recorded.append(record(session, call, INVITED, code, at=now))
        recorded.append(record(session, call, RANG, code, at=now))
        ringing.append(CallRinging(call.id or 0, caller.code, caller.name, kind, code,
                                   answer_deadline_seconds))  # fmt: skip
    return Launched(call, invites, recorded, ringing)


def _invitation(session: Session, call: Call, centre: str) -> Invitation:
    invite = session.get(Invitation, (call.id, centre))
    if invite is None:
        raise NotAuthorised(f"centre {centre} is not invited to call {call.id}")
    return invite


def answer(
    session: Session, call_id: int, centre: str, *, accept: bool, now: datetime | None = None
) -> list[Attendance]:
    """The invited centre accepts or declines at `now`. Late answers are refused."""
    call = get_call(session, call_id)
    if call.state not in OPEN_STATES:
        raise Conflict(f"call {call_id} has {call.state}")
    invite = _invitation(session, call, centre)
    if invite.state != RANG:
        raise Conflict(f"centre {centre} has already {invite.state.replace('_', ' ')}")
    now = now or utcnow()
    waited = (now - as_utc(invite.rang_at)).total_seconds()
    if waited > call.answer_deadline_seconds:
        return _not_answered(session, call, invite, now)
    out, waited_s = [], round(waited, 1)
    if accept:
        invite.state, invite.answered_at = ANSWERED, now
        out.append(record(session, call, ANSWERED, centre, at=now, seconds_to_answer=waited_s))
        if call.state == RINGING:
            call.state, call.started_at = LIVE, now
            session.add(call)
    else:
        invite.state = DECLINED
        out.append(record(session, call, DECLINED, centre, at=now, seconds_to_answer=waited_s))
    session.add(invite)
    out += _end_if_nobody(session, call, now)
    return out


def _not_answered(
    session: Session, call: Call, invite: Invitation, now: datetime
) -> list[Attendance]:
    invite.state = NOT_ANSWERED
    session.add(invite)
    out = [record(session, call, NOT_ANSWERED, invite.centre_code, at=now,
                  deadline_seconds=call.answer_deadline_seconds)]  # fmt: skip
    return out + _end_if_nobody(session, call, now)


def expire_rings(session: Session, call_id: int, now: datetime | None = None) -> list[Attendance]:
    """Every invitation still ringing past the deadline at `now` ends as not answered."""
    call = get_call(session, call_id)
    out: list[Attendance] = []
    now = now or utcnow()
    for invite in invitations(session, call_id):
        if invite.state == RANG and (now - as_utc(invite.rang_at)).total_seconds() >= (
            call.answer_deadline_seconds
        ):
            out += _not_answered(session, call, invite, now)
    return out


def _end_if_nobody(session: Session, call: Call, now: datetime) -> list[Attendance]:
    """A call nobody can still join (all declined or not answered) ends by itself."""
    states = {i.state for i in invitations(session, call.id or 0)}
    if call.state in OPEN_STATES and states <= {DECLINED, NOT_ANSWERED}:
        return end(session, call.id or 0, "nobody answered", now)
    return []


def end(
    session: Session, call_id: int, reason: str, now: datetime | None = None
) -> list[Attendance]:
    """End the call at `now` (default: the real time); rings still ringing go unanswered."""
    call = get_call(session, call_id)
    if call.state not in OPEN_STATES:
        return []
    now = now or utcnow()
    out = []
    for invite in invitations(session, call_id):
        if invite.state == RANG:
            out += [record(session, call, NOT_ANSWERED, invite.centre_code, at=now, ended=True)]
            invite.state = NOT_ANSWERED
            session.add(invite)
    call.state, call.ended_at, call.end_reason = ENDED, now, reason[:200]
    session.add(call)
    out.append(record(session, call, CALL_ENDED, None, at=now, reason=reason[:200]))
    return out


def interrupt_open_calls(session: Session, now: datetime | None = None) -> list[Attendance]:
    """On start: every call still open was cut off when the server died."""
    now = now or utcnow()
    out = []
    for call in session.exec(select(Call).where(col(Call.state).in_(OPEN_STATES))):
        call.state, call.ended_at, call.end_reason = INTERRUPTED, now, "server stopped"
        session.add(call)
        out.append(record(session, call, CALL_INTERRUPTED, None, at=now))
    return out


def may_see(session: Session, scope: Scope, call: Call) -> bool:
    """The caller's scope, or an invited centre's account."""
    caller = centres.get(session, call.caller_code)
    if scope.covers(caller):
        return True
    return (
        scope.centre_code is not None
        and session.get(Invitation, (call.id, scope.centre_code)) is not None
    )


def require_visible(session: Session, scope: Scope, call_id: int) -> Call:
    call = get_call(session, call_id)
    if not may_see(session, scope, call):
        raise NotAuthorised(f"call {call_id} is outside your scope")
    return call


def summary(session: Session, call: Call) -> dict[str, Any]:
    return {
        **call.as_dict(),
        "invites": [
            {"centre": i.centre_code, "state": i.state, "rang_at": i.rang_at.isoformat(),
             "answered_at": i.answered_at.isoformat() if i.answered_at else None}
            for i in invitations(session, call.id or 0)
        ],
    }  # fmt: skip


# --- join tokens -----------------------------------------------------------------------

TOKEN_PREFIX = "jt1"


def join_token(
    secret: bytes, call_id: int, centre: str, ttl_seconds: int, now: float | None = None
) -> str:
    """`jt1.<call>.<centre>.<expires>.<mac>`: for one call and one centre, until it expires."""
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    body = f"{TOKEN_PREFIX}.{call_id}.{centre}.{expires}"
    return f"{body}.{_mac(secret, body)}"


def _mac(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, f"join:{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def check_join_token(secret: bytes, token: str, call_id: int, now: float | None = None) -> str:
    """The centre the token admits to `call_id`; NotAuthenticated/NotAuthorised if not."""
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != TOKEN_PREFIX:
        raise NotAuthenticated("not a join token")
    body, mac = ".".join(parts[:4]), parts[4]
    if not hmac.compare_digest(mac, _mac(secret, body)):
        raise NotAuthenticated("the join token is not genuine")
    _prefix, token_call, centre, expires = parts[:4]
    if int(expires) < (now if now is not None else time.time()):
        raise NotAuthenticated("the join token has expired")
    if token_call != str(call_id):
        raise NotAuthorised(f"this join token is for call {token_call}, not call {call_id}")
    return centre
