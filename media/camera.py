"""A fixed camera (雪亮工程) in a call: an RTSP stream pulled into a room as a view-only
participant.

A ``CameraSource`` pulls one RTSP URL with PyAV (FFmpeg's RTSP client, interleaved
over TCP) in a thread of its own and enters the room the way a participant of another
media worker does (``Room.remote_present`` / ``Room.remote_frame``): it publishes, it
receives nothing, and every viewer slot showing it shares its frames. An H.264 stream
in an H.264 room is forwarded as it comes (the stream's parameter sets put in front of
a key frame that lacks them); anything else is decoded and encoded once into the
room's codec — never per viewer. The same decode gives one picture per sample interval
(``FrameSampled``), which is what the operator snapshots.

States, told to the room's ``on_event`` as ``CameraState``: ``connecting`` until the
first frame, then ``live``; a stream that cannot be opened, ends, or sends nothing for
``timeout`` seconds is ``reconnecting`` (its slot shows black) and is opened again after
``FIRST_RETRY`` seconds, doubling up to ``retry_max``; a stream that went live starts
the doubling afresh.

Invariants:
- The URL may carry a user name and password: it is never logged, never put in an
  event, and error texts are cut with ``redact`` before they go anywhere.
- Only the thread touches the PyAV container; the room is touched only on its event
  loop (``call_soon_threadsafe``), and nothing the thread queued acts after ``stop``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import av
from av import VideoFrame

from media.codecs import H264, VIDEO_CLOCK, video_encoder
from media.room import FrameSampled, RoomEvent

if TYPE_CHECKING:
    from media.room import Room

logger = logging.getLogger(__name__)

CAMERA_ORIGIN = -1  # the room "part" a camera sends from: its own thread, here
FIRST_RETRY = 1.0  # seconds before the first reopening of a dropped stream
SAMPLE_WIDTH = 1280  # samples (snapshots) wider than this are scaled down
CONNECTING, LIVE, RECONNECTING = "connecting", "live", "reconnecting"
_USERINFO = re.compile(r"(?i)\b(rtsps?://)[^/@\s]*@")


@dataclass(frozen=True, kw_only=True)
class CameraState(RoomEvent):
    """A camera's stream changed state; ``reason`` says why it is reconnecting."""

    state: str
    reason: str = ""


