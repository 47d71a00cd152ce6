"""aiortc client peers standing in for browsers and publishers, for tests and benches.

All media stays on 127.0.0.1 (LOOPBACK). A PatternTrack sends a 640x360 picture of
its own colour with a moving white bar, so a viewer can tell whose video a decoded
frame is (or that it is black); a FaceTrack sends a photo of a face that moves a
little, which the checks see as live video with one face.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from av.packet import Packet

from media.codecs import OPUS, VP8, is_keyframe, vp8_layer
from media.ice import IceSettings, configure_host_addresses, peer_connection, restore_host_addresses
from media.ingest import Ingest, tap
from media.jitter import BoundedJitterBuffer, use_arrival_order_audio, use_bounded_jitter_buffer
from media.room import Room
from media.rtpout import Packetised, RtpOut, ntp_now

LOOPBACK = IceSettings(host_addresses=("127.0.0.1",))
WIDTH, HEIGHT, FPS = 640, 360, 15
LIGHT_SAMPLE = 0.1  # seconds between the colour samples of a light client
BGR = {"blue": (200, 40, 40), "green": (40, 200, 40), "red": (40, 40, 200)}


class PacedTrack(VideoStreamTrack):
    """A video track that sends frame n at start + n / fps (no drift, no burst)."""

    def __init__(self, fps: int) -> None:
        super().__init__()
        self._fps = fps
        self._index = -1
        self._start = 0.0

    async def _next(self) -> int:
        self._index += 1
        if self._index == 0:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(self._start + self._index / self._fps - time.monotonic())
        return self._index


class PatternTrack(PacedTrack):
    """640x360 at 15 fps (or as given): a plain colour with a white bar moving across it."""

    def __init__(
        self, colour: str, width: int = WIDTH, height: int = HEIGHT, fps: int = FPS
    ) -> None:
        super().__init__(fps)
        self._base = np.empty((height, width, 3), np.uint8)
        self._base[:] = BGR[colour]
        self._bar = max(8, width // 16)

    async def recv(self) -> VideoFrame:
        await self._next()
        picture = self._base.copy()
        x = (self._index * self._bar // 5) % (picture.shape[1] - self._bar)
        picture[:, x : x + self._bar] = 255
        frame = VideoFrame.from_ndarray(picture, format="bgr24")
        frame.pts = self._index * 90_000 // self._fps
        frame.time_base = Fraction(1, 90_000)
        return frame


def colour_of(frame: VideoFrame) -> str:
    """black, or which of blue, green and red the picture mostly is.

    Reads the planes of a decoded (yuv420p) frame directly, every 4th pixel: a
    reformat costs ~1.5 ms, too much for a client reading 20 streams on the loop.
    """
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    y, u, v = (_plane_mean(frame, i) for i in range(3))
    if y < 50:
        return "black"
    # BT.601 back to RGB; only which channel dominates matters.
    r, g, b = (
        y + 1.402 * (v - 128),
        y - 0.344 * (u - 128) - 0.714 * (v - 128),
        y + 1.772 * (u - 128),
    )
    return ("blue", "green", "red")[int(np.argmax((b, g, r)))]


def _plane_mean(frame: VideoFrame, index: int) -> float:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return float(rows[::4, : plane.width : 4].mean())


def browser_like_buffer(receiver: RTCRtpReceiver) -> BoundedJitterBuffer:
    """The server's video buffer for a client's receiver: a frame comes out when its
    last packet is in, as in a browser, and a lost packet is given up on; aiortc's own
    waits for the next frame's first packet, and for 512 packets after a loss."""
    buffer = use_bounded_jitter_buffer(receiver)
    buffer.read_layer = vp8_layer
    return buffer


