"""Media worker processes, and rooms that live in them (the shape of mediasoup).

The main process keeps signalling, the database and attendance; the media of each
call runs in a worker process (``media.worker``), one per core by default, so calls
are not limited to the one core of the main event loop. ``WorkerPool.room`` gives a
``RemoteRoom``: the same interface as ``media.room.Room`` (join, give_floor, leave,
close, participants, floor, operator_slots, audio_levels, and the same events), with
the room itself in a worker.

Placement. A room is placed on its first join, on the live worker carrying the
fewest participants (joins in flight included). A participant stays on the worker
of its first join while that worker lives.

Spanning. A worker carrying ``span_at`` participants is full: the room's next
participant goes to a part of the room on another worker (the least loaded), and
every part is told the others (``span``); each publisher's frames then cross once
to each other part through the pipes between workers (``media.pipes``), the way
mediasoup pipes a producer to a router on another worker. The operator sees every
participant and everyone sees the operator and the floor, whichever part they are on.

A worker that dies. The pool notices its pipe closing. Each room part on it reports
each participant it had as ``PeerDisconnected`` (if present) then ``PeerFailed``
with reason "media worker stopped", so attendance records them as left at that
moment; requests in flight fail with ``RoomError``; the other parts of the room
forget its publishers. Those participants are placed afresh on their next join: the
pages, whose connections died with the worker, join again and are recorded as
joined again — the gap shows as a left/joined pair. A new worker replaces the dead
one.

Invariant: a ``RemoteRoom``'s mirrored state (participants, floor, slots, levels) is
the union of the last ``state`` message each of its parts sent (the operator's
slots from the operator's part), or empty while it has no part.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from typing import Any

from av import VideoFrame

from media import codecs, wire
from media.camera import RECONNECTING, CameraState
from media.ice import IceSettings
from media.room import (
    FrameSampled,
    PeerDisconnected,
    PeerFailed,
    RoleError,
    RoomClosedError,
    RoomError,
    RoomEvent,
)

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # seconds a worker gets to close its rooms before it is killed
WORKER_STOPPED = "media worker stopped"
SPAN_AT = 40  # participants a worker carries before a room spans to another
RESTART_TRIES, RESTART_WAIT = 40, 0.5  # a camera waits this long for a replaced worker


class MediaWorker:
    """One worker process and the requests in flight to it."""

    def __init__(self, index: int, process: asyncio.subprocess.Process, pipe_path: str) -> None:
        self.index = index
        self.process = process
        self.pipe_path = pipe_path  # where it listens for other workers (media.pipes)
        self.alive = True
        self.rooms: dict[str, RemoteRoom] = {}
        self.joining = 0  # joins in flight: counted as load before they land
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._numbers = itertools.count(1)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def load(self) -> int:
        return self.joining + sum(room.load_on(self) for room in self.rooms.values())

    def send(self, message: tuple[Any, ...]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(wire.encode(message))

    async def request(self, op: str, *fields: Any) -> Any:
        """Send a request and wait for its reply; RoomError if it failed or the worker died."""
        if not self.alive:
            raise RoomError(WORKER_STOPPED)
        n = next(self._numbers)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[n] = future
        try:
            self.send((op, n, *fields))
            return await future
        finally:
            self._pending.pop(n, None)

    def reply(self, n: int, ok: bool, value: Any) -> None:
        future = self._pending.get(n)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value if isinstance(value, RoomError) else RoomError(str(value)))

    def fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RoomError(WORKER_STOPPED))


class WorkerPool:
    """``size`` media worker processes; replaces any that dies until ``close()``."""

    def __init__(
        self, size: int, ice: IceSettings, *, sample_interval: float = 1.0, span_at: int = SPAN_AT
    ) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {size}")
        if span_at < 1:
            raise ValueError(f"a worker carries at least one participant, not {span_at}")
        self.size = size
        self.span_at = span_at
        self._pipe_dir = tempfile.mkdtemp(prefix="pingan-media-")
        self._ice = ice
        self._sample_interval = sample_interval
        self._workers: list[MediaWorker] = []
        self._readers: set[asyncio.Task[None]] = set()
        self._indexes = itertools.count()
        self._closing = False

    @property
    def workers(self) -> tuple[MediaWorker, ...]:
        return tuple(w for w in self._workers if w.alive)

    async def start(self) -> None:
        for _ in range(self.size):
            await self._spawn()

    def room(
        self,
        room_id: str,
        ice: IceSettings | None = None,
        *,
        on_event: Callable[[RoomEvent], None],
        video_codec: str = codecs.VP8,
    ) -> RemoteRoom:
        """A room whose media runs in a worker; ``ice`` is the pool's (kept for the
        same signature as ``Room``)."""
        return RemoteRoom(self, room_id, on_event, codecs.check_room_codec(video_codec))

    def place(self, among: tuple[MediaWorker, ...] | None = None) -> MediaWorker:
        """The least-loaded live worker (of ``among``, if given)."""
        live = self.workers if among is None else tuple(w for w in among if w.alive)
        if not live:
            raise RoomError("no media worker is running")
        return min(live, key=lambda w: (w.load, w.index))

    async def close(self) -> None:
        self._closing = True
        for worker in self._workers:
            if worker.alive and worker.process.stdin is not None:
                worker.process.stdin.close()  # the worker closes its rooms and exits
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                logger.warning("media worker %d (pid %d): killed after %g s",
                               worker.index, worker.pid, STOP_TIMEOUT)  # fmt: skip
                worker.process.kill()
                await worker.process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        shutil.rmtree(self._pipe_dir, ignore_errors=True)

    async def _spawn(self) -> MediaWorker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "media.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=wire.MAX_MESSAGE)  # fmt: skip
        index = next(self._indexes)
        worker = MediaWorker(index, process, f"{self._pipe_dir}/{index}.sock")
        level = logging.getLogger().getEffectiveLevel()
        worker.send(("init", self._ice, self._sample_interval, level, index, worker.pipe_path))
        self._workers.append(worker)
        reader = asyncio.get_running_loop().create_task(self._read(worker))
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        logger.info("media worker %d: started, pid %d", worker.index, worker.pid)
        return worker

    async def _read(self, worker: MediaWorker) -> None:
        assert worker.process.stdout is not None
        try:
            while (message := await wire.read(worker.process.stdout)) is not None:
                self._dispatch(worker, message)
        except Exception:
            logger.exception("media worker %d: unreadable message; stopping it", worker.index)
            worker.process.kill()
        code = await worker.process.wait()
        worker.alive = False
        self._workers.remove(worker)
        worker.fail_pending()
        if self._closing:
            return
        logger.error("media worker %d (pid %d) stopped with code %s; its rooms failed over",
                     worker.index, worker.pid, code)  # fmt: skip
        for room in list(worker.rooms.values()):
            room.worker_stopped(worker)
        await self._spawn()

    def _dispatch(self, worker: MediaWorker, message: tuple[Any, ...]) -> None:
        op = message[0]
        if op == "reply":
            worker.reply(*message[1:])
            return
        room = worker.rooms.get(message[1])
        if room is None:
            return  # a room closed meanwhile
        if op == "event":
            room.deliver(worker, message[2])
        elif op == "sample":
            _, room_id, participant, at, picture = message
            frame = VideoFrame.from_ndarray(picture, format="yuv420p")
            room.deliver(worker, FrameSampled(room_id=room_id, participant=participant, at=at,
                                      frame=frame))  # fmt: skip
        elif op == "state":
            room.mirror(worker, *message[2:])


class _Part:
    """A room's part on one worker, as its last ``state`` message described it."""

    def __init__(self) -> None:
        self.participants: tuple[str, ...] = ()
        self.slots: dict[str, int] = {}
        self.levels: dict[str, int] = {}


