"""Taking encoded frames out of aiortc's receivers, and the one decode per publisher.

An aiortc ``RTCRtpReceiver`` reassembles frames in its jitter buffer on the event
loop and puts ``(codec, JitterFrame)`` on a ``queue.Queue`` that its decoder thread
(``aiortc.rtcrtpreceiver.decoder_worker``, looked up when ``receive()`` starts it)
decodes. ``tap()`` replaces that queue with an ``Ingest`` before the receiver starts
(the ``track`` event fires inside ``setRemoteDescription``, before ``receive()``):

- ``Ingest.put`` runs on the event loop, inside the receiver's packet handler: it
  hands every whole encoded frame to ``on_frame`` at once, with no thread hop and no
  decode — that is the forwarding path.
- The receiver still starts its decoder thread; for an ``Ingest`` it runs
  ``Ingest.run`` instead of aiortc's worker. That thread decodes video for the
  OpenCV checks (every frame of temporal layer 0 — all frames of a stream without
  layers, a quarter of a browser's L1T3 — since inter frames need their references,
  but only one picture per ``sample_interval`` leaves the thread) and, for a publisher that
  sends another codec than the room's, re-encodes each decoded frame once into the
  room's codec (the ingest transcode). Nothing decodes on the event loop.

Private aiortc 1.16 internals used (pinned in pyproject, tested in tests/test_room.py):
``RTCRtpReceiver._RTCRtpReceiver__decoder_queue`` and the module-level
``decoder_worker`` name. Receivers not tapped (test clients in the same process)
keep aiortc's own worker.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import aiortc.rtcrtpreceiver
import av
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from av import VideoFrame

from media.codecs import VIDEO_CLOCK, is_keyframe, video_encoder

logger = logging.getLogger(__name__)

DECODE_BACKLOG = 30  # frames the decoder thread may lag before it skips to a key frame

# (codec name, whole encoded frame, timestamp, clock rate, follows lost packets,
# VP8 temporal layer), called on the event loop
FrameSink = Callable[[str, bytes, int, int, bool, int], None]

_AIORTC_WORKER = aiortc.rtcrtpreceiver.decoder_worker


def _decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: Any,
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    if isinstance(input_q, Ingest):
        input_q.run(loop, decode_error)
    else:
        _AIORTC_WORKER(loop, input_q, output_q, decode_error)


def tap(receiver: RTCRtpReceiver, ingest: Ingest) -> None:
    """Route ``receiver``'s encoded frames to ``ingest``; before ``receive()`` only."""
    aiortc.rtcrtpreceiver.decoder_worker = _decoder_worker  # idempotent, process-wide
    receiver._RTCRtpReceiver__decoder_queue = ingest  # type: ignore[attr-defined]  # private


def _codec_name(codec: RTCRtpCodecParameters) -> str:
    name = codec.mimeType.split("/", 1)[1]
    return name.upper() if codec.mimeType.startswith("video/") else name.lower()