class Client:
    """An aiortc peer standing in for a browser: what it offers and what it receives."""

    def __init__(self, name: str, colour: str | None, *, light: bool = False) -> None:
        """``light``: count received frames without decoding them (as the server's
        ingest does) and decode only a sample every ``LIGHT_SAMPLE`` seconds for its
        colour; ``video`` then holds the sampled colours and ``frames`` the counts."""
        self.name = name
        self.pc = peer_connection(LOOPBACK)
        self.colour = colour
        self.light = light
        self.video: list[list[str]] = []  # per receiving video m-line: colours seen
        self.frames: list[int] = []  # per receiving video m-line: frames received
        self.audio: list[int] = []  # per receiving audio m-line: frames seen
        self._readers: list[asyncio.Task[None]] = []

    def offer_as_participant(self, camera: MediaStreamTrack | None = None) -> None:
        """Camera and microphone sendrecv (slot 0: the operator), then the floor slot."""
        assert self.colour or camera
        self.pc.addTrack(camera or PatternTrack(self.colour or "blue"))
        self.pc.addTrack(AudioStreamTrack())
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")

    def offer_as_operator(self, slots: int) -> None:
        assert self.colour
        self.pc.addTransceiver(PatternTrack(self.colour), direction="sendonly")
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        for _ in range(slots):
            self.pc.addTransceiver("video", direction="recvonly")
            self.pc.addTransceiver("audio", direction="recvonly")

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def join(self, room: Room, *, operator: bool = False, passive_dtls: bool = False) -> str:
        answer = await room.join(
            self.name, await self.offer(), operator=operator, passive_dtls=passive_dtls
        )
        await self.accept(answer)
        return answer

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for transceiver in self.pc.getTransceivers():
            track = transceiver.receiver.track
            if track is None or transceiver.currentDirection not in ("recvonly", "sendrecv"):
                continue
            if self.light:
                self._count(transceiver.receiver, track.kind)
            elif track.kind == "video":
                browser_like_buffer(transceiver.receiver)
                self.video.append([])
                self._readers.append(asyncio.create_task(self._read_video(track, self.video[-1])))
            else:
                self.audio.append(0)
                reader = self._read_audio(track, len(self.audio) - 1)
                self._readers.append(asyncio.create_task(reader))

    def _count(self, receiver: RTCRtpReceiver, kind: str) -> None:
        """Light reception: frames counted as they are reassembled, never decoded but
        for a colour sample (media.ingest taps the receiver before it starts)."""
        if kind == "audio":
            index = len(self.audio)
            self.audio.append(0)

            def count_audio(*_: object) -> None:
                self.audio[index] += 1

            # Every packet counted as it arrives, as a browser's audio buffer takes it:
            # aiortc's own stalls on a hole until 16 more are in, and loses more.
            use_arrival_order_audio(receiver)

            tap(receiver, Ingest(f"{self.name} audio", "audio", room_codec="VP8",
                                 on_frame=count_audio, on_end=lambda: None))  # fmt: skip
            return
        browser_like_buffer(receiver)
        index = len(self.video)
        self.video.append([])
        self.frames.append(0)

        def count_video(*_: object) -> None:
            self.frames[index] += 1

        def sample(frame: VideoFrame) -> None:
            self.video[index].append(colour_of(frame))

        tap(receiver, Ingest(f"{self.name} video", "video", room_codec="VP8",
                             on_frame=count_video, on_end=lambda: None, on_sample=sample,
                             sample_interval=LIGHT_SAMPLE))  # fmt: skip

    async def _read_video(self, track: MediaStreamTrack, seen: list[str]) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, VideoFrame)
                seen.append(colour_of(frame))
        except MediaStreamError:
            pass

    async def _read_audio(self, track: MediaStreamTrack, index: int) -> None:
        try:
            while True:
                await track.recv()
                self.audio[index] += 1
        except MediaStreamError:
            pass

    def cut_network(self, cut: bool) -> None:
        """Drop (or stop dropping) everything this client sends: it looks vanished.

        Private aioice 0.13 attributes; test only. The socket stays open, so the
        server gets no ICMP "port unreachable" that would close ICE early.
        """
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                transport = protocol.transport
                if cut:
                    transport.sendto = lambda *args, **kwargs: None  # type: ignore[method-assign]
                else:
                    transport.__dict__.pop("sendto", None)

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


FACE = Path(__file__).parent / "data" / "astronaut.png"


class FaceTrack(PacedTrack):
    """640x480 at 10 fps: a face photo (scaled, aspect kept) drifting a pixel at a time."""

    def __init__(self) -> None:
        super().__init__(10)
        photo = cv2.imread(str(FACE))
        assert photo is not None, FACE
        self._photo = cv2.resize(photo, (400, 400))

    async def recv(self) -> VideoFrame:
        await self._next()
        picture = np.full((480, 640, 3), 90, np.uint8)
        x = 100 + (self._index % 40)
        picture[40:440, x : x + 400] = self._photo
        noise = np.random.default_rng(self._index).integers(0, 6, picture.shape, np.uint8)
        frame = VideoFrame.from_ndarray(cv2.add(picture, noise), format="bgr24")
        frame.pts = self._index * 9_000
        frame.time_base = Fraction(1, 90_000)
        return frame


