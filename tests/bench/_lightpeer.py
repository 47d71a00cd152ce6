"""Shared parts of the media benches (fanout.py, meeting.py); not a bench itself.

Running this file does nothing (``make bench`` runs every tests/bench/*.py): it only
defines what the benches import.

- Publishers: every camera is 640x360 VP8 at 15 fps in L1T3 (three temporal layers
  marked in each packet's payload descriptor, as a browser publishes), encoded once at
  start and looped: a grey picture with a moving bar and light noise (≈ 500 kbps, like
  a camera). A probed publisher's frames carry their number in a barcode on the top 16
  rows and leave on the clock's frame grid (``barcoded_camera``); the others loop one
  second (``precoded_camera``). Every microphone loops a 440 Hz tone as pre-encoded
  Opus packets every 20 ms (``tone``). All of it is written by ``peers.PACER`` (one
  task per process, ``media.rtpout`` as the server writes): no encoder, no audio-level
  loop, no sender task per stream. A publisher answers no key frame request: each
  second starts with a key frame, and the server keeps the frames since the last.
- Light viewers: ``LightTap`` replaces two methods of one ``RTCDtlsTransport`` instance
  (aiortc 1.16 private API: ``_setup_srtp`` and ``_handle_rtp_data``) and, once DTLS is
  up, the ``datagram_received`` of each of the connection's ICE sockets (aioice 0.13):
  packets of the SSRCs it watches are counted as they come off the socket — not parsed
  as STUN, queued, SRTP-decrypted or decoded — from their clear 12-byte RTP header (a
  video packet with the marker bit ends a frame; an audio packet is a 20 ms frame).
  ICE, DTLS and RTCP run as aiortc does them, and the tap
  sends a receiver report for its streams about once a second, as a browser does
  (aiortc's receiver reports only streams it saw, so the server would see silence).
- Probes: the video slots a peer decodes in full; each decoded frame's barcode gives
  its delay (decode time − the grid time it was sent at, ``sent_at``; every process
  reads the same monotonic clock).
- ``ReencodeRoom``: the old design in miniature, the baseline the benches compare with.
- Processes: ``Child`` starts ``serve`` (one room behind POST /join and POST /floor on
  127.0.0.1) or ``clients`` (bench peers) in a spawned process driven over a pipe, and
  reads its CPU time from /proc, so server and clients are measured apart.

All media stays on 127.0.0.1: every process calls ``configure_host_addresses(LOOPBACK)``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import multiprocessing
import os
import random
import selectors
import sys
import time
import traceback
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.codecs.opus import OpusEncoder
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket
from av import AudioFrame, VideoFrame

from media.ice import IceSettings, configure_host_addresses, peer_connection
from media.rtpout import Packetised

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers shared with them
from l1t3 import decodes_by_layer, encode_l1t3

from peers import PACER, HeldTrack, PacedStream, browser_like_buffer, opus_frames, vp8_frames

LOOPBACK = IceSettings(host_addresses=("127.0.0.1",))
WIDTH, HEIGHT, FPS = 640, 360, 15
AUDIO_RATE, AUDIO_PTIME = 48_000, 0.020
RECEIVING = ("recvonly", "sendrecv")
BAR_ROWS, BAR_BITS = 16, 40  # barcode: a 32-bit number + 8 check bits, 16 px per bit
PROBE_LOOP = 4 * FPS  # frames of a probed publisher's loop: delays up to 4 s read right
CALL_TIMEOUT = 300.0  # seconds a child may take to answer one command


# --- CPU and kernel counters ------------------------------------------------------------


def proc_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process so far: (all threads, its main thread = event loop)."""

    def read(stat: str) -> float:
        fields = Path(stat).read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped, machine-wide, because a socket buffer was full."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    head, values = [x for x in lines if x[0] == "Udp:"][:2]
    return int(values[head.index("RcvbufErrors")])


def box_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, all cores."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- publishers -------------------------------------------------------------------------


def _check(value: int) -> int:
    return (value ^ (value >> 8) ^ (value >> 16) ^ (value >> 24) ^ 0x5A) & 0xFF


def write_barcode(luma: np.ndarray, value: int) -> None:
    """Paint ``value`` (32 bits) and its check byte on the top BAR_ROWS rows of ``luma``."""
    word = (value << 8) | _check(value)
    cell = WIDTH // BAR_BITS
    for bit in range(BAR_BITS):
        on = (word >> (BAR_BITS - 1 - bit)) & 1
        luma[:BAR_ROWS, bit * cell : (bit + 1) * cell] = 235 if on else 16


