"""A media worker process: the rooms placed on it, driven over its standard streams.

Started by ``media.pool`` as ``python -m media.worker``; reads ``media.wire``
messages on standard input and writes them on standard output (logging goes to
standard error). It holds ``Room`` objects only — no database, no attendance: those
stay in the main process, which hears of everything through events. When its input
ends (the main process stopped or closed the pipe) it closes every room and exits.

Invariant: messages are handled one at a time in arrival order, except ``join``,
which runs as its own task (an answer takes ICE gathering time) — the room itself
serialises joins and leaves of one participant. A room that spans workers is told
its parts (``span``) before any join on a new part, so frames are piped from the
first one (``media.pipes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

from av import VideoFrame

from media import wire
from media.heap import freeze_startup_heap
from media.ice import IceSettings, configure_host_addresses
from media.pipes import Pipes
from media.room import FrameSampled, Room, RoomError, RoomEvent

logger = logging.getLogger(__name__)

LEVELS_INTERVAL = 0.5  # seconds between audio level updates of a room


class Worker:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._ice = IceSettings()
        self._sample_interval = 1.0
        self._rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._levels_sent: dict[str, float] = {}
        self._pipes: Pipes | None = None

    async def serve(self, reader: asyncio.StreamReader) -> None:
        levels = asyncio.get_running_loop().create_task(self._send_levels())
        try:
            while (message := await wire.read(reader)) is not None:
                self._handle(message)
        finally:
            levels.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.gather(*(room.close() for room in self._rooms.values()))
            if self._pipes is not None:
                await self._pipes.close()

    def _handle(self, message: tuple[Any, ...]) -> None:
        op = message[0]
        if op == "init":
            _, self._ice, self._sample_interval, level, index, pipe_path = message
            logging.getLogger().setLevel(level)
            configure_host_addresses(self._ice)
            self._pipes = Pipes(index, pipe_path, self._rooms.get, self._send_state)
            self._start(self._pipes.start())
        elif op == "span":
            # Before any join on a new part: its room exists from here, so the other
            # parts' presence messages find it.
            _, n, room_id, video_codec, parts = message
            assert self._pipes is not None
            self._pipes.span(room_id, parts)
            room = self._room(room_id, video_codec)
            room.span = self._pipes
            room.announce()
            self._reply(n, True, None)
        elif op == "join":
            self._start(self._join(*message[1:]))
        elif op == "floor":
            _, n, room_id, participant = message
            self._run(n, room_id, lambda room: room.give_floor(participant))
        elif op == "view":  # the operator's page: which tiles are small
            _, n, room_id, small = message
            self._run(n, room_id, lambda room: room.view(small))
        elif op == "prime":  # a centre accepted: key frames on their way before it joins
            _, n, room_id, participant = message
            self._run(n, room_id, lambda room: room.prime(participant))
        elif op == "camera":  # media.camera: an RTSP source entering the room
            _, n, room_id, video_codec, participant, url, options = message
            self._room(room_id, video_codec)
            self._run(n, room_id, lambda room: room.add_camera(participant, url, **options))
        elif op == "uncamera":
            _, n, room_id, participant = message
            self._run(n, room_id, lambda room: room.remove_camera(participant))
        elif op in ("leave", "close"):
            self._start(self._end(*message))
        elif op == "record":  # media.recorder: start (a folder) or stop (None)
            self._start(self._record(*message[1:]))
        else:
            logger.error("worker %d: unknown message %r", os.getpid(), op)

    def _start(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(
        self,
        n: int,
        room_id: str,
        video_codec: str,
        participant: str,
        offer_sdp: str,
        operator: bool,
        passive_dtls: bool,
    ) -> None:
        try:
            room = self._room(room_id, video_codec)
            answer = await room.join(
                participant, offer_sdp, operator=operator, passive_dtls=passive_dtls
            )
        except RoomError as exc:
            self._reply(n, False, exc)
        else:
            self._reply(n, True, answer)
        self._send_state(room_id)

    async def _record(
        self, n: int, room_id: str, video_codec: str, folder: str | None, min_free_bytes: int
    ) -> None:
        try:
            if folder is not None or room_id in self._rooms:
                room = self._room(room_id, video_codec)
                await room.record(folder, min_free_bytes=min_free_bytes)
        except RoomError as exc:
            self._reply(n, False, exc)
        else:
            self._reply(n, True, None)

    def _room(self, room_id: str, video_codec: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = Room(room_id, self._ice, on_event=self._on_event,
                        sample_interval=self._sample_interval,
                        video_codec=video_codec)  # fmt: skip
            self._rooms[room_id] = room
        return room

    async def _end(self, op: str, n: int, room_id: str, *rest: Any) -> None:
        room = self._rooms.get(room_id)
        if room is not None:
            if op == "leave":
                await room.leave(rest[0])
            else:
                del self._rooms[room_id]
                await room.close()
                if self._pipes is not None:
                    self._pipes.forget(room_id)
        self._reply(n, True, None)
        self._send_state(room_id)

    def _run(self, n: int, room_id: str, action: Any) -> None:
        room = self._rooms.get(room_id)
        try:
            if room is None:
                raise RoomError(f"room {room_id} is not on this worker")
            action(room)
        except RoomError as exc:
            self._reply(n, False, exc)
        else:
            self._reply(n, True, None)
            self._send_state(room_id)

    def _on_event(self, event: RoomEvent) -> None:
        if isinstance(event, FrameSampled):
            picture = _yuv(event.frame)
            self._write(("sample", event.room_id, event.participant, event.at, picture))
            return
        self._write(("event", event.room_id, event))
        self._send_state(event.room_id)

    def _send_state(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            self._write(("state", room_id, (), None, {}, {}))
            return
        self._levels_sent[room_id] = time.monotonic()
        self._write(("state", room_id, room.participants, room.floor, room.operator_slots(),
                     room.audio_levels()))  # fmt: skip

    async def _send_levels(self) -> None:
        while True:
            await asyncio.sleep(LEVELS_INTERVAL)
            now = time.monotonic()
            for room_id in list(self._rooms):
                if now - self._levels_sent.get(room_id, 0.0) >= LEVELS_INTERVAL:
                    self._send_state(room_id)

    def _reply(self, n: int, ok: bool, value: Any) -> None:
        self._write(("reply", n, ok, value))

    def _write(self, message: tuple[Any, ...]) -> None:
        # A pipe the main process stopped reading fills; the main process reads
        # continuously, so a full pipe means it is gone and the worker ends anyway.
        self._writer.write(wire.encode(message))


def _yuv(frame: VideoFrame) -> Any:
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    return frame.to_ndarray()


async def main() -> None:
    # The pipe to the main process gets its own descriptor; descriptor 1 becomes
    # standard error, so nothing a library prints can corrupt the pipe.
    pipe = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=wire.MAX_MESSAGE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(pipe, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    frozen = freeze_startup_heap()  # no full collection walks the imports again
    logger.info("worker %d: started (%d start-up objects frozen)", os.getpid(), frozen)
    await Worker(writer).serve(reader)
    logger.info("worker %d: input closed, rooms closed, exiting", os.getpid())


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s media-worker %(process)d %(name)s: %(message)s"
    )
    asyncio.run(main())