class PrecodedVideo(MediaStreamTrack):
    """A colour's picture as VP8 key frames encoded once, sent as packets: the sender
    only packetises, so a test can run many publishers in one process. Every frame is
    a key frame, so it never needs to answer a key frame request. ``grain``: the
    amplitude of noise added to each picture, for a camera's bitrate instead of a
    flat colour's few hundred bytes a frame."""

    kind = "video"
    _cache: dict[tuple[str, int, int, int], list[bytes]] = {}  # noqa: RUF012

    def __init__(
        self, colour: str, width: int = 320, height: int = 180, fps: int = 10, grain: int = 0
    ) -> None:
        super().__init__()
        self._fps = fps
        self._frames = self._encoded(colour, width, height, grain)
        self._index = -1
        self._start = 0.0

    @classmethod
    def _encoded(cls, colour: str, width: int, height: int, grain: int) -> list[bytes]:
        key = (colour, width, height, grain)
        if key not in cls._cache:
            encoder = av.CodecContext.create("libvpx", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = Fraction(1, 90_000)
            encoder.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
            if grain:  # a bitrate no frame reaches: the grain sets the size
                encoder.bit_rate = 5_000_000
            source = PatternTrack(colour, width, height)
            frames = []
            for index in range(10):
                source._index = index - 1
                picture = source._base.copy()
                x = index * 20 % (width - source._bar)
                picture[:, x : x + source._bar] = 255
                if grain:
                    noise = np.random.default_rng(index).integers(0, grain, picture.shape)
                    picture = np.clip(picture.astype(np.int16) + noise - grain // 2, 0, 255)
                    picture = picture.astype(np.uint8)
                frame = VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
                frame.pts, frame.time_base = index * 9000, Fraction(1, 90_000)
                frame.pict_type = av.video.frame.PictureType.I
                frames += [bytes(p) for p in encoder.encode(frame)]
            cls._cache[key] = frames
        return cls._cache[key]

    @property
    def sent(self) -> int:
        """Frames handed to the sender so far."""
        return self._index + 1

    async def recv(self) -> Packet:
        self._index += 1
        if self._index == 0:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(self._start + self._index / self._fps - time.monotonic())
        packet = Packet(self._frames[self._index % len(self._frames)])
        packet.pts, packet.time_base = self._index * 90_000 // self._fps, Fraction(1, 90_000)
        return packet


class OneKeyVideo(PrecodedVideo):
    """A colour's picture as ONE key frame followed by inter frames only, encoded once:
    a publisher that never answers a key frame request (a viewer can only start from
    frames the server kept since that key frame)."""

    @classmethod
    def _encoded(cls, colour: str, width: int, height: int, grain: int) -> list[bytes]:
        key = (colour + "/one-key", width, height, grain)
        if key not in cls._cache:
            encoder = av.CodecContext.create("libvpx", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = Fraction(1, 90_000)
            encoder.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8",
                               "g": "100000", "keyint_min": "100000"}  # fmt: skip
            source = PatternTrack(colour, width, height)
            frames = []
            for index in range(300):
                picture = source._base.copy()
                x = index * 20 % (width - source._bar)
                picture[:, x : x + source._bar] = 255
                frame = VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
                frame.pts, frame.time_base = index * 9000, Fraction(1, 90_000)
                frames += [bytes(p) for p in encoder.encode(frame)]
            assert is_keyframe("VP8", frames[0])
            assert not any(is_keyframe("VP8", f) for f in frames[1:])
            cls._cache[key] = frames
        return cls._cache[key]

    async def recv(self) -> Packet:
        if self._index + 1 >= len(self._frames):  # never loop back to the key frame
            await asyncio.sleep(3600)
        return await super().recv()


class LayeredPacker(Vp8Encoder):
    """Packetises frames with VP8 descriptors carrying temporal layers (RFC 7741):
    picture id, T set, and the TID a packet carries in ``opaque`` (frames encoded in
    layers: tests/l1t3.py), else TIDs cycling 0, 2, 1, 2 as L1T3 does (over key
    frames, which any subset decodes)."""

    PATTERN = (0, 2, 1, 2)

    def __init__(self) -> None:
        super().__init__()
        self._frames = itertools.count()

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        tid = self.PATTERN[next(self._frames) % len(self.PATTERN)]
        if isinstance(packet.opaque, int):
            tid = packet.opaque
        data, picture = bytes(packet), self.picture_id
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        payloads = []
        for start in range(0, len(data), 1200):
            first = 0x90 if start == 0 else 0x80  # X, and S on the first packet
            header = bytes([first, 0xA0, 0x80 | picture >> 8, picture & 0xFF, tid << 6 | 0x20])
            payloads.append(header + data[start : start + 1200])
        timestamp = round((packet.pts or 0) * (packet.time_base or 0) * 90_000)
        return payloads, timestamp


class PrecodedSilence(MediaStreamTrack):
    """Opus silence encoded once, a 20 ms packet at a time: no encoding, no level loop."""

    kind = "audio"
    _packet: bytes | None = None

    def __init__(self) -> None:
        super().__init__()
        self._index = -1
        self._start = 0.0
        if PrecodedSilence._packet is None:
            encoder = av.CodecContext.create("libopus", "w")
            encoder.sample_rate, encoder.layout, encoder.format = 48_000, "stereo", "s16"
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 960 * 2), np.int16), format="s16", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48_000, 0
            PrecodedSilence._packet = bytes(next(iter(encoder.encode(frame))))

    @property
    def packet(self) -> bytes:
        assert PrecodedSilence._packet is not None
        return PrecodedSilence._packet

    async def recv(self) -> Packet:
        self._index += 1
        if self._index == 0:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(self._start + self._index * 0.02 - time.monotonic())
        packet = Packet(self.packet)
        packet.pts, packet.time_base = self._index * 960, Fraction(1, 48_000)
        return packet