def shown_url(url: str) -> str:
    """``url`` as it may be shown: any user name and password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redact(text: str, url: str) -> str:
    """``text`` (an FFmpeg error, say) with ``url`` and any RTSP credentials cut out."""
    if url:
        text = text.replace(url, shown_url(url))
    return _USERINFO.sub(r"\1***@", text)


class CameraSource:
    """One camera's RTSP stream feeding ``participant`` of ``room``; ``start`` then
    ``stop`` (from the room's event loop)."""

    def __init__(
        self,
        room: Room,
        participant: str,
        url: str,
        *,
        timeout: float = 10.0,
        retry_max: float = 30.0,
        sample_interval: float = 1.0,
    ) -> None:
        self.participant = participant
        self.state = CONNECTING
        self._room = room
        self._url = url
        self._timeout = timeout
        self._retry_max = max(retry_max, FIRST_RETRY)
        self._sample_interval = sample_interval
        self._name = f"room {room.room_id} camera {participant}"  # log lines: never the URL
        self._loop = asyncio.get_running_loop()
        self._stopped = threading.Event()
        self._keyframe_wanted = threading.Event()
        self._epoch = time.monotonic()
        self._last_timestamp = -1
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No more frames or events from now on; the thread ends at its next packet or
        timeout (it is a daemon thread: a process exiting does not wait for it)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._room.remote_absent(self.participant, CAMERA_ORIGIN)
        logger.info("%s: stopped", self._name)

    def request_keyframe(self) -> None:
        """Thread-safe. Transcoding: the next frame is encoded as a key frame. Forwarded
        H.264 cannot be asked: viewers wait for the camera's next key frame."""
        self._keyframe_wanted.set()

    # --- the event loop side ---

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_loop, fn, args)
        except RuntimeError:  # the loop closed: the process is ending
            self._stopped.set()

    def _on_loop(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        if not self._stopped.is_set():
            fn(*args)

    def _tell(self, state: str, reason: str = "") -> None:
        self.state = state
        self._room.source_event(CameraState(room_id=self._room.room_id,
                                            participant=self.participant, at=time.time(),
                                            state=state, reason=reason))  # fmt: skip

    def _present(self) -> None:
        self._room.remote_present(self.participant, False, CAMERA_ORIGIN,
                                  keyframe=self.request_keyframe)  # fmt: skip
        self._tell(LIVE)

    def _absent(self, reason: str) -> None:
        self._room.remote_absent(self.participant, CAMERA_ORIGIN)
        self._tell(RECONNECTING, reason)

    def _frame(self, frame: tuple[Any, ...]) -> None:
        self._room.remote_frame(self.participant, "video", frame)

    def _sample(self, picture: VideoFrame) -> None:
        self._room.source_event(FrameSampled(room_id=self._room.room_id,
                                             participant=self.participant, at=time.time(),
                                             frame=picture))  # fmt: skip

    # --- the thread ---

    def _run(self) -> None:
        delay = FIRST_RETRY
        self._post(self._tell, CONNECTING)
        while not self._stopped.is_set():
            went_live = False
            try:
                went_live = self._pull()
                reason = "the stream ended"
            except Exception as exc:  # FFmpeg raises many kinds; the text is cut below
                reason = f"{type(exc).__name__}: {redact(str(exc), self._url)}"
            if self._stopped.is_set():
                break
            if went_live:
                delay = FIRST_RETRY
            logger.warning("%s: %s; trying again in %g s", self._name, reason, delay)
            self._post(self._absent, reason)
            if self._stopped.wait(delay):
                break
            delay = min(delay * 2, self._retry_max)
        logger.info("%s: thread ended", self._name)

    def _pull(self) -> bool:
        """Open the stream and forward it until it ends or stalls; True if a frame came."""
        options = {"rtsp_transport": "tcp", "timeout": str(int(self._timeout * 1_000_000))}
        with av.open(self._url, options=options, timeout=(self._timeout, self._timeout)) as box:
            if not box.streams.video:
                raise LookupError("the stream has no video")
            stream = box.streams.video[0]
            decoder = stream.codec_context
            forward = self._room.video_codec == H264 and decoder.name == "h264"
            prefix = _annex_b(decoder.extradata) if forward else b""
            logger.info("%s: open, %s %dx%d, %s", self._name, decoder.name, decoder.width,
                        decoder.height, "forwarded" if forward else "transcoded once")  # fmt: skip
            encoder: av.VideoCodecContext | None = None
            next_sample = 0.0
            live = False
            for packet in box.demux(stream):
                if self._stopped.is_set():
                    return live
                if packet.size == 0:
                    continue
                timestamp = self._timestamp()
                if forward:
                    data = bytes(packet)
                    types = _nal_types(data)
                    if prefix and 5 in types and 7 not in types:  # an IDR without its SPS
                        data = prefix + data
                    if not live:
                        live = True
                        self._post(self._present)
                    self._post(self._frame, (H264, data, timestamp, VIDEO_CLOCK, False, 0))
                try:
                    pictures = decoder.decode(packet)
                except av.FFmpegError:
                    continue  # a frame before the first key frame, or a damaged one
                for picture in pictures:
                    if not forward:
                        if not live:  # present first: the room drops frames of no one
                            live = True
                            self._post(self._present)
                        encoder = self._encode(encoder, picture, timestamp)
                    now = time.monotonic()
                    if now >= next_sample:
                        next_sample = now + self._sample_interval
                        self._post(self._sample, _sample(picture))
            return live

    def _timestamp(self) -> int:
        """Arrival time on a 90 kHz clock, strictly increasing (the feed restamps it)."""
        now = int((time.monotonic() - self._epoch) * VIDEO_CLOCK)
        self._last_timestamp = max(now, self._last_timestamp + 1)
        return self._last_timestamp

    def _encode(
        self, encoder: av.VideoCodecContext | None, picture: VideoFrame, timestamp: int
    ) -> av.VideoCodecContext:
        codec = self._room.video_codec
        if encoder is None or (encoder.width, encoder.height) != (picture.width, picture.height):
            encoder = video_encoder(codec, picture.width, picture.height)
            self._keyframe_wanted.set()
        picture = picture.reformat(format="yuv420p")
        picture.pts, picture.time_base = timestamp, Fraction(1, VIDEO_CLOCK)
        if self._keyframe_wanted.is_set():
            self._keyframe_wanted.clear()
            picture.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(picture):
            self._post(self._frame, (codec, bytes(packet), timestamp, VIDEO_CLOCK, False, 0))
        return encoder


def _sample(picture: VideoFrame) -> VideoFrame:
    """A picture nobody else holds, at most ``SAMPLE_WIDTH`` wide."""
    if picture.width > SAMPLE_WIDTH:
        height = picture.height * SAMPLE_WIDTH // picture.width // 2 * 2
        return picture.reformat(width=SAMPLE_WIDTH, height=height, format="yuv420p")
    return picture.reformat(format="yuv420p")


def _annex_b(extradata: bytes | None) -> bytes:
    """The parameter sets of the stream's description, if they are in Annex B form
    (FFmpeg's RTSP client makes them so from sprop-parameter-sets)."""
    if extradata and (extradata.startswith(b"\x00\x00\x01") or
                      extradata.startswith(b"\x00\x00\x00\x01")):  # fmt: skip
        return bytes(extradata)
    return b""


def _nal_types(data: bytes) -> set[int]:
    types: set[int] = set()
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        types.add(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types
