"""Video checks on sampled decoded frames: live, black/blank or frozen, and a face count.

Pure and synchronous (no asyncio): the caller samples about one decoded frame a second
per participant and runs `FrameChecker.check` off the event loop (a worker thread;
OpenCV releases the GIL). Time is passed in (`at`, monotonic seconds), so tests drive it.

Defaults, and why (measured on this machine, OpenCV 4.14, aiortc 1.16):

- Brightness, contrast and motion use a *luma signature*: the frame in grayscale,
  area-averaged down to 160x90 (aspect not kept: it is only compared with the same
  participant's other frames, and a resolution change mid-call keeps its shape), in
  float so faint sensor noise is not rounded away.
- black: mean luma < 16 (video black: a covered lens, a dead decoder) or luma standard
  deviation < 8 (blank: all grey, a coloured "no signal" screen with a caption). Chrome's
  fake camera is a green card whose pac-man shrinks to nothing once a cycle: its
  deviation then falls to 11.8 at 640x480 (11.1 at 1280x720, 16.8 at 320x240), so the
  limit stays below that. A card with large lettering is as busy as the fake camera at
  that moment; being still, it reads frozen after `frozen_after` instead.
- frozen: the signature differs from the previous sample's by a mean absolute difference
  < 0.025 luma levels for at least 3 s of consecutive samples. A repeated frame differs
  by exactly 0. Through aiortc's VP8 encoder and decoder (300 kbit/s to 1.5 Mbit/s, one
  sample a second) a still picture keeps refining for 4-7 s (1.5, 0.6, 0.3, ...) and
  then settles at 0.013-0.017; the same still scene with camera noise of sigma 0.5 (a
  very clean sensor) settles at 0.032-0.049, sigma 1 at 0.044-0.069, sigma 2 near 0.12:
  VP8 keeps part of the noise. Chrome's fake camera never differs by less than 3.9. So a
  camera reads live even on a motionless scene, a repeated frame is frozen after 3 s,
  and a still picture fed to a live encoder is frozen 7-10 s after it stopped changing.
- faces: OpenCV's Haar frontal-face cascade on the grayscale frame scaled to 640 px wide
  (aspect kept: squeezed faces are missed) and blurred 3x3, scaleFactor 1.2,
  minNeighbors 6, faces at least 40 px (1/16 of the width). Pixel noise makes the
  cascade see a second face in the photo now and then: without the blur and with
  minNeighbors 5, up to 1 frame in 3 (a noisy 640x640 copy), with them 1 in 13 at worst
  and never in the 640x480 webcam-like frame. scaleFactor 1.1 finds a false face even
  in the clean frame and costs 3x; 1.15 counts 40-50 px faces more surely (9 of 9 in a
  3x3 grid of the photo, against 8-9) for ~30% more CPU: set it in `Thresholds` if
  small faces matter more than CPU. Black frames count 0 faces without the cascade.

CPU cost of one `check()` of a 640x480 frame with a face, on this 2-core machine: ~30 ms
wall (`tests/bench/checks.py`, beside one VP8 decode; 60-200 ms while other
processes keep the cores busy) and 55-95 ms of CPU: OpenCV spreads the cascade over both
cores (with one thread it is ~55 ms wall). The signature is < 1 ms; the rest is the
cascade. At one sample a second that is ~6% of a core per participant; with
`faces_every=5` (what a call uses, dispatch/conference.py) about 1.3%. One
cascade serves the process and runs one frame at a time (see `_SharedCascade`), so face
counts top out near 30 frames a second per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import av
import cv2
import numpy as np
import numpy.typing as npt

State: TypeAlias = Literal["live", "black", "frozen"]
BgrFrame: TypeAlias = npt.NDArray[np.uint8]  # height x width x 3, uint8, BGR order
Signature: TypeAlias = npt.NDArray[np.float32]

SIGNATURE_SIZE = (160, 90)  # (width, height) of the luma signature
FACE_WIDTH = 640  # frames are scaled to this width (aspect kept) for the cascade
CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FrameVerdict:
    """What one sampled frame showed."""

    state: State
    brightness: float  # mean luma of the signature, 0-255
    motion: float  # mean abs luma difference to the previous sample; 0.0 on the first
    faces: int  # 0 whenever state == "black"


def require_bgr(frame: npt.NDArray[np.generic]) -> BgrFrame:
    """The frame itself if it is a non-empty HxWx3 uint8 array, else ValueError."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {frame.shape} {frame.dtype}")
    return frame  # type: ignore[return-value]  # dtype checked above; numpy cannot narrow it


