"""media.linkrate: steps down on loss, up after a clean spell, holds in between."""

from __future__ import annotations

import pytest

from media import forwarding
from media.codecs import VP8, black_keyframe, vp8_layer
from media.linkrate import PAUSED, SETTLE, TOP, UP_AFTER_MAX, LinkGovernor, LossWindow


def reports(governor: LinkGovernor, lost: float, start: float, seconds: int, *,
            layered: bool = True) -> list[int]:  # fmt: skip
    return [governor.report(lost, start + t, layered=layered) for t in range(seconds)]


def test_loss_steps_down_one_layer_at_a_time_then_pauses() -> None:
    governor = LinkGovernor()
    caps = reports(governor, 0.2, 0, 8)
    assert caps == [1, 1, 0, 0, 0, 0, 0, 0]  # layer 0 holds its picture at 20 % lost
    caps = reports(governor, 0.3, 8, 3)
    assert caps == [PAUSED] * 3  # not at 30 %


def test_heavy_loss_goes_to_the_layers_that_fit_in_one_change() -> None:
    """At 40 % lost, what got through holds layer 0 (40 % of the bitrate) but not
    layers 0-1 (60 %): one change, not two a hold apart while the queue overflows."""
    governor = LinkGovernor()
    assert governor.report(0.4, 0, layered=True) == 0
    governor = LinkGovernor()
    assert governor.report(0.15, 0, layered=True) == 1  # 85 % got through: 0-1 fit
    assert governor.report(0.4, 1, layered=True) == 1  # within the hold
    assert governor.report(0.4, 2, layered=True) == 0
    assert governor.report(0.9, 4, layered=True) == PAUSED  # from layer 0: pause


def test_a_stream_without_layers_goes_straight_to_audio_only_and_back() -> None:
    governor = LinkGovernor()
    assert governor.report(0.2, 0, layered=False) == TOP  # it would lose every picture
    assert governor.report(0.3, 0, layered=False) == PAUSED
    caps = reports(governor, 0.0, 1, 8, layered=False)
    assert caps[:5] == [PAUSED] * 5 and caps[5] == TOP


def test_a_clean_link_climbs_back_a_step_per_hold() -> None:
    governor = LinkGovernor()
    reports(governor, 0.3, 0, 5)
    assert governor.cap == PAUSED
    caps = reports(governor, 0.0, 10, 25)
    assert caps[4] == PAUSED and caps[5] == 0 and caps[10] == 1 and caps[15] == TOP


def test_middling_loss_holds() -> None:
    governor = LinkGovernor()
    reports(governor, 0.2, 0, 1)
    assert reports(governor, 0.05, 1, 20) == [1] * 20


def test_vp8_descriptors_tell_layers() -> None:
    assert vp8_layer(bytes([0x10, 0x00])) == (0, False)  # S, no extension
    assert vp8_layer(bytes([0x00, 0x00])) is None  # not a frame's first packet
    assert vp8_layer(bytes([0x11, 0x00])) is None  # partition 1
    # X; I (15-bit picture id), L, T: TID 2, Y set.
    assert vp8_layer(bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0xA0])) == (2, True)
    # X; T only: TID 1.
    assert vp8_layer(bytes([0x90, 0x20, 0x40])) == (1, False)
    assert vp8_layer(bytes([0x90, 0x80, 0x05])) == (0, False)  # X; I, no T


def test_a_failed_probe_doubles_the_wait_before_the_next_and_a_held_one_resets_it() -> None:
    governor = LinkGovernor()
    reports(governor, 0.2, 0, 3)  # 2 -> 1 -> 0
    assert governor.cap == 0
    caps = reports(governor, 0.0, 3, 6)
    assert caps[-1] == 1  # probed after 5 clean seconds
    reports(governor, 0.2, 9, 2)  # and it failed
    assert governor.cap == 0
    caps = reports(governor, 0.0, 11, 12)
    assert caps[:10] == [0] * 10 and caps[10] == 1  # now 10 clean seconds first
    reports(governor, 0.05, 23, 10)  # middling loss: the step holds ...
    caps = reports(governor, 0.0, 33, 12)
    assert caps[4] == 1 and caps[5] == TOP  # ... and the wait is back to 5 s


def test_loss_is_measured_over_enough_packets_and_nothing_sent_is_clean() -> None:
    window = LossWindow()
    assert window.report(1000, 0, 0) is None  # the first report only sets the start
    assert window.report(1020, 2, 1) is None  # 20 packets: too few to tell
    assert window.report(1060, 3, 2) == 3 / 60
    assert window.report(1060, 3, 3) == 0.0  # nothing sent since: clean
    assert window.report(1160, 3 + 150, 4) == 1.0  # counters may run ahead: at most all


def test_after_a_change_of_layers_reports_are_passed_over_while_the_link_settles() -> None:
    window = LossWindow()
    window.report(0, 0, 0.0)
    window.restart(10.0)
    assert window.report(100, 40, 10.1) is None  # the queue the old layers left
    assert window.report(150, 60, 11.0) is None  # browsers report many times a second
    assert window.report(160, 61, 10.0 + SETTLE) is None  # the start of a new measurement
    assert window.report(220, 62, 12.0) == 1 / 60


def test_a_paused_viewer_that_stops_reporting_is_probed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chromium stops its receiver reports on a stream that carries nothing: the
    slot counts that silence as clean, so the paused video comes back (layer 0)."""
    clock = [100.0]
    monkeypatch.setattr(forwarding.time, "monotonic", lambda: clock[0])
    feed = forwarding.Feed("f", "video", 0.0, lambda: None, lambda: None)
    slot = forwarding.Slot("s", "video", VP8, 0.0)
    slot.attach(feed)
    key = black_keyframe(VP8)
    frame = 0

    def frames(seconds: float) -> None:  # 15 fps, layers 0, 2, 1, 2
        nonlocal frame
        for _ in range(round(seconds * 15)):
            clock[0] += 1 / 15
            feed.arrive(VP8, key, frame * 6000, 90_000, False, (0, 2, 1, 2)[frame % 4])
            frame += 1

    frames(3)  # the feed shows its layers
    highest, lost = 1000, 0
    while slot.cap != PAUSED:  # a lossy link: reports of 50 % loss, one a second
        highest, lost = highest + 100, lost + 50
        slot.viewer_report(highest, lost)
        frames(1)
        assert clock[0] < 200, "never paused"
    frames(UP_AFTER_MAX + 10)  # and then no report at all
    assert slot.cap == 0
