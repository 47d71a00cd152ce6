"""Pipes between media workers: what one part of a spanning room sends the others.

A room too large for one worker has a part on several (``media.pool``). Each worker
listens on a Unix socket of its own; to send to another it opens one connection to
that worker's socket and keeps it for every room they share, so frames flow from A
to B on A's connection and key frame requests from B to A on B's. Messages are
``media.wire`` frames (both ends are this project's processes, started by the same
parent):

    ("hello", worker_index)                                       # first, once
    ("frame", room_id, participant, kind, (codec, data, timestamp, clock, gap, tid))
    ("present", room_id, participant, operator) / ("absent", room_id, participant)
    ("key", room_id, participant, kind)                           # to the publisher's part

Invariants:

- A publisher's frame crosses to each other part once, whatever the number of
  viewers there (the forwarding in each part fans it out).
- A connection whose peer stops reading holds at most ``MAX_BUFFERED`` bytes; video
  frames beyond are dropped and the next one sent is marked as following a gap, so
  the receiving part waits for a key frame (``media.forwarding``) instead of
  forwarding a broken picture. Audio beyond is dropped.
- When a connection from a part closes (its worker died or the room's part closed),
  the receiving part forgets every participant that part carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from media import wire
from media.room import Room, SpanSink

logger = logging.getLogger(__name__)

MAX_BUFFERED = 8 * 1024 * 1024  # bytes a connection to a slow part may hold
CONNECT_TRIES = 300  # a new worker listens once it has imported aiortc: 15 s at most
CONNECT_GAP = 0.05


class _Link:
    """The connection to one other worker, opened on first use."""

    def __init__(self, own: int, index: int, path: str) -> None:
        self.index = index
        self._own = own
        self._path = path
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: list[bytes] = []  # messages sent before the connection is up
        self._waiting_size = 0
        self._broken: set[tuple[str, str]] = set()  # (room, participant): video dropped
        self._task = asyncio.get_running_loop().create_task(self._connect())
        self.closed = False

    async def _connect(self) -> None:
        for _ in range(CONNECT_TRIES):
            try:
                _, writer = await asyncio.open_unix_connection(self._path)
                break
            except OSError:
                await asyncio.sleep(CONNECT_GAP)
        else:
            logger.error("media pipe to worker %d: cannot connect to %s", self.index, self._path)
            self.close()
            return
        writer.write(wire.encode(("hello", self._own)))
        for message in self._waiting:
            writer.write(message)
        self._waiting.clear()
        self._waiting_size = 0
        self._writer = writer

    def send(self, message: tuple[Any, ...]) -> None:
        if self.closed:
            return
        if message[0] == "frame":
            message = self._fit(message)
            if not message:
                return
        data = wire.encode(message)
        if self._writer is None:
            self._waiting.append(data)
            self._waiting_size += len(data)
        elif not self._writer.is_closing():
            self._writer.write(data)

    def _fit(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """The frame as it may be sent, or () when the connection is too full."""
        _, room_id, participant, kind, frame = message
        buffered = (
            self._writer.transport.get_write_buffer_size()
            if self._writer is not None
            else self._waiting_size
        )
        key = (room_id, participant)
        if buffered > MAX_BUFFERED:
            if kind == "video":
                self._broken.add(key)
            return ()
        if kind == "video" and key in self._broken:
            self._broken.discard(key)
            codec, data, timestamp, clock, _, tid = frame
            return ("frame", room_id, participant, kind, (codec, data, timestamp, clock, True, tid))
        return message

    def close(self) -> None:
        self.closed = True
        self._task.cancel()
        if self._writer is not None:
            self._writer.close()


class Pipes(SpanSink):
    """One worker's pipes: its listening socket, its links, and the parts of each room."""

    def __init__(
        self,
        index: int,
        path: str,
        rooms: Callable[[str], Room | None],
        on_change: Callable[[str], None],
    ) -> None:
        """``rooms``: the worker's room of an id; ``on_change(room_id)``: a room's
        remote participants changed (so the operator's slots may have)."""
        self.index = index
        self.path = path
        self._rooms = rooms
        self._on_change = on_change
        self._parts: dict[str, dict[int, str]] = {}  # room -> other parts: worker -> socket
        self._links: dict[int, _Link] = {}
        self._server: asyncio.AbstractServer | None = None
        self._readers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._incoming, path=self.path)

    async def close(self) -> None:
        for link in self._links.values():
            link.close()
        if self._server is not None:
            self._server.close()
        for writer in self._readers.values():
            writer.close()  # its reader sees the end of the stream and returns
        await asyncio.gather(*self._readers, return_exceptions=True)

    def span(self, room_id: str, parts: dict[int, str]) -> None:
        """The parts of ``room_id`` (worker index -> socket), this worker's included."""
        others = {i: p for i, p in parts.items() if i != self.index}
        self._parts[room_id] = others
        for index, path in others.items():
            link = self._links.get(index)
            if link is None or link.closed:
                self._links[index] = _Link(self.index, index, path)

    def forget(self, room_id: str) -> None:
        self._parts.pop(room_id, None)

    def spans(self, room_id: str) -> bool:
        return bool(self._parts.get(room_id))

    # --- SpanSink: what the local part of a room sends ---

    def frame(self, room_id: str, participant: str, kind: str, frame: tuple[Any, ...]) -> None:
        self._to_parts(room_id, ("frame", room_id, participant, kind, frame))

    def presence(self, room_id: str, participant: str, operator: bool, present: bool) -> None:
        if present:
            self._to_parts(room_id, ("present", room_id, participant, operator))
        else:
            self._to_parts(room_id, ("absent", room_id, participant))

    def keyframe(self, room_id: str, origin: int, participant: str, kind: str) -> None:
        link = self._links.get(origin)
        if link is not None:
            link.send(("key", room_id, participant, kind))

    def _to_parts(self, room_id: str, message: tuple[Any, ...]) -> None:
        for index in self._parts.get(room_id, {}):
            link = self._links.get(index)
            if link is not None:
                link.send(message)

    # --- what other parts send ---

    async def _incoming(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._readers[task] = writer
        origin: int | None = None
        try:
            hello = await wire.read(reader)
            if hello is None or hello[0] != "hello":
                return
            origin = int(hello[1])
            while (message := await wire.read(reader)) is not None:
                self._handle(origin, message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._readers.pop(task, None)
            writer.close()
            if origin is not None:
                logger.info("media pipe from worker %d: closed", origin)
                with contextlib.suppress(KeyError):
                    self._links.pop(origin).close()  # it is gone: so is our way to it
                for room_id in list(self._parts):
                    room = self._rooms(room_id)
                    if room is not None:
                        room.origin_gone(origin)
                        self._on_change(room_id)

    def _handle(self, origin: int, message: tuple[Any, ...]) -> None:
        op, room_id = message[0], message[1]
        room = self._rooms(room_id)
        if room is None:
            return
        if op == "frame":
            room.remote_frame(message[2], message[3], message[4])
        elif op == "present":
            room.remote_present(message[2], message[3], origin)
            self._on_change(room_id)
        elif op == "absent":
            room.remote_absent(message[2], origin)
            self._on_change(room_id)
        elif op == "key":
            room.keyframe_for(message[2], message[3])
