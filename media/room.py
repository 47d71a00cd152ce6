"""A call's media: one server peer connection per participant, and who sees whom.

Routing. The operator receives every participant's video and audio. Every other
participant receives the operator's and those of whoever holds the floor (点名发言).
Nothing is decoded or encoded per viewer: each received track is a ``Feed`` whose
whole encoded frames go, unchanged, to every viewer slot showing it
(``media.forwarding``; the invariants on key frames and timestamps are stated there).
Video is decoded once per publisher, in aiortc's receiver thread, only for the
OpenCV samples (``media.ingest``).

One codec per room. Every video m-line is answered with the room's codec (VP8 by
default, H.264 by policy) and its RTX, so any frame can go to any viewer. A
publisher that only sends (WHIP, ``sendonly``) and offers another codec is answered
in its own codec and transcoded once at ingest, in the receiver's thread. A
``sendrecv`` or ``recvonly`` video m-line without the room's codec is refused.

Slots. Tracks must be in the SDP at join time, so a server peer only ever sends on
the m-lines the client offered to receive on (``recvonly`` or ``sendrecv``). Those
m-lines are that peer's *slots*, numbered per kind in m-line order, and each carries
a ``Slot`` whose source the room attaches:

- a participant's slot 0 shows the operator, slot 1 the floor holder (a browser
  offers camera and microphone ``sendrecv``, then one ``recvonly`` video and audio);
- the operator's slot *i* shows the *i*-th distinct participant to join (a rejoin
  keeps its slot). The operator's page offers as many receiving m-lines per kind as
  there are invited centres, plus a pair per camera it may show; participants beyond
  that are not shown (logged). Its slots of the participants its page shows in small
  tiles forward only their base temporal layer (``Room.view``).
- a WHIP publisher offers ``sendonly``: no slots, it is only received.

Key frames. Attaching a source to a video slot (a join, a floor change) asks the
source for a key frame, and so does a viewer's PLI or FIR: an RTCP PLI to the
publisher (rate-limited per publisher), or the ingest transcoder's next frame.

Weak links. Each video slot forwards only the VP8 temporal layers its viewer's link
carries, stepping down on the loss the viewer reports in RTCP and back up after a
clean spell (``media.linkrate``); a stream without layers pauses to audio only.

Audio level. Browsers put the RFC 6464 level in each audio packet's header; the
room keeps the last one per participant (``audio_levels``), read from the packet
before aiortc drops the header. Nothing computes levels from samples.

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

Spanning workers. A room too large for one media worker has a part on several
(``media.pool``); each part is a ``Room`` whose peers are its own, and which also
shows *remote* participants: publishers of another part whose frames arrive through
the pipe between the workers (``media.pipes``), once per part, as mediasoup's pipe
transports carry a producer once to another router. A part hands out, through its
``span`` (a ``SpanSink``), the frames of its present participants' camera and
microphone and their presence; a remote feed's key frame request goes back the same
way to the part that holds the publisher. Without a span a room is what it always was.

An offer must BUNDLE all its m-lines (browsers, GStreamer and OBS do): the server's
peers use max-bundle, one transport for everything (see ``media.ice``).

Events are delivered synchronously on the event loop; ``on_event`` must return
quickly. ``FrameSampled.frame`` is a decoded picture nobody else holds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    sdp,
)
from aiortc.rtp import AnyRtcpPacket, RtcpRrPacket, RtcpSrPacket, RtpPacket
from av import VideoFrame

from media import codecs
from media.consent import install as install_consent_expiry
from media.forwarding import Feed, Slot
from media.ice import IceSettings, peer_connection
from media.ingest import Ingest, tap
from media.jitter import use_arrival_order_audio, use_bounded_jitter_buffer
from media.linkrate import TOP
from media.ratecount import install as install_rate_counter
from media.recorder import FileReport, RoomRecorder
from media.remb import install as install_remb_pacing
from media.sockets import install as install_socket_draining

logger = logging.getLogger(__name__)

OPERATOR_SLOT = 0  # a participant's slots: the operator, then the floor holder
FLOOR_SLOT = 1
RECEIVING = ("recvonly", "sendrecv")  # offer directions in which the client receives
WATCH_INTERVAL = 0.5
SPEAKING_WITHIN = 1.0  # seconds an audio level stays current

install_rate_counter()  # the server's REMB estimators: see media.ratecount
install_remb_pacing()  # and how often they send: see media.remb
install_socket_draining()  # every datagram waiting, per wake-up: see media.sockets
install_consent_expiry()  # late answers keep a peer: see media.consent


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


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(RoomEvent):
    file: str  # the file's name in the folder the room records into
    kind: str  # what it holds: "audio+video", "video" or "audio"


@dataclass(frozen=True, kw_only=True)
class RecordingEnded(RoomEvent):
    report: FileReport  # the file closed and hashed (media.recorder)


class RoomError(ValueError):
    """A request the room cannot carry out; the message says why."""


class OfferError(RoomError):
    """The offer cannot be answered: malformed SDP, no common codec, DTLS role clash."""


class RoleError(RoomError):
    """Operator and participant roles mixed up."""


class RoomClosedError(RoomError):
    """The room was closed."""


# --- tasks ------------------------------------------------------------------------------


def _start(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task whose failure is logged when it ends; ``name`` says room, peer and job."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", task.get_name(), exc_info=task.exception())


# --- peers ------------------------------------------------------------------------------


class SpanSink:
    """Where a room part sends what other parts of the same room need (``media.pipes``)."""

    def frame(self, room_id: str, participant: str, kind: str, frame: tuple[Any, ...]) -> None:
        """An encoded frame of a local publisher: ``Feed.arrive``'s arguments."""

    def presence(self, room_id: str, participant: str, operator: bool, present: bool) -> None:
        """A local participant became present (sending) or absent."""

    def keyframe(self, room_id: str, origin: int, participant: str, kind: str) -> None:
        """A remote feed (its publisher on part ``origin``) needs a key frame."""


