"""A call's media: one server peer connection per participant, and who sees whom.

Routing. The operator receives every participant's video and audio. Every other
participant receives the operator's and those of whoever holds the floor (点名发言).
Frames are decoded once per received track and re-encoded by each viewer's sender
(aiortc's ``MediaRelay``, one relay subscription per viewer slot).

Slots. Tracks must be in the SDP at join time, so a server peer only ever sends on
the m-lines the client offered to receive on (``recvonly`` or ``sendrecv``). Those
m-lines are that peer's *slots*, numbered per kind in m-line order, and each carries
a ``_SlotTrack`` whose source the room swaps:

- a participant's slot 0 shows the operator, slot 1 the floor holder (a browser
  offers camera and microphone ``sendrecv``, then one ``recvonly`` video and audio);
- the operator's slot *i* shows the *i*-th distinct participant to join (a rejoin
  keeps its slot). The operator's page offers as many receiving m-lines per kind as
  there are invited centres; participants beyond that are not shown (logged).
- a WHIP publisher offers ``sendonly``: no slots, it is only received.

A video slot without a source sends a black 640x360 frame once a second, so a viewer
never keeps showing the last frame of someone who lost the floor or left; an audio
slot without a source sends nothing. Frames are restamped once, where they enter the
room, onto the room's clock, so a slot's timestamps stay monotonic when its source
changes (a slot drops the odd frame that would step back).

Presence. ``PeerConnected`` when aiortc reports ``connected``. aiortc has no
``disconnected`` state, and consent freshness (aioice: a check every ~5 s, closed
after 6 failures) takes ~30 s, so a watchdog polls ``getStats()`` twice a second and
emits ``PeerDisconnected`` once the peer's transport has received no packet for
``silence_timeout`` (3 s); ``PeerConnected(recovered=True)`` if packets resume. A
``failed`` or ``closed`` connection (a DTLS close_notify from a client that hung up
arrives in milliseconds) emits ``PeerDisconnected`` (if present) then ``PeerFailed``,
and the server peer is discarded; the participant comes back only by joining again.
A peer not connected within ``connect_timeout`` (15 s) gets ``PeerFailed`` too.
Measured on loopback: a hang-up is ``PeerFailed`` within ~5 ms; a client that drops
off the network is ``PeerDisconnected`` after 3.0-3.5 s and ``PeerFailed`` after
~32 s (consent expiry). Whether a return is the same attendance is the caller's call.

An offer must BUNDLE all its m-lines (browsers, GStreamer and OBS do): the server's
peers use max-bundle, one transport for everything (see ``media.ice``).

Events are delivered synchronously on the event loop; ``on_event`` must return
quickly (hand frames to a thread for OpenCV) and treat ``FrameSampled.frame`` as
read-only, since viewers' encoders read the same frame.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
    RTCTransportStats,
    sdp,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from media.ice import IceSettings, peer_connection

logger = logging.getLogger(__name__)

OPERATOR_SLOT = 0  # a participant's slots: the operator, then the floor holder
FLOOR_SLOT = 1
RECEIVING = ("recvonly", "sendrecv")  # offer directions in which the client receives
VIDEO_CLOCK = 90_000
BLACK_SIZE = (640, 360)
IDLE_FRAME_INTERVAL = 1.0  # seconds between black frames of a slot without a source
AUDIO_BACKLOG = 10  # audio frames (20 ms each) a slot holds for a late sender
RESYNC_AFTER = 0.2  # seconds a source's timeline may drift from the room's clock
WATCH_INTERVAL = 0.5


# --- events and errors -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RoomEvent:
    room_id: str
    participant: str
    at: float  # time.time() when the room noticed


@dataclass(frozen=True, kw_only=True)
class PeerConnected(RoomEvent):
    recovered: bool = False  # packets resumed after a PeerDisconnected of the same peer


@dataclass(frozen=True, kw_only=True)
class PeerDisconnected(RoomEvent):
    reason: str


@dataclass(frozen=True, kw_only=True)
class PeerFailed(RoomEvent):
    reason: str


@dataclass(frozen=True, kw_only=True)
class TrackStarted(RoomEvent):
    kind: str  # "audio" | "video": the first frame of the participant's track arrived


@dataclass(frozen=True, kw_only=True)
class FrameSampled(RoomEvent):
    frame: VideoFrame


class RoomError(ValueError):
    """A request the room cannot carry out; the message says why."""


class OfferError(RoomError):
    """The offer cannot be answered: malformed SDP, no common codec, DTLS role clash."""


class RoleError(RoomError):
    """Operator and participant roles mixed up."""


class RoomClosedError(RoomError):
    """The room was closed."""


# --- tracks -----------------------------------------------------------------------------


def _start(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task whose failure is logged when it ends; ``name`` says room, peer and job."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", task.get_name(), exc_info=task.exception())


class _InboundTrack(MediaStreamTrack):
    """A received track as the relay reads it: restamped, and endable.

    ``stop()`` ends a pending ``recv()`` even if aiortc never started the receiver
    (whose track then never ends by itself), so the relay's reader always finishes.
    """

    def __init__(self, remote: MediaStreamTrack, epoch: float) -> None:
        super().__init__()
        self.kind = remote.kind
        self._remote = remote
        self._epoch = epoch
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._offset: int | None = None

    async def recv(self) -> Frame | Packet[Any]:
        if self._ended.done():
            raise MediaStreamError
        getter = asyncio.ensure_future(self._remote.recv())
        try:
            await asyncio.wait((getter, self._ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if not getter.done() or getter.cancelled():
            raise MediaStreamError
        frame = getter.result()  # MediaStreamError when the receiver stopped
        if isinstance(frame, Frame):
            self._restamp(frame)
        return frame

    def _restamp(self, frame: Frame) -> None:
        # Keeps the source's own spacing; re-anchors to the room clock after a gap.
        rate = frame.sample_rate if isinstance(frame, AudioFrame) else VIDEO_CLOCK
        wall = round((time.monotonic() - self._epoch) * rate)
        src = wall
        if frame.pts is not None and frame.time_base is not None:
            src = round(frame.pts * frame.time_base * rate)
        if self._offset is None or abs(src + self._offset - wall) > rate * RESYNC_AFTER:
            self._offset = wall - src
        frame.pts = src + self._offset
        frame.time_base = Fraction(1, rate)

    def stop(self) -> None:
        super().stop()
        if not self._ended.done():
            self._ended.set_result(None)


class _Feed:
    """One track received from a participant, relayed to any number of viewer slots.

    A monitor subscription always reads it, so aiortc's receive queue never grows
    when nobody views it; the monitor also reports the first frame and samples video.
    """

    def __init__(
        self,
        name: str,
        track: MediaStreamTrack,
        relay: MediaRelay,
        epoch: float,
        on_first: Callable[[], None],
        on_sample: Callable[[VideoFrame], None] | None,
        sample_interval: float,
    ) -> None:
        self.name = name  # "room R peer P#n kind": for log lines and task names
        self.kind = track.kind
        self._source = _InboundTrack(track, epoch)
        self._relay = relay
        self._on_first = on_first
        self._on_sample = on_sample
        self._sample_interval = sample_interval
        monitor = relay.subscribe(self._source, buffered=False)
        self._monitor = _start(self._run_monitor(monitor), f"{name} monitor")

    @property
    def ended(self) -> bool:
        return self._source.readyState == "ended"

    def subscribe(self) -> MediaStreamTrack:
        # Video: latest frame only. Audio: every frame; the slot's pump drains it.
        return self._relay.subscribe(self._source, buffered=self.kind == "audio")

    def end(self) -> None:
        self._source.stop()
        self._monitor.cancel()

    async def _run_monitor(self, subscription: MediaStreamTrack) -> None:
        last_sample = -math.inf
        try:
            frame = await subscription.recv()
            self._on_first()
            while True:
                now = time.monotonic()
                if self._on_sample and now - last_sample >= self._sample_interval:
                    if isinstance(frame, VideoFrame):
                        last_sample = now
                        self._on_sample(frame)
                frame = await subscription.recv()
        except MediaStreamError:
            pass
        finally:
            subscription.stop()


_BLACK_YUV = np.full((BLACK_SIZE[1] * 3 // 2, BLACK_SIZE[0]), 128, np.uint8)
_BLACK_YUV[: BLACK_SIZE[1]] = 16


class _SlotTrack(MediaStreamTrack):
    """What one viewer's sender sends on one m-line; the room swaps its feed.

    Invariant: a pump task exists exactly while a feed is set and live; it owns the
    relay subscription and stops it when it ends or is cancelled.
    """

    def __init__(self, name: str, kind: str, epoch: float) -> None:
        super().__init__()
        self.name = name  # "room R peer P#n kind slot i"
        self.kind = kind
        self._epoch = epoch
        self._feed: _Feed | None = None
        self._pump: asyncio.Task[None] | None = None
        self._mailbox: deque[Frame] = deque(maxlen=1 if kind == "video" else AUDIO_BACKLOG)
        self._wakeup = asyncio.Event()
        self._last: Fraction | None = None  # timestamp of the last frame sent, seconds
        self._next_black = -math.inf

    def set_feed(self, feed: _Feed | None) -> None:
        if feed is self._feed:
            return
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        self._feed = feed
        self._mailbox.clear()
        if feed is not None and not feed.ended and self.readyState == "live":
            self._pump = _start(self._run_pump(feed.subscribe()), f"{self.name} <- {feed.name}")
        self._wakeup.set()

    async def _run_pump(self, subscription: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await subscription.recv()
                if isinstance(frame, Frame):
                    self._mailbox.append(frame)
                    self._wakeup.set()
        except MediaStreamError:
            pass  # the feed ended: idle until the room routes another one here
        finally:
            subscription.stop()
            self._wakeup.set()

    async def recv(self) -> Frame:
        while self.readyState == "live":
            while self._mailbox:
                frame = self._mailbox.popleft()
                if frame.pts is not None and frame.time_base is not None:
                    if self._advance(frame.pts * frame.time_base):
                        return frame
            self._wakeup.clear()
            idle = self._pump is None or self._pump.done()
            if self.kind == "video" and idle:
                try:
                    async with asyncio.timeout(max(0.0, self._next_black - time.monotonic())):
                        await self._wakeup.wait()
                except TimeoutError:
                    return self._black()
            else:
                await self._wakeup.wait()
        raise MediaStreamError

    def _advance(self, at: Fraction) -> bool:
        if self._last is not None and at <= self._last:
            return False
        self._last = at
        return True

    def _black(self) -> VideoFrame:
        now = time.monotonic()
        self._next_black = now + IDLE_FRAME_INTERVAL
        frame = VideoFrame.from_ndarray(_BLACK_YUV, format="yuv420p")
        pts = round((now - self._epoch) * VIDEO_CLOCK)
        if self._last is not None:
            pts = max(pts, math.floor(self._last * VIDEO_CLOCK) + 1)
        frame.pts = pts
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        self._advance(frame.pts * frame.time_base)
        return frame

    def stop(self) -> None:
        super().stop()
        self.set_feed(None)
        self._wakeup.set()


# --- peers ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Peer:
    participant: str
    peer_id: str  # participant#n, n counting joins in this room: names log lines
    operator: bool
    pc: RTCPeerConnection
    slots: dict[str, list[_SlotTrack]] = field(default_factory=lambda: {"audio": [], "video": []})
    feeds: list[_Feed] = field(default_factory=list)
    connected_once: bool = False
    present: bool = False  # the last presence event emitted for it was PeerConnected
    retired: bool = False  # the room let go of it: its callbacks are ignored
    watchdog: asyncio.Task[None] | None = None

    def feed(self, kind: str) -> _Feed | None:
        """The participant's own camera or microphone: its first received track."""
        first = next((f for f in self.feeds if f.kind == kind), None)
        return first if first is not None and not first.ended else None

    def show(self, index: int, source: _Peer | None) -> None:
        for kind, slots in self.slots.items():
            if index < len(slots):
                slots[index].set_feed(source.feed(kind) if source else None)


