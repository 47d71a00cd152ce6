"""A drop-in for aiortc's bitrate counter that costs per packet, not per millisecond.

aiortc 1.16's ``RemoteBitrateEstimator`` (which feeds the REMB a publisher's encoder
adapts to) counts received bytes with ``aiortc.rate.RateCounter``: 1,000 one-millisecond
buckets, and every packet first clears, in a Python loop, each bucket for every
millisecond since the previous packet. For a 15 fps stream that is ~70 iterations a
packet; profiled in a 1 + 20 meeting it cost ~140 µs per received video packet, four
times the whole forwarding of that packet. ``WindowRate`` keeps the same contract
(``add``, ``rate``, ``reset``; the same window, origin and scale, so the same
figures) with one entry per packet, dropped when it leaves the window.

``install()`` swaps the class in ``aiortc.rate`` process-wide (the estimator looks the
name up when it is built); it is idempotent.
"""

from __future__ import annotations

from collections import deque

import aiortc.rate


class WindowRate:
    """Bytes counted over the last ``window_size`` ms, as ``scale`` × bytes per ms."""

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self._entries: deque[tuple[int, int]] = deque()
        self._origin_ms: int | None = None
        self._count = 0
        self._value = 0

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._count += 1
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._count > 0 and active_window_size > 1:
                return round(self._scale * self._value / active_window_size)
        return None

    def reset(self) -> None:
        self._entries = deque()
        self._origin_ms = None
        self._count = 0
        self._value = 0

    def _erase_old(self, now_ms: int) -> None:
        # Invariant: every entry is at or after the origin, and the origin is at most
        # window_size - 1 ms before the newest time seen (as in aiortc's buckets).
        assert self._origin_ms is not None
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms < new_origin_ms:
            self._origin_ms = new_origin_ms
            entries = self._entries
            while entries and entries[0][0] < new_origin_ms:
                _, value = entries.popleft()
                self._count -= 1
                self._value -= value


def install() -> None:
    aiortc.rate.RateCounter = WindowRate  # type: ignore[misc, assignment]  # replaces the class