def read_barcode(frame: VideoFrame) -> int | None:
    """The value ``write_barcode`` painted on a decoded frame; None if it does not check."""
    if frame.width != WIDTH or frame.height != HEIGHT:
        return None
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8)[: plane.line_size * BAR_ROWS]
    luma = rows.reshape(BAR_ROWS, plane.line_size)[:, :WIDTH]
    cell = WIDTH // BAR_BITS
    # The middle of each cell, away from the edges the codec blurs.
    cells = luma[4:12].reshape(8, BAR_BITS, cell)[:, :, 4 : cell - 4].mean(axis=(0, 2))
    word = 0
    for on in cells > 128:
        word = (word << 1) | int(on)
    value = word >> 8
    return value if _check(value) == word & 0xFF else None


class CameraPictures:
    """640x360 yuv420p pictures like a camera's: a grey gradient with a tint per
    ``seed``, light noise that changes every frame (≈ 350-500 kbps in VP8, like a
    camera) and a moving bar; the top rows are left for a barcode."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self._base = np.empty((HEIGHT * 3 // 2, WIDTH), np.uint8)
        self._base[:HEIGHT] = np.linspace(60, 160, WIDTH, dtype=np.uint8)[None, :]
        self._base[HEIGHT:] = 128 + (seed * 37) % 60 - 30  # a tint per publisher
        # A few precomputed noise planes, cycled.
        self._noise = rng.integers(0, 3, (8, HEIGHT - 2 * BAR_ROWS, WIDTH), np.uint8)

    def picture(self, index: int) -> np.ndarray:
        """Frame ``index``'s yuv420p planes, barcode rows still blank."""
        picture = self._base.copy()
        picture[2 * BAR_ROWS : HEIGHT] += self._noise[index % len(self._noise)]
        x = (index * 8) % (WIDTH - 40)
        picture[2 * BAR_ROWS : HEIGHT, x : x + 40] = 235
        return picture


def barcoded_camera(seed: int) -> list[Packetised]:
    """``CameraPictures(seed)`` with frame i's number in its barcode, PROBE_LOOP frames
    encoded once like ``precoded_camera`` (L1T3, a key frame each second), sent on the
    clock's frame grid (``PacedStream`` aligned): a probe that decodes frame i at time
    t knows it was sent at the last grid time j / FPS ≤ t with j ≡ i (mod PROBE_LOOP).
    Encoding live instead cost the clients a core's tenth per probed publisher, which
    the server under test then did not have."""
    if seed not in _BARCODED:
        pictures = CameraPictures(seed)

        def numbered(index: int) -> np.ndarray:
            picture = pictures.picture(index)
            write_barcode(picture, index % PROBE_LOOP)
            return picture

        _BARCODED[seed] = vp8_frames(_encode_settled(numbered, PROBE_LOOP))
    return _BARCODED[seed]


_BARCODED: dict[int, list[Packetised]] = {}


def sent_at(index: int, now: float) -> float:
    """When the aligned frame numbered ``index`` (mod PROBE_LOOP) that was decoded at
    ``now`` was sent: the last grid time at or before ``now`` with that number."""
    latest = math.floor(now * FPS)
    return (latest - (latest - index) % PROBE_LOOP) / FPS


def precoded_camera(seed: int) -> list[Packetised]:
    """``CameraPictures(seed)`` encoded once, at about a camera's 500 kbit/s, as a key
    frame and 14 inter frames: a second of video to loop, which starts with a key frame
    each second so any viewer can start within one. Encoded with three temporal layers
    (``l1t3``) and marked with them in each packet's VP8 payload descriptor, as a
    browser publishes (L1T3). Sent by ``peers.PACER``: encoding 640x360 live, and
    aiortc's sender task per stream, would measure the clients instead of the server."""
    if seed not in _PRECODED:
        _PRECODED[seed] = vp8_frames(_encode_settled(CameraPictures(seed).picture, FPS))
    return _PRECODED[seed]


_PRECODED: dict[int, list[Packetised]] = {}


