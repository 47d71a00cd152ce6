"""REMB feedback paced as a browser's receiver paces it.

aiortc 1.16's ``RemoteBitrateEstimator.add`` returns an estimate, which the receiver
at once sends to the publisher as an RTCP REMB packet, whenever its feedback interval
has passed — and on every packet while its overuse detector says OVERUSING. A loaded
server sees growing arrival delays, so the detector says overuse and every received
video packet then costs a REMB: an RTCP packet built, SRTP-protected and sent (in a
profile of a 1 + 15 meeting on a loaded machine, 8 % of the server), which loads the
machine further. A browser's receiver sends REMB at most every ``INTERVAL_MS`` and
at once only when the estimate falls to ``DROP`` of the last one sent or below
(libwebrtc's 200 ms and 97 %); ``PacedEstimator`` does the same.

Invariants: the estimate itself is aiortc's, computed on every packet as before;
only how often it is sent changes. A fall of 3 % or more is never delayed, so a
publisher backs off as soon as it would have; a rise waits at most ``INTERVAL_MS``
plus one packet.

``install()`` swaps the class aiortc's receivers build (``aiortc.rtcrtpreceiver``
looks the name up per receiver); idempotent.
"""

from __future__ import annotations

import aiortc.rtcrtpreceiver
from aiortc.rate import RemoteBitrateEstimator

INTERVAL_MS = 200  # the least time between two REMBs that do not report a fall
DROP = 0.97  # an estimate at or below this share of the last one sent goes at once


class PacedEstimator(RemoteBitrateEstimator):
    """aiortc's estimator whose ``add`` returns an estimate only when it is to be sent."""

    def __init__(self) -> None:
        super().__init__()
        self._sent_bitrate: int | None = None
        self._sent_at_ms = 0

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        estimate = super().add(arrival_time_ms, abs_send_time, payload_size, ssrc)
        if estimate is None:
            return None
        bitrate = estimate[0]
        last = self._sent_bitrate
        if (
            last is None
            or arrival_time_ms - self._sent_at_ms >= INTERVAL_MS
            or bitrate <= last * DROP
        ):
            self._sent_bitrate, self._sent_at_ms = bitrate, arrival_time_ms
            return estimate
        return None


def install() -> None:
    aiortc.rtcrtpreceiver.RemoteBitrateEstimator = PacedEstimator  # type: ignore[misc]
