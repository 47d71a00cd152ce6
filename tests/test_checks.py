"""The video checks and snapshots on synthetic frames and a real face photo; no event loop."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media.checks import (
    AttendanceClock,
    BgrFrame,
    FrameChecker,
    FrameVerdict,
    Thresholds,
    to_bgr,
)
from media.snapshots import save_snapshot

PHOTO = Path(__file__).parent / "data" / "astronaut.png"


@pytest.fixture(scope="module")
def photo() -> BgrFrame:
    image = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    assert image is not None, PHOTO
    return image  # type: ignore[return-value]


def scaled(image: BgrFrame, width: int, height: int) -> BgrFrame:
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return resized  # type: ignore[return-value]


def webcam_shot(photo: BgrFrame) -> BgrFrame:
    """The photo as a 640x480 camera frame: 480x480, dark bars left and right."""
    face = scaled(photo, 480, 480)
    bars = cv2.copyMakeBorder(face, 0, 0, 80, 80, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    return bars  # type: ignore[return-value]


def jittered(image: BgrFrame, rng: np.random.Generator, shift: int) -> BgrFrame:
    """Camera noise (sigma 2) and a horizontal shift of `shift` pixels."""
    noisy = image.astype(np.float32) + rng.normal(0.0, 2.0, image.shape)
    return np.roll(np.clip(noisy, 0, 255).astype(np.uint8), shift, axis=1)


def moving_room(rng: np.random.Generator, count: int) -> Iterator[BgrFrame]:
    """A dim noisy room with a box walking across it."""
    for i in range(count):
        frame = np.clip(rng.normal(60.0, 12.0, (480, 640, 3)), 0, 255).astype(np.uint8)
        x = 30 + 40 * i
        cv2.rectangle(frame, (x, 150), (x + 120, 330), (200, 180, 160), thickness=-1)
        yield frame


def check_all(checker: FrameChecker, frames: list[BgrFrame], start: float = 0.0) -> list[str]:
    return [checker.check(frame, start + i).state for i, frame in enumerate(frames)]


# --- black, blank, live, frozen ------------------------------------------------------


def test_a_black_frame_is_black() -> None:
    verdict = FrameChecker().check(np.zeros((480, 640, 3), np.uint8), 0.0)
    assert verdict == FrameVerdict("black", 0.0, 0.0, 0)


def test_a_uniform_grey_frame_is_blank() -> None:
    verdict = FrameChecker().check(np.full((480, 640, 3), 128, np.uint8), 0.0)
    assert verdict.state == "black"
    assert verdict.brightness == pytest.approx(128.0)


def no_signal_card(font_scale: float, thickness: int) -> BgrFrame:
    card = np.zeros((480, 640, 3), np.uint8)
    card[:] = (160, 60, 20)  # BGR: a blue screen
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(card, "NO SIGNAL", (40, 280), font, font_scale, (255, 255, 255), thickness)
    return card


def test_a_no_signal_card_with_a_caption_is_blank() -> None:
    assert FrameChecker().check(no_signal_card(0.6, 1), 0.0).state == "black"


def test_a_no_signal_card_in_big_letters_is_frozen_after_3_s() -> None:
    # As busy as Chrome's fake camera at times, so only its stillness gives it away.
    card = no_signal_card(3.0, 6)
    assert check_all(FrameChecker(), [card] * 4) == ["live", "live", "live", "frozen"]


def test_a_noisy_moving_picture_is_live() -> None:
    frames = list(moving_room(np.random.default_rng(1), 12))
    assert check_all(FrameChecker(), frames) == ["live"] * 12


def test_the_same_frame_repeated_freezes_after_3_s_and_thaws_on_change() -> None:
    still = next(moving_room(np.random.default_rng(2), 1))
    checker = FrameChecker()
    states = check_all(checker, [still] * 6)
    # The picture has not changed since t=0: frozen from t=3 (frozen_after) on.
    assert states == ["live", "live", "live", "frozen", "frozen", "frozen"]
    changed = still.copy()
    changed[100:200, 100:200] = 255
    after = checker.check(changed, 6.0)
    assert after.state == "live"
    assert after.motion > 1.0


def test_a_nearly_identical_frame_is_frozen_too() -> None:
    still = next(moving_room(np.random.default_rng(3), 1))
    touched = still.copy()
    touched[10, 10] = 255 - touched[10, 10]  # one pixel: far below any sensor noise
    frames = [still, touched] * 3
    assert check_all(FrameChecker(), frames)[3:] == ["frozen"] * 3


def test_frozen_after_is_a_setting() -> None:
    still = next(moving_room(np.random.default_rng(4), 1))
    checker = FrameChecker(Thresholds(frozen_after=1.5))
    assert check_all(checker, [still] * 3) == ["live", "live", "frozen"]


def test_black_outranks_frozen() -> None:
    black = np.zeros((480, 640, 3), np.uint8)
    assert check_all(FrameChecker(), [black] * 5) == ["black"] * 5


def test_time_must_not_go_backwards() -> None:
    checker = FrameChecker()
    frame = np.zeros((480, 640, 3), np.uint8)
    checker.check(frame, 5.0)
    with pytest.raises(ValueError, match="backwards"):
        checker.check(frame, 4.0)


@pytest.mark.parametrize("shape", [(480, 640), (480, 640, 4), (0, 640, 3)])
def test_only_bgr_frames_are_checked(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="BGR"):
        FrameChecker().check(np.zeros(shape, np.uint8), 0.0)


# --- faces ----------------------------------------------------------------------------


@pytest.mark.parametrize("side", [640, 320])
def test_one_face_in_the_photo_at_any_size(photo: BgrFrame, side: int) -> None:
    verdict = FrameChecker().check(scaled(photo, side, side), 0.0)
    assert (verdict.state, verdict.faces) == ("live", 1)


def test_two_copies_side_by_side_are_two_faces(photo: BgrFrame) -> None:
    pair = np.hstack([scaled(photo, 512, 512)] * 2)
    assert pair.shape == (512, 1024, 3)
    assert FrameChecker().check(pair, 0.0).faces == 2


def test_a_webcam_shot_of_a_person_is_live_with_one_face(photo: BgrFrame) -> None:
    rng = np.random.default_rng(5)
    shot = webcam_shot(photo)
    checker = FrameChecker()
    verdicts = [checker.check(jittered(shot, rng, i % 3), float(i)) for i in range(6)]
    assert [(v.state, v.faces) for v in verdicts] == [("live", 1)] * 6
    assert min(v.motion for v in verdicts[1:]) > Thresholds().frozen_motion


def test_faces_every_reuses_the_last_count_between_runs(photo: BgrFrame) -> None:
    face = scaled(photo, 640, 640)
    faceless = next(moving_room(np.random.default_rng(6), 1))
    checker = FrameChecker(Thresholds(faces_every=3))
    counts = [
        checker.check(frame, float(i)).faces for i, frame in enumerate([face] + [faceless] * 3)
    ]
    assert counts == [1, 1, 1, 0]  # the cascade ran on the 1st and 4th checks only


def test_a_black_frame_forces_a_fresh_count(photo: BgrFrame) -> None:
    face = scaled(photo, 640, 640)
    black = np.zeros((640, 640, 3), np.uint8)
    checker = FrameChecker(Thresholds(faces_every=10))
    counts = [checker.check(frame, float(i)).faces for i, frame in enumerate([black, face])]
    assert counts == [0, 1]


def test_every_check_of_a_noisy_webcam_shot_finds_the_one_face(photo: BgrFrame) -> None:
    # What the check costs is measured in tests/bench/checks.py, not asserted here.
    rng = np.random.default_rng(7)
    checker = FrameChecker()
    for i in range(11):
        frame = jittered(webcam_shot(photo), rng, i % 2)
        assert checker.check(frame, float(i)).faces == 1, i


# --- attendance -----------------------------------------------------------------------


def test_seventy_seconds_of_live_video_verify_attendance() -> None:
    clock = AttendanceClock()
    for second in range(70):
        clock.update("live", 100.0 + second, faces=2)
    assert 69 <= clock.seconds_live <= 70
    assert clock.verified(60)
    assert not clock.verified(70)
    assert clock.max_faces == 2


def test_black_and_frozen_stretches_do_not_count() -> None:
    clock = AttendanceClock()
    states = ["live"] * 11 + ["black"] * 10 + ["live"] * 11 + ["frozen"] * 5 + ["live"]
    for second, state in enumerate(states):
        clock.update(state, float(second), faces=1)  # type: ignore[arg-type]
    assert clock.seconds_live == pytest.approx(20.0)
    assert not clock.verified(60)


def test_max_faces_comes_from_live_frames_only() -> None:
    clock = AttendanceClock()
    clock.update("frozen", 0.0, faces=5)
    clock.update("live", 1.0, faces=1)
    clock.update("live", 2.0, faces=3)
    clock.update("live", 3.0, faces=2)
    assert clock.max_faces == 3


def test_a_gap_longer_than_max_gap_is_not_credited() -> None:
    clock = AttendanceClock(max_gap=5.0)
    for at in (0.0, 1.0, 2.0, 32.0, 33.0):  # sampler stalled for 30 s
        clock.update("live", at)
    assert clock.seconds_live == pytest.approx(3.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.update("live", 10.0)


# --- snapshots ------------------------------------------------------------------------


def test_a_snapshot_is_written_with_its_sha256(photo: BgrFrame, tmp_path: Path) -> None:
    frame = webcam_shot(photo)
    folder = tmp_path / "snapshots" / "session-1"
    snapshot = save_snapshot(frame, folder, "answer-village_3.jpg", taken_at=1234.5)
    assert snapshot.path == folder / "answer-village_3.jpg"
    data = snapshot.path.read_bytes()
    assert snapshot.sha256 == hashlib.sha256(data).hexdigest()
    assert (snapshot.width, snapshot.height, snapshot.taken_at) == (640, 480, 1234.5)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == frame.shape
    assert [p.name for p in folder.iterdir()] == ["answer-village_3.jpg"]  # no temp files


def test_a_snapshot_replaces_one_of_the_same_name(tmp_path: Path) -> None:
    first = save_snapshot(np.zeros((90, 160, 3), np.uint8), tmp_path, "s.jpg")
    second = save_snapshot(np.full((90, 160, 3), 200, np.uint8), tmp_path, "s.jpg")
    assert first.sha256 != second.sha256
    assert hashlib.sha256((tmp_path / "s.jpg").read_bytes()).hexdigest() == second.sha256


@pytest.mark.parametrize("name", ["", "../x.jpg", "a/b.jpg", ".hidden.jpg", "..", "照片.jpg"])
def test_an_unsafe_snapshot_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        save_snapshot(np.zeros((90, 160, 3), np.uint8), tmp_path, name)
    assert list(tmp_path.iterdir()) == []


# --- decoded frames -------------------------------------------------------------------


def test_a_video_frame_round_trips_to_bgr(photo: BgrFrame) -> None:
    frame = webcam_shot(photo)
    video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
    assert np.array_equal(to_bgr(video_frame), frame)
    as_decoded = video_frame.reformat(format="yuv420p")  # what a VP8 decoder hands over
    back = to_bgr(as_decoded)
    assert back.shape == frame.shape
    assert FrameChecker().check(back, 0.0).faces == 1