# --- paced publishers: many precoded streams written from one task -------------------


class HeldTrack(MediaStreamTrack):
    """A sender's track that never yields a frame: ``Pacer`` writes the stream, and
    aiortc's sender only negotiates it and sends its RTCP (sender reports from the
    counters ``RtpOut`` keeps; NACKs answered from its history)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._ended = asyncio.Event()

    async def recv(self) -> Packet:
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._ended.set()


class PacedStream:
    """One publisher's stream: precoded frames sent in a loop, one every ``interval``
    seconds from the moment its connection is up. ``sent``: each frame's send time
    (monotonic), for counting against what viewers received.

    ``aligned``: frame number j goes at ``j * interval`` of the monotonic clock (which
    every process of the machine shares) and carries ``frames[j % len(frames)]``, so a
    receiver that can tell which of the looped frames it decoded knows when it was sent
    without asking the sender (the benches' delay probes; up to one loop of delay)."""

    def __init__(
        self, sender: RTCRtpSender, kind: str, frames: Sequence[Packetised], interval: float,
        step: int, aligned: bool = False,
    ) -> None:  # fmt: skip
        self.sender = sender
        self.out = RtpOut(sender, kind)
        self.frames = frames
        self.interval = interval
        self.step = step  # RTP clock ticks per frame
        self.aligned = aligned
        self.sent = array("d")
        self._start: float | None = None  # when the first frame is due
        self._first = 0  # the number of the first frame (aligned: on the clock's grid)

    @property
    def closed(self) -> bool:
        return self.sender.transport is None or self.sender.transport.state == "closed"

    def send_due(self, now: float, ntp: int, wall: float) -> float | None:
        """Send every frame due by ``now`` (and within ``Pacer.SLACK`` after it); the
        time the next one is due, a retry time while the connection is not up, or None
        once it is closed."""
        if self._start is None:
            if not self.out.ready:
                return None if self.closed else now + Pacer.RETRY
            if self.aligned:
                self._first = math.ceil(now / self.interval)
                self._start = self._first * self.interval
            else:
                self._start = now
        while (due := self._start + len(self.sent) * self.interval) <= now + Pacer.SLACK:
            index = len(self.sent)
            frame = self.frames[(self._first + index) % len(self.frames)]
            if not self.out.send(frame, index * self.step, ntp, wall):
                return None if self.closed else now + Pacer.RETRY
            self.sent.append(now)
        return due


class Pacer:
    """Writes every paced stream of this process from one task, with
    ``media.rtpout.RtpOut`` as the server writes its viewers' streams.

    Through aiortc each precoded stream costs a task woken per frame that packs the
    frame, builds every packet as an object, and awaits three transport layers per
    packet. Here each frame is cut into payloads once (``Packetised`` shared by every
    stream that loops it), the streams wait in one heap by due time (a wake-up touches
    only the streams due), frames due within ``SLACK`` of each other leave in one
    wake-up, and a frame's packets go to the socket in one segmented write.
    Invariants: a stream sends nothing before its connection is up; its frames leave
    in order, at most ``SLACK`` early; a closed connection's stream is dropped."""

    SLACK = 0.002  # seconds: frames due this soon go in the same wake-up
    RETRY = 0.02  # seconds between looks at a connection that is not up yet

    def __init__(self) -> None:
        self._due: list[tuple[float, int, PacedStream]] = []  # a heap: (due, order, stream)
        self._order = itertools.count()  # ties in due time go in the order added
        self._task: asyncio.Task[None] | None = None

    def add(
        self, sender: RTCRtpSender, kind: str, frames: Sequence[Packetised], fps: float,
        *, aligned: bool = False,
    ) -> PacedStream:  # fmt: skip
        """Pace ``frames`` (looped) on ``sender``, whose track must be a ``HeldTrack``;
        call before the connection's answer is set (``RtpOut`` reads the negotiation).
        ``aligned``: see ``PacedStream``."""
        clock = 90_000 if kind == "video" else 48_000
        stream = PacedStream(sender, kind, frames, 1 / fps, round(clock / fps), aligned)
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            self._due, self._task = [], None  # an earlier loop's streams (a test each)
        heapq.heappush(self._due, (time.monotonic(), next(self._order), stream))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return stream

    async def _run(self) -> None:
        while self._due:
            now, wall = time.monotonic(), time.time()
            ntp = ntp_now(wall)
            while self._due and self._due[0][0] <= now + self.SLACK:
                _, order, stream = heapq.heappop(self._due)
                due = stream.send_due(now, ntp, wall)
                if due is not None:
                    heapq.heappush(self._due, (due, order, stream))
            if self._due:  # a stream added meanwhile waits at most one frame interval
                await asyncio.sleep(max(0.0, self._due[0][0] - time.monotonic()))


PACER = Pacer()  # this process's


def vp8_frames(encoded: Sequence[tuple[bytes, int | None]]) -> list[Packetised]:
    """Precoded VP8 frames with their temporal layers (None: unmarked), cut once."""
    return [Packetised(data, 0, VP8, layer) for data, layer in encoded]


def opus_frames(encoded: Sequence[bytes]) -> list[Packetised]:
    return [Packetised(data, 0, OPUS) for data in encoded]


def layered_key_frames(colour: str) -> list[Packetised]:
    """``PrecodedVideo``'s key frames of ``colour`` marked L1T3 (layers 0, 2, 1, 2 as a
    browser's), looped twice so the pattern runs on across the loop: any subset of key
    frames decodes, and a viewer held to layer 0 gets a quarter of them."""
    if colour not in _LAYERED:
        frames = PrecodedVideo._encoded(colour, 320, 180, 0)
        pattern = LayeredPacker.PATTERN
        _LAYERED[colour] = vp8_frames(
            [(frames[i % len(frames)], pattern[i % len(pattern)]) for i in range(2 * len(frames))]
        )
    return _LAYERED[colour]


_LAYERED: dict[str, list[Packetised]] = {}  # by colour: one cut shared by its streams


def silence_frames() -> list[Packetised]:
    """``PrecodedSilence``'s one packet, for ``PACER``."""
    if not _SILENCE:
        _SILENCE.extend(opus_frames([PrecodedSilence().packet]))
    return _SILENCE


_SILENCE: list[Packetised] = []


def count_key_frame_requests(client: Client, index: int = 0) -> list[float]:
    """Times at which the publisher's sender ``index`` was asked for a key frame."""
    asked: list[float] = []
    sender = client.pc.getTransceivers()[index].sender
    send_keyframe = sender._send_keyframe

    def counting() -> None:
        asked.append(time.monotonic())
        send_keyframe()

    sender._send_keyframe = counting  # type: ignore[method-assign]
    return asked


# --- waiting on media ----------------------------------------------------------------------


@contextlib.contextmanager
def on_loopback() -> Iterator[None]:
    """Peers made inside gather on 127.0.0.1 only (tests never leave the machine)."""
    configure_host_addresses(LOOPBACK)
    try:
        yield
    finally:
        restore_host_addresses()


async def eventually(check: Callable[[], bool], within: float = 10.0) -> float:
    """Seconds until ``check()`` held; fails the test after ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within} s: {check.__doc__ or check}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def sees(client: Client, slot: int, colour: str, frames: int = 5) -> Callable[[], bool]:
    """The last ``frames`` frames of video slot ``slot`` are all ``colour``."""

    def check() -> bool:
        seen = client.video[slot] if slot < len(client.video) else []
        tail = seen[-frames:]
        check.__doc__ = (
            f"{client.name} sees {colour} in video slot {slot}"
            f" ({len(seen)} frames received, the last {tail})"
        )
        return len(tail) == frames and set(tail) == {colour}

    return check