class Ingest:
    """One received track's encoded frames: forwarded at once, decoded in a thread.

    ``on_frame`` gets every frame (transcoded ones later, from the thread, through
    the loop); ``on_sample`` one decoded picture per ``sample_interval`` (None: no
    decoding unless transcoding); ``on_end`` once, when the receiver stops.
    ``room_codec`` is the video codec the room forwards: frames in another codec
    are transcoded into it.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        room_codec: str,
        on_frame: FrameSink,
        on_end: Callable[[], None],
        on_sample: Callable[[VideoFrame], None] | None = None,
        sample_interval: float = 1.0,
    ) -> None:
        self.name = name
        self.kind = kind
        self._room_codec = room_codec
        self._on_frame = on_frame
        self._on_end = on_end
        self._on_sample = on_sample
        self._sample_interval = sample_interval
        self._work: queue.SimpleQueue[tuple[RTCRtpCodecParameters, JitterFrame] | None]
        self._work = queue.SimpleQueue()
        self._resync = False  # the thread skipped frames: wait for a key frame
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self.transcoding = False  # set on the first frame in another codec
        self._keyframe_wanted = threading.Event()  # transcoder: next frame is a key frame

    # --- event loop side: the receiver calls put() in its packet handler ---

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._work.put(None)
            if not self._ended:
                self._ended = True
                self._on_end()
            return
        codec, frame = item
        name = _codec_name(codec)
        if self.kind == "video" and name != self._room_codec:
            if not self.transcoding:
                self.transcoding = True
                logger.info("%s: %s in a %s room, transcoding once", self.name, name,
                            self._room_codec)  # fmt: skip
            self._queue_for_thread(codec, frame, name)
            return
        gap = getattr(frame, "gap", False)  # set by media.jitter's buffer
        tid, _ = getattr(frame, "layer", (0, False))
        self._on_frame(name, frame.data, frame.timestamp, codec.clockRate, gap, tid)
        if self.kind == "video" and self._on_sample is not None and tid == 0:
            # Upper temporal layers are never decoded: a layer-0 frame references only
            # layer-0 frames (what lets a forwarder drop the others, RFC 7741), so a
            # browser's L1T3 is checked on a quarter of its frames for a quarter of the cost.
            self._queue_for_thread(codec, frame, name)

    def request_keyframe(self) -> None:
        """Transcoding: make the next encoded frame a key frame (thread-safe)."""
        self._keyframe_wanted.set()

    def _queue_for_thread(
        self, codec: RTCRtpCodecParameters, frame: JitterFrame, name: str
    ) -> None:
        if self._resync:
            if not is_keyframe(name, frame.data):
                return
            self._resync = False
        backlog = self._work.qsize()
        if backlog >= DECODE_BACKLOG:
            logger.warning("%s: decoder %d frames behind, skipping to a key frame",
                           self.name, backlog)  # fmt: skip
            self._resync = True
            return
        self._work.put((codec, frame))

    # --- the receiver's decoder thread ---

    def run(self, loop: asyncio.AbstractEventLoop, decode_error: threading.Event) -> None:
        """Decode (and transcode) until the receiver stops. Runs on aiortc's thread."""
        self._loop = loop
        decoder: Any = None
        decoder_codec = ""
        encoder: av.VideoCodecContext | None = None
        next_sample = 0.0
        while (item := self._work.get()) is not None:
            codec, frame = item
            name = _codec_name(codec)
            if name != decoder_codec:
                decoder, decoder_codec = get_decoder(codec), name
            try:
                pictures = decoder.decode(frame)
            except av.FFmpegError as exc:
                logger.info("%s: cannot decode a %s frame: %s", self.name, name, exc)
                decode_error.set()  # the receiver sends a PLI with its next packet
                continue
            for picture in pictures:
                if name != self._room_codec:
                    encoder = self._transcode(loop, encoder, picture, frame.timestamp)
                now = time.monotonic()
                if self._on_sample is not None and now >= next_sample:
                    next_sample = now + self._sample_interval
                    loop.call_soon_threadsafe(self._on_sample, picture)

    def _transcode(
        self,
        loop: asyncio.AbstractEventLoop,
        encoder: av.VideoCodecContext | None,
        picture: VideoFrame,
        timestamp: int,
    ) -> av.VideoCodecContext:
        """Encode one decoded picture into the room's codec; returns the encoder to reuse."""
        if encoder is None or (encoder.width, encoder.height) != (picture.width, picture.height):
            encoder = video_encoder(self._room_codec, picture.width, picture.height)
            self._keyframe_wanted.set()
        picture = picture.reformat(format="yuv420p")
        picture.pts, picture.time_base = timestamp, Fraction(1, VIDEO_CLOCK)
        if self._keyframe_wanted.is_set():
            self._keyframe_wanted.clear()
            picture.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(picture):
            loop.call_soon_threadsafe(
                self._on_frame, self._room_codec, bytes(packet), timestamp, VIDEO_CLOCK, False, 0
            )
        return encoder
