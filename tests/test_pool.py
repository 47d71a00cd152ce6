"""Media worker processes: rooms in workers behave as rooms in the process do; a
worker that dies fails its participants over to a fresh placement."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from media.forwarding import KEYFRAME_RETRY
from media.pool import WORKER_STOPPED, RemoteRoom, WorkerPool
from media.room import (
    FrameSampled,
    PeerConnected,
    PeerDisconnected,
    PeerFailed,
    RoleError,
    RoomEvent,
    TrackStarted,
)

from peers import (
    LOOPBACK,
    Client,
    LayeredPacker,
    PrecodedVideo,
    colour_of,
    count_key_frame_requests,
    eventually,
    on_loopback,
    sees,
)

pytestmark = pytest.mark.timeout(60)




@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with on_loopback():
        yield


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(2, LOOPBACK)
    await pool.start()
    yield pool
    await pool.close()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[str, str], Client]]:
    made: list[Client] = []

    def make(name: str, colour: str) -> Client:
        made.append(Client(name, colour))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def meeting(room: RemoteRoom, make: Callable[[str, str], Client]) -> list[Client]:
    op, p1, p2 = make("op", "blue"), make("p1", "red"), make("p2", "green")
    op.offer_as_operator(slots=2)
    p1.offer_as_participant()
    p2.offer_as_participant()
    await op.accept(await room.join("op", await op.offer(), operator=True))
    for client in (p1, p2):
        await client.accept(await room.join(client.name, await client.offer(), operator=False))
    return [op, p1, p2]


async def test_a_room_in_a_worker_routes_reports_and_samples_as_in_process(
    pool: WorkerPool, clients: Callable[[str, str], Client]
) -> None:
    events: list[RoomEvent] = []
    room = pool.room("call-1", on_event=events.append)
    op, p1, p2 = await meeting(room, clients)
    await eventually(sees(op, 0, "red"))
    await eventually(sees(op, 1, "green"))
    await eventually(sees(p1, 0, "blue"))
    await eventually(lambda: room.participants == ("op", "p1", "p2"))
    assert room.operator_slots() == {"p1": 0, "p2": 1}
    assert room.worker is not None and room.worker.pid != os.getpid()
    room.give_floor("p1")
    await eventually(sees(p2, 1, "red"))
    assert room.floor == "p1"
    with pytest.raises(RoleError):
        room.give_floor("op")
    await eventually(lambda: "p1" in room.audio_levels())
    for who in ("op", "p1", "p2"):
        assert any(isinstance(e, PeerConnected) and e.participant == who for e in events)
        started = {e.kind for e in events if isinstance(e, TrackStarted) and e.participant == who}
        assert started == {"audio", "video"}
    await eventually(lambda: any(isinstance(e, FrameSampled) and e.participant == "p2"
                                 for e in events))  # fmt: skip
    sample = next(e for e in events if isinstance(e, FrameSampled) and e.participant == "p2")
    assert isinstance(sample, FrameSampled) and colour_of(sample.frame) == "green"
    await room.leave("p2")
    await eventually(lambda: room.participants == ("op", "p1"))
    await room.close()
    assert room.participants == ()


async def test_a_centre_that_accepts_primes_key_frames_through_the_worker(
    pool: WorkerPool, clients: Callable[[str, str], Client]
) -> None:
    room = pool.room("call-prime", on_event=lambda e: None)
    op, p1, _ = await meeting(room, clients)
    await eventually(sees(p1, 0, "blue"))
    asked = count_key_frame_requests(op)
    await asyncio.sleep(KEYFRAME_RETRY)  # nothing outstanding: a new request goes out
    before = len(asked)
    room.prime("p3")  # p3 answers the ring: the worker asks the operator's camera
    await eventually(lambda: len(asked) > before)
    await room.close()


async def test_a_small_tile_is_thinned_through_the_worker_and_kept_for_a_rejoin(
    pool: WorkerPool, clients: Callable[[str, str], Client]
) -> None:
    # p1 publishes L1T3 labels (over key frames); the operator's page says p1's tile is
    # small: the operator gets about a quarter of p1's frames, also after it rejoins.
    room = pool.room("call-view", on_event=lambda e: None)
    p1 = clients("p1", "red")
    camera = PrecodedVideo("red", fps=20)
    p1.pc.addTransceiver(camera, direction="sendonly").sender._RTCRtpSender__encoder = (  # type: ignore[attr-defined]
        LayeredPacker()
    )
    await p1.accept(await room.join("p1", await p1.offer(), operator=False))

    async def share(op: Client) -> float:
        """The operator's decoded frames of p1 per frame p1 sent, over 40 frames."""
        await eventually(sees(op, 0, "red"))
        got, sent = len(op.video[0]), camera.sent
        await eventually(lambda: camera.sent >= sent + 40)
        return (len(op.video[0]) - got) / (camera.sent - sent)

    op = clients("op", "blue")
    op.offer_as_operator(slots=1)
    await op.accept(await room.join("op", await op.offer(), operator=True))
    assert await share(op) > 0.6
    room.view(["p1"])
    assert await share(op) < 0.45
    await op.close()
    again = clients("op", "blue")  # the operator's page reconnects: the view stays
    again.offer_as_operator(slots=1)
    await again.accept(await room.join("op", await again.offer(), operator=True))
    assert await share(again) < 0.45
    room.view([])
    await share(again)  # the change takes effect at a layer-0 frame
    assert await share(again) > 0.6
    await room.close()


