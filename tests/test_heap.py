"""media.heap: a server's start-up objects are frozen, so no full collection walks them."""

from __future__ import annotations

import gc

from media.heap import freeze_startup_heap


def test_after_start_up_a_full_collection_leaves_the_frozen_objects_alone() -> None:
    gc.collect()
    before = len(gc.get_objects())  # what a full collection walks now
    try:
        frozen = freeze_startup_heap()
        assert frozen >= before * 0.9  # this process's imports: all of them frozen
        assert len(gc.get_objects()) < before * 0.1
        garbage = [[i] for i in range(1000)]  # objects made after start-up
        cycle: list[object] = []
        cycle.append(cycle)
        del garbage, cycle
        assert gc.collect() >= 1  # are still collected
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
