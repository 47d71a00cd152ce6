"""media.recorder on its own: real VP8 and Opus packets (encoded once by PyAV, as a
browser's would arrive) fed at their real pace with RTP timestamps, written to WebM
without re-encoding, and read back by ffprobe/ffmpeg from Debian's ffmpeg package."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from media.codecs import is_keyframe, video_encoder
from media.recorder import DISK_FULL, FileReport, RoomRecorder, vp8_size

pytestmark = pytest.mark.timeout(60)

TICK = 0.02  # one Opus packet; video every other tick (25 fps)
WRAP = 1 << 32
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"


def vp8_frames(count: int, key_every: int, grain: int = 0) -> list[bytes]:
    """``count`` frames of a moving bar, a key frame every ``key_every`` (and only then)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 180, "yuv420p"
    encoder.time_base = Fraction(1, 90_000)
    encoder.options = {
        "deadline": "realtime",
        "lag-in-frames": "0",
        "cpu-used": "8",
        "g": "100000",
        "keyint_min": "100000",
    }
    if grain:
        encoder.bit_rate = 5_000_000
    rng = np.random.default_rng(7)
    out: list[bytes] = []
    for index in range(count):
        picture = np.full((180, 320, 3), 60, np.uint8)
        picture[:, index * 7 % 300 : index * 7 % 300 + 20] = 255
        if grain:
            picture = (picture + rng.integers(0, grain, picture.shape)).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts, frame.time_base = index * 3600, Fraction(1, 90_000)
        if index % key_every == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out += [bytes(p) for p in encoder.encode(frame)]
    assert [is_keyframe("VP8", f) for f in out[::key_every]] == [True] * len(out[::key_every])
    return out


def h264_frames(count: int, key_every: int) -> list[bytes]:
    """As ``vp8_frames``, in H.264 (Annex B, as aiortc hands them over)."""
    encoder = video_encoder("H264", 320, 180)
    out: list[bytes] = []
    for index in range(count):
        picture = np.full((180, 320, 3), 60, np.uint8)
        picture[:, index * 7 % 300 : index * 7 % 300 + 20] = 255
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts, frame.time_base = index * 3600, Fraction(1, 90_000)
        if index % key_every == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


def opus_packet() -> bytes:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "stereo", "s16"
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1920), np.int16), format="s16", layout="stereo")
    frame.sample_rate, frame.pts = 48_000, 0
    return bytes(next(iter(encoder.encode(frame))))


def ffprobe(path: Path, *args: str) -> str:
    """ffprobe's output for ``args`` (after ``-v error``) on the file."""
    out = subprocess.run([FFPROBE, "-v", "error", *args, str(path)], capture_output=True,
                         text=True, check=True, timeout=30)  # fmt: skip
    return out.stdout


def probe(path: Path) -> dict[str, Any]:
    return dict(json.loads(ffprobe(path, "-show_format", "-show_streams", "-of", "json")))


def first_video_packet_flags(path: Path) -> str:
    flags = ffprobe(path, "-select_streams", "v", "-show_entries", "packet=flags", "-of", "csv=p=0")
    return flags.splitlines()[0]


def video_packets(path: Path) -> int:
    return int(ffprobe(path, "-select_streams", "v", "-count_packets", "-show_entries",
                       "stream=nb_read_packets", "-of", "csv=p=0").strip())  # fmt: skip


