"""Recording a room's publishers: each one's forwarded frames, unchanged, in a file.

What is written. The whole encoded frames a publisher's camera and microphone send,
exactly as the room forwards them (``Room._add_feed``'s ``arrive``), muxed by PyAV into
one WebM file per publisher and connection (VP8 + Opus; Matroska ``.mkv`` in an H.264
room). Nothing is decoded or encoded. One file holds both kinds, interleaved, so a
recording plays with its sound in any browser and its hash covers both; a publisher that
reconnects (a new peer) starts a new file, so a file never spans a gap it cannot show.

Invariants:
- A file starts on a video key frame (a publisher without video: on its first audio
  packet); what arrives before is not written, and a key frame is asked for.
- Timestamps come from the RTP clocks: each kind's first frame is placed at its arrival
  time after the file's first frame, later frames at their RTP time after that
  (wrap-around unwrapped), in milliseconds, strictly increasing per stream. A jump of
  more than ``RESYNC`` seconds between RTP and arrival time (a sender that restarted its
  clock) re-anchors that kind at its arrival time.
- After a gap (packets given up on) or a video frame dropped here, video resumes only at
  the next key frame, which is asked for: the file never holds a frame it cannot decode.
- The event loop only stamps and enqueues: a bounded queue per file, drained by the
  file's writer thread. A full queue drops the frame (logged, counted), never waits.
- The writer thread checks the free space of the folder before the file opens and every
  ``SPACE_EVERY`` seconds; below ``min_free_bytes``, or on any error writing (ENOSPC),
  it stops the file with reason ``DISK_FULL``. Every file is closed (the container's
  trailer written when it can be) on stop, leave, room close and worker shutdown, then
  hashed (sha256 of the bytes on disk) and reported once through ``on_ended``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from media.codecs import OPUS, VP8, is_keyframe

logger = logging.getLogger(__name__)

DISK_FULL = "disk full"
MILLISECONDS = Fraction(1, 1000)
RESYNC = 5.0  # seconds RTP time may stray from arrival time before a kind re-anchors
SPACE_EVERY = 2.0  # seconds between free-space checks while writing
QUEUE_FRAMES = 600  # frames a file's queue holds (~10 s of 30 fps video and its audio)
_WRAP = 1 << 32


@dataclass(frozen=True)
class FileReport:
    """A closed file, as the writer thread left it."""

    participant: str
    name: str  # the file's name in the room's folder
    kind: str  # "audio+video", "video" or "audio": the streams it was opened with
    started_at: float  # time.time() of the first frame written (or of the start)
    ended_at: float
    bytes: int  # 0 and sha256 None when no frame was ever written (no file kept)
    seconds: float
    sha256: str | None
    reason: str  # why it ended: "left", "recording stopped", DISK_FULL, …
    dropped: int  # frames dropped because the queue was full


def vp8_size(data: bytes) -> tuple[int, int]:
    """Width and height of a VP8 key frame (RFC 6386 §9.1); (640, 480) if unreadable."""
    if len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[6:8], "little") & 0x3FFF,
            int.from_bytes(data[8:10], "little") & 0x3FFF,
        )
    return 640, 480


def file_kind(kinds: tuple[str, ...]) -> str:
    return (
        "audio+video"
        if {"audio", "video"} <= set(kinds)
        else ("video" if "video" in kinds else "audio")
    )


class _Clock:
    """One kind's RTP timestamps → milliseconds after the file's zero (see the invariants)."""

    def __init__(self) -> None:
        self.anchor_ms = 0.0  # where the anchored RTP time sits in the file
        self.anchor_ts = 0  # the unwrapped RTP timestamp anchored there
        self.last_ts: int | None = None  # the last unwrapped RTP timestamp
        self.last_pts = -1

    def pts(self, timestamp: int, clock: int, arrival_ms: float) -> int:
        if self.last_ts is None:
            unwrapped = timestamp
            self.anchor_ms, self.anchor_ts = arrival_ms, unwrapped
        else:
            step = (timestamp - self.last_ts) % _WRAP
            unwrapped = self.last_ts + (step - _WRAP if step >= _WRAP // 2 else step)
        self.last_ts = unwrapped
        at = self.anchor_ms + (unwrapped - self.anchor_ts) * 1000 / clock
        if abs(at - arrival_ms) > RESYNC * 1000:
            self.anchor_ms, self.anchor_ts, at = arrival_ms, unwrapped, arrival_ms
        pts = max(round(at), self.last_pts + 1)
        self.last_pts = pts
        return pts


class PublisherFile:
    """One publisher's file: stamped on the event loop, written by its own thread."""

    def __init__(
        self,
        path: Path,
        participant: str,
        kinds: tuple[str, ...],
        video_codec: str,
        *,
        min_free_bytes: int,
        queue_frames: int,
        on_ended: Callable[[FileReport], None],
    ) -> None:
        self.path, self.participant = path, participant
        self.kinds = tuple(k for k in ("video", "audio") if k in kinds)
        self.video_codec = video_codec
        self.min_free_bytes = min_free_bytes
        self.started = False  # the first frame was accepted: the file has a zero
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[FileReport] = self._loop.create_future()
        self._on_ended = on_ended
        self._queue: queue.Queue[tuple[str, str, bytes, int, bool]] = queue.Queue(queue_frames)
        self._zero = 0.0  # time.monotonic() of the first accepted frame
        self._clocks = {kind: _Clock() for kind in self.kinds}
        self._broken = False  # video waits for a key frame (after a gap or a drop)
        self._stop = threading.Event()  # no more frames: write what is queued, then close
        self._reason = ""
        self._thread = threading.Thread(target=self._write, name=f"record {path.name}", daemon=True)
        self._thread.start()

    # --- on the event loop ---

    def frame(
        self,
        kind: str,
        codec: str,
        data: bytes,
        timestamp: int,
        clock: int,
        gap: bool,
        ask_keyframe: Callable[[], None],
    ) -> None:
        """Stamp and enqueue one whole frame; never blocks."""
        if self._stop.is_set() or kind not in self._clocks:
            return
        key = kind == "audio" or is_keyframe(codec, data)
        if kind == "video":
            if gap and not key:
                self._broken = True
            if self._broken or not self.started:
                if not key:
                    ask_keyframe()
                    return
                self._broken = False
        if not self.started:
            if "video" in self.kinds and kind != "video":
                return  # the file starts with a picture
            self.started, self._zero = True, time.monotonic()
        arrival_ms = (time.monotonic() - self._zero) * 1000
        pts = self._clocks[kind].pts(timestamp, clock, arrival_ms)
        try:
            self._queue.put_nowait((kind, codec, data, pts, key))
        except queue.Full:
            self.dropped += 1
            if kind == "video":
                self._broken = True
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning(
                    "recording %s: the writer is behind, %d frame(s) dropped",
                    self.path.name,
                    self.dropped,
                )

    def stop(self, reason: str) -> None:
        """Close the file once what is queued is written; ``done`` resolves after."""
        if not self._stop.is_set():
            self._reason = reason
            self._stop.set()

    # --- on the writer thread ---

    def _write(self) -> None:
        started_at = time.time()
        container: Any = None
        streams: dict[str, Any] = {}
        first_pts: int | None = None
        last_pts = 0
        reason = ""
        checked = -SPACE_EVERY
        try:
            while True:
                try:
                    kind, codec, data, pts, key = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                now = time.monotonic()
                if now - checked >= SPACE_EVERY:
                    checked = now
                    if self._free_bytes() < self.min_free_bytes:
                        reason = DISK_FULL
                        break
                if container is None:
                    started_at = time.time()
                    container, streams = self._open(codec, data)
                packet = av.Packet(data)
                packet.stream = streams[kind]
                packet.pts = packet.dts = pts
                packet.time_base = MILLISECONDS
                packet.is_keyframe = key
                container.mux(packet)
                first_pts = pts if first_pts is None else min(first_pts, pts)
                last_pts = max(last_pts, pts)
        except (OSError, av.FFmpegError) as exc:
            reason = DISK_FULL if _is_disk_full(exc) else f"write failed: {exc}"
            logger.error("recording %s: %s", self.path.name, reason)
        except Exception as exc:  # a bug must still close the file and report it
            reason = f"write failed: {type(exc).__name__} {exc}"
            logger.exception("recording %s: writing failed", self.path.name)
        self._stop.set()  # a writer that stopped on its own takes no more frames
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # ENOSPC again, most likely: keep what is on disk
                logger.error("recording %s: closing failed: %s", self.path.name, exc)
                reason = reason or (DISK_FULL if _is_disk_full(exc) else f"close failed: {exc}")
        report = self._report(started_at, reason or self._reason, first_pts, last_pts)
        self._loop.call_soon_threadsafe(self._finish, report)

    def _open(self, codec: str, data: bytes) -> tuple[Any, dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fmt = "webm" if self.video_codec == VP8 else "matroska"
        container = av.open(str(self.path), "w", format=fmt)
        streams: dict[str, Any] = {}
        if "video" in self.kinds and self.video_codec == VP8:
            stream = container.add_stream("vp8")
            stream.width, stream.height = vp8_size(data)
            stream.pix_fmt = "yuv420p"
            stream.time_base = MILLISECONDS
            streams["video"] = stream
        elif "video" in self.kinds:
            # H.264: the stream's parameters (size, SPS/PPS → avcC) read from the first
            # key frame itself, so no encoder is opened whose headers would differ.
            probe = av.open(io.BytesIO(data), format="h264")
            try:
                stream = container.add_stream_from_template(probe.streams.video[0])
            finally:
                probe.close()
            stream.time_base = MILLISECONDS
            streams["video"] = stream
        if "audio" in self.kinds:
            # Opened as an encoder only so the container gets Opus's header (OpusHead);
            # nothing is ever encoded with it.
            sound = container.add_stream("libopus", rate=48_000)
            sound.layout = "stereo"
            sound.time_base = MILLISECONDS
            streams["audio"] = sound
        return container, streams

    def _free_bytes(self) -> int:
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def _report(self, started_at: float, reason: str, first: int | None, last: int) -> FileReport:
        size, digest = 0, None
        if self.path.exists():
            sha = hashlib.sha256()
            with self.path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    sha.update(chunk)
                    size += len(chunk)
            digest = sha.hexdigest()
        seconds = (last - first) / 1000 if first is not None else 0.0
        return FileReport(
            self.participant,
            self.path.name,
            file_kind(self.kinds),
            started_at,
            time.time(),
            size,
            round(seconds, 3),
            digest,
            reason,
            self.dropped,
        )

    def _finish(self, report: FileReport) -> None:
        if not self.done.done():
            self.done.set_result(report)
        try:
            self._on_ended(report)
        except Exception:
            logger.exception("recording %s: reporting the file failed", self.path.name)


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


class RoomRecorder:
    """The recording of one room part: a file per present publisher's connection.

    ``on_started(participant, name, kind)`` when a file opens its first frame's place,
    ``on_ended(report)`` once per file, after it is closed and hashed.
    """

    def __init__(
        self,
        room_id: str,
        directory: Path,
        video_codec: str,
        *,
        min_free_bytes: int,
        queue_frames: int = QUEUE_FRAMES,
        on_started: Callable[[str, str, str], None],
        on_ended: Callable[[FileReport], None],
    ) -> None:
        self.room_id, self.directory, self.video_codec = room_id, directory, video_codec
        self.min_free_bytes, self.queue_frames = min_free_bytes, queue_frames
        self._on_started, self._on_ended = on_started, on_ended
        self._files: dict[str, PublisherFile] = {}  # peer id -> its open file
        self._ended: set[str] = set()  # peer ids whose file ended: no second file
        self._closing: set[asyncio.Future[FileReport]] = set()
        self._stopped = False
        self.suffix = ".webm" if video_codec == VP8 else ".mkv"

    def frame(
        self,
        peer_id: str,
        participant: str,
        kinds: tuple[str, ...],
        kind: str,
        frame: tuple[Any, ...],
        ask_keyframe: Callable[[], None],
    ) -> None:
        """A frame the room forwards of ``participant``'s connection ``peer_id``."""
        if self._stopped or peer_id in self._ended:
            return
        file = self._files.get(peer_id)
        if file is None:
            file = self._open(peer_id, participant, kinds)
        codec, data, timestamp, clock, gap = frame[:5]
        was_started = file.started
        file.frame(kind, codec, data, timestamp, clock, gap, ask_keyframe)
        if file.started and not was_started:
            self._on_started(participant, file.path.name, file_kind(file.kinds))

    def publisher_gone(self, peer_id: str, reason: str) -> None:
        """The connection ended (left, replaced, failed): close its file."""
        file = self._files.pop(peer_id, None)
        if file is not None:
            self._ended.add(peer_id)
            self._closing.add(file.done)
            file.done.add_done_callback(self._closing.discard)
            file.stop(reason)

    async def close(self, reason: str) -> list[FileReport]:
        """Stop every file and wait until each is closed, hashed and reported."""
        self._stopped = True
        for peer_id in list(self._files):
            self.publisher_gone(peer_id, reason)
        waiting = list(self._closing)
        return list(await asyncio.gather(*waiting)) if waiting else []

    def _open(self, peer_id: str, participant: str, kinds: tuple[str, ...]) -> PublisherFile:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        number = peer_id.rpartition("#")[2] or "0"
        path = self.directory / f"{participant}-{stamp}-{number}{self.suffix}"
        again = 1
        while path.exists():  # recording stopped and started again within the second
            again += 1
            path = self.directory / f"{participant}-{stamp}-{number}.{again}{self.suffix}"
        file = PublisherFile(
            path,
            participant,
            kinds,
            self.video_codec,
            min_free_bytes=self.min_free_bytes,
            queue_frames=self.queue_frames,
            on_ended=self._ended_file,
        )
        self._files[peer_id] = file
        logger.info("room %s peer %s: recording to %s", self.room_id, peer_id, path)
        return file

    def _ended_file(self, report: FileReport) -> None:
        logger.info(
            "room %s peer %s: recording %s closed (%s, %d bytes, %.1f s)",
            self.room_id,
            report.participant,
            report.name,
            report.reason,
            report.bytes,
            report.seconds,
        )
        for peer_id, file in list(self._files.items()):
            if file.path.name == report.name:  # it stopped on its own
                del self._files[peer_id]
                self._ended.add(peer_id)
        self._on_ended(report)
        if report.reason == DISK_FULL and not self._stopped:
            # The disk that filled fills for every file: stop them all, keep the call.
            self._stopped = True
            for peer_id in list(self._files):
                self.publisher_gone(peer_id, DISK_FULL)


__all__ = ["DISK_FULL", "OPUS", "FileReport", "PublisherFile", "RoomRecorder"]