def to_bgr(frame: av.VideoFrame) -> BgrFrame:
    """A decoded frame as an HxWx3 BGR array (a copy; the frame is not kept)."""
    return require_bgr(frame.to_ndarray(format="bgr24"))


def grayscale(frame_bgr: BgrFrame) -> npt.NDArray[np.uint8]:
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)  # type: ignore[return-value]  # cv2: MatLike


def luma_signature(gray: npt.NDArray[np.uint8]) -> Signature:
    """The frame as 160x90 float luma (area-averaged), the same shape for any input size."""
    small = cv2.resize(gray.astype(np.float32), SIGNATURE_SIZE, interpolation=cv2.INTER_AREA)
    return small  # type: ignore[return-value]  # cv2 types it MatLike; float32 as given


def mean_abs_diff(a: Signature, b: Signature) -> float:
    return float(np.abs(a - b).mean())


def is_blank(brightness: float, contrast: float, black_luma: float, blank_std: float) -> bool:
    """Black (too dark) or blank (too uniform to show a room)."""
    return brightness < black_luma or contrast < blank_std


def face_gray(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The grayscale frame scaled to FACE_WIDTH wide (aspect kept), lightly blurred.

    The 3x3 blur takes out pixel noise, which otherwise now and then makes the cascade
    find a second face in a noisy frame of one face.
    """
    height, width = gray.shape
    scaled = gray
    if width != FACE_WIDTH:
        size = (FACE_WIDTH, max(1, round(height * FACE_WIDTH / width)))
        interpolation = cv2.INTER_AREA if width > FACE_WIDTH else cv2.INTER_LINEAR
        scaled = cv2.resize(gray, size, interpolation=interpolation)  # type: ignore[assignment]  # MatLike
    return cv2.GaussianBlur(scaled, (3, 3), 0)  # type: ignore[return-value]  # cv2: MatLike


class _SharedCascade:
    """The frontal-face cascade, loaded on first use and then kept for the process.

    `detectMultiScale` is not const in C++: the classifier keeps per-image state
    (opencv/opencv#4287), so one instance must never run in two threads at once. Every
    use holds `_lock`. Serialising costs little: the cascade already spreads one image
    over all cores (`parallel_for_`).
    """

    def __init__(self, file_name: str) -> None:
        self._file_name = file_name
        self._lock = threading.Lock()
        self._classifier: cv2.CascadeClassifier | None = None  # set once, under _lock

    def count(
        self, gray: npt.NDArray[np.uint8], scale_factor: float, min_neighbors: int, min_size: int
    ) -> int:
        with self._lock:
            found = self._loaded().detectMultiScale(
                gray,
                scaleFactor=scale_factor,
                minNeighbors=min_neighbors,
                minSize=(min_size, min_size),
            )
        return len(found)

    def _loaded(self) -> cv2.CascadeClassifier:
        """Called with _lock held."""
        if self._classifier is None:
            folder: str = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in the stubs
            path = folder + self._file_name
            classifier = cv2.CascadeClassifier(path)
            if classifier.empty():
                raise RuntimeError(f"cannot load {path}: OpenCV 5 dropped it, pin <5")
            self._classifier = classifier
        return self._classifier


_FACES = _SharedCascade(CASCADE_FILE)


def count_faces(
    gray: npt.NDArray[np.uint8],
    scale_factor: float = 1.2,
    min_neighbors: int = 6,
    min_size: int = 40,
) -> int:
    """Frontal faces in a grayscale frame of any size; `min_size` is in pixels at 640 wide."""
    return _FACES.count(face_gray(gray), scale_factor, min_neighbors, min_size)


@dataclass(frozen=True)
class Thresholds:
    """The checker's settings; the module docstring says why these defaults."""

    black_luma: float = 16.0
    blank_std: float = 8.0
    frozen_motion: float = 0.025
    frozen_after: float = 3.0
    faces_every: int = 1
    face_scale_factor: float = 1.2
    face_min_neighbors: int = 6
    face_min_size: int = 40

    def __post_init__(self) -> None:
        if self.frozen_after <= 0 or self.frozen_motion < 0 or self.faces_every < 1:
            raise ValueError(f"bad thresholds: {self}")


class FrameChecker:
    """Checks one participant's sampled frames, in time order. Not for concurrent use."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self._previous: Signature | None = None
        self._previous_at: float | None = None
        # Time of the first sample of the current run of near-identical samples; None
        # while the picture is changing (or before the first sample).
        self._still_since: float | None = None
        # Last face count and checks since it was taken; None forces the cascade to run.
        self._faces: int | None = None
        self._checks_since_faces = 0

    def check(self, frame_bgr: BgrFrame, at: float) -> FrameVerdict:
        """The verdict on a frame sampled at monotonic time `at` (never decreasing)."""
        gray = grayscale(require_bgr(frame_bgr))
        signature = luma_signature(gray)
        motion = self._track_motion(signature, at)
        brightness = float(signature.mean())
        limits = self.thresholds
        if is_blank(brightness, float(signature.std()), limits.black_luma, limits.blank_std):
            self._faces = None  # the next picture is counted afresh
            return FrameVerdict("black", brightness, motion, 0)
        state: State = "frozen" if self._still_for(at) >= limits.frozen_after else "live"
        return FrameVerdict(state, brightness, motion, self._count_faces(gray))

    def _track_motion(self, signature: Signature, at: float) -> float:
        """Motion since the previous sample; extends or ends the still run."""
        previous, previous_at = self._previous, self._previous_at
        if previous_at is not None and at < previous_at:
            raise ValueError(f"time went backwards: {at} < {previous_at}")
        self._previous, self._previous_at = signature, at
        if previous is None or previous_at is None:
            return 0.0
        motion = mean_abs_diff(signature, previous)
        if motion >= self.thresholds.frozen_motion:
            self._still_since = None
        elif self._still_since is None:
            self._still_since = previous_at  # the picture has not changed since then
        return motion

    def _still_for(self, at: float) -> float:
        return 0.0 if self._still_since is None else at - self._still_since

    def _count_faces(self, gray: npt.NDArray[np.uint8]) -> int:
        limits = self.thresholds
        if self._faces is None or self._checks_since_faces + 1 >= limits.faces_every:
            self._faces = count_faces(
                gray, limits.face_scale_factor, limits.face_min_neighbors, limits.face_min_size
            )
            self._checks_since_faces = 0
        else:
            self._checks_since_faces += 1
        return self._faces


@dataclass
class AttendanceClock:
    """Seconds of live video one participant showed, from the checker's verdicts in order.

    An interval counts only when the samples at both ends were live and it is at most
    `max_gap` long: a longer gap (a stalled sampler, a dropped connection) is not
    credited, since nobody saw video in between.
    """

    max_gap: float = 5.0
    max_faces: int = field(default=0, init=False)  # largest count seen on a live frame
    _seconds_live: float = field(default=0.0, init=False, repr=False)
    _last_state: State | None = field(default=None, init=False, repr=False)
    _last_at: float | None = field(default=None, init=False, repr=False)

    def update(self, verdict_state: State, at: float, faces: int = 0) -> None:
        """Record the state sampled at monotonic time `at` (never decreasing)."""
        last_at = self._last_at
        if last_at is not None and at < last_at:
            raise ValueError(f"time went backwards: {at} < {last_at}")
        if last_at is not None and self._last_state == "live" and verdict_state == "live":
            interval = at - last_at
            if interval <= self.max_gap:
                self._seconds_live += interval
        if verdict_state == "live":
            self.max_faces = max(self.max_faces, faces)
        self._last_state, self._last_at = verdict_state, at

    @property
    def seconds_live(self) -> float:
        return self._seconds_live

    def verified(self, min_seconds: float) -> bool:
        """Whether live video lasted the policy minimum (the caller's policy)."""
        return self._seconds_live >= min_seconds