def _encode_settled(
    picture: Callable[[int], np.ndarray], count: int
) -> list[tuple[bytes, int | None]]:
    """``count`` frames (a multiple of FPS), encoded after as many more to let rate
    control settle; checked to decode by layer."""
    pictures = (picture(index) for index in range(2 * count))
    frames = encode_l1t3(pictures, WIDTH, HEIGHT, FPS, kbps=500, key_every=FPS)[count:]
    if not decodes_by_layer(frames):
        raise RuntimeError("the precoded camera's temporal layers do not decode apart")
    return list(frames)




def _tone_packets() -> list[bytes]:
    """One second of a 440 Hz tone as 50 Opus packets of 20 ms (it loops seamlessly)."""
    encoder = OpusEncoder()
    samples = np.arange(AUDIO_RATE) / AUDIO_RATE
    wave = (np.sin(2 * np.pi * 440 * samples) * 6000).astype(np.int16)
    stereo = np.repeat(wave, 2)
    packets: list[bytes] = []
    step = int(AUDIO_RATE * AUDIO_PTIME)
    for round_ in range(2):  # the second pass starts with a warm encoder
        out = []
        for i in range(0, AUDIO_RATE, step):
            frame = AudioFrame.from_ndarray(
                stereo[2 * i : 2 * (i + step)].reshape(1, -1), format="s16", layout="stereo"
            )
            frame.sample_rate = AUDIO_RATE
            frame.pts = round_ * AUDIO_RATE + i
            frame.time_base = Fraction(1, AUDIO_RATE)
            out += encoder.encode(frame)[0]
        packets = out
    return packets


def tone() -> list[Packetised]:
    """A second of the 440 Hz tone, cut once, for ``peers.PACER`` to loop."""
    if not _TONE:
        _TONE.extend(opus_frames(_tone_packets()))
    return _TONE


_TONE: list[Packetised] = []


# --- light receiving --------------------------------------------------------------------


@dataclass
class Arrivals:
    """What one receiving m-line got: frame times, and the delays probes read."""

    kind: str
    times: array = field(default_factory=lambda: array("d"))  # monotonic, ascending
    last_seq: int = -1  # RTP sequence number of the last packet (light streams)
    delays: list[tuple[float, float]] = field(default_factory=list)  # (time, delay s)

    def count(self, start: float, end: float) -> int:
        return _count(self.times, start, end)


class _ClearHeaderSession:
    """Stands in for the receiving pylibsrtp Session: watched SSRCs pass undecrypted."""

    def __init__(self, inner: Any, watched: dict[int, Arrivals]) -> None:
        self._inner = inner
        self._watched = watched

    def unprotect(self, data: bytes) -> bytes:
        if int.from_bytes(data[8:12], "big") in self._watched:
            return data  # header in clear, payload still encrypted: never parsed
        return self._inner.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._inner.unprotect_rtcp(data)


def _arrived(seen: Arrivals, data: bytes) -> None:
    seen.last_seq = int.from_bytes(data[2:4], "big")
    if seen.kind == "audio" or data[1] & 0x80:  # marker: a frame's last packet
        seen.times.append(time.monotonic())


def _count_at_socket(protocol: Any, watched: dict[int, Arrivals]) -> None:
    """Time the watched SSRCs' packets as their datagram arrives on one of the
    connection's ICE sockets (aioice's ``StunProtocol``, which asyncio calls by
    attribute): before aioice tries to parse it as STUN, queues it, and wakes the ICE
    and DTLS transports' tasks for it. Everything else (STUN, DTLS, RTCP, other SSRCs)
    takes aioice's path unchanged."""
    inner = protocol.datagram_received

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        # RTP (version 2), not RTCP: RFC 5761 keeps RTCP packet types in 192-223.
        if 127 < data[0] < 192 and not 191 < data[1] < 224 and len(data) >= 12:
            seen = watched.get(int.from_bytes(data[8:12], "big"))
            if seen is not None:
                _arrived(seen, data)
                return
        inner(data, addr)

    protocol.datagram_received = datagram_received


