"""Encoded frames from one publisher to many viewers: no decode, no encode per viewer.

A ``Feed`` is one track a participant publishes. Each whole encoded frame arrives
once (``media.ingest``), is restamped once onto the room's clock and wrapped once in
an ``av.Packet`` that every subscribed ``Slot`` shares. A ``Slot`` is what one
viewer's ``RTCRtpSender`` sends on one m-line: because its track yields
``av.Packet``, aiortc's sender only packetises (``Encoder.pack``) — RTP sequence
numbers, SSRC, picture ids and the retransmission history stay the sender's own, so
NACKs are answered hop by hop from each sender's history and the server's receiver
NACKs the publisher on its own.

Invariants:
- A packet handed to a slot is never modified: it is shared by every viewer. A slot
  that must shift timestamps sends a copy.
- A video slot forwards nothing between a change of source and that source's next
  key frame, and asks the source for one (a viewer cannot decode inter frames whose
  references it never got). The same holds after a slot's backlog overflowed.
- Each slot's timestamps only increase, across changes of source too: every feed is
  restamped onto the room clock, and a slot shifts a new source forward if needed.
- Key frame requests reach the publisher at most once per ``KEYFRAME_GAP`` and never
  while one is outstanding for less than ``KEYFRAME_RETRY`` (a collapsed request,
  not a storm): from slots waiting for a key frame, from viewers' PLI/FIR (the
  sender's ``_send_keyframe`` is redirected here), from floor changes and joins.
- A video slot with no source sends a black key frame once a second; an audio slot
  with no source sends nothing.
- After lost packets were given up on (``media.jitter``), a feed forwards no inter
  frame until its next key frame: viewers hold their last good picture instead of
  decoding garbage.
- A video slot forwards only the temporal layers its viewer's link carries
  (``media.linkrate``): fewer layers at once, more only from a layer-0 frame (whose
  references the viewer has), and video again after a pause only from a key frame.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.packet import Packet

from media.codecs import VIDEO_CLOCK, black_keyframe, is_keyframe
from media.linkrate import PAUSED, TOP, LinkGovernor, LossWindow

logger = logging.getLogger(__name__)

KEYFRAME_GAP = 0.25  # seconds between two key frame requests to one publisher
KEYFRAME_RETRY = 1.0  # an unanswered request is repeated after this long
RESYNC_AFTER = 0.2  # seconds a source's timeline may drift from the room clock
IDLE_FRAME_INTERVAL = 1.0  # seconds between black frames of a video slot without source
VIDEO_BACKLOG = 30  # frames a video slot holds for a slow sender before it resyncs
AUDIO_BACKLOG = 10  # audio packets (20 ms each) a slot holds; the oldest go first
AUDIO_STEP = 960  # one 20 ms Opus packet at 48 kHz
LAYERED_WITHIN = 30  # frames: a feed with no upper layer in this many has no layers
SILENT_REPORT = 1.0  # seconds without a report after which a paused viewer's link counts clean


class Feed:
    """One published track: restamps each frame once and hands it to its slots.

    ``ask_keyframe`` sends the actual request upstream (an RTCP PLI to the
    publisher, or the ingest transcoder's next frame); the feed rate-limits it.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        epoch: float,
        ask_keyframe: Callable[[], None],
        on_first: Callable[[], None],
    ) -> None:
        self.name = name  # "room R peer P#n kind": for log lines
        self.kind = kind
        self.codec = ""  # the codec of the frames it carries (the room's, for video)
        self.ended = False
        self.level: int | None = None  # audio: last RFC 6464 level, -dBov (0 loudest)
        self.level_at = -math.inf  # time.monotonic() of that level
        self._epoch = epoch
        self._ask_keyframe = ask_keyframe
        self._on_first = on_first
        self._slots: set[Slot] = set()
        self._offset: int | None = None  # room clock minus source clock, in ticks
        self._last = -1  # last restamped timestamp
        self._asked_at = -math.inf
        self._outstanding = False  # a key frame was requested and none came since
        self._broken = False  # packets were lost: forward nothing until a key frame
        self._upper_at = -LAYERED_WITHIN  # frame count when a layer above 0 last came
        self.frames = 0

    @property
    def layered(self) -> bool:
        """It has sent temporal layers above 0 lately (a browser publishing L1T3)."""
        return self.frames - self._upper_at < LAYERED_WITHIN

    def subscribe(self, slot: Slot) -> None:
        self._slots.add(slot)

    def unsubscribe(self, slot: Slot) -> None:
        self._slots.discard(slot)

    def arrive(
        self, codec: str, data: bytes, timestamp: int, clock: int, gap: bool, tid: int
    ) -> None:
        """A whole encoded frame (called on the event loop); ``gap``: packets before it
        were given up on, so inter frames are held back until the next key frame;
        ``tid``: its VP8 temporal layer (0 without layers)."""
        if self.ended:
            return
        self.frames += 1
        if tid > 0:
            self._upper_at = self.frames
        if self.frames == 1:
            self.codec = codec
            self._on_first()
        key = self.kind == "audio" or is_keyframe(codec, data)
        if key:
            self._outstanding = False
            self._broken = False
        elif gap or self._broken:
            self._broken = True
            self.request_keyframe()
            return
        packet = Packet(data)
        packet.pts = self._restamp(timestamp, clock)
        packet.time_base = Fraction(1, clock)
        for slot in tuple(self._slots):
            slot.push(self, packet, key, tid)

    def request_keyframe(self) -> None:
        if self.kind != "video" or self.ended:
            return
        now = time.monotonic()
        since = now - self._asked_at
        if since < KEYFRAME_GAP or (self._outstanding and since < KEYFRAME_RETRY):
            return
        self._asked_at, self._outstanding = now, True
        self._ask_keyframe()

    def end(self) -> None:
        """The publisher's track is gone: every slot showing it goes idle."""
        if self.ended:
            return
        self.ended = True
        for slot in tuple(self._slots):
            slot.attach(None)

    def _restamp(self, timestamp: int, clock: int) -> int:
        # Keeps the source's own spacing; re-anchors to the room clock after a gap,
        # never backwards (a step back would make viewers drop frames).
        wall = round((time.monotonic() - self._epoch) * clock)
        if self._offset is None or abs(timestamp + self._offset - wall) > clock * RESYNC_AFTER:
            self._offset = wall - timestamp
        stamped = max(timestamp + self._offset, self._last + 1)
        self._offset = stamped - timestamp
        self._last = stamped
        return stamped