class RemoteRoom:
    """A ``media.room.Room`` in worker processes: the same calls, the same events."""

    def __init__(
        self,
        pool: WorkerPool,
        room_id: str,
        on_event: Callable[[RoomEvent], None],
        video_codec: str,
    ) -> None:
        self.room_id = room_id
        self.video_codec = video_codec
        self._pool = pool
        self._on_event = on_event
        self._parts: dict[MediaWorker, _Part] = {}  # in the order they were added
        self._where: dict[str, MediaWorker] = {}  # participant -> its part (joined, not gone)
        self._placing = asyncio.Lock()  # one placement (and new part) at a time
        self._operator: str | None = None
        self._participants: tuple[str, ...] = ()
        self._floor: str | None = None
        self._small: list[str] = []  # see Room.view
        self._slots: dict[str, int] = {}
        self._levels: dict[str, int] = {}
        self._closed = False
        self._recording: tuple[str, int] | None = None  # (folder, min_free_bytes) while on
        self._cameras: dict[str, tuple[str, dict[str, float]]] = {}  # participant -> url, options
        self._camera_on: dict[str, MediaWorker] = {}  # the part each camera runs on

    @property
    def worker(self) -> MediaWorker | None:
        """The operator's part's worker (the first part's before the operator joins)."""
        workers = self.workers
        operator = self._where.get(self._operator or "")
        return operator if operator in workers else (workers[0] if workers else None)

    @property
    def workers(self) -> tuple[MediaWorker, ...]:
        return tuple(self._parts)

    def load_on(self, worker: MediaWorker) -> int:
        return sum(1 for w in self._where.values() if w is worker)

    @property
    def participants(self) -> tuple[str, ...]:
        return self._participants

    @property
    def floor(self) -> str | None:
        return self._floor

    def operator_slots(self) -> dict[str, int]:
        return dict(self._slots)

    def audio_levels(self) -> dict[str, int]:
        return dict(self._levels)

    async def join(
        self, participant: str, offer_sdp: str, *, operator: bool, passive_dtls: bool = False
    ) -> str:
        self._check_open()
        if operator and self._operator not in (None, participant):
            raise RoleError(f"room {self.room_id}: {self._operator!r} is already the operator")
        if not operator and participant == self._operator:
            raise RoleError(f"room {self.room_id}: {participant!r} is the operator")
        async with self._placing:
            worker = self._choose(participant)
            worker.joining += 1
            try:
                if worker not in self._parts:
                    await self._add_part(worker)
            except BaseException:
                worker.joining -= 1
                raise
        try:
            answer = await worker.request("join", self.room_id, self.video_codec, participant,
                                          offer_sdp, operator, passive_dtls)  # fmt: skip
        finally:
            worker.joining -= 1
        if worker in self._parts:  # not lost meanwhile
            self._where[participant] = worker
            if operator:
                self._operator = participant
                if self._small:
                    self._spawn(worker.request("view", self.room_id, self._small))
        return str(answer)

    def give_floor(self, participant: str | None) -> None:
        self._check_open()
        if participant is not None and participant == self._operator:
            raise RoleError(f"room {self.room_id}: the operator cannot hold the floor")
        self._floor = participant
        for worker in self._parts:
            if worker.alive:
                self._spawn(worker.request("floor", self.room_id, participant))

    def view(self, small: Collection[str]) -> None:
        """See ``Room.view``: told to the operator's part now, and to the part of each
        later connection of the operator's."""
        self._check_open()
        self._small = sorted(small)
        worker = self._where.get(self._operator) if self._operator is not None else None
        if worker is not None and worker.alive:
            self._spawn(worker.request("view", self.room_id, self._small))

    def prime(self, participant: str) -> None:
        """See ``Room.prime``: every part asks the publishers it carries or pipes in."""
        if self._closed:
            return
        for worker in self._parts:
            if worker.alive:
                self._spawn(worker.request("prime", self.room_id, participant))

    async def leave(self, participant: str) -> None:
        worker = self._where.pop(participant, None)
        if worker is not None and worker.alive:
            await worker.request("leave", self.room_id, participant)

    async def add_camera(self, participant: str, url: str, **options: float) -> None:
        """Pull ``url`` into the room (``media.camera``) on the operator's part, or a
        new part; if that worker dies the camera starts again on another."""
        self._check_open()
        self._cameras[participant] = (url, options)
        await self._start_camera(participant)

    async def remove_camera(self, participant: str) -> None:
        self._cameras.pop(participant, None)
        worker = self._camera_on.pop(participant, None)
        if worker is not None and worker.alive:
            await worker.request("uncamera", self.room_id, participant)

    async def _start_camera(self, participant: str) -> None:
        async with self._placing:
            worker = self.worker
            if worker is None:
                worker = self._pool.place()
                await self._add_part(worker)
        if participant not in self._cameras or self._closed:
            return  # removed meanwhile
        url, options = self._cameras[participant]
        self._camera_on[participant] = worker
        await worker.request("camera", self.room_id, self.video_codec, participant, url, options)

    async def _restart_camera(self, participant: str) -> None:
        """After its worker died: on a live worker, once the pool has one again."""
        for _ in range(RESTART_TRIES):
            if self._closed or participant not in self._cameras or self._pool.workers:
                break
            await asyncio.sleep(RESTART_WAIT)
        if not self._closed and participant in self._cameras:
            await self._start_camera(participant)

    async def record(self, folder: str | None, *, min_free_bytes: int = 0) -> None:
        """``Room.record`` on every part, now and on any part added later."""
        if folder is not None:
            self._check_open()
        self._recording = (folder, min_free_bytes) if folder is not None else None
        results = await asyncio.gather(
            *(w.request("record", self.room_id, self.video_codec, folder, min_free_bytes)
              for w in self._parts if w.alive),
            return_exceptions=True,
        )  # fmt: skip
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, RoomError):
                raise result

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        parts, self._parts = list(self._parts), {}
        self._where.clear()
        self._cameras.clear()
        self._camera_on.clear()
        for worker in parts:
            if worker.alive:
                try:
                    await worker.request("close", self.room_id)
                except RoomError:
                    pass  # the worker died meanwhile: its rooms are gone with it
            worker.rooms.pop(self.room_id, None)
        self._merge()

    # --- placement ---

    def _choose(self, participant: str) -> MediaWorker:
        """The worker for a join: its part of the room if it has one, else a part with
        room, else a new part on the least-loaded other worker, else the least loaded."""
        current = self._where.get(participant)
        if current is not None and current.alive and current in self._parts:
            return current
        parts = tuple(w for w in self._parts if w.alive)
        roomy = tuple(w for w in parts if w.load < self._pool.span_at)
        if roomy:
            return self._pool.place(roomy)
        others = tuple(w for w in self._pool.workers if w not in self._parts)
        if others and self._pool.place(others).load < self._pool.span_at:
            return self._pool.place(others)
        return self._pool.place(parts + others)

    async def _add_part(self, worker: MediaWorker) -> None:
        self._parts[worker] = _Part()
        worker.rooms[self.room_id] = self
        logger.info("room %s peer -: a part on media worker %d (pid %d), %d part(s)",
                    self.room_id, worker.index, worker.pid, len(self._parts))  # fmt: skip
        if len(self._parts) > 1:
            await self._tell_parts(first=worker)
        if self._recording is not None:
            await worker.request("record", self.room_id, self.video_codec, *self._recording)

    async def _tell_parts(self, first: MediaWorker | None = None) -> None:
        """Every live part learns the others, before any join on a new one.

        A new part (``first``) is told, and so has the room, before the others: on
        learning of it they announce their present participants to it through the
        pipes, and a worker drops pipe messages for a room it does not hold.
        """
        live = [w for w in self._parts if w.alive]
        layout = {w.index: w.pipe_path for w in live}
        waves = [[first], [w for w in live if w is not first]] if first in live else [live]
        results: list[Any] = []
        for wave in waves:
            results += await asyncio.gather(
                *(w.request("span", self.room_id, self.video_codec, layout) for w in wave),
                return_exceptions=True,
            )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, RoomError):
                raise result

    # --- called by the pool ---

    def deliver(self, worker: MediaWorker, event: RoomEvent) -> None:
        if isinstance(event, PeerFailed) and self._where.get(event.participant) is worker:
            del self._where[event.participant]
        self._emit(event)

    def mirror(
        self,
        worker: MediaWorker,
        participants: tuple[str, ...],
        floor: str | None,
        slots: dict[str, int],
        levels: dict[str, int],
    ) -> None:
        part = self._parts.get(worker)
        if part is None:
            return
        part.participants, part.slots, part.levels = tuple(participants), slots, levels
        self._merge()

    def worker_stopped(self, worker: MediaWorker) -> None:
        """Fail every participant the dead worker carried; their next join re-places."""
        part = self._parts.pop(worker, None)
        worker.rooms.pop(self.room_id, None)
        if part is None:
            return
        present = set(part.participants)
        known = sorted(p for p, w in self._where.items() if w is worker)
        for participant in known:
            del self._where[participant]
        if self._operator in known:
            self._operator = None
        self._merge()
        for camera in [p for p, w in self._camera_on.items() if w is worker]:
            del self._camera_on[camera]
            self._emit(CameraState(room_id=self.room_id, participant=camera, at=time.time(),
                                   state=RECONNECTING, reason=WORKER_STOPPED))  # fmt: skip
            self._spawn(self._restart_camera(camera))
        if len(self._parts) > 0:
            self._spawn(self._tell_parts())
        now = time.time()
        for participant in known:
            if participant in present:
                self._emit(PeerDisconnected(room_id=self.room_id, participant=participant,
                                            at=now, reason=WORKER_STOPPED))  # fmt: skip
            self._emit(PeerFailed(room_id=self.room_id, participant=participant, at=now,
                                  reason=WORKER_STOPPED))  # fmt: skip

    # --- plumbing ---

    def _merge(self) -> None:
        """The room's state from its parts' (see the module's invariant)."""
        participants: dict[str, None] = {}
        levels: dict[str, int] = {}
        for part in self._parts.values():
            participants.update(dict.fromkeys(part.participants))
            levels.update(part.levels)
        main = self._parts.get(self.worker) if self.worker is not None else None
        self._participants = tuple(participants)
        self._slots = dict(main.slots) if main is not None else {}
        self._levels = levels
        if not self._parts:
            self._floor = None  # a room with no part has no floor: as a new room

    def _emit(self, event: RoomEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            logger.exception("room %s peer %s: on_event failed for %s", self.room_id,
                             event.participant, type(event).__name__)  # fmt: skip

    def _spawn(self, request: Any) -> None:
        async def run() -> None:
            try:
                await request
            except RoomError as exc:
                logger.warning("room %s peer -: %s", self.room_id, exc)

        task = asyncio.get_running_loop().create_task(run())
        _background.add(task)
        task.add_done_callback(_background.discard)

    def _check_open(self) -> None:
        if self._closed:
            raise RoomClosedError(f"room {self.room_id} is closed")


_background: set[asyncio.Task[None]] = set()  # fire-and-forget requests, kept referenced
