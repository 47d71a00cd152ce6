"""How much video one viewer gets, from the loss its receiver reports.

A forwarding server cannot re-encode for a weak link, but it can leave frames out:
with VP8 temporal layers (a browser publishing ``L1T3`` sends layer 0 at a quarter
of the frame rate, layer 1 at the next quarter, layer 2 the rest), a viewer can be
sent layers 0-1 (half the frames) or layer 0 only and still decode every frame it
gets. A publisher without layers can only be sent all or nothing; nothing is the
audio-only fallback, its audio slot untouched.

``LinkGovernor`` is the policy, pure (times are passed in), fed the fraction of
packets lost, which ``LossWindow`` measures from the viewer's RTCP receiver reports
over at least ``MIN_SAMPLE`` packets: one report covers a second, a few dozen packets
at a low layer, where one random loss already reads as several per cent.

- Lossy (> ``LOSSY``): down — all layers → layers 0-1 → layer 0 → paused — at most
  once per ``DOWN_HOLD`` seconds, so the effect of a change is seen before the next.
  A layered stream goes at once to the most layers whose share of the bitrate
  (``LAYER_SHARE``) fits in ``HEADROOM`` of what got through (1 − loss), at least one
  step, never past layer 0 in one go: at 40 % lost, all → layer 0 in one change
  instead of two changes ≥ ``DOWN_HOLD`` + ``SETTLE`` apart, during which the link's
  queue keeps overflowing and takes the audio with it. Pausing takes every picture
  away, so it is taken only above ``LOSSY_TO_PAUSE``: from layer 0, or from all
  layers for a stream without any. (The first measurement after a step down can
  still carry the tail of the queue the old layers filled: at layer 0 a 300 kbit/s
  link with 3 % random loss measured 13 % once, which must not cost the picture.)
- Clean (< ``CLEAN``) for ``UP_AFTER`` seconds: one step up, at most once per
  ``UP_HOLD``; a paused viewer gets no video packets, so its reports are clean and
  it is probed again after ``UP_AFTER`` seconds.
- In between: hold.
- A step up that meets loss within ``PROBE_WINDOW`` seconds was a failed probe: the
  clean spell needed before the next one doubles (up to ``UP_AFTER_MAX``), so a link
  that cannot carry the next layer is probed rarely instead of every few seconds;
  a step up that holds for ``PROBE_WINDOW`` resets it.
"""

from __future__ import annotations

from dataclasses import dataclass

TOP = 2  # every temporal layer
PAUSED = -1  # no video at all: audio only
LOSSY = 0.10
LOSSY_TO_PAUSE = 0.25
CLEAN = 0.02
DOWN_HOLD = 2.0
UP_AFTER = 5.0
UP_HOLD = 5.0
PROBE_WINDOW = 10.0
UP_AFTER_MAX = 60.0
MIN_SAMPLE = 50  # packets a loss fraction is measured over
SETTLE = 1.5  # seconds after a change of layers before loss is measured again
# The bitrate share of layers 0..cap in a three-layer VP8 stream, as libwebrtc splits
# it between temporal layers (40 %, 20 %, 40 %); by frames it would be 1/4, 1/2, 1.
LAYER_SHARE = {0: 0.4, 1: 0.6, TOP: 1.0}
HEADROOM = 0.8  # the share of what got through that the layers kept may fill


class LossWindow:
    """Loss over the packets since the last judgement, from receiver reports'
    cumulative counters (RFC 3550 6.4.1: extended highest sequence, cumulative lost)."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (highest, lost) at the last judgement
        self._settle_until = -1e9  # reports before this are passed over

    def restart(self, now: float) -> None:
        """Measure afresh from the first report ``SETTLE`` seconds from now: what was
        sent before a change of layers, and the queue it left on the link (a 30 KB
        router queue at 300 kbit/s takes most of a second to drain; browsers report
        up to ten times a second), say nothing about after it."""
        self._last, self._settle_until = None, now + SETTLE

    def report(self, highest: int, lost: int, now: float) -> float | None:
        """The fraction lost once ``MIN_SAMPLE`` packets were due since the last one
        returned; 0.0 if none were due (nothing was sent: a paused viewer's link is
        clean); None while too few were, or while settling."""
        if now < self._settle_until:
            return None
        if self._last is None:
            self._last = (highest, lost)
            return None
        expected = highest - self._last[0]
        if 0 < expected < MIN_SAMPLE:
            return None
        fraction = max(0, lost - self._last[1]) / expected if expected > 0 else 0.0
        self._last = (highest, lost)
        return min(fraction, 1.0)


@dataclass
class LinkGovernor:
    cap: int = TOP  # the highest temporal layer sent; PAUSED: none
    _changed_at: float = -1e9
    _clean_since: float | None = None
    _up_after: float = UP_AFTER  # clean seconds before the next step up
    _probing_since: float | None = None  # when the last step up was taken

    def report(self, lost: float, now: float, *, layered: bool) -> int:
        """A receiver report: ``lost`` is the fraction lost since the previous one.
        Returns the new cap."""
        if self._probing_since is not None and now - self._probing_since >= PROBE_WINDOW:
            self._probing_since, self._up_after = None, UP_AFTER  # the step held
        pausing = self.cap == 0 or not layered
        if lost > (LOSSY_TO_PAUSE if pausing else LOSSY):
            self._clean_since = None
            if self.cap != PAUSED and now - self._changed_at >= DOWN_HOLD:
                if self._probing_since is not None:  # the last step up was too far
                    self._probing_since = None
                    self._up_after = min(self._up_after * 2, UP_AFTER_MAX)
                self._set(_step_down(self.cap, lost) if layered else PAUSED, now)
        elif lost < CLEAN:
            if self._clean_since is None:
                self._clean_since = now
            elif (
                self.cap != TOP
                and now - self._clean_since >= self._up_after
                and now - self._changed_at >= UP_HOLD
            ):
                self._set(self.cap + 1 if layered else TOP, now)
                self._clean_since = self._probing_since = now
        else:
            self._clean_since = None
        return self.cap

    def _set(self, cap: int, now: float) -> None:
        self.cap, self._changed_at = cap, now


def _step_down(cap: int, lost: float) -> int:
    """The layered cap after a lossy report at ``cap``: the most layers below it whose
    share of the stream fits in ``HEADROOM`` of what got through; layer 0 at least,
    and from layer 0 paused."""
    if cap <= 0:
        return PAUSED
    fits = (1.0 - lost) * HEADROOM * LAYER_SHARE[cap]
    return next((c for c in range(cap - 1, 0, -1) if LAYER_SHARE[c] <= fits), 0)
