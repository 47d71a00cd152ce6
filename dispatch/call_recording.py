"""Recording live calls: which calls are recorded, turning it on and off, and the rows of
the files their media rooms write. Held by `dispatch.conference.Conference` (its
`recording`), which hands it each room and the rooms' RecordingStarted/RecordingEnded.

Invariants:
- Turning a call's recording on or off is a call-wide `recording` event, written before
  the room is told: every page of the call receives it and shows or hides its mark.
  A call's starts and stops run one at a time (a lock per call), so the room is told
  in the order the events were written.
- A file's row is written when its room reports it begun and completed, with its
  `recorded` event, when the room reports it closed and hashed (dispatch/recordings.py).
- `call_ended` returns once every file of the call is closed and written: the room's
  close waits for its files, the rows' writes are awaited, and a file whose media worker
  died (no report will come) is hashed as it lies on disk and completed with reason
  "media worker stopped". The conference marks the call ended only after that, and a
  journal is signed off (sealed) only once its call has ended, so the sealed journal
  carries the sha256 of every file of the call (logs/seal.py refuses a sign-off while a
  file of the call is unfinished, which only a crash could leave).
- A full disk — free space below `min_free_bytes` when recording starts, or a file that
  stopped on it — turns the call's recording off with a `recording` event whose reason
  is "disk full". Nothing else of the call changes: the call goes on.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from media.pool import RemoteRoom
from media.recorder import DISK_FULL
from media.room import RecordingEnded, RecordingStarted, Room, RoomEvent

from . import calls, recordings
from .clock import utcnow
from .errors import Conflict
from .switchboard import Switchboard

log = logging.getLogger(__name__)

WORKER_GONE = "media worker stopped"
SERVER_STOPPED = "server stopped"


class CallRecording:
    def __init__(self, board: Switchboard, data_dir: Path, *, min_free_bytes: int = 0) -> None:
        self.board, self.data_dir = board, data_dir
        self.min_free_bytes = min_free_bytes
        self._on: dict[int, str] = {}  # recorded calls -> who turned the recording on
        self._rooms: dict[int, Room | RemoteRoom] = {}
        self._writes: dict[int, set[asyncio.Task[Any]]] = {}
        self._switching: dict[int, asyncio.Lock] = {}  # one start or stop at a time per call

    def is_on(self, call_id: int) -> bool:
        return call_id in self._on

    def state(self, call_id: int) -> dict[str, Any]:
        return {"call_id": call_id, "recording": call_id in self._on,
                "by": self._on.get(call_id)}  # fmt: skip

    # -- turning it on and off ----------------------------------------------------------

    async def start(self, call_id: int, by: str) -> dict[str, Any]:
        """Record the call from now (idempotent). Conflict once it has ended, or when the
        disk is full (then also a `recording` event saying so)."""
        async with self._switching.setdefault(call_id, asyncio.Lock()):
            return await self._start(call_id, by)

    async def _start(self, call_id: int, by: str) -> dict[str, Any]:
        await self.board.db.read(_require_open, call_id)
        if call_id in self._on:
            return self.state(call_id)
        folder = recordings.folder_of(self.data_dir, call_id)
        free = await asyncio.to_thread(_free_bytes, folder)
        if free < self.min_free_bytes:
            await self.board.record(call_id, calls.RECORDING, None, on=False, by=by,
                                    reason=DISK_FULL, free_bytes=free)  # fmt: skip
            raise Conflict(f"call {call_id} cannot be recorded: the disk is full ({free} bytes "
                           f"free, {self.min_free_bytes} needed)")  # fmt: skip
        await self.board.record(call_id, calls.RECORDING, None, on=True, by=by)
        self._on[call_id] = by
        log.info("call %s: recording on (%s)", call_id, by)
        room = self._rooms.get(call_id)
        if room is not None:
            await room.record(str(folder), min_free_bytes=self.min_free_bytes)
        return self.state(call_id)

    async def stop(self, call_id: int, by: str, reason: str = "") -> dict[str, Any]:
        """Stop recording the call (idempotent); returns once its files are closed."""
        async with self._switching.setdefault(call_id, asyncio.Lock()):
            return await self._stop(call_id, by, reason)

    async def _stop(self, call_id: int, by: str, reason: str) -> dict[str, Any]:
        if self._on.pop(call_id, None) is None:
            return self.state(call_id)
        await self.board.record(call_id, calls.RECORDING, None, on=False, by=by,
                                reason=reason or f"stopped by {by}")  # fmt: skip
        log.info("call %s: recording off (%s)", call_id, reason or by)
        room = self._rooms.get(call_id)
        if room is not None:
            await room.record(None)
        return self.state(call_id)

    # -- the conference's hooks -------------------------------------------------------

    async def attach(self, call_id: int, room: Room | RemoteRoom) -> None:
        """The call's media room was made: record it from its first join if on."""
        self._rooms[call_id] = room
        if call_id in self._on:
            folder = recordings.folder_of(self.data_dir, call_id)
            await room.record(str(folder), min_free_bytes=self.min_free_bytes)

    def on_event(self, call_id: int, event: RoomEvent) -> None:
        """A room's RecordingStarted or RecordingEnded (on the event loop)."""
        if isinstance(event, RecordingStarted):
            path = f"{call_id}/{event.file}"
            at = recordings.as_utc_from_epoch(event.at)
            begun = self.board.db.write(recordings.started, call_id, event.participant, path,
                                        event.kind, at)  # fmt: skip
            self._spawn(call_id, begun)
        elif isinstance(event, RecordingEnded):
            r = event.report
            write = partial(recordings.finished, call_id=call_id, participant=r.participant,
                            path=f"{call_id}/{r.name}", kind=r.kind,
                            started_at=recordings.as_utc_from_epoch(r.started_at),
                            ended_at=recordings.as_utc_from_epoch(r.ended_at), size=r.bytes,
                            seconds=r.seconds, sha256=r.sha256, reason=r.reason,
                            at=self.board.clock.now())  # fmt: skip
            self._spawn(call_id, self.board.write(write))
            if r.reason == DISK_FULL and call_id in self._on:
                self._spawn(call_id, self.stop(call_id, "server", DISK_FULL))

    async def call_ended(self, call_id: int) -> None:
        """After the room closed, before the call is marked ended (see the invariants)."""
        self._on.pop(call_id, None)
        self._rooms.pop(call_id, None)
        self._switching.pop(call_id, None)
        await self._settle(call_id)
        await self._complete_unfinished(call_id, WORKER_GONE)

    def call_over(self, call_id: int) -> None:
        """The call ended or was interrupted some other way than `Conference.end` (rings
        nobody answered): stop its recording, so no file outlives the call."""
        if call_id in self._on:
            self._spawn(call_id, self.stop(call_id, "server", "call ended"))

    async def close(self) -> None:
        """The server stops (after the rooms closed): every write of every call done."""
        for call_id in list(self._writes):
            await self._settle(call_id)
        self._on.clear()
        self._rooms.clear()
        self._switching.clear()

    async def recover(self) -> int:
        """On start: files a dead server left unfinished are completed as they lie on
        disk, with reason "server stopped". Returns how many."""
        rows = await self.board.db.read(_unfinished_calls)
        for call_id in rows:
            await self._complete_unfinished(call_id, SERVER_STOPPED)
        return len(rows)

    # -- internals ------------------------------------------------------------------------

    def _spawn(self, call_id: int, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        pending = self._writes.setdefault(call_id, set())
        pending.add(task)
        task.add_done_callback(partial(self._done, call_id))

    def _done(self, call_id: int, task: asyncio.Task[Any]) -> None:
        self._writes.get(call_id, set()).discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: writing a recording failed", call_id, exc_info=task.exception())

    async def _settle(self, call_id: int) -> None:
        while pending := self._writes.get(call_id):
            await asyncio.gather(*list(pending), return_exceptions=True)
        self._writes.pop(call_id, None)

    async def _complete_unfinished(self, call_id: int, reason: str) -> None:
        for row in await self.board.db.read(recordings.unfinished, call_id):
            size, sha256 = await asyncio.to_thread(
                recordings.sha256_of, recordings.file_of(self.data_dir, row)
            )
            write = partial(recordings.finished, call_id=call_id, participant=row.participant,
                            path=row.path, kind=row.kind, started_at=row.started_at,
                            ended_at=utcnow(), size=size, seconds=0.0, sha256=sha256,
                            reason=reason, at=self.board.clock.now())  # fmt: skip
            await self.board.write(write)
            log.warning("call %s: recording %s completed as found (%s)", call_id, row.path,
                        reason)  # fmt: skip


def _require_open(session: Session, call_id: int) -> None:
    call = calls.get_call(session, call_id)
    if call.state not in calls.OPEN_STATES:
        raise Conflict(f"call {call_id} has {call.state}: it can no longer be recorded")


def _unfinished_calls(session: Session) -> list[int]:
    stmt = select(recordings.Recording.call_id).where(col(recordings.Recording.ended_at).is_(None))
    return sorted(set(session.exec(stmt)))


def _free_bytes(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free
