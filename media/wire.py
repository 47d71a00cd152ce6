"""The pipe between the main process and a media worker: framed, pickled messages.

Each message is a 4-byte big-endian length and a pickle of a tuple whose first item
names it. Workers talk to each other over the same framing (``media.pipes``). Both
ends are this project's own processes (a parent and the children it started), so
pickle is safe here; nothing from a network peer is unpickled.

Main → worker (``op``, then its fields; ``n`` numbers a request):

    ("init", IceSettings, sample_interval, log_level, worker_index, pipe_socket_path)
    ("span", n, room_id, video_codec, {worker_index: pipe_socket_path})  # a room's parts
    ("join", n, room_id, video_codec, participant, offer_sdp, operator, passive_dtls)
    ("floor", n, room_id, participant | None)
    ("prime", n, room_id, participant)   # it accepted: ask its sources for key frames
    ("view", n, room_id, [participant])  # shown small on the operator's page: layer 0
    ("camera", n, room_id, video_codec, participant, rtsp_url, {timeout, retry_max})
    ("uncamera", n, room_id, participant)
    ("leave", n, room_id, participant)
    ("close", n, room_id)
    ("record", n, room_id, video_codec, folder | None, min_free_bytes)  # media.recorder

Worker → main:

    ("reply", n, ok, answer_sdp | None | RoomError)
    ("event", room_id, RoomEvent)        # every event but FrameSampled
    ("sample", room_id, participant, at, yuv420p ndarray)   # FrameSampled
    ("state", room_id, participants, floor, operator_slots, audio_levels)

The worker sends ``state`` after every event and reply that may change it and, for
the audio levels, at most twice a second.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024  # a sampled picture is ~350 KB; anything near this is a bug


def encode(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def read(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > MAX_MESSAGE:
            raise ValueError(f"media pipe: a message of {size} bytes")
        message = pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None
    assert isinstance(message, tuple)
    return message
