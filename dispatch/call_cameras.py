"""Cameras in live calls: which camera each call shows, how its stream stands, and its
snapshots. Held by `dispatch.conference.Conference` (its `cameras`), which hands it
the room events of camera participants (`camera-<id>`).

Invariants:
- A camera is not a centre: it records no attendance (no joined, left, video or
  verified event), so it never counts towards coverage. What it leaves in the record
  are the snapshots the operator takes of it: `snapshot` events with no centre (a
  call-wide event) and the camera's id, name and owning centre in their data.
- Its state (`connecting`, `live`, `reconnecting`, `removed`) is published on the bus
  as `CameraChanged` for the calling side's pages, and kept for `cameras()`.
- The pull URL (with credentials) goes to the media room and nowhere else: not into
  an event, a log line or `cameras()`.
- A call shows at most `MAX_PER_CALL` distinct cameras (the operator's page offers a
  receiving slot for each; the offer's size limit allows for them).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from sqlmodel import Session

from media.camera import CameraState
from media.checks import to_bgr
from media.pool import RemoteRoom
from media.room import FrameSampled, Room, RoomError, RoomEvent

from . import calls
from .cameras import participant_of
from .errors import Conflict, InvalidInput
from .events import Event
from .switchboard import Switchboard

log = logging.getLogger(__name__)

MAX_PER_CALL = 8
REMOVED = "removed"


@dataclass(frozen=True)
class CameraChanged(Event):
    """A camera of a call changed state; for the calling side's pages."""

    name: ClassVar[str] = "camera"
    call_id: int
    camera: int
    participant: str
    camera_name: str
    centre: str  # the centre the camera belongs to
    state: str
    reason: str
    caller: str

    @property
    def centres(self) -> tuple[str, ...]:
        return (self.caller,)


@dataclass
class _Shown:
    camera: int
    name: str
    centre: str
    state: str = "connecting"
    reason: str = ""
    last_frame: np.ndarray | None = None
    converting: bool = False


@dataclass
class _CallCameras:
    caller: str
    shown: dict[str, _Shown] = field(default_factory=dict)  # participant -> camera
    ever: set[int] = field(default_factory=set)  # every camera shown in the call


RoomOf = Callable[[int], Awaitable[tuple[str, Room | RemoteRoom]]]


class CallCameras:
    def __init__(self, board: Switchboard, save: Callable[..., Awaitable[Any]], room_of: RoomOf):
        """`room_of(call_id)`: (caller, media room) of an open call, created if need be;
        `save(call_id, why, bgr, name)`: stores a snapshot, returns the Snapshot."""
        self.board = board
        self._save = save
        self._room_of = room_of
        self._calls: dict[int, _CallCameras] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(
        self,
        call_id: int,
        camera: int,
        name: str,
        centre: str,
        url: str,
        options: dict[str, float],
    ) -> dict[str, Any]:
        """Show `camera` in the call (again: it restarts). Returns its state. `options`:
        the stream's `timeout` and `retry_max` (`media.camera.CameraSource`)."""
        caller, room = await self._room_of(call_id)
        here = self._calls.setdefault(call_id, _CallCameras(caller))
        if camera not in here.ever and len(here.ever) >= MAX_PER_CALL:
            raise Conflict(f"a call shows at most {MAX_PER_CALL} cameras")
        participant = participant_of(camera)
        here.ever.add(camera)
        shown = here.shown[participant] = _Shown(camera, name, centre)
        self._publish(call_id, here, shown)
        try:
            started = room.add_camera(participant, url, **options)
            if inspect.isawaitable(started):
                await started
        except RoomError as exc:
            here.shown.pop(participant, None)
            raise Conflict(f"camera {camera} cannot be added: {exc}") from None
        log.info("call %s camera %s: added (%s)", call_id, camera, participant)
        return self._state(shown)

    async def remove(self, call_id: int, camera: int) -> None:
        here = self._calls.get(call_id)
        participant = participant_of(camera)
        shown = here.shown.pop(participant, None) if here else None
        if here is None or shown is None:
            raise InvalidInput("camera", f"camera {camera} is not in call {call_id}")
        _, room = await self._room_of(call_id)
        done = room.remove_camera(participant)
        if inspect.isawaitable(done):
            await done
        shown.state, shown.reason = REMOVED, ""
        self._publish(call_id, here, shown)
        log.info("call %s camera %s: removed", call_id, camera)

    def listed(self, call_id: int) -> list[dict[str, Any]]:
        """The cameras the call shows now, in the order they were added."""
        here = self._calls.get(call_id)
        return [self._state(s) for s in here.shown.values()] if here else []

    def ever(self, call_id: int) -> list[int]:
        """Every camera the call has shown (each holds one of the operator's slots)."""
        here = self._calls.get(call_id)
        return sorted(here.ever) if here else []

    async def snapshot(self, call_id: int, camera: int) -> calls.Attendance:
        here = self._calls.get(call_id)
        shown = here.shown.get(participant_of(camera)) if here else None
        if shown is None:
            raise InvalidInput("camera", f"camera {camera} is not in call {call_id}")
        if shown.last_frame is None:
            raise Conflict(f"no picture from camera {camera} yet")
        name = f"requested-{participant_of(camera)}-{int(time.time() * 1000)}.jpg"
        shot = await self._save(call_id, "requested", shown.last_frame, name)
        return await self.board.record(call_id, calls.SNAPSHOT, None, why="requested",
                                       camera=camera, camera_name=shown.name,
                                       camera_centre=shown.centre, path=str(shot.path),
                                       sha256=shot.sha256, width=shot.width,
                                       height=shot.height)  # fmt: skip

    def forget(self, call_id: int) -> None:
        """The call ended: its room (and the cameras' threads with it) is closed."""
        self._calls.pop(call_id, None)

    # --- room events of camera participants ---

    def on_event(self, call_id: int, event: RoomEvent) -> None:
        here = self._calls.get(call_id)
        shown = here.shown.get(event.participant) if here else None
        if here is None or shown is None:
            return  # removed meanwhile
        if isinstance(event, CameraState) and event.state != shown.state:
            shown.state, shown.reason = event.state, event.reason
            if event.state != "live":
                shown.last_frame = None
            self._publish(call_id, here, shown)
        elif isinstance(event, FrameSampled) and not shown.converting:
            shown.converting = True
            self._spawn(self._keep(shown, event))

    async def _keep(self, shown: _Shown, event: FrameSampled) -> None:
        try:
            bgr = await asyncio.get_running_loop().run_in_executor(None, to_bgr, event.frame)
            if shown.state == "live":
                shown.last_frame = bgr
        finally:
            shown.converting = False

    # --- plumbing ---

    def _state(self, shown: _Shown) -> dict[str, Any]:
        return {"camera": shown.camera, "participant": participant_of(shown.camera),
                "name": shown.name, "centre": shown.centre, "state": shown.state,
                "reason": shown.reason}  # fmt: skip

    def _publish(self, call_id: int, here: _CallCameras, shown: _Shown) -> None:
        self.board.bus.publish(CameraChanged(call_id, shown.camera, participant_of(shown.camera),
                                             shown.name, shown.centre, shown.state,
                                             shown.reason, here.caller))  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def open_call(session: Session, call_id: int) -> calls.Call:
    call = calls.get_call(session, call_id)
    if call.state not in calls.OPEN_STATES:
        raise Conflict(f"call {call_id} has {call.state}")
    return call
