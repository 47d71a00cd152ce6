"""Recordings (录像) of calls: one file per publisher, its hash and its life.

A publisher's forwarded video and audio are written without re-encoding by the media
worker (media/recorder.py); this module holds the table that says which file belongs to
which call and centre, and what became of it.

Invariants:
- A row is created (committed) before the worker is told to write its file, so a file
  under DATA_DIR/recordings always has a row; `path` is relative to that folder.
- `ended_at` is None exactly while the worker may still write the file. When it is set,
  `bytes`, `seconds` and `sha256` describe the file as closed (sha256 None when no media
  ever arrived and no file was kept) and a `recorded` attendance event carrying the same
  figures is written in the same transaction, so the journal — and its seal — hold them.
- Rows are never deleted. Retention removes the file and sets `removed_at` and
  `removed_reason`; the hash stays as evidence of what the file was.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, Session, SQLModel, col, select

from . import calls
from .calls import Attendance
from .centres import Centre
from .clock import utcnow
from .errors import NotFound

AUDIO_VIDEO, VIDEO, AUDIO = "audio+video", "video", "audio"
FOLDER = "recordings"  # under DATA_DIR
# The kinds of call the policy setting `record_district_meetings` records from the start:
# a district's meetings, from its rota or launched ad hoc by a district centre.
DISTRICT_MEETING_KINDS = ("district_meeting", "meeting")


class Recording(SQLModel, table=True):
    """One publisher's recorded file of one call."""

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    participant: str = Field(max_length=40)  # the room's name for the publisher
    # The centre whose record it is (the publishing centre); None for a publisher that
    # is no centre (a camera): then, like its other events, it belongs to the whole call.
    centre_code: str | None = Field(default=None, foreign_key="centre.code", index=True)
    kind: str = Field(default=AUDIO_VIDEO, max_length=12)  # what the file holds
    path: str = Field(max_length=300)  # relative to DATA_DIR/recordings
    bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    seconds: float | None = None  # the media's duration, from the RTP clocks
    sha256: str | None = Field(default=None, max_length=64)
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    end_reason: str = Field(default="", max_length=200)
    removed_at: datetime | None = None
    removed_reason: str = Field(default="", max_length=200)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "participant": self.participant,
            "centre": self.centre_code,
            "kind": self.kind,
            "path": self.path,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "sha256": self.sha256,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "end_reason": self.end_reason,
            "removed_at": self.removed_at.isoformat() if self.removed_at else None,
            "removed_reason": self.removed_reason,
        }


def recorded_by_policy(kind: str, caller_level: str, record_district_meetings: bool) -> bool:
    """Whether a call starts recorded: a district meeting, when the policy says so."""
    return (
        record_district_meetings and caller_level == "district" and kind in DISTRICT_MEETING_KINDS
    )


def folder_of(data_dir: Path, call_id: int) -> Path:
    """Where a call's files are written: DATA_DIR/recordings/<call id>."""
    return data_dir / FOLDER / str(call_id)


def file_of(data_dir: Path, recording: Recording) -> Path:
    return data_dir / FOLDER / recording.path


def sha256_of(path: Path) -> tuple[int, str | None]:
    """(bytes, sha256) of a file as it is on disk; (0, None) when there is none."""
    if not path.is_file():
        return 0, None
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _centre_or_none(session: Session, participant: str) -> str | None:
    return participant if session.get(Centre, participant) is not None else None


def started(
    session: Session, call_id: int, participant: str, path: str, kind: str, at: datetime
) -> Recording:
    """The row of a file the media worker began (idempotent per path)."""
    row = session.exec(select(Recording).where(Recording.call_id == call_id,
                                               Recording.path == path)).first()  # fmt: skip
    if row is None:
        row = Recording(call_id=call_id, participant=participant, kind=kind, path=path,
                        centre_code=_centre_or_none(session, participant),
                        started_at=at)  # fmt: skip
        session.add(row)
        session.flush()
    return row


def finished(
    session: Session,
    call_id: int,
    participant: str,
    path: str,
    kind: str,
    *,
    started_at: datetime,
    ended_at: datetime,
    size: int,
    seconds: float,
    sha256: str | None,
    reason: str,
    at: datetime | None = None,
) -> list[Attendance]:
    """The file closed: its row completed and a `recorded` event (stamped `at`: the
    switchboard's clock) carrying the same figures, in one transaction (see the module's
    invariants). A second report of one file changes nothing."""
    row = started(session, call_id, participant, path, kind, started_at)
    if row.ended_at is not None:
        return []
    row.ended_at, row.bytes, row.seconds, row.sha256 = ended_at, size, seconds, sha256
    row.end_reason = reason[:200]
    session.add(row)
    call = calls.get_call(session, call_id)
    event = calls.record(session, call, calls.RECORDED, row.centre_code, at=at, recording=row.id,
                         participant=participant, file=path, holds=kind, bytes=size,
                         seconds=seconds, sha256=sha256, reason=row.end_reason,
                         started_at=row.started_at.isoformat())  # fmt: skip
    return [event]


def unfinished(session: Session, call_id: int) -> list[Recording]:
    """Files of the call the worker may still be writing (ended_at not set)."""
    stmt = select(Recording).where(Recording.call_id == call_id,
                                   col(Recording.ended_at).is_(None))  # fmt: skip
    return list(session.exec(stmt.order_by(col(Recording.id))))


def of_call(session: Session, call_id: int) -> list[Recording]:
    stmt = select(Recording).where(Recording.call_id == call_id)
    return list(session.exec(stmt.order_by(col(Recording.id))))


def get(session: Session, recording_id: int) -> Recording:
    row = session.get(Recording, recording_id)
    if row is None:
        raise NotFound("recording", str(recording_id))
    return row


def expired(session: Session, before: datetime) -> list[Recording]:
    """Files ended before `before` and still kept, oldest first."""
    stmt = select(Recording).where(col(Recording.ended_at) < before,
                                   col(Recording.removed_at).is_(None))  # fmt: skip
    return list(session.exec(stmt.order_by(col(Recording.ended_at))))


def as_utc_from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