@dataclass(eq=False)
class _Remote:
    """A participant of another part of the room: a source, never a viewer here."""

    participant: str
    operator: bool
    origin: int  # the part (media worker) that holds its peer
    feeds: dict[str, Feed] = field(default_factory=dict)
    keyframe: Callable[[], None] | None = None  # a camera's (media.camera); else the span's
    recording: str = ""  # a camera's connection, as the recorder names it (participant#n)

    def feed(self, kind: str) -> Feed | None:
        return self.feeds.get(kind)


@dataclass(eq=False)
class _Peer:
    participant: str
    peer_id: str  # participant#n, n counting joins in this room: names log lines
    operator: bool
    pc: RTCPeerConnection
    slots: dict[str, list[Slot]] = field(default_factory=lambda: {"audio": [], "video": []})
    feeds: list[Feed] = field(default_factory=list)
    connected_once: bool = False
    present: bool = False  # the last presence event emitted for it was PeerConnected
    retired: bool = False  # the room let go of it: its callbacks are ignored
    watchdog: asyncio.Task[None] | None = None

    def feed(self, kind: str) -> Feed | None:
        """The participant's own camera or microphone: its first received track."""
        first = next((f for f in self.feeds if f.kind == kind), None)
        return first if first is not None and not first.ended else None

    def show(self, index: int, source: _Peer | _Remote | None) -> None:
        for kind, slots in self.slots.items():
            if index < len(slots):
                slots[index].attach(source.feed(kind) if source else None)

    def limit(self, index: int, top: int) -> None:
        """Slot ``index``'s video forwards temporal layers up to ``top``."""
        videos = self.slots["video"]
        if index < len(videos):
            videos[index].limit(top)


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


async def _send_pli(receiver: RTCRtpReceiver) -> None:
    """An RTCP PLI for the publisher's media SSRC (the newest one, RTX excluded).

    Private aiortc 1.16: ``_send_rtcp_pli`` and the receiver's RTX map.
    """
    rtx: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]  # private
    sources = [s for s in receiver.getSynchronizationSources() if s.source not in rtx]
    if sources:
        newest = max(sources, key=lambda s: s.timestamp)
        await receiver._send_rtcp_pli(newest.source)


