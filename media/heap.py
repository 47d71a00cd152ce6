"""Keeping Python's full garbage collections off a long-running server's event loop.

A full (generation 2) collection walks every tracked object the process holds. Right
after start-up that is about 200,000 objects, nearly all from importing aiortc, PyAV,
SQLAlchemy and the rest, and one collection of them took 145 ms of the loop's thread
on the 2-core bench machine. Every forwarded stream stops for that long. Those objects
live as long as the process, so collecting them finds nothing.

``freeze_startup_heap`` moves everything alive at that moment into the permanent
generation (``gc.freeze``), which no collection walks. The same full collection then
took under 0.1 ms. Objects created later are collected as before.

Call it once, when start-up is over: ``dispatch serve`` does so after the application
started, and a media worker before it serves. Never call it per request or per test
application: what it freezes is never freed.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then freeze what is left; returns the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