def _layers(cap: int) -> str:
    return "none (audio only)" if cap == PAUSED else f"0-{cap}"


class Slot(MediaStreamTrack):
    """What one viewer's sender sends on one m-line; the room attaches its source.

    The sender's task is the only reader (``recv``); feeds push on the event loop.
    """

    def __init__(self, name: str, kind: str, codec: str, epoch: float) -> None:
        super().__init__()
        self.name = name  # "room R peer P#n kind slot i"
        self.kind = kind
        self._codec = codec  # the room's video codec: what a black frame is made in
        self._epoch = epoch
        self._clock = VIDEO_CLOCK if kind == "video" else 48_000
        self._feed: Feed | None = None
        self._mailbox: deque[Packet] = deque()
        self._wakeup = asyncio.Event()
        self._need_key = False
        self._shift: int | None = None  # added to the current source's timestamps
        self._last: int | None = None  # last timestamp sent
        self._next_black = -math.inf
        self.forwarded = 0
        self._link = LinkGovernor()
        self._loss = LossWindow()
        self._reported_at = -math.inf  # when the viewer last sent a receiver report
        self._cap = TOP  # the highest temporal layer forwarded now; PAUSED: none
        self.dropped = 0  # frames left out for this viewer's link

    @property
    def feed(self) -> Feed | None:
        return self._feed

    @property
    def cap(self) -> int:
        """The highest temporal layer this viewer gets (2: all; -1: video paused)."""
        return self._cap

    def viewer_report(self, highest: int, lost: int) -> None:
        """The viewer's receiver report for this slot: its extended highest sequence
        number and cumulative packets lost."""
        if self.kind != "video":
            return
        now = time.monotonic()
        self._reported_at = now
        fraction = self._loss.report(highest, lost, now)
        if fraction is not None:
            self._judge(fraction, now)

    def _judge(self, fraction: float, now: float) -> None:
        """Apply the governor's verdict on ``fraction`` lost (see media.linkrate)."""
        layered = self._feed is not None and self._feed.layered
        before = self._link.cap
        after = self._link.report(fraction, now, layered=layered)
        if after == before:
            return
        self._loss.restart(now)
        logger.info("%s: %.0f%% lost, layers %s -> %s", self.name, fraction * 100,
                    _layers(before), _layers(after))  # fmt: skip
        if after < self._cap:  # leaving frames out is safe at once
            self._cap = after
            if after == PAUSED:
                self._mailbox.clear()
        elif self._cap == PAUSED:  # its decoder lost its references: from a key frame
            self._cap = after
            self._need_key = True
            if self._feed is not None:
                self._feed.request_keyframe()
        # Otherwise more layers start at the next layer-0 frame (see push).

    def _silence_is_clean(self) -> None:
        """A paused viewer receives no video, and a browser stops reporting on a stream
        that carries nothing (Chromium within ~7 s): with no report for a second, the
        silence counts as a clean report, so the governor still probes it again."""
        now = time.monotonic()
        if now - self._reported_at >= SILENT_REPORT:
            self._reported_at = now
            self._judge(0.0, now)

    def attach(self, feed: Feed | None) -> None:
        if feed is not None and feed.ended:
            feed = None
        if feed is self._feed:
            return
        if self._feed is not None:
            self._feed.unsubscribe(self)
        self._feed = feed
        self._mailbox.clear()
        self._shift = None
        self._need_key = self.kind == "video"
        if feed is not None:
            feed.subscribe(self)
            feed.request_keyframe()
        else:
            self._next_black = -math.inf  # go black now, not in a second
        self._wakeup.set()

    def push(self, feed: Feed, packet: Packet, key: bool, tid: int = 0) -> None:
        if feed is not self._feed or self.readyState != "live":
            return
        if self.kind == "video":
            if self._cap == PAUSED:
                self._silence_is_clean()
            if tid == 0 and self._link.cap > self._cap:
                self._cap = self._link.cap  # a layer-0 frame: upper layers can start here
            if self._cap == PAUSED or tid > self._cap:
                self.dropped += 1
                return
        if self._need_key:
            if not key:
                feed.request_keyframe()
                return
            self._need_key = False
        if self.kind == "video" and len(self._mailbox) >= VIDEO_BACKLOG:
            logger.warning("%s: %d frames behind, waiting for a key frame",
                           self.name, len(self._mailbox))  # fmt: skip
            self._mailbox.clear()
            self._need_key = True
            feed.request_keyframe()
            return
        if len(self._mailbox) >= AUDIO_BACKLOG and self.kind == "audio":
            self._mailbox.popleft()
        self._mailbox.append(packet)
        self._wakeup.set()

    def keyframe_wanted(self) -> None:
        """The viewer sent PLI or FIR (replaces the sender's ``_send_keyframe``)."""
        if self._feed is not None:
            self._feed.request_keyframe()
        else:
            self._next_black = -math.inf
            self._wakeup.set()

    async def recv(self) -> Packet:
        while self.readyState == "live":
            if self._mailbox:
                return self._stamp(self._mailbox.popleft())
            self._wakeup.clear()
            if self.kind == "video" and self._feed is None:
                try:
                    async with asyncio.timeout(max(0.0, self._next_black - time.monotonic())):
                        await self._wakeup.wait()
                except TimeoutError:
                    return self._black()
            else:
                await self._wakeup.wait()
        raise MediaStreamError

    def stop(self) -> None:
        if self._feed is not None:
            self._feed.unsubscribe(self)
            self._feed = None
        super().stop()
        self._wakeup.set()

    def _stamp(self, packet: Packet) -> Packet:
        pts = packet.pts or 0
        if self._shift is None:  # the first packet from this source
            step = AUDIO_STEP if self.kind == "audio" else 1
            last = self._last if self._last is not None else -step
            self._shift = max(0, last + step - pts)
        out = pts + self._shift
        if self._last is not None and out <= self._last:  # cannot happen: feeds are monotonic
            self._shift += self._last + 1 - out
            out = self._last + 1
        self._last = out
        self.forwarded += 1
        if out == pts:
            return packet
        copy = Packet(bytes(packet))
        copy.pts, copy.time_base = out, packet.time_base
        return copy

    def _black(self) -> Packet:
        now = time.monotonic()
        self._next_black = now + IDLE_FRAME_INTERVAL
        pts = round((now - self._epoch) * VIDEO_CLOCK)
        if self._last is not None:
            pts = max(pts, self._last + 1)
        self._last = pts
        self._shift = None  # the next source re-anchors after this frame
        packet = Packet(black_keyframe(self._codec))
        packet.pts, packet.time_base = pts, Fraction(1, VIDEO_CLOCK)
        return packet
