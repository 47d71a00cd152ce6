"""The live side of calls: one media room per open call, and the attendance its media
proves — joined and left, live video, faces on duty, snapshots, verified attendance.

Invariants:
- Every fact goes through the switchboard, so it is written before it is published.
- A connection that drops (silence) and returns within `rejoin_grace` seconds is the
  same attendance: nothing is recorded. One that stays away is recorded as left at
  the moment it went silent. A peer that hangs up or fails is recorded as left at
  once (within the room's detection time, ~3 s). A browser that reloads joins again:
  a new interval.
- A centre that joined from a page (it opened the call's event socket) gets no grace:
  the page reconnects with a new peer of its own, so silence (~3 s) is recorded left
  at once, and a page whose event sockets all closed and stayed closed for
  `page_grace` seconds (a closed tab) is made to leave. A new offer that replaces the
  centre's peer keeps the attendance. A page's beacon leaves with the leave token of
  the connection it holds; a stale token (the connection was replaced) does nothing.
- OpenCV runs on a worker thread, one sampled frame at a time per participant; a
  frame that arrives while the previous one is still being checked is skipped.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session

from media.checks import AttendanceClock, FrameChecker, FrameVerdict, Thresholds, to_bgr
from media.ice import IceSettings, configure_host_addresses
from media.pool import RemoteRoom
from media.room import (
    FrameSampled,
    PeerConnected,
    PeerDisconnected,
    PeerFailed,
    RecordingEnded,
    RecordingStarted,
    Room,
    RoomError,
    RoomEvent,
)
from media.snapshots import Snapshot, save_snapshot

from . import calls
from .call_cameras import CallCameras, open_call
from .call_recording import CallRecording
from .cameras import camera_id_of
from .errors import Conflict, InvalidInput, NotAuthorised
from .events import Event
from .switchboard import Switchboard

log = logging.getLogger(__name__)

# Makes a call's media room: media.room.Room (in this process) or a media worker
# pool's room; both take (room_id, ice, on_event=…, video_codec=…).
RoomFactory = Callable[..., Room | RemoteRoom]

# Faces are counted on the first sample and then every FACES_EVERY samples (one a
# second): the cascade is ~95 % of a check's cost (tests/bench/checks.py: one check
# costs as much as ~30-100 VP8 decodes), and who sits in the room changes slowly;
# live / black / frozen are judged on every sample.
FACES_EVERY = 5

# While a centre of a call is being rung, the call's room asks the publishers it will
# see for a key frame this often, and their feeds keep the frames since
# (media.forwarding.GOP_SECONDS, a little longer): whenever the centre answers, its
# first picture is already there when its connection comes up, instead of a request
# made at the answer (~0.2 s for a publisher to answer it). Costs a key frame a second
# from the operator and the floor holder while anyone rings, nothing after.
RINGING_KEYFRAME_EVERY = 1.0


def _checker() -> FrameChecker:
    return FrameChecker(Thresholds(faces_every=FACES_EVERY))


@dataclass
class _Presence:
    """What the conference knows of one participant of one call."""

    checker: FrameChecker = field(default_factory=_checker)
    clock: AttendanceClock = field(default_factory=AttendanceClock)
    joined: bool = False
    state: str = ""  # last video verdict: live / black / frozen
    faces: int = 0
    verified: bool = False
    answer_snapshot: bool = False
    checking: bool = False
    last_frame: np.ndarray | None = None
    gone: asyncio.TimerHandle | None = None
    leave_token: str = ""  # the current connection's; a page's beacon must show it
    replacing: bool = False  # a new offer is replacing the peer: its drop is not a leave


@dataclass
class _Live:
    call_id: int
    caller: str
    min_verified: int
    room: Room | RemoteRoom
    people: dict[str, _Presence] = field(default_factory=dict)


class Conference:
    def __init__(
        self,
        board: Switchboard,
        ice: IceSettings,
        data_dir: Path,
        *,
        rejoin_grace: float = 30.0,
        page_grace: float = 2.5,
        video_codec: str = "VP8",
        rooms: RoomFactory = Room,
    ) -> None:
        self.board, self.ice, self.data_dir = board, ice, data_dir
        self.video_codec = video_codec
        self._rooms = rooms
        self.rejoin_grace, self.page_grace = rejoin_grace, page_grace
        self._live: dict[int, _Live] = {}
        self._pages: dict[tuple[int, str], int] = {}  # open call event sockets per centre
        self._paged: set[tuple[int, str]] = set()  # centres that opened one in this call
        self._tasks: set[asyncio.Task[object]] = set()
        self._ringing: dict[int, set[str]] = {}  # centres being rung, per call
        self._refresh: asyncio.Handle | None = None
        self._unsubscribe = board.bus.subscribe(self._on_call_event)
        self.recording = CallRecording(board, data_dir)
        self.cameras = CallCameras(board, self._save_snapshot, self._camera_room)
        configure_host_addresses(ice)

    # -- joining and leaving -----------------------------------------------------------

    async def join(self, call_id: int, centre: str, offer_sdp: str, *, whip: bool = False) -> str:
        """Answer `centre`'s offer. The caller's centre joins as operator; an invited
        centre must have accepted (a WHIP publisher's first offer accepts for it)."""
        call, invite_state = await self.board.db.read(_call_and_invite, call_id, centre)
        operator = centre == call.caller_code
        if not operator:
            if invite_state == calls.RANG and whip:
                await self.board.answer(call_id, centre, accept=True)
            elif invite_state != calls.ANSWERED:
                raise Conflict(f"centre {centre} has not accepted call {call_id}")
        live = await self._room(call)
        person = live.people.setdefault(centre, _Presence())
        person.replacing = True
        try:
            answer = await live.room.join(centre, offer_sdp, operator=operator, passive_dtls=whip)
        except RoomError as exc:
            raise InvalidInput("sdp", str(exc)) from None
        finally:
            person.replacing = False
        person.leave_token = secrets.token_urlsafe(18)
        return answer

    def leave_token(self, call_id: int, centre: str) -> str:
        """The token that lets `centre`'s current connection (and no later one) leave."""
        live = self._live.get(call_id)
        person = live.people.get(centre) if live else None
        return person.leave_token if person else ""

    async def leave(
        self, call_id: int, centre: str, *, token: str | None = None, reason: str = "left the call"
    ) -> bool:
        """Close `centre`'s connection and record it left. With `token`, only if it is
        the current connection's leave token (one use). True if a connection was ended."""
        live = self._live.get(call_id)
        person = live.people.get(centre) if live else None
        if live is None or person is None:
            return False
        if token is not None and not (
            person.leave_token and hmac.compare_digest(token, person.leave_token)
        ):
            return False
        person.leave_token = ""
        await self._left(live, centre, reason, time.time())  # first: the reason is ours
        await live.room.leave(centre)
        return True

    def page_opened(self, call_id: int, centre: str) -> None:
        """A page of `centre` opened the call's event socket."""
        key = (call_id, centre)
        self._pages[key] = self._pages.get(key, 0) + 1
        self._paged.add(key)

    def page_closed(self, call_id: int, centre: str) -> None:
        """One of its sockets closed; with none open after `page_grace`, the page is gone."""
        key = (call_id, centre)
        count = self._pages.get(key, 0) - 1
        if count > 0:
            self._pages[key] = count
            return
        self._pages.pop(key, None)
        if call_id in self._live:
            asyncio.get_running_loop().call_later(self.page_grace, self._page_gone, call_id, centre)

    def _page_gone(self, call_id: int, centre: str) -> None:
        live = self._live.get(call_id)
        person = live.people.get(centre) if live else None
        if person is not None and person.joined and not self._pages.get((call_id, centre)):
            self._spawn(self.leave(call_id, centre, reason="page closed (event socket closed)"))

    def prime(self, call_id: int, centre: str) -> None:
        """`centre` is answering the ring: its media room asks the publishers it will see
        for a key frame now, so its first picture is waiting when its connection is up
        (media.room.Room.prime). Nothing before the operator's room exists."""
        live = self._live.get(call_id)
        if live is not None:
            live.room.prime(centre)

    def _on_call_event(self, event: Event) -> None:
        """Keeps `_ringing` from the rings and their answers (a call's end answers every
        ring still ringing as not answered)."""
        if not isinstance(event, calls.Attendance) or event.centre is None:
            return
        if event.kind == calls.RANG:
            self._ringing.setdefault(event.call_id, set()).add(event.centre)
            if self._refresh is None:
                self._refresh = asyncio.get_running_loop().call_soon(self._refresh_ringing)
        elif event.kind in (calls.ANSWERED, calls.DECLINED, calls.NOT_ANSWERED):
            rung = self._ringing.get(event.call_id)
            if rung is not None:
                rung.discard(event.centre)
                if not rung:
                    del self._ringing[event.call_id]

    def _refresh_ringing(self) -> None:
        """Every RINGING_KEYFRAME_EVERY while any centre rings: prime each such call's
        room for one of its rung centres (the sources are the same for all of them)."""
        self._refresh = None
        if not self._ringing:
            return
        for call_id, rung in self._ringing.items():
            live = self._live.get(call_id)
            if live is not None:
                live.room.prime(next(iter(rung)))
        self._refresh = asyncio.get_running_loop().call_later(
            RINGING_KEYFRAME_EVERY, self._refresh_ringing
        )

    async def view(self, call_id: int, small: list[str]) -> list[str]:
        """The operator's page shows `small` (centres invited to the call, or cameras
        it has shown) in small tiles: their video comes at the base temporal layer only
        (media.room.Room.view)."""
        live = self._require(call_id)
        invited = {i.centre_code for i in await self.board.db.read(calls.invitations, call_id)}
        shown = set(self.cameras.ever(call_id))
        unknown = sorted(p for p in set(small) if p not in invited and camera_id_of(p) not in shown)
        if unknown:
            raise InvalidInput("small", f"not in call {call_id}: {', '.join(unknown[:5])}")
        chosen = sorted(set(small))
        try:
            live.room.view(chosen)
        except RoomError as exc:
            raise Conflict(str(exc)) from None
        return chosen

    async def give_floor(self, call_id: int, centre: str | None) -> calls.Attendance:
        live = self._require(call_id)
        if centre is not None and centre not in live.people:
            raise InvalidInput("centre", f"{centre} is not in call {call_id}")
        try:
            live.room.give_floor(centre)
        except RoomError as exc:
            raise InvalidInput("centre", str(exc)) from None
        return await self.board.record(call_id, calls.FLOOR, centre)

    async def snapshot(self, call_id: int, centre: str, why: str = "requested") -> calls.Attendance:
        live = self._require(call_id)
        person = live.people.get(centre)
        if person is None or person.last_frame is None:
            raise Conflict(f"no video from {centre} yet")
        return await self._snapshot(live, centre, person.last_frame, why)

    async def end(self, call_id: int, reason: str) -> None:
        live = self._live.pop(call_id, None)
        self._ringing.pop(call_id, None)
        if live is not None:
            for person in live.people.values():
                if person.gone is not None:
                    person.gone.cancel()
            await live.room.close()
        await self.recording.call_ended(call_id)  # every file's row written first
        self.cameras.forget(call_id)
        for key in [k for k in self._paged if k[0] == call_id]:
            self._paged.discard(key)
            self._pages.pop(key, None)
        await self.board.end(call_id, reason)

    async def close(self) -> None:
        self._unsubscribe()
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        for live in list(self._live.values()):
            await live.room.close()
        self._live.clear()
        await self.recording.close()

    def operator_slots(self, call_id: int) -> dict[str, int]:
        live = self._live.get(call_id)
        return live.room.operator_slots() if live else {}

    def media_worker_pid(self, call_id: int) -> int | None:
        """The process id of the media worker carrying the call's media; None when the
        media runs in this process or the call has none yet."""
        live = self._live.get(call_id)
        if live is None or not isinstance(live.room, RemoteRoom) or live.room.worker is None:
            return None
        return live.room.worker.pid

    def rooms(self) -> tuple[Room | RemoteRoom, ...]:
        """The media room of every live call (from its first join until it ends)."""
        return tuple(live.room for live in self._live.values())

    def present(self, call_id: int) -> tuple[str, ...]:
        live = self._live.get(call_id)
        return live.room.participants if live else ()

    def away(self, call_id: int) -> tuple[str, ...]:
        """The centres of the call whose connection went silent and may still come back
        (within `rejoin_grace`): joined, not yet left."""
        live = self._live.get(call_id)
        if live is None:
            return ()
        return tuple(sorted(c for c, p in live.people.items() if p.gone is not None))

    # -- internals ---------------------------------------------------------------------

    def _require(self, call_id: int) -> _Live:
        live = self._live.get(call_id)
        if live is None:
            raise Conflict(f"call {call_id} has no media yet")
        return live

    async def _room(self, call: calls.Call) -> _Live:
        call_id = call.id or 0
        live = self._live.get(call_id)
        if live is None:
            room = self._rooms(
                str(call_id), self.ice, on_event=self._on_event, video_codec=self.video_codec
            )
            live = _Live(call_id, call.caller_code, call.min_verified_seconds, room)
            self._live[call_id] = live
            await self.recording.attach(call_id, room)
        return live

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: RoomEvent) -> None:
        if isinstance(event, RecordingStarted | RecordingEnded):  # also while a room closes
            self.recording.on_event(int(event.room_id), event)
            return
        live = self._live.get(int(event.room_id))
        if live is None:
            return
        if camera_id_of(event.participant) is not None:  # a camera: no attendance
            self.cameras.on_event(live.call_id, event)
            return
        person = live.people.setdefault(event.participant, _Presence())
        if isinstance(event, PeerConnected):
            if person.gone is not None:  # back within the grace: the same attendance
                person.gone.cancel()
                person.gone = None
                return
            if not person.joined:
                person.joined = True
                self._spawn(self.board.record(live.call_id, calls.JOINED, event.participant))
        elif isinstance(event, PeerDisconnected) and person.joined and person.gone is None:
            key = (live.call_id, event.participant)
            if key in self._paged and not person.replacing:
                # A page reconnects with a new peer of its own: silence means it left.
                self._spawn(self._left(live, event.participant, event.reason, event.at))
                return
            loop = asyncio.get_running_loop()
            person.gone = loop.call_later(
                self.rejoin_grace, self._spawn_left, live, event.participant, event.reason, event.at
            )
        elif isinstance(event, PeerFailed) and person.joined:
            if person.gone is not None:
                person.gone.cancel()
            self._spawn(self._left(live, event.participant, event.reason, event.at))
        elif isinstance(event, FrameSampled) and not person.checking:
            person.checking = True
            self._spawn(self._check(live, event.participant, person, event))

    def _spawn_left(self, live: _Live, centre: str, reason: str, at: float) -> None:
        self._spawn(self._left(live, centre, reason, at))

    async def _left(self, live: _Live, centre: str, reason: str, at: float) -> None:
        person = live.people.get(centre)
        if person is None or not person.joined:
            return
        if person.gone is not None:  # left for good: no grace timer may fire later
            person.gone.cancel()
        person.joined, person.gone, person.state = False, None, ""
        await self.board.record(live.call_id, calls.LEFT, centre, reason=reason,
                                seconds_live=round(person.clock.seconds_live, 1),
                                went_at=at)  # fmt: skip

    async def _check(
        self, live: _Live, centre: str, person: _Presence, event: FrameSampled
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
            bgr, verdict = await loop.run_in_executor(None, _check_frame, person.checker, event)
            person.last_frame = bgr
            person.clock.update(verdict.state, time.monotonic(), verdict.faces)
            await self._verdict(live, centre, person, verdict)
            if not person.answer_snapshot and verdict.state == "live":
                person.answer_snapshot = True
                await self._snapshot(live, centre, bgr, "answer")
        except Exception:
            log.exception("call %s centre %s: checking a frame failed", live.call_id, centre)
        finally:
            person.checking = False

    async def _verdict(self, live: _Live, centre: str, person: _Presence, v: FrameVerdict) -> None:
        call_id = live.call_id
        if v.state != person.state:
            was, person.state = person.state, v.state
            if v.state == "live":
                await self.board.record(call_id, calls.VIDEO_LIVE, centre)
            elif was == "live" or not was:
                await self.board.record(call_id, calls.VIDEO_LOST, centre, state=v.state)
        if v.state == "live" and v.faces > person.faces:
            person.faces = v.faces
            await self.board.record(call_id, calls.FACES_SEEN, centre, faces=v.faces)
        if (
            not person.verified
            and centre != live.caller
            and person.clock.verified(live.min_verified)
        ):
            person.verified = True
            await self.board.record(call_id, calls.VERIFIED, centre,
                                    seconds_live=round(person.clock.seconds_live, 1),
                                    max_faces=person.clock.max_faces)  # fmt: skip

    async def _camera_room(self, call_id: int) -> tuple[str, Room | RemoteRoom]:
        live = await self._room(await self.board.db.read(open_call, call_id))
        return live.caller, live.room

    async def _save_snapshot(self, call_id: int, why: str, bgr: np.ndarray, name: str) -> Snapshot:
        folder = self.data_dir / "snapshots" / str(call_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, save_snapshot, bgr, folder, name)

    async def _snapshot(
        self, live: _Live, centre: str, bgr: np.ndarray, why: str
    ) -> calls.Attendance:
        folder = self.data_dir / "snapshots" / str(live.call_id)
        name = f"{why}-{centre}-{int(time.time() * 1000)}.jpg"
        loop = asyncio.get_running_loop()
        shot: Snapshot = await loop.run_in_executor(None, save_snapshot, bgr, folder, name)
        return await self.board.record(live.call_id, calls.SNAPSHOT, centre, why=why,
                                       path=str(shot.path), sha256=shot.sha256,
                                       width=shot.width, height=shot.height)  # fmt: skip


def _check_frame(checker: FrameChecker, event: FrameSampled) -> tuple[np.ndarray, FrameVerdict]:
    bgr = to_bgr(event.frame)
    return bgr, checker.check(bgr, time.monotonic())


def _call_and_invite(session: Session, call_id: int, centre: str) -> tuple[calls.Call, str | None]:
    call = calls.get_call(session, call_id)
    if call.state not in calls.OPEN_STATES:
        raise Conflict(f"call {call_id} has {call.state}")
    if centre == call.caller_code:
        return call, None
    invite = session.get(calls.Invitation, (call_id, centre))
    if invite is None:
        raise NotAuthorised(f"centre {centre} is not invited to call {call_id}")
    return call, invite.state
