"""media.ratecount gives the same figures as aiortc's own bitrate counter."""

from __future__ import annotations

import random

import aiortc.rate
import pytest
from aiortc.rate import RemoteBitrateEstimator

from media.ratecount import WindowRate, install

ORIGINAL = aiortc.rate.RateCounter


@pytest.mark.parametrize("seed", range(20))
def test_the_same_rates_as_aiortcs_counter_on_random_traffic(seed: int) -> None:
    rnd = random.Random(seed)
    theirs, ours = ORIGINAL(1000, 8000), WindowRate(1000, 8000)
    now = rnd.randint(0, 10**6)
    for _ in range(3000):
        now += rnd.choice([0, 0, 1, 3, 10, 66, 200, 999, 1000, 1500])
        if rnd.random() < 0.85:
            size = rnd.randint(20, 1300)
            theirs.add(size, now)
            ours.add(size, now)
        else:
            assert ours.rate(now) == theirs.rate(now)
        if rnd.random() < 0.002:
            theirs.reset()
            ours.reset()


def test_installed_for_every_new_estimator() -> None:
    install()
    assert isinstance(RemoteBitrateEstimator().incoming_bitrate, WindowRate)