def _packets_received(pc: RTCPeerConnection) -> int:
    """Packets the peer's transport has received (max-bundle: one transport for all).

    Private aiortc 1.16: the counter ``getStats()`` reports as ``packetsReceived``,
    read directly — ``getStats()`` builds a report of every transceiver, twice a
    second per peer, which cost more than forwarding at a hundred viewers.
    """
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        return int(transport._RTCDtlsTransport__rx_packets)  # type: ignore[attr-defined]  # private
    return 0


def _read_viewer_reports(sender: RTCRtpSender, slot: Slot) -> None:
    """Hand the viewer's receiver reports about this sender's stream to its slot.

    Private aiortc 1.16: the DTLS transport calls ``sender._handle_rtcp_packet``
    through the instance, and ``sender._ssrc`` is the stream's SSRC.
    """
    handle = sender._handle_rtcp_packet

    async def handle_with_reports(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    slot.viewer_report(report.highest_sequence, report.packets_lost)
        await handle(packet)

    sender._handle_rtcp_packet = handle_with_reports  # type: ignore[method-assign]  # no hook


RETRANSMIT_GAP = 0.2  # seconds before the same packet is sent again on a NACK
RETRANSMIT_TIMES = 1  # times one packet is retransmitted at most
RETRANSMIT_MEMORY = 1024  # sequence numbers remembered


def _throttle_retransmissions(sender: RTCRtpSender) -> None:
    """Retransmit each packet at most ``RETRANSMIT_TIMES`` times, ``RETRANSMIT_GAP``
    apart, however often the viewer NACKs it.

    An aiortc receiver NACKs every packet still missing each time it sees a new gap;
    on a lossy link that asks for the same packets many times a second, and resending
    each time multiplied the traffic on the very link that was losing it. Private
    aiortc 1.16: ``_handle_rtcp_packet`` calls ``self._retransmit(seq)`` per NACKed
    sequence number.
    """
    retransmit = sender._retransmit
    sent: dict[int, tuple[int, float]] = {}  # sequence number -> (times, last time)

    async def throttled(sequence_number: int) -> None:
        now = time.monotonic()
        times, last = sent.get(sequence_number, (0, -math.inf))
        if times >= RETRANSMIT_TIMES or now - last < RETRANSMIT_GAP:
            return
        if len(sent) >= RETRANSMIT_MEMORY:
            del sent[next(iter(sent))]  # the oldest asked for
        sent[sequence_number] = (times + 1, now)
        await retransmit(sequence_number)

    sender._retransmit = throttled  # type: ignore[method-assign]  # aiortc has no hook


def _read_audio_levels(receiver: RTCRtpReceiver, feed: Feed) -> None:
    """Keep each packet's RFC 6464 level on ``feed`` before aiortc handles the packet.

    Private aiortc 1.16: the DTLS transport calls ``receiver._handle_rtp_packet``
    through the instance, so an instance attribute wraps it.
    """
    handle = receiver._handle_rtp_packet

    async def handle_with_level(packet: RtpPacket, arrival_time_ms: int) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            feed.level, feed.level_at = level[1], time.monotonic()
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_with_level  # type: ignore[method-assign]  # no hook


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
        video_codec: str = codecs.VP8,
    ) -> None:
        self.room_id = room_id
        self.video_codec = codecs.check_room_codec(video_codec)
        self._ice = ice
        self._on_event = on_event
        self._silence_timeout = silence_timeout
        self._connect_timeout = connect_timeout
        self._sample_interval = sample_interval
        self._epoch = time.monotonic()  # zero of every timestamp sent from this room
        self._peers: dict[str, _Peer] = {}  # the current server peer of each participant
        self._operator: str | None = None
        self._slot_of: dict[str, int] = {}  # participant -> operator slot, by first join
        self._floor: str | None = None
        self._small: frozenset[str] = frozenset()  # shown small on the operator's page
        self._locks: dict[str, asyncio.Lock] = {}  # one join/leave at a time per participant
        self._tasks: set[asyncio.Task[None]] = set()
        self._joins = itertools.count(1)
        self._closed = False
        self._remote: dict[str, _Remote] = {}  # participants of other parts (spanning)
        self.span: SpanSink | None = None  # set by a media worker when the room spans
        self._recorder: RoomRecorder | None = None  # while the call is recorded
        self._cameras: dict[str, Any] = {}  # participant -> media.camera.CameraSource
        self._camera_runs = itertools.count(1)  # numbers each camera's time live

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

    def audio_levels(self) -> dict[str, int]:
        """Participant -> the level of its microphone in -dBov (0 loudest, 127 silence),
        as its client last reported it (RFC 6464) within ``SPEAKING_WITHIN`` seconds."""
        now = time.monotonic()
        levels: dict[str, int] = {}
        for participant, peer in self._peers.items():
            feed = peer.feed("audio")
            if feed is not None and feed.level is not None:
                if now - feed.level_at <= SPEAKING_WITHIN:
                    levels[participant] = feed.level
        return levels

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

    def view(self, small: Collection[str]) -> None:
        """The operator's page shows the participants ``small`` in tiles too small to
        need every frame: the operator's slots of them forward only the base temporal
        layer (a quarter of a browser's L1T3 frames; a publisher without layers is not
        thinned), the others every layer. Kept for the operator's later connections."""
        self._check_open()
        self._small = frozenset(small)
        self._reroute()

    def prime(self, participant: str) -> None:
        """``participant`` is about to join (its centre accepted the call): ask the
        publishers it will see — the operator, and whoever holds the floor — for a key
        frame now. One arrives while its connection comes up and the feed keeps it
        (``Feed.gop``), so its first picture does not wait for a request made at join
        (a publisher takes ~0.1 s to answer one). Rate-limited like every request."""
        if self._closed:
            return
        for name in (self._operator, self._floor):
            source = self._source(name) if name != participant else None
            feed = source.feed("video") if source is not None else None
            if feed is not None:
                feed.request_keyframe()

    async def record(self, directory: str | None, *, min_free_bytes: int = 0) -> None:
        """Record each local publisher's connection, and each camera this part pulls
        (a file per time it is live, video only), into a file in ``directory``
        (``media.recorder``), or stop recording (None). Returns once the files a stop
        closed are closed and reported (``RecordingEnded``)."""
        recorder = self._recorder
        if recorder is not None and directory == str(recorder.directory):
            return
        self._recorder = None
        if recorder is not None:
            await recorder.close("recording stopped")
        if directory is not None:
            self._check_open()

            def started(participant: str, name: str, kind: str) -> None:
                self.source_event(RecordingStarted(room_id=self.room_id, participant=participant,
                                                   at=time.time(), file=name,
                                                   kind=kind))  # fmt: skip

            def ended(report: FileReport) -> None:
                self.source_event(RecordingEnded(room_id=self.room_id,
                                                 participant=report.participant,
                                                 at=report.ended_at, report=report))  # fmt: skip

            self._recorder = RoomRecorder(self.room_id, Path(directory), self.video_codec,
                                          min_free_bytes=min_free_bytes, on_started=started,
                                          on_ended=ended)  # fmt: skip

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
        for camera in self._cameras.values():
            camera.stop()
        for known in list(self._remote.values()):
            self._drop_remote(known)
        await asyncio.gather(*(self._teardown(peer) for peer in peers))
        if self._recorder is not None:
            await self._recorder.close("room closed")
        await asyncio.gather(*self._tasks, return_exceptions=True)
        logger.info("room %s peer -: closed", self.room_id)

    # --- spanning workers: the other parts' participants ---

    def announce(self) -> None:
        """Tell the span of every present local participant (a part was added)."""
        if self.span is not None:
            for peer in self._peers.values():
                if peer.present:
                    self.span.presence(self.room_id, peer.participant, peer.operator, True)

    def remote_present(
        self,
        participant: str,
        operator: bool,
        origin: int,
        keyframe: Callable[[], None] | None = None,
    ) -> None:
        """``participant`` sends on part ``origin``; its frames arrive by ``remote_frame``.
        ``keyframe``: who its key frames are asked of (a camera), instead of the span."""
        if self._closed or participant in self._peers:
            return  # a local peer wins: the pool keeps a participant on one part
        known = self._remote.get(participant)
        if known is not None and known.origin == origin:
            return
        if known is not None:
            self._drop_remote(known)
        self._remote[participant] = _Remote(participant, operator, origin, keyframe=keyframe)
        if keyframe is not None:  # a camera of this part: recorded here, a file per run
            self._remote[participant].recording = f"{participant}#{next(self._camera_runs)}"
        if operator:
            self._operator = participant
        else:
            self._slot_of.setdefault(participant, len(self._slot_of))
        logger.info("room %s peer %s: sends on media worker %d", self.room_id, participant,
                    origin)  # fmt: skip

    def remote_absent(self, participant: str, origin: int) -> None:
        known = self._remote.get(participant)
        if known is not None and known.origin == origin:
            self._drop_remote(known)
            self._reroute()

    def origin_gone(self, origin: int) -> None:
        """The pipe from part ``origin`` closed: its participants are gone."""
        for known in [r for r in self._remote.values() if r.origin == origin]:
            self._drop_remote(known)
        self._reroute()

    def remote_frame(self, participant: str, kind: str, frame: tuple[Any, ...]) -> None:
        known = self._remote.get(participant)
        if known is None:
            return  # it left meanwhile, or its presence is still on the way
        feed = known.feeds.get(kind)
        if feed is None:
            origin, camera = known.origin, known.keyframe

            def ask_keyframe() -> None:
                if camera is not None:
                    camera()
                elif self.span is not None:
                    self.span.keyframe(self.room_id, origin, participant, kind)

            name = f"room {self.room_id} peer {participant}@{origin} {kind}"
            feed = known.feeds[kind] = Feed(name, kind, self._epoch, ask_keyframe, lambda: None)
            self._reroute()  # the slots that show it attach now
        feed.arrive(*frame)
        if known.recording and self._recorder is not None:
            self._recorder.frame(known.recording, participant, ("video",), kind, frame,
                                 feed.request_keyframe)  # fmt: skip

    # --- cameras: RTSP sources entering as remote participants (media.camera) ---

    def add_camera(self, participant: str, url: str, **options: float) -> None:
        """Pull ``url`` into the room as view-only ``participant`` (replacing a camera
        of that name); ``options``: ``CameraSource``'s timeout and retry_max."""
        from media.camera import CameraSource  # media.camera imports this module

        self._check_open()
        self.remove_camera(participant)
        camera = CameraSource(self, participant, url, sample_interval=self._sample_interval,
                              **options)  # fmt: skip
        self._cameras[participant] = camera
        camera.start()

    def remove_camera(self, participant: str) -> None:
        camera = self._cameras.pop(participant, None)
        if camera is not None:
            camera.stop()
            self._reroute()

    def source_event(self, event: RoomEvent) -> None:
        """An event of no peer here: a camera's, or the room's recording's."""
        try:
            self._on_event(event)
        except Exception:
            logger.exception("room %s peer %s: on_event failed for %s", self.room_id,
                             event.participant, type(event).__name__)  # fmt: skip

    def keyframe_for(self, participant: str, kind: str) -> None:
        """Another part's viewers of a local publisher need a key frame."""
        peer = self._peers.get(participant)
        feed = peer.feed(kind) if peer is not None else None
        if feed is not None:
            feed.request_keyframe()

    def _drop_remote(self, known: _Remote) -> None:
        del self._remote[known.participant]
        if known.recording and self._recorder is not None:
            self._recorder.publisher_gone(known.recording, "camera gone")
        for feed in known.feeds.values():
            feed.end()
        logger.info("room %s peer %s: no longer sends on media worker %d", self.room_id,
                    known.participant, known.origin)  # fmt: skip

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
            direction = directions.get(transceiver.mid or "")
            if transceiver.kind == "video" and not codecs.prefer(transceiver, self.video_codec):
                if direction in RECEIVING:  # it would have to decode what we forward
                    raise OfferError(
                        f"the video m-line {transceiver.mid} does not offer {self.video_codec}, "
                        "the codec of this room"
                    )
                logger.info("room %s peer %s: publishes %s, transcoded once at ingest",
                            self.room_id, peer.peer_id, codecs.negotiated(transceiver))  # fmt: skip
            if direction in RECEIVING:
                kind, index = transceiver.kind, len(peer.slots[transceiver.kind])
                name = f"room {self.room_id} peer {peer.peer_id} {kind} slot {index}"
                slot = Slot(name, kind, self.video_codec, self._epoch)
                peer.slots[transceiver.kind].append(slot)
                transceiver.sender.replaceTrack(slot)
                slot.bind(transceiver.sender)
                # A viewer's PLI/FIR asks the slot's source, not an encoder (there is none).
                transceiver.sender._send_keyframe = slot.keyframe_wanted  # type: ignore[method-assign]  # no hook
                if kind == "video":
                    _read_viewer_reports(transceiver.sender, slot)
                    _throttle_retransmissions(transceiver.sender)
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
        """A track the participant sends: called inside ``setRemoteDescription``,
        before its receiver starts, so the receiver can still be tapped."""
        receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.receiver.track is track)
        primary = peer.feed(track.kind) is None
        name = f"room {self.room_id} peer {peer.peer_id} {track.kind}"

        def first() -> None:
            logger.info("room %s peer %s: first %s frame", self.room_id, peer.peer_id, track.kind)
            if primary and self._current(peer):
                self._emit(TrackStarted, peer, kind=track.kind)

        def sample(frame: VideoFrame) -> None:
            if self._current(peer):
                self._emit(FrameSampled, peer, frame=frame)

        def ask_keyframe() -> None:
            if ingest.transcoding:
                ingest.request_keyframe()
            else:
                self._spawn(_send_pli(receiver), peer, f"{track.kind} PLI")

        feed = Feed(name, track.kind, self._epoch, ask_keyframe, first)

        def arrive(*frame: Any) -> None:
            feed.arrive(*frame)
            if primary and self.span is not None and peer.present and self._current(peer):
                self.span.frame(self.room_id, peer.participant, track.kind, frame)
            if primary and self._recorder is not None and self._current(peer):
                kinds = tuple(f.kind for f in peer.feeds)
                self._recorder.frame(peer.peer_id, peer.participant, kinds, track.kind, frame,
                                     feed.request_keyframe)  # fmt: skip

        ingest = Ingest(
            name,
            track.kind,
            room_codec=self.video_codec,
            on_frame=arrive,
            on_end=feed.end,
            on_sample=sample if primary and track.kind == "video" else None,
            sample_interval=self._sample_interval,
        )
        tap(receiver, ingest)
        if track.kind == "video":
            buffer = use_bounded_jitter_buffer(receiver)
            if self.video_codec == codecs.VP8:
                buffer.read_layer = codecs.vp8_layer
        if track.kind == "audio":
            use_arrival_order_audio(receiver)
            _read_audio_levels(receiver, feed)
        peer.feeds.append(feed)

    def _install(self, peer: _Peer) -> _Peer | None:
        """Make ``peer`` the participant's current peer; return the one it replaces."""
        old = self._peers.pop(peer.participant, None)
        self._peers[peer.participant] = peer
        if peer.participant in self._remote:  # it moved here from another part
            self._drop_remote(self._remote[peer.participant])
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
            count = _packets_received(peer.pc)
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
        if self._recorder is not None:
            self._recorder.publisher_gone(peer.peer_id, reason)
        if peer.present:
            peer.present = False
            self._emit(PeerDisconnected, peer, reason=reason)

    def _current(self, peer: _Peer) -> bool:
        return not peer.retired and self._peers.get(peer.participant) is peer

    # --- routing and plumbing ---

    def _source(self, participant: str | None) -> _Peer | _Remote | None:
        """Whose feeds show ``participant``: its peer here, or its remote entry."""
        if participant is None:
            return None
        return self._peers.get(participant) or self._remote.get(participant)

    def _reroute(self) -> None:
        """Point every slot at its source; idempotent, run after every change."""
        operator = self._source(self._operator)
        for viewer in self._peers.values():
            if viewer.operator:
                for participant, index in self._slot_of.items():
                    viewer.show(index, self._source(participant))
                    viewer.limit(index, 0 if participant in self._small else TOP)
            else:
                viewer.show(OPERATOR_SLOT, operator)
                holder = None
                if self._floor is not None and self._floor != viewer.participant:
                    holder = self._source(self._floor)
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
        if self.span is not None and event_type in (PeerConnected, PeerDisconnected):
            self.span.presence(self.room_id, peer.participant, peer.operator,
                               event_type is PeerConnected)  # fmt: skip
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