async def test_rooms_go_to_the_least_loaded_worker(
    pool: WorkerPool, clients: Callable[[str, str], Client]
) -> None:
    first = pool.room("call-1", on_event=lambda e: None)
    await meeting(first, clients)
    second = pool.room("call-2", on_event=lambda e: None)
    lone = clients("q1", "red")
    lone.offer_as_participant()
    await lone.accept(await second.join("q1", await lone.offer(), operator=False))
    assert first.worker is not None and second.worker is not None
    assert first.worker is not second.worker
    await first.close()
    await second.close()


async def test_a_killed_worker_fails_its_participants_and_the_rejoin_is_placed_anew(
    pool: WorkerPool, clients: Callable[[str, str], Client]
) -> None:
    events: list[RoomEvent] = []
    room = pool.room("call-1", on_event=events.append)
    op, _, _ = await meeting(room, clients)
    await eventually(sees(op, 1, "green"))
    await eventually(lambda: room.participants == ("op", "p1", "p2"))
    dead = room.worker
    assert dead is not None
    os.kill(dead.pid, signal.SIGKILL)
    await eventually(lambda: len([e for e in events if isinstance(e, PeerFailed)]) == 3)
    failed = [e for e in events if isinstance(e, PeerFailed)]
    assert {e.participant for e in failed} == {"op", "p1", "p2"}
    assert {e.reason for e in failed} == {WORKER_STOPPED}
    gone = [e for e in events if isinstance(e, PeerDisconnected)]
    assert {e.participant for e in gone} == {"op", "p1", "p2"}
    assert room.participants == () and room.worker is None
    await eventually(lambda: len(pool.workers) == 2)  # a replacement started
    assert dead.pid not in {w.pid for w in pool.workers}

    # The pages reconnect with new peers: the room is placed on a live worker.
    op2, _, p2b = await meeting(room, clients)
    assert room.worker is not None and room.worker.alive and room.worker is not dead
    await eventually(sees(op2, 0, "red"))
    await eventually(sees(op2, 1, "green"))
    await eventually(sees(p2b, 0, "blue"))
    await eventually(lambda: room.participants == ("op", "p1", "p2"))
    connected = [e for e in events if isinstance(e, PeerConnected) and e.participant == "p1"]
    assert len(connected) == 2


@pytest.fixture
async def small_pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(2, LOOPBACK, span_at=2)  # a worker is full at two participants
    await pool.start()
    yield pool
    await pool.close()


async def test_a_room_larger_than_a_worker_spans_two_and_everyone_sees_whom_they_should(
    small_pool: WorkerPool, clients: Callable[[str, str], Client]
) -> None:
    events: list[RoomEvent] = []
    room = small_pool.room("big", on_event=events.append)
    op = clients("op", "blue")
    op.offer_as_operator(slots=3)
    await op.accept(await room.join("op", await op.offer(), operator=True))
    villages = []
    for name, colour in (("v1", "red"), ("v2", "green"), ("v3", "red")):
        village = clients(name, colour)
        village.offer_as_participant()
        await village.accept(await room.join(name, await village.offer(), operator=False))
        villages.append(village)
    v1, v2, v3 = villages
    assert len(room.workers) == 2 and room.workers[0].pid != room.workers[1].pid
    assert room.load_on(room.workers[0]) == 2 and room.load_on(room.workers[1]) == 2
    # The operator (first part) sees the villages of both parts, each in its slot;
    # the villages of the second part see the operator, piped across once.
    await eventually(lambda: room.participants == ("op", "v1", "v2", "v3"))
    await eventually(lambda: set(room.operator_slots()) == {"v1", "v2", "v3"})
    slots = room.operator_slots()
    for village, colour in ((v1, "red"), (v2, "green"), (v3, "red")):
        await eventually(sees(op, slots[village.name], colour))
        await eventually(sees(village, 0, "blue"))
    # The floor crosses the parts both ways: v1 (first part) -> v2, v3 (second).
    room.give_floor("v1")
    await eventually(sees(v2, 1, "red"))
    await eventually(sees(v3, 1, "red"))
    room.give_floor("v2")
    await eventually(sees(v1, 1, "green"))
    await eventually(sees(v3, 1, "green"))

    # The second part's worker dies: only its participants are failed; the operator
    # stays; their rejoin goes to a part with room again.
    second = room.workers[1]
    os.kill(second.pid, signal.SIGKILL)
    await eventually(lambda: {e.participant for e in events if isinstance(e, PeerFailed)}
                     == {"v2", "v3"})  # fmt: skip
    await eventually(lambda: room.participants == ("op", "v1"))
    assert room.workers == (room.worker,) and room.worker is not None and room.worker.alive
    v2b = clients("v2", "green")
    v2b.offer_as_participant()
    await v2b.accept(await room.join("v2", await v2b.offer(), operator=False))
    assert len(room.workers) == 2  # the first part is full: a new part on the new worker
    await eventually(sees(op, slots["v2"], "green"))
    await eventually(sees(v2b, 0, "blue"))
    await eventually(sees(v1, 1, "green"))  # the floor, v2, is back on the first part
    await room.close()