def _offer_directions(offer_sdp: str, passive_dtls: bool) -> dict[str, str]:
    """mid -> offered direction of each audio/video m-line; OfferError if unusable."""
    try:
        description = sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:  # aiortc's parser raises whatever the input provokes
        raise OfferError(f"malformed SDP offer: {type(exc).__name__} {exc}") from exc
    media = [m for m in description.media if m.kind in ("audio", "video")]
    if not media:
        raise OfferError("the SDP offer has no audio or video m-line")
    bundles = [set(g.items) for g in description.group if g.semantic == "BUNDLE"]
    if not any({m.rtp.muxId for m in media} <= group for group in bundles):
        raise OfferError("the SDP offer must BUNDLE all its audio and video m-lines")
    if passive_dtls and any(m.dtls is not None and m.dtls.role == "server" for m in media):
        raise OfferError("the offer asks to be DTLS server (a=setup:passive), and so must we")
    return {m.rtp.muxId: m.direction or "" for m in media}


# --- the room ---------------------------------------------------------------------------


class Room:
    """The media of one call. Not thread-safe: use it from its event loop only."""

    def __init__(
        self,
        room_id: str,
        ice: IceSettings,
        *,
        on_event: Callable[[RoomEvent], None],
        silence_timeout: float = 3.0,
        connect_timeout: float = 15.0,
        sample_interval: float = 1.0,
    ) -> None:
        self.room_id = room_id
        self._ice = ice
        self._on_event = on_event
        self._silence_timeout = silence_timeout
        self._connect_timeout = connect_timeout
        self._sample_interval = sample_interval
        self._epoch = time.monotonic()  # zero of every timestamp sent from this room
        self._relay = MediaRelay()
        self._peers: dict[str, _Peer] = {}  # the current server peer of each participant
        self._operator: str | None = None
        self._slot_of: dict[str, int] = {}  # participant -> operator slot, by first join
        self._floor: str | None = None
        self._locks: dict[str, asyncio.Lock] = {}  # one join/leave at a time per participant
        self._tasks: set[asyncio.Task[None]] = set()
        self._joins = itertools.count(1)
        self._closed = False

    @property
    def participants(self) -> tuple[str, ...]:
        """Participants whose peer is connected and not silent, in join order."""
        return tuple(p for p, peer in self._peers.items() if peer.present)

    @property
    def floor(self) -> str | None:
        return self._floor

    def operator_slots(self) -> dict[str, int]:
        """Which of the operator's receiving slots shows each participant (by first join)."""
        return dict(self._slot_of)

    async def join(
        self, participant: str, offer_sdp: str, *, operator: bool, passive_dtls: bool = False
    ) -> str:
        """Answer ``offer_sdp`` with a complete SDP (all candidates, no trickle).

        A participant that already has a peer gets a new one; the old one is closed
        once the new one is ready. On any error nothing of the new peer is left.
        """
        self._check_open()
        self._check_role(participant, operator)
        async with self._locks.setdefault(participant, asyncio.Lock()):
            directions = _offer_directions(offer_sdp, passive_dtls)
            self._check_open()
            peer_id = f"{participant}#{next(self._joins)}"
            peer = _Peer(participant, peer_id, operator, peer_connection(self._ice))
            try:
                answer = await self._negotiate(peer, offer_sdp, directions, passive_dtls)
                self._check_open()
                self._check_role(participant, operator)
            except BaseException:
                await self._teardown(peer)
                raise
            old = self._install(peer)
            if old is not None:
                await self._teardown(old)
        return answer

    def give_floor(self, participant: str | None) -> None:
        """Route ``participant`` (or nobody) to every other participant's floor slot."""
        self._check_open()
        if participant is not None and participant == self._operator:
            raise RoleError(f"room {self.room_id}: the operator cannot hold the floor")
        self._floor = participant
        logger.info("room %s peer %s: given the floor", self.room_id, participant)
        self._reroute()

    async def leave(self, participant: str) -> None:
        async with self._locks.setdefault(participant, asyncio.Lock()):
            peer = self._peers.pop(participant, None)
            if peer is None:
                return
            self._retire(peer, "left")
            self._reroute()
            await self._teardown(peer)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        peers = list(self._peers.values())
        self._peers.clear()
        for peer in peers:
            self._retire(peer, "room closed")
        await asyncio.gather(*(self._teardown(peer) for peer in peers))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        logger.info("room %s peer -: closed", self.room_id)

    # --- negotiation ---

    async def _negotiate(
        self, peer: _Peer, offer_sdp: str, directions: dict[str, str], passive_dtls: bool
    ) -> str:
        pc = peer.pc
        pc.on("track", lambda track: self._add_feed(peer, track))
        pc.on("connectionstatechange", lambda: self._on_state(peer))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # untrusted input: aiortc raises many kinds
            raise OfferError(f"cannot use the SDP offer: {type(exc).__name__} {exc}") from exc
        for transceiver in pc.getTransceivers():
            if directions.get(transceiver.mid or "") in RECEIVING:
                kind, index = transceiver.kind, len(peer.slots[transceiver.kind])
                name = f"room {self.room_id} peer {peer.peer_id} {kind} slot {index}"
                slot = _SlotTrack(name, kind, self._epoch)
                peer.slots[transceiver.kind].append(slot)
                transceiver.sender.replaceTrack(slot)
                transceiver.direction = "sendrecv"  # answered as offer allows
        try:
            text = (await pc.createAnswer()).sdp
            if passive_dtls:  # WHIP: be the DTLS server (see WEBRTC-NOTES.md)
                text = text.replace("a=setup:active", "a=setup:passive")
            # Gathers all candidates before it returns: the answer is complete.
            await pc.setLocalDescription(RTCSessionDescription(sdp=text, type="answer"))
        except Exception as exc:
            raise OfferError(f"cannot answer the SDP offer: {type(exc).__name__} {exc}") from exc
        logger.info(
            "room %s peer %s: answered, sending on %d video and %d audio slots",
            self.room_id,
            peer.peer_id,
            len(peer.slots["video"]),
            len(peer.slots["audio"]),
        )
        return pc.localDescription.sdp

    def _add_feed(self, peer: _Peer, track: MediaStreamTrack) -> None:
        primary = peer.feed(track.kind) is None

        def first() -> None:
            logger.info("room %s peer %s: first %s frame", self.room_id, peer.peer_id, track.kind)
            if primary and self._current(peer):
                self._emit(TrackStarted, peer, kind=track.kind)

        def sample(frame: VideoFrame) -> None:
            if self._current(peer):
                self._emit(FrameSampled, peer, frame=frame)

        sampler = sample if primary and track.kind == "video" else None
        name = f"room {self.room_id} peer {peer.peer_id} {track.kind}"
        feed = _Feed(name, track, self._relay, self._epoch, first, sampler, self._sample_interval)
        peer.feeds.append(feed)

    def _install(self, peer: _Peer) -> _Peer | None:
        """Make ``peer`` the participant's current peer; return the one it replaces."""
        old = self._peers.pop(peer.participant, None)
        self._peers[peer.participant] = peer
        if old is not None:
            self._retire(old, "replaced by a new join")
        if peer.operator:
            self._operator = peer.participant
        else:
            self._slot_of.setdefault(peer.participant, len(self._slot_of))
        peer.watchdog = self._spawn(self._watch(peer), peer, "watchdog")
        self._reroute()
        operator = self._peers.get(self._operator or "")
        if operator is not None and len(self._slot_of) > len(operator.slots["video"]):
            logger.warning(
                "room %s peer %s: %d participants but the operator offered %d video slots",
                self.room_id,
                operator.peer_id,
                len(self._slot_of),
                len(operator.slots["video"]),
            )
        return old

    # --- presence ---

    def _on_state(self, peer: _Peer) -> None:
        if not self._current(peer):
            return
        state = peer.pc.connectionState
        logger.info("room %s peer %s: connection %s", self.room_id, peer.peer_id, state)
        if state == "connected" and not peer.present:
            peer.connected_once = peer.present = True
            self._emit(PeerConnected, peer)
        elif state in ("failed", "closed"):
            self._fail(peer, f"connection {state}")

    async def _watch(self, peer: _Peer) -> None:
        started = time.monotonic()
        received, changed = -1, started
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if not self._current(peer):
                return
            now = time.monotonic()
            if not peer.connected_once:
                if now - started > self._connect_timeout:
                    self._fail(peer, f"not connected within {self._connect_timeout:g} s")
                    return
                continue
            report = await peer.pc.getStats()
            if not self._current(peer):
                return
            count = sum(
                s.packetsReceived for s in report.values() if isinstance(s, RTCTransportStats)
            )
            if count != received:
                received, changed = count, now
                if not peer.present:
                    peer.present = True
                    logger.info("room %s peer %s: packets again", self.room_id, peer.peer_id)
                    self._emit(PeerConnected, peer, recovered=True)
            elif peer.present and now - changed >= self._silence_timeout:
                peer.present = False
                reason = f"no packets for {now - changed:.1f} s"
                logger.info("room %s peer %s: %s", self.room_id, peer.peer_id, reason)
                self._emit(PeerDisconnected, peer, reason=reason)

    def _fail(self, peer: _Peer, reason: str) -> None:
        """The remote side is gone for good: forget its peer and close it."""
        del self._peers[peer.participant]
        self._retire(peer, reason)
        self._emit(PeerFailed, peer, reason=reason)
        self._reroute()
        self._spawn(self._teardown(peer), peer, "teardown")

    def _retire(self, peer: _Peer, reason: str) -> None:
        peer.retired = True
        logger.info("room %s peer %s: retired (%s)", self.room_id, peer.peer_id, reason)
        if peer.present:
            peer.present = False
            self._emit(PeerDisconnected, peer, reason=reason)

    def _current(self, peer: _Peer) -> bool:
        return not peer.retired and self._peers.get(peer.participant) is peer

    # --- routing and plumbing ---

    def _reroute(self) -> None:
        """Point every slot at its source; idempotent, run after every change."""
        operator = self._peers.get(self._operator or "")
        for viewer in self._peers.values():
            if viewer.operator:
                for participant, index in self._slot_of.items():
                    viewer.show(index, self._peers.get(participant))
            else:
                viewer.show(OPERATOR_SLOT, operator)
                holder = None
                if self._floor is not None and self._floor != viewer.participant:
                    holder = self._peers.get(self._floor)
                viewer.show(FLOOR_SLOT, holder)

    async def _teardown(self, peer: _Peer) -> None:
        peer.retired = True
        if peer.watchdog is not None and peer.watchdog is not asyncio.current_task():
            peer.watchdog.cancel()
        for slots in peer.slots.values():
            for slot in slots:
                slot.stop()
        for feed in peer.feeds:
            feed.end()
        await peer.pc.close()
        logger.info("room %s peer %s: peer connection closed", self.room_id, peer.peer_id)

    def _emit(self, event_type: type[RoomEvent], peer: _Peer, **fields: Any) -> None:
        event = event_type(
            room_id=self.room_id, participant=peer.participant, at=time.time(), **fields
        )
        try:
            self._on_event(event)
        except Exception:
            logger.exception(
                "room %s peer %s: on_event failed for %s",
                self.room_id,
                peer.peer_id,
                event_type.__name__,
            )

    def _spawn(self, coro: Coroutine[Any, Any, None], peer: _Peer, job: str) -> asyncio.Task[None]:
        """A task ``close()`` waits for."""
        task = _start(coro, f"room {self.room_id} peer {peer.peer_id} {job}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _check_open(self) -> None:
        if self._closed:
            raise RoomClosedError(f"room {self.room_id} is closed")

    def _check_role(self, participant: str, operator: bool) -> None:
        if operator and self._operator not in (None, participant):
            raise RoleError(f"room {self.room_id}: {self._operator!r} is already the operator")
        if not operator and participant == self._operator:
            raise RoleError(f"room {self.room_id}: {participant!r} is the operator")
