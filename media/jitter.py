"""Jitter buffers for forwarding: video gives up on a lost packet, audio holds nothing back.

aiortc 1.16's ``JitterBuffer`` hands out a frame only when every packet from its
origin on has arrived. A packet that is lost and never retransmitted (its NACK or
its retransmission lost too) holds every later frame back until 512 more packets
have come — at 1-5 packets a frame, 7 to 50 seconds of frozen video for every viewer
of that publisher. ``BoundedJitterBuffer`` waits for a hole at most ``max_wait``
seconds; then it drops the packets up to the next frame that starts after the hole
(the packet after one with the RTP marker bit, which ends a frame), asks for a key
frame (the receiver sends a PLI when ``add`` returns ``pli_flag``), and marks the
next frame it hands out ``gap = True`` so forwarding can hold inter frames back
until the key frame comes (``media.forwarding.Feed``). For VP8 it also tells each
frame's temporal layer (``layer = (tid, sync)``), read from the payload descriptor
of the frame's first packet, which aiortc's depayloader would throw away.

With ``read_layer`` set (VP8: it tells a frame's first packet) a frame comes out as
soon as its last packet is in, as a browser's buffer does, not when the next frame
begins as in aiortc's. Installed per receiver by ``use_bounded_jitter_buffer``
(private aiortc 1.16 attribute
``RTCRtpReceiver._RTCRtpReceiver__jitter_buffer``). Audio gets
``ArrivalOrderAudioBuffer`` (``use_arrival_order_audio``): each packet on arrival.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

VIDEO_CAPACITY = 512  # as aiortc's own video buffer
MAX_WAIT = 0.25  # seconds a hole may hold later frames back: a NACK's round trip and more
LAYERS_KEPT = 64  # frames whose temporal layer is remembered until they come out


class BoundedJitterBuffer(JitterBuffer):
    def __init__(
        self,
        capacity: int = VIDEO_CAPACITY,
        *,
        max_wait: float = MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, is_video=True)
        self._max_wait = max_wait
        self._clock = clock
        self._stuck_since: float | None = None
        self._gap = False  # the next frame handed out follows dropped packets
        self.skips = 0
        # VP8 only: the temporal layer of each frame, by RTP timestamp, read from the
        # descriptor of its first packet (aiortc's depayloader drops the descriptor).
        # Also tells where a frame starts (not None), which lets a whole frame out early.
        self.read_layer: Callable[[bytes], tuple[int, bool] | None] | None = None
        self._layers: dict[int, tuple[int, bool]] = {}

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self.read_layer is not None:
            layer = self.read_layer(packet.payload)
            if layer is not None:
                self._layers[packet.timestamp] = layer
                if len(self._layers) > LAYERS_KEPT:
                    del self._layers[next(iter(self._layers))]
        pli_flag, frame = super().add(packet)
        if frame is None and self.read_layer is not None:
            frame = self._whole_frame_at_origin(packet)
        if frame is not None:
            self._stuck_since = None
            return pli_flag, self._mark(frame)
        if not self._held_back(packet):
            return pli_flag, None
        now = self._clock()
        if self._stuck_since is None:
            self._stuck_since = now
        if now - self._stuck_since < self._max_wait or not self._skip_hole():
            return pli_flag, None
        self._stuck_since = None
        self._gap = True
        self.skips += 1
        frame = self._remove_frame(packet.sequence_number)
        return True, self._mark(frame) if frame is not None else None

    def _mark(self, frame: JitterFrame) -> JitterFrame:
        frame.gap = self._gap  # type: ignore[attr-defined]  # ours, on aiortc's frame
        frame.layer = self._layers.pop(frame.timestamp, (0, False))  # type: ignore[attr-defined]  # ours
        self._gap = False
        return frame

    def _whole_frame_at_origin(self, packet: RtpPacket) -> JitterFrame | None:
        """The frame at the origin, removed, once every packet of it is in: it starts
        there (``read_layer`` tells a frame's first packet) and runs unbroken to the
        packet with the marker bit, which ends a frame. aiortc's buffer knows a frame
        is whole only when the next one's first packet arrives: a frame interval
        later (67 ms at 15 fps) for every viewer. Checked only when ``packet`` joined
        that frame, the only time it can have become whole."""
        assert self._origin is not None and self.read_layer is not None
        first = self._packets[self._origin % self._capacity]
        if first is None or first.timestamp != packet.timestamp:
            return None
        if self.read_layer(first.payload) is None:
            return None  # the origin is not where the frame starts (a stream's first packets)
        parts = []
        for count in range(self._capacity):
            part = self._packets[(self._origin + count) % self._capacity]
            if part is None or part.timestamp != first.timestamp:
                return None
            parts.append(part._data)  # type: ignore[attr-defined]  # set by aiortc's receiver
            if part.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(parts), timestamp=first.timestamp)
        return None

    def _held_back(self, packet: RtpPacket) -> bool:
        """Nothing came out although ``packet`` belongs to a later frame than the one at
        the origin: a hole holds it back. (With no prefetch, a complete frame comes out
        as soon as the next frame's first packet arrives.)"""
        if self._origin is None:
            return False
        first = self._packets[self._origin % self._capacity]
        return first is None or first.timestamp != packet.timestamp

    def _skip_hole(self) -> bool:
        """Drop everything before the last frame that starts after the first hole.

        Frames between the hole and that one are inter frames whose reference was
        lost: useless until the key frame asked for, and handing them out one per
        arriving packet would keep the backlog as delay. False (nothing dropped) if
        no frame has begun after the hole yet.
        """
        assert self._origin is not None
        seen_hole, start, previous = False, None, None
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                seen_hole = True
            elif seen_hole and previous is not None and previous.marker:
                start = count  # follows a frame's last packet: a frame starts here
            previous = packet
        if start is None:
            return False
        self.remove(start)
        return True


class ArrivalOrderAudioBuffer(JitterBuffer):
    """An audio "buffer" that hands each packet on as it arrives (an Opus packet is a
    whole frame): forwarding needs no playout buffer, the listener's browser has one.

    aiortc's audio buffer hands a packet on only once four newer ones are in
    (``prefetch=4``): 80 ms added to every forwarded voice at 20 ms a packet. Invariant:
    what comes out is in sequence order; a packet older than one already handed on
    (late, or a duplicate) is dropped, so the timestamps forwarded never go back.
    """

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._newest: int | None = None  # sequence number last handed on
        self.late = 0  # packets dropped for coming after a newer one

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._newest is not None and not 0 < (seq - self._newest) % 65536 < 32768:
            self.late += 1
            return False, None
        self._newest = seq
        data: bytes = packet._data  # type: ignore[attr-defined]  # set by aiortc's receiver
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def use_arrival_order_audio(receiver: RTCRtpReceiver) -> ArrivalOrderAudioBuffer:
    """Give an audio receiver ``ArrivalOrderAudioBuffer``; before it has received anything."""
    buffer = ArrivalOrderAudioBuffer()
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]  # private
    return buffer


def use_bounded_jitter_buffer(receiver: RTCRtpReceiver) -> BoundedJitterBuffer:
    """Give a video receiver a bounded buffer; before it has received anything."""
    buffer = BoundedJitterBuffer()
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]  # private
    return buffer