def decode_errors(path: Path) -> str:
    """What ffmpeg says decoding every frame of the file (nothing when it is sound). The
    frames keep their own times (passthrough, the file's time base): Matroska states no
    frame rate, and ffmpeg's guessed one would merge frames in its own output."""
    out = subprocess.run(
        [
            shutil.which("ffmpeg") or "/usr/bin/ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stderr.strip()


@pytest.fixture(autouse=True)
def _needs_ffprobe() -> None:
    assert os.access(FFPROBE, os.X_OK), "run `make system-deps` (Debian's ffmpeg package)"


class Publisher:
    """Feeds a recorder one publisher's frames at their real pace."""

    def __init__(
        self, recorder: RoomRecorder, name: str, video: list[bytes], codec: str = "VP8"
    ) -> None:
        self.recorder, self.name, self.video, self.codec = recorder, name, video, codec
        self.audio = opus_packet()
        self.video_ts, self.audio_ts = WRAP - 90_000, WRAP - 48_000  # wrap after a second
        self.asked = 0
        self.sent = 0

    def ask(self) -> None:
        self.asked += 1

    def send(self, kind: str, data: bytes, gap: bool = False) -> None:
        if kind == "video":
            frame = (self.codec, data, self.video_ts % WRAP, 90_000, gap, 0)
            self.video_ts += 3600
        else:
            frame = ("opus", data, self.audio_ts % WRAP, 48_000, False, 0)
            self.audio_ts += 960
        self.recorder.frame(f"{self.name}#1", self.name, ("video", "audio"), kind, frame, self.ask)

    async def run(self, seconds: float, start: int = 0, gap_at: int | None = None) -> None:
        began = time.monotonic()
        for tick in range(round(seconds / TICK)):
            self.send("audio", self.audio)
            if tick % 2 == 0:
                index = start + tick // 2
                self.send("video", self.video[index % len(self.video)], gap=index == gap_at)
                self.sent += 1
            await asyncio.sleep(max(0.0, began + (tick + 1) * TICK - time.monotonic()))


@pytest.fixture
def reports() -> Iterator[list[FileReport]]:
    yield []


def recorder_in(
    folder: Path, reports: list[FileReport], codec: str = "VP8", **kwargs: Any
) -> RoomRecorder:
    started: list[tuple[str, str, str]] = []
    recorder = RoomRecorder(
        "1",
        folder,
        codec,
        on_started=lambda *a: started.append(a),
        on_ended=reports.append,
        **kwargs,
    )
    recorder.started = started  # type: ignore[attr-defined]
    return recorder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_publisher_is_written_unchanged_from_a_key_frame_with_its_sound(
    tmp_path: Path, reports: list[FileReport]
) -> None:
    frames = vp8_frames(100, key_every=25)
    recorder = recorder_in(tmp_path / "rec", reports, min_free_bytes=0)
    village = Publisher(recorder, "510104001001", frames)
    # It starts mid-picture: the inter frames before the next key frame are not written.
    await village.run(3.0, start=5)
    recorder.publisher_gone("510104001001#1", "left")
    closed = await recorder.close("room closed")  # waits for the file already closing
    assert closed == reports and len(reports) == 1
    (report,) = reports
    path = tmp_path / "rec" / report.name
    assert report.reason == "left" and report.kind == "audio+video" and report.dropped == 0
    assert report.name.startswith("510104001001-") and report.name.endswith(".webm")
    assert report.bytes == path.stat().st_size and report.sha256 == sha256(path)
    assert recorder.started == [("510104001001", report.name, "audio+video")]  # type: ignore[attr-defined]
    assert village.asked > 0  # it asked for the key frame it waited for

    found = probe(path)
    assert found["format"]["format_name"].startswith("matroska,webm")
    codecs = sorted(s["codec_name"] for s in found["streams"])
    assert codecs == ["opus", "vp8"]
    video = next(s for s in found["streams"] if s["codec_name"] == "vp8")
    assert (video["width"], video["height"]) == (320, 180) == vp8_size(frames[0])
    # 3 s were sent; the file starts at the first key frame, 20 frames (0.8 s) in.
    assert abs(float(found["format"]["duration"]) - 2.2) <= 0.5
    assert abs(float(found["format"]["duration"]) - report.seconds) <= 0.2
    assert "K" in first_video_packet_flags(path)
    assert decode_errors(path) == ""


async def test_recording_stopped_and_started_within_a_second_makes_a_second_file(
    tmp_path: Path, reports: list[FileReport]
) -> None:
    # Two recorders one after the other (the operator's off, then on), the same
    # publisher's connection, the same second: the second file must not take the
    # first one's name (its row and its bytes would replace the first's).
    frames = vp8_frames(50, key_every=25)
    for _ in range(2):
        recorder = recorder_in(tmp_path / "rec", reports, min_free_bytes=0)
        await Publisher(recorder, "510104001001", frames).run(0.3)
        await recorder.close("recording stopped")
    first, second = reports
    assert first.name != second.name, first.name
    for report in reports:
        path = tmp_path / "rec" / report.name
        assert report.bytes == path.stat().st_size > 0 and report.sha256 == sha256(path)


async def test_an_h264_room_records_matroska_with_the_stream_s_own_parameters(
    tmp_path: Path, reports: list[FileReport]
) -> None:
    recorder = recorder_in(tmp_path, reports, "H264", min_free_bytes=0)
    village = Publisher(recorder, "510104001007", h264_frames(50, key_every=25), "H264")
    await village.run(2.0)
    await recorder.close("room closed")
    (report,) = reports
    path = tmp_path / report.name
    assert path.suffix == ".mkv" and report.sha256 == sha256(path)
    found = probe(path)
    assert sorted(s["codec_name"] for s in found["streams"]) == ["h264", "opus"]
    video = next(s for s in found["streams"] if s["codec_name"] == "h264")
    assert (video["width"], video["height"]) == (320, 180)
    assert abs(float(found["format"]["duration"]) - 2.0) <= 0.5
    assert decode_errors(path) == ""


async def test_after_a_gap_video_waits_for_the_next_key_frame(
    tmp_path: Path, reports: list[FileReport]
) -> None:
    frames = vp8_frames(50, key_every=25)
    recorder = recorder_in(tmp_path, reports, min_free_bytes=0)
    village = Publisher(recorder, "510104001002", frames)
    await village.run(2.0, gap_at=10)  # frames 10-24 depend on what was lost
    await recorder.close("room closed")
    (report,) = reports
    path = tmp_path / report.name
    count = video_packets(path)
    assert count == village.sent - 15  # 0-9 and 25-49
    assert report.reason == "room closed" and decode_errors(path) == ""


async def test_a_full_queue_drops_frames_and_never_waits(
    tmp_path: Path, reports: list[FileReport]
) -> None:
    frames = vp8_frames(25, key_every=5)
    recorder = recorder_in(tmp_path, reports, min_free_bytes=0, queue_frames=2)
    village = Publisher(recorder, "510104001003", frames)
    for index in range(200):  # a burst faster than any writer: nothing in between
        village.send("video", frames[index % 25])
        village.send("audio", village.audio)
    await village.run(1.0)
    await recorder.close("room closed")
    (report,) = reports
    assert report.dropped > 0
    assert decode_errors(tmp_path / report.name) == ""  # resumed on key frames only


async def test_free_space_below_the_floor_stops_every_file(
    tmp_path: Path, reports: list[FileReport]
) -> None:
    frames = vp8_frames(25, key_every=5)
    free = shutil.disk_usage(tmp_path).free
    recorder = recorder_in(tmp_path, reports, min_free_bytes=free + 10**12)
    a = Publisher(recorder, "510104001004", frames)
    b = Publisher(recorder, "510104001005", frames)
    await asyncio.gather(a.run(1.0), b.run(1.0))
    await recorder.close("room closed")
    assert sorted(r.reason for r in reports) == [DISK_FULL, DISK_FULL]
    assert all(r.bytes == 0 and r.sha256 is None for r in reports)  # nothing was opened


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    with tmpfs(mount):
        yield mount


@contextmanager
def tmpfs(folder: Path, size: str = "1m") -> Iterator[None]:
    """A tmpfs of ``size`` mounted on ``folder`` for the block; the test is skipped where
    mounting is not allowed (it needs root)."""
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_a_disk_that_fills_while_writing_stops_the_file_and_keeps_what_it_has(
    tiny_disk: Path, reports: list[FileReport]
) -> None:
    frames = vp8_frames(25, key_every=5, grain=120)  # ~20 KB a frame: 1 MB in ~2 s
    recorder = recorder_in(tiny_disk, reports, min_free_bytes=0)
    village = Publisher(recorder, "510104001006", frames)
    await village.run(4.0)
    await recorder.close("room closed")
    (report,) = reports
    path = tiny_disk / report.name
    assert report.reason == DISK_FULL
    assert report.bytes == path.stat().st_size > 0 and report.sha256 == sha256(path)


def test_stamps_unwrap_rtp_time_and_stay_increasing() -> None:
    from media.recorder import _Clock

    clock = _Clock()
    stamps = [clock.pts(ts % WRAP, 90_000, 0.0) for ts in range(WRAP - 9000, WRAP + 18_000, 3000)]
    assert stamps == [0, 33, 67, 100, 133, 167, 200, 233, 267]
    assert clock.pts(5, 90_000, 300.0) == 268  # an older timestamp: one past the last
    # A sender that restarts its clock far away is placed at its arrival time.
    assert clock.pts(123_456_789, 90_000, 20_000.0) == 20_000
