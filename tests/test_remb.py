"""media.remb: REMB at most every 200 ms, a fall of 3 % at once, the estimates aiortc's."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from aiortc import RTCPeerConnection
from aiortc.rate import RemoteBitrateEstimator

from media.remb import DROP, INTERVAL_MS, PacedEstimator, install


def congested_stream(seconds: int = 12) -> Iterator[tuple[int, int, int]]:
    """(arrival ms, abs-send-time, size) of 15 fps video, 4 packets a frame, whose
    queueing delay grows 3 ms a frame for 2 s in every 4 (a link filling up)."""
    delay = 0.0
    for frame in range(seconds * 15):
        sent_ms = frame * 1000 / 15
        if frame % 60 < 30:
            delay += 3.0
        else:
            delay = max(0.0, delay - 3.0)
        for packet in range(4):
            at = sent_ms + packet * 0.5
            abs_send_time = int(at / 1000 * (1 << 18)) & 0xFFFFFF
            yield round(at + delay), abs_send_time, 1200


def estimates(estimator: RemoteBitrateEstimator) -> list[tuple[int, int]]:
    """(arrival ms, bitrate) of every estimate ``add`` returned."""
    out = []
    for arrival, abs_send_time, size in congested_stream():
        estimate = estimator.add(arrival, abs_send_time, size, ssrc=1234)
        if estimate is not None:
            assert estimate[1] == [1234]
            out.append((arrival, estimate[0]))
    return out


def test_overuse_makes_aiortc_send_an_estimate_per_packet_and_ours_paced() -> None:
    theirs = estimates(RemoteBitrateEstimator())
    ours = estimates(PacedEstimator())
    # The storm this module exists for: while the detector says overuse, aiortc's
    # estimator returns an estimate (a REMB sent) on consecutive packets.
    back_to_back = sum(1 for a, b in itertools.pairwise(theirs) if b[0] - a[0] < 5)
    assert back_to_back > 50
    assert 0 < len(ours) < len(theirs) / 5
    sent_at, sent = ours[0]
    for at, bitrate in ours[1:]:
        # Each one sent is due: the interval has passed, or it reports a fall.
        assert at - sent_at >= INTERVAL_MS or bitrate <= sent * DROP
        sent_at, sent = at, bitrate
    # The estimates are aiortc's own, only fewer of them.
    assert {b for _, b in ours} <= {b for _, b in theirs}


def test_a_fall_goes_at_once_and_a_rise_within_the_interval() -> None:
    theirs = estimates(RemoteBitrateEstimator())
    ours = dict(estimates(PacedEstimator()))
    last_sent = None
    last_at = -INTERVAL_MS
    for at, bitrate in theirs:
        if at in ours:
            last_sent, last_at = ours[at], at
            continue
        assert last_sent is not None
        # Held back only a rise or a small fall, and only within the interval.
        assert bitrate > last_sent * DROP
        assert at - last_at < INTERVAL_MS


async def test_installed_for_every_new_receiver() -> None:
    install()
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        assert isinstance(estimator, PacedEstimator)
    finally:
        await pc.close()