class LightTap:
    """Times the RTP packets of chosen SSRCs of one peer connection from their header.

    Installed on the connection's (single, max-bundle) RTCDtlsTransport before DTLS
    starts. Invariant: a watched SSRC's packets reach neither libsrtp nor aiortc's
    receiver (no decryption, no jitter buffer, no decoder, no NACK/PLI); every other
    packet takes aiortc's own path unchanged.
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.watched: dict[int, Arrivals] = {}
        setup, handle = dtls._setup_srtp, dtls._handle_rtp_data

        def setup_srtp() -> None:
            setup()
            if dtls._rx_srtp is not None:
                dtls._rx_srtp = _ClearHeaderSession(dtls._rx_srtp, self.watched)
            for protocol in dtls.transport._connection._protocols:
                _count_at_socket(protocol, self.watched)

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            seen = self.watched.get(int.from_bytes(data[8:12], "big"))
            if seen is None:
                await handle(data, arrival_time_ms)
            else:  # a packet that came through aioice before the socket tap was set
                _arrived(seen, data)

        dtls._setup_srtp = setup_srtp  # type: ignore[method-assign]
        dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]

    def watch(self, ssrc: int, kind: str) -> Arrivals:
        self.watched[ssrc] = Arrivals(kind)
        return self.watched[ssrc]

    async def report(self, dtls: RTCDtlsTransport) -> None:
        """Send a receiver report of the watched streams every 0.5-1.5 s, as aiortc's
        receivers do (no loss figures: a light viewer does not track them)."""
        sender_ssrc = random.getrandbits(32)
        while True:
            await asyncio.sleep(0.5 + random.random())
            reports = [
                RtcpReceiverInfo(ssrc, 0, 0, seen.last_seq, 0, 0, 0)
                for ssrc, seen in self.watched.items()
                if seen.last_seq >= 0
            ]
            if reports and dtls.state == "connected":
                try:
                    await dtls._send_rtp(bytes(RtcpRrPacket(sender_ssrc, reports)))
                except ConnectionError:
                    return


def sending_ssrcs(answer: str) -> list[int | None]:
    """Per m-line of an SDP, the primary SSRC its sender announces (None: sends nothing)."""
    out: list[int | None] = []
    for media in sdp.SessionDescription.parse(answer).media:
        fid = [int(g.items[0]) for g in media.ssrc_group if g.semantic == "FID"]
        out.append(fid[0] if fid else (media.ssrc[0].ssrc if media.ssrc else None))
    return out


# --- bench peers ------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerSpec:
    """One client peer. Its receiving m-lines are its *slots*, numbered per kind."""

    name: str
    operator: bool = False
    publish: bool = False  # camera + microphone (tone)
    barcoded: bool = True  # the camera numbers its frames for probes (else plain, looped)
    duplex: bool = False  # the camera m-lines are sendrecv (a participant's slot 0)
    recv_pairs: int = 0  # further recvonly video + audio m-lines
    probes: tuple[int, ...] = ()  # video slots decoded in full; the others are light


class BenchPeer:
    """A client peer: publishes if asked, times what it receives (light or probe)."""

    def __init__(self, spec: PeerSpec) -> None:
        self.spec = spec
        self.pc: RTCPeerConnection = peer_connection(LOOPBACK)
        self._seed = hash(spec.name) & 0xFFFF
        self.camera: PacedStream | None = None  # ``sent``: send times
        self.mic: PacedStream | None = None
        self.video: list[Arrivals] = []  # by video slot
        self.audio: list[Arrivals] = []  # by audio slot
        self._readers: list[asyncio.Task[None]] = []

    def _offer_tracks(self) -> None:
        spec = self.spec
        if spec.publish:
            direction = "sendrecv" if spec.duplex else "sendonly"
            camera = self.pc.addTransceiver(HeldTrack("video"), direction=direction)
            if spec.barcoded:
                frames = barcoded_camera(self._seed)
                self.camera = PACER.add(camera.sender, "video", frames, FPS, aligned=True)
            else:
                self.camera = PACER.add(camera.sender, "video", precoded_camera(self._seed), FPS)
            mic = self.pc.addTransceiver(HeldTrack("audio"), direction=direction)
            self.mic = PACER.add(mic.sender, "audio", tone(), 1 / AUDIO_PTIME)
        for _ in range(spec.recv_pairs):
            self.pc.addTransceiver("video", direction="recvonly")
            self.pc.addTransceiver("audio", direction="recvonly")

    async def join(self, http: aiohttp.ClientSession, base: str) -> None:
        self._offer_tracks()
        dtls = self.pc.getTransceivers()[0].receiver.transport
        tap = LightTap(dtls)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {
            "participant": self.spec.name,
            "operator": self.spec.operator,
            "sdp": self.pc.localDescription.sdp,
        }
        async with http.post(base + "/join", json=body) as response:
            if response.status != 200:
                raise RuntimeError(
                    f"join {self.spec.name}: {response.status} {(await response.text())[:300]}"
                )
            answer = (await response.json())["sdp"]
        ssrcs = sending_ssrcs(answer)
        offered = [t for t in self.pc.getTransceivers() if t.direction in RECEIVING]
        probed: list[tuple[Any, Arrivals]] = []  # (transceiver, its slot)
        for transceiver, ssrc in zip(self.pc.getTransceivers(), ssrcs, strict=True):
            if transceiver not in offered:
                continue
            slots = self.video if transceiver.kind == "video" else self.audio
            probe = transceiver.kind == "video" and len(slots) in self.spec.probes
            if probe or ssrc is None:
                slots.append(Arrivals(transceiver.kind))
                if probe:
                    probed.append((transceiver, slots[-1]))
            else:
                slots.append(tap.watch(ssrc, transceiver.kind))
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self._readers.append(asyncio.create_task(tap.report(dtls)))
        for transceiver, seen in probed:  # remote tracks exist once the answer is set
            browser_like_buffer(transceiver.receiver)
            reader = _read_probe(transceiver.receiver.track, seen)
            self._readers.append(asyncio.create_task(reader))

    def report(self, start: float, end: float) -> dict[str, Any]:
        """Counts in [start, end): frames sent, and per slot frames received and delays."""
        return {
            "name": self.spec.name,
            "sent": _count(self.camera.sent, start, end) if self.camera else 0,
            "audio_sent": _count(self.mic.sent, start, end) if self.mic else 0,
            "video": [s.count(start, end) for s in self.video],
            "audio": [s.count(start, end) for s in self.audio],
            "delays": {
                i: [d for t, d in s.delays if start <= t < end]
                for i, s in enumerate(self.video)
                if s.delays
            },
        }

    def progress(self) -> list[int]:
        """Video frames received so far, per video slot."""
        return [len(s.times) for s in self.video]

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await self.pc.close()


def _count(times: array, start: float, end: float) -> int:
    return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)


async def _read_probe(track: MediaStreamTrack, seen: Arrivals) -> None:
    try:
        while True:
            frame = await track.recv()
            now = time.monotonic()
            seen.times.append(now)
            value = read_barcode(frame) if isinstance(frame, VideoFrame) else None
            if value is not None and value < PROBE_LOOP:
                seen.delays.append((now, now - sent_at(value, now)))
    except MediaStreamError:
        pass


# --- the baseline server: re-encode per viewer ------------------------------------------


class _Slot(MediaStreamTrack):
    """A viewer's sender track: the frames of one relay subscription.

    Invariant: a slot's source is set at most once (None → a track); the benches route
    every slot once, so the baseline needs no switching machinery.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.origin: MediaStreamTrack | None = None
        self._subscription: MediaStreamTrack | None = None
        self._ready = asyncio.Event()

    def set_source(self, origin: MediaStreamTrack, relay: MediaRelay) -> None:
        if self.origin is origin:
            return
        if self.origin is not None:
            raise RuntimeError("the baseline room routes each slot once")
        self.origin = origin
        self._subscription = relay.subscribe(origin, buffered=self.kind == "audio")
        self._ready.set()

    async def recv(self) -> Any:
        await self._ready.wait()
        assert self._subscription is not None
        return await self._subscription.recv()  # decoded; the viewer's sender encodes it

    def stop(self) -> None:
        super().stop()
        if self._subscription is not None:
            self._subscription.stop()


