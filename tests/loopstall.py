"""A checker of event-loop stalls, for tests that must show no request blocks the loop.

`StallWatch` runs a task on the loop under test that wakes every `tick` seconds. A
wake-up that comes late means something held the loop. Lateness alone also counts
the time the OS did not run the process at all (on a shared 2-core machine that is
tens of milliseconds now and then), so each gap also records how much CPU the loop's
own thread used in it (`time.thread_time`): a request that computes on the loop
shows as CPU in the gap, a busy neighbour does not. `worst` is the largest gap's CPU
time, `worst_wall` its lateness.

While it watches, the objects that existed before are frozen (``gc.freeze``): late in
a test run the process holds every earlier test's objects, and one full collection
of them took 230–420 ms of the loop's CPU — the harness's pause, not the server's.
A server freezes its start-up heap the same way (``media.heap.freeze_startup_heap``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from types import TracebackType

from media.heap import freeze_startup_heap


class StallWatch:
    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.worst = 0.0  # seconds of loop-thread CPU in the worst gap between wake-ups
        self.worst_wall = 0.0  # seconds the worst wake-up came late
        self.wakeups = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StallWatch:
        freeze_startup_heap()  # the test process's objects so far, as a server's start-up
        self._task = asyncio.get_running_loop().create_task(self._watch())
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop = True
        assert self._task is not None
        try:
            await self._task
        finally:
            gc.unfreeze()

    async def _watch(self) -> None:
        while not self._stop:
            wall, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.tick)
            late = time.perf_counter() - wall - self.tick
            used = time.thread_time() - cpu
            self.wakeups += 1
            self.worst_wall = max(self.worst_wall, late)
            self.worst = max(self.worst, min(late + self.tick, used))

    def __repr__(self) -> str:
        return (f"StallWatch(worst={self.worst * 1000:.1f} ms CPU, "
                f"worst_wall={self.worst_wall * 1000:.1f} ms, wakeups={self.wakeups})")  # fmt: skip
