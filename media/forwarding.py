"""Encoded frames from one publisher to many viewers: no decode, no encode per viewer.

A ``Feed`` is one track a participant publishes. Each whole encoded frame arrives
once (``media.ingest``), is restamped once onto the room's clock and cut once into
RTP payloads (``media.rtpout.Packetised``) that every subscribed ``Slot`` shares. A
``Slot`` is what one viewer receives on one m-line: it decides, frame by frame and
synchronously in the feed's call, whether its viewer gets the frame (key frames,
layers, timestamps) and writes it through its ``RtpOut`` — RTP sequence numbers,
SSRC, picture ids and the retransmission history are each viewer's own, so NACKs are
answered hop by hop from each viewer's history and the server's receiver NACKs the
publisher on its own. No task wakes per viewer per packet.

Invariants:
- A frame handed to a slot is never modified: it is shared by every viewer; a slot
  shifts only the timestamp it writes.
- A video slot forwards nothing between a change of source and that source's next
  key frame, and asks the source for one (a viewer cannot decode inter frames whose
  references it never got). The same holds for a frame that could not be sent
  because the viewer's connection was not up yet.
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
  (``media.linkrate``) and its viewer shows (``Slot.limit``: a small tile gets
  layer 0): fewer layers at once, more only from a layer-0 frame (whose references
  the viewer has), and video again after a pause only from a key frame.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from av import Packet
from av.frame import Frame

from media.codecs import VIDEO_CLOCK, black_keyframe, is_keyframe
from media.linkrate import PAUSED, TOP, LinkGovernor, LossWindow
from media.rtpout import Packetised, RtpOut, ntp_now

logger = logging.getLogger(__name__)

KEYFRAME_GAP = 0.25  # seconds between two key frame requests to one publisher
KEYFRAME_RETRY = 1.0  # an unanswered request is repeated after this long
RESYNC_AFTER = 0.2  # seconds a source's timeline may drift from the room clock
IDLE_FRAME_INTERVAL = 1.0  # seconds between black frames of a video slot without source
AUDIO_STEP = 960  # one 20 ms Opus packet at 48 kHz
LAYERED_WITHIN = 30  # frames: a feed with no upper layer in this many has no layers
SILENT_REPORT = 1.0  # seconds without a report after which a paused viewer's link counts clean
# A feed keeps its last key frame and the frames since for viewers that start late,
# while they span at most GOP_SECONDS and GOP_FRAMES: a little more than the interval at
# which a room refreshes its key frames while a centre is being rung
# (dispatch.conference.RINGING_KEYFRAME_EVERY), so an answering centre starts at once.
GOP_FRAMES = 48
GOP_SECONDS = 1.5


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
        # The last key frame and every frame forwarded since, within GOP_FRAMES and
        # GOP_SECONDS of it (None: more, or the chain broke): a viewer whose connection
        # came up after that key frame starts from here instead of waiting for the next.
        self.gop: list[tuple[Packetised, int]] | None = None
        self._gop_at = -math.inf  # time.monotonic() of the kept key frame

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
            self.gop = None
            self.request_keyframe()
            return
        frame = Packetised(data, self._restamp(timestamp, clock), codec)
        if self.kind == "video":
            self._keep(frame, key, tid)
        now = time.time()
        ntp = ntp_now(now)
        for slot in tuple(self._slots):
            slot.push(self, frame, key, tid, ntp, now)

    def _keep(self, frame: Packetised, key: bool, tid: int) -> None:
        if key:
            self.gop, self._gop_at = [(frame, tid)], time.monotonic()
        elif (
            self.gop is not None
            and len(self.gop) < GOP_FRAMES
            and time.monotonic() - self._gop_at <= GOP_SECONDS
        ):
            self.gop.append((frame, tid))
        else:
            self.gop = None

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
    """What one viewer receives on one m-line; the room attaches its source.

    It is the track of the viewer's ``RTCRtpSender`` only so that aiortc negotiates
    and reports the stream: ``recv`` never yields a frame, ``push`` sends (see
    ``media.rtpout``). Everything runs on the event loop.
    """

    def __init__(self, name: str, kind: str, codec: str, epoch: float) -> None:
        super().__init__()
        self.name = name  # "room R peer P#n kind slot i"
        self.kind = kind
        self._codec = codec  # the room's video codec: what a black frame is made in
        self._epoch = epoch
        self._clock = VIDEO_CLOCK if kind == "video" else 48_000
        self._feed: Feed | None = None
        self._out: RtpOut | None = None
        self._stopped = asyncio.Event()
        self._idle: asyncio.TimerHandle | None = None
        self._need_key = False
        self._shift: int | None = None  # added to the current source's timestamps
        self._last: int | None = None  # last timestamp sent
        self.forwarded = 0
        self._link = LinkGovernor()
        self._loss = LossWindow()
        self._reported_at = -math.inf  # when the viewer last sent a receiver report
        self._cap = TOP  # the highest temporal layer forwarded now; PAUSED: none
        self._ceiling = TOP  # the most the viewer's page wants (a small tile: 0)
        self.dropped = 0  # frames left out for this viewer's link or tile

    def bind(self, sender: RTCRtpSender) -> None:
        """Send through ``sender``'s negotiated stream (before negotiation ends)."""
        self._out = RtpOut(sender, self.kind, on_ready=self.connected)
        if self.kind == "video" and self._feed is None:
            self._go_black()

    @property
    def feed(self) -> Feed | None:
        return self._feed

    @property
    def cap(self) -> int:
        """The highest temporal layer this viewer gets (2: all; -1: video paused)."""
        return self._cap

    @property
    def link_cap(self) -> int:
        """The most the viewer's link carries by its receiver reports (``media.linkrate``):
        ``cap`` follows it from the next layer-0 frame, and drops below it for a while
        when a late viewer starts from the kept layer-0 frames (``_catch_up``)."""
        return self._link.cap

    @property
    def ceiling(self) -> int:
        return self._ceiling

    def limit(self, top: int) -> None:
        """Forward at most temporal layer ``top`` (0: a quarter of a browser's frames,
        for a tile too small to need more; TOP: all), within what the link carries.
        Fewer layers from the next frame, more from the next layer-0 frame."""
        if self.kind != "video" or top == self._ceiling:
            return
        self._ceiling = top
        if self._cap > top:
            self._cap = top

    def _wanted(self) -> int:
        """The layers to forward from the next layer-0 frame on."""
        cap = self._link.cap
        return cap if cap == PAUSED else min(cap, self._ceiling)

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
        if min(after, self._ceiling) < self._cap:  # leaving frames out is safe at once
            self._cap = self._wanted()
        elif self._cap == PAUSED:  # its decoder lost its references: from a key frame
            self._cap = self._wanted()
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
        self._shift = None
        self._need_key = self.kind == "video"
        if feed is not None:
            self._cancel_idle()
            feed.subscribe(self)
            feed.request_keyframe()
        elif self.kind == "video":
            self._go_black()  # now, not in a second

    def push(
        self, feed: Feed, frame: Packetised, key: bool, tid: int, ntp: int, now: float
    ) -> None:
        """``feed``'s next frame (``ntp``, ``now``: the time, once for all slots)."""
        if feed is not self._feed or self._stopped.is_set():
            return
        if self.kind == "video":
            if self._cap == PAUSED:
                self._silence_is_clean()
            if tid == 0 and self._wanted() > self._cap:
                self._cap = self._wanted()  # a layer-0 frame: upper layers can start here
            if self._cap == PAUSED or tid > self._cap:
                self.dropped += 1
                return
        if self._need_key:
            if not key:
                if not self._catch_up(ntp, now):
                    feed.request_keyframe()
                return
            self._need_key = False
        if not self._send(frame, self._stamp(frame.pts), ntp, now) and self.kind == "video":
            self._need_key = True  # not connected yet: start from a key frame

    def connected(self) -> None:
        """The stream can be sent (the viewer's connection is up and aiortc started the
        sender): a video slot that waits for a key frame starts from its feed's latest
        one if the feed still holds it, else asks for one."""
        if self.kind != "video" or not self._need_key or self._feed is None:
            return
        now = time.time()
        if not self._catch_up(ntp_now(now), now):
            self._feed.request_keyframe()

    def _catch_up(self, ntp: int, now: float) -> bool:
        """Send the feed's kept key frame and the frames since at once (the last being
        the newest). From a layered feed only its layer-0 frames go (they reference
        nothing else: a quarter of the burst), and upper layers start again at the next
        live layer-0 frame. False: nothing kept, or not connected."""
        feed = self._feed
        if feed is None or not feed.gop:
            return False
        top = min(self._cap, 0) if feed.layered else self._cap
        burst = [frame for frame, tid in feed.gop if tid <= top]
        if not burst:  # a paused viewer
            return False
        for frame in burst:
            if not self._send(frame, self._stamp(frame.pts), ntp, now):
                return False
        self._need_key = False
        self._cap = min(self._cap, top)
        return True

    def keyframe_wanted(self) -> None:
        """The viewer sent PLI or FIR (replaces the sender's ``_send_keyframe``)."""
        if self._feed is not None:
            self._feed.request_keyframe()
        elif self.kind == "video":
            self._go_black()

    async def recv(self) -> Frame | Packet:
        """Parks the sender's own RTP task until the slot stops: frames go by ``push``."""
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        if self._feed is not None:
            self._feed.unsubscribe(self)
            self._feed = None
        self._cancel_idle()
        super().stop()
        self._stopped.set()

    def _send(self, frame: Packetised, timestamp: int, ntp: int, now: float) -> bool:
        if self._out is None or not self._out.send(frame, timestamp, ntp, now):
            return False
        self._last = timestamp
        self.forwarded += 1
        return True

    def _stamp(self, pts: int) -> int:
        """``pts`` shifted so this slot's timestamps only increase (not yet recorded:
        ``_send`` records what was sent)."""
        if self._shift is None:  # the first frame from this source
            step = AUDIO_STEP if self.kind == "audio" else 1
            last = self._last if self._last is not None else -step
            self._shift = max(0, last + step - pts)
        out = pts + self._shift
        if self._last is not None and out <= self._last:  # cannot happen: feeds are monotonic
            self._shift += self._last + 1 - out
            out = self._last + 1
        return out

    def _go_black(self) -> None:
        """Send a black key frame now and every ``IDLE_FRAME_INTERVAL`` while the slot
        has no source (a viewer's decoder needs a picture to show; the first ones are
        lost while the connection comes up)."""
        self._cancel_idle()
        if self._feed is not None or self._stopped.is_set():
            return
        now = time.time()
        pts = round((time.monotonic() - self._epoch) * VIDEO_CLOCK)
        if self._last is not None:
            pts = max(pts, self._last + 1)
        self._shift = None  # the next source re-anchors after this frame
        self._send(Packetised(black_keyframe(self._codec), pts, self._codec), pts,
                   ntp_now(now), now)  # fmt: skip
        self._idle = asyncio.get_running_loop().call_later(IDLE_FRAME_INTERVAL, self._go_black)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