@dataclass(eq=False)
class _BasePeer:
    operator: bool
    pc: RTCPeerConnection
    sources: dict[str, MediaStreamTrack] = field(default_factory=dict)  # kind -> track
    slots: dict[str, list[_Slot]] = field(default_factory=lambda: {"audio": [], "video": []})

    def show(self, index: int, source: _BasePeer | None, relay: MediaRelay) -> None:
        for kind, slots in self.slots.items():
            if source is not None and kind in source.sources and index < len(slots):
                slots[index].set_source(source.sources[kind], relay)


class ReencodeRoom:
    """The old design in miniature, with the Room's routing: the baseline.

    Each received track is decoded once by aiortc and relayed by one MediaRelay; every
    viewer slot is a relay subscription, so every viewer's RTCRtpSender encodes its
    own copy (VP8, Opus and the audio level). The operator's slot i shows the i-th
    participant to join; a participant's slot 0 shows the operator, slot 1 the floor
    holder. No presence, no sampling: only what costs CPU per viewer.
    """

    def __init__(self, room_id: str, ice: IceSettings, *, on_event: Callable[..., None]) -> None:
        self.room_id = room_id
        self._ice = ice
        self._relay = MediaRelay()
        self._peers: dict[str, _BasePeer] = {}
        self._order: list[str] = []  # participants by first join = operator slots
        self._operator: str | None = None
        self._floor: str | None = None

    async def join(self, participant: str, offer_sdp: str, *, operator: bool) -> str:
        peer = _BasePeer(operator, peer_connection(self._ice))
        peer.pc.on("track", lambda track: peer.sources.setdefault(track.kind, track))
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        offered = {m.rtp.muxId: m.direction for m in sdp.SessionDescription.parse(offer_sdp).media}
        for transceiver in peer.pc.getTransceivers():
            if offered.get(transceiver.mid or "") in RECEIVING:
                slot = _Slot(transceiver.kind)
                peer.slots[transceiver.kind].append(slot)
                transceiver.sender.replaceTrack(slot)
                transceiver.direction = "sendrecv"
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        self._peers[participant] = peer
        if operator:
            self._operator = participant
        elif participant not in self._order:
            self._order.append(participant)
        self._route()
        return peer.pc.localDescription.sdp

    def give_floor(self, participant: str | None) -> None:
        self._floor = participant
        self._route()

    def _route(self) -> None:
        operator = self._peers.get(self._operator or "")
        floor = self._peers.get(self._floor or "")
        for name, viewer in self._peers.items():
            if viewer.operator:
                for index, participant in enumerate(self._order):
                    viewer.show(index, self._peers.get(participant), self._relay)
            else:
                viewer.show(0, operator, self._relay)
                viewer.show(1, floor if self._floor != name else None, self._relay)

    async def close(self) -> None:
        await asyncio.gather(*(p.pc.close() for p in self._peers.values()))
        self._peers.clear()


# --- processes ------------------------------------------------------------------------------


def _quiet() -> None:
    logging.basicConfig(level=logging.ERROR)
    configure_host_addresses(LOOPBACK)  # before any peer: gather on 127.0.0.1 only


async def _command_loop(
    conn: Connection, handlers: dict[str, Callable[..., Awaitable[Any]]]
) -> None:
    """Answer (name, *args) messages until "stop"; an exception is sent back as text."""
    while True:
        name, *args = await asyncio.to_thread(conn.recv)
        if name == "stop":
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", await handlers[name](*args)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


def serve(conn: Connection, kind: str) -> None:
    """A server process: one room ("forward": media.room.Room in the process;
    "python": the same with the Python send path instead of media.rtpsend's native one;
    "unbatched": ``forward`` with one sendto per packet; "span2": a
    room in two media worker processes, participants placed on them in turn
    (``span_at`` 1), every publisher piped once to the other; "reencode": the baseline)."""
    _quiet()
    asyncio.run(_serve(conn, kind))


async def _serve(conn: Connection, kind: str) -> None:
    pool: Any = None
    if kind in ("forward", "python", "unbatched"):
        from media import datagrams, rtpsend
        from media.room import Room

        if kind == "unbatched":  # one sendto per packet: the side-by-side baseline
            datagrams._Offload.enabled = False
        if kind == "python":  # media.rtpout's Python packets, pylibsrtp's protect
            rtpsend.enable(False)

        room: Any = Room("bench", LOOPBACK, on_event=lambda event: None)
    elif kind == "span2":
        from media.pool import WorkerPool

        pool = WorkerPool(2, LOOPBACK, span_at=1)
        await pool.start()
        room = pool.room("bench", on_event=lambda event: None)
    else:
        room = ReencodeRoom("bench", LOOPBACK, on_event=lambda event: None)

    async def join(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            answer = await room.join(body["participant"], body["sdp"], operator=body["operator"])
        except Exception as exc:
            return web.Response(status=500, text=f"{type(exc).__name__}: {exc}")
        return web.json_response({"sdp": answer})

    async def floor(request: web.Request) -> web.Response:
        room.give_floor((await request.json())["participant"])
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/join", join)
    app.router.add_post("/floor", floor)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def address() -> str:
        return f"http://127.0.0.1:{port}"

    async def workers() -> list[int]:
        """The media worker processes whose CPU counts as the server's."""
        return [w.pid for w in pool.workers] if pool is not None else []

    try:
        await _command_loop(conn, {"address": address, "workers": workers})
    finally:
        await room.close()
        if pool is not None:
            await pool.close()
        await runner.cleanup()


class _BatchingSelector(selectors.EpollSelector):
    """Waits at least ``batch`` seconds before each blocking poll, so the process wakes
    about once per ``batch`` for everything that arrived meanwhile instead of once per
    datagram. On one machine every wake-up of a receiving process is work for the
    sending one too (the kernel wakes the receiver from the sender's ``sendto``); a
    viewer on another machine costs the server none of it."""

    def __init__(self, batch: float) -> None:
        super().__init__()
        self._batch = batch

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:
            pause = self._batch if timeout is None else min(self._batch, timeout)
            time.sleep(pause)
            timeout = None if timeout is None else timeout - pause
        return super().select(timeout)


def clients(conn: Connection, batch: float = 0.0) -> None:
    """A client process: bench peers, joined and counted on command. ``batch`` > 0:
    its event loop polls at most once per ``batch`` seconds while idle
    (``_BatchingSelector``): for processes of light viewers only, whose counts do not
    depend on when within a few milliseconds a packet is read (never for probes, which
    time each frame)."""
    _quiet()
    if batch <= 0:
        asyncio.run(_clients(conn))
        return

    def batching_loop() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(_BatchingSelector(batch))

    with asyncio.Runner(loop_factory=batching_loop) as runner:
        runner.run(_clients(conn))


async def _clients(conn: Connection) -> None:
    peers: list[BenchPeer] = []
    async with aiohttp.ClientSession() as http:

        async def add(base: str, specs: list[PeerSpec], parallel: int) -> int:
            """Join ``specs`` (``parallel`` at a time; 1 keeps their order)."""
            gate = asyncio.Semaphore(parallel)

            async def one(spec: PeerSpec) -> None:
                async with gate:
                    peer = BenchPeer(spec)
                    peers.append(peer)
                    await peer.join(http, base)

            await asyncio.gather(*(one(s) for s in specs))
            return len(peers)

        async def floor(base: str, participant: str) -> None:
            async with http.post(base + "/floor", json={"participant": participant}) as r:
                r.raise_for_status()

        async def progress() -> dict[str, list[int]]:
            return {p.spec.name: p.progress() for p in peers}

        async def report(start: float, end: float) -> list[dict[str, Any]]:
            return [p.report(start, end) for p in peers]

        try:
            handlers = {"add": add, "floor": floor, "progress": progress, "report": report}
            await _command_loop(conn, handlers)
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


class Child:
    """A spawned process run by ``serve`` or ``clients``, driven over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.process = context.Process(target=target, args=(theirs, *args), daemon=True)
        self.process.start()
        self.pid = self.process.pid or 0
        self.helpers: list[int] = []  # processes whose CPU counts as this one's

    def send(self, name: str, *args: Any) -> None:
        self._conn.send((name, *args))

    def result(self, timeout: float = CALL_TIMEOUT) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"process {self.pid} did not answer within {timeout:.0f} s")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"process {self.pid} failed:\n{value}")
        return value

    def call(self, name: str, *args: Any) -> Any:
        self.send(name, *args)
        return self.result()

    def cpu(self) -> tuple[float, float]:
        """(all threads, event-loop threads) of it and its helper processes."""
        each = [proc_cpu(pid) for pid in (self.pid, *self.helpers)]
        return sum(c[0] for c in each), sum(c[1] for c in each)

    def stop(self) -> None:
        try:
            self.call("stop")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def gather(children: list[Child], name: str, *args: Any) -> list[Any]:
    """Send one command to several children at once; their answers in order."""
    for child in children:
        child.send(name, *args)
    return [child.result() for child in children]


# --- measuring, on the bench's side ---------------------------------------------------------


@dataclass
class Window:
    """One measured window: CPU in cores (CPU seconds / wall seconds), per-peer reports."""

    seconds: float
    server_cpu: float
    server_loop: float  # the server's main thread: its event loop
    client_cpu: float  # every client process together
    udp_drops: int
    others: float  # cores used by every other process of the machine meanwhile
    reports: dict[str, dict[str, Any]]  # peer name -> BenchPeer.report


def measure(server: Child, client_children: list[Child], seconds: float) -> Window:
    """Sleep ``seconds``, reading CPU and kernel drops around it, then collect reports.

    Frames sent and frames received are both counted in the same [start, end) of the
    shared monotonic clock: for a steady stream the delay shifts both ends alike.
    """
    drops0, server0, box0 = udp_rcvbuf_errors(), server.cpu(), box_busy()
    clients0, start = sum(c.cpu()[0] for c in client_children), time.monotonic()
    time.sleep(seconds)
    drops1, server1, box1 = udp_rcvbuf_errors(), server.cpu(), box_busy()
    clients1, end = sum(c.cpu()[0] for c in client_children), time.monotonic()
    time.sleep(0.3)  # lets the last frames of the window be decoded by the probes
    reports = [r for rs in gather(client_children, "report", start, end) for r in rs]
    wall = end - start
    box = (box1[0] - box0[0]) / max(1, box1[1] - box0[1]) * (os.cpu_count() or 1)
    ours = (server1[0] - server0[0] + clients1 - clients0) / wall
    return Window(
        seconds=wall,
        server_cpu=(server1[0] - server0[0]) / wall,
        server_loop=(server1[1] - server0[1]) / wall,
        client_cpu=(clients1 - clients0) / wall,
        udp_drops=drops1 - drops0,
        others=max(0.0, box - ours),
        reports={r["name"]: r for r in reports},
    )


OTHERS_LIMIT = 0.25  # cores other processes may use for a window to count as quiet


def others_busy(children: list[Child], seconds: float = 1.0) -> float:
    """Cores used over ``seconds`` by processes of the machine other than ``children``."""
    box0, ours0 = box_busy(), sum(c.cpu()[0] for c in children)
    start = time.monotonic()
    time.sleep(seconds)
    box1, ours1 = box_busy(), sum(c.cpu()[0] for c in children)
    box = (box1[0] - box0[0]) / max(1, box1[1] - box0[1]) * (os.cpu_count() or 1)
    return max(0.0, box - (ours1 - ours0) / (time.monotonic() - start))


def wait_quiet(children: list[Child], timeout: float) -> float:
    """Wait (at most ``timeout`` s) until other processes use < OTHERS_LIMIT cores;
    returns the last reading. Benches on a shared machine measure the others too."""
    deadline = time.monotonic() + timeout
    busy = others_busy(children)
    while busy >= OTHERS_LIMIT and time.monotonic() < deadline:
        busy = others_busy(children)
    return busy


def wait_ready(
    client_children: list[Child], ready: Callable[[dict[str, list[int]]], bool], timeout: float
) -> float | None:
    """Seconds until ``ready(progress of every peer)``; None if not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        progress: dict[str, list[int]] = {}
        for answer in gather(client_children, "progress"):
            progress.update(answer)
        if ready(progress):
            return time.monotonic() - start
        time.sleep(0.25)
    return None


@dataclass
class Flow:
    """Frames of one direction: per stream received / expected, and probe delays (s)."""

    fractions: list[float] = field(default_factory=list)
    received: int = 0
    expected: int = 0
    delays: list[float] = field(default_factory=list)

    def add(self, received: int, expected: int) -> None:
        self.fractions.append(received / expected if expected else 0.0)
        self.received += received
        self.expected += expected

    @property
    def total(self) -> float:
        """All streams together (the pass criterion), like tests/bench/call.py."""
        return self.received / self.expected if self.expected else 0.0

    def p95_ms(self) -> float:
        return percentile(self.delays, 95) * 1000 if self.delays else float("inf")

    def cells(self) -> str:
        """'min/median' delivered %."""
        if not self.fractions:
            return "-"
        low, mid = min(self.fractions), percentile(self.fractions, 50)
        return f"{low * 100:.0f}/{mid * 100:.0f}"


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --- what both ramp benches (fanout, meeting) print around their steps ----------------------


def ladder(text: str, cap: int) -> list[int]:
    """The steps of a ``--…-steps`` option ("4,16,32"), those up to ``cap``."""
    return [n for n in (int(x) for x in text.split(",") if x.strip()) if n <= cap]


def print_machine_busy() -> None:
    busy0 = box_busy()
    time.sleep(0.5)
    busy1 = box_busy()
    load = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    print(f"machine busy before the bench: {load:.0%} of all cores", flush=True)


def warn_busy(rows: list[tuple[str, int, Window | None]]) -> None:
    """A warning naming the (server, N) windows other processes were busy in."""
    busy = [(kind, n, w) for kind, n, w in rows if w and w.others >= OTHERS_LIMIT]
    if busy:
        print(
            "  WARNING: other processes were busy during "
            + ", ".join(f"{kind} N={n} ({w.others:.2f} cores)" for kind, n, w in busy)
            + ": those rows understate the servers."
        )

