"""Live events to open pages over WebSockets: `GET /ws/events` (the account's own
centre: reminders, rings) and the per-call stream in web/calls.py.

Invariant: a connection receives only the events its filter admits, and the filter is
built from the session or token, as for every request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from dispatch.events import Event

from .appkeys import BUS
from .auth import scope_of

log = logging.getLogger(__name__)
QUEUE_LIMIT = 100  # a page that stops reading loses old events, never the server's memory


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    scope = scope_of(request)
    code = scope.centre_code
    return await stream(
        request,
        lambda event: code is not None and code in event.centres,
        hello={"type": "hello", "centre": code},
    )


async def stream(
    request: web.Request, wanted: Callable[[Event], bool], *, hello: dict[str, Any]
) -> web.WebSocketResponse:
    """Push every published event that `wanted` admits, until the page goes away."""
    ws = web.WebSocketResponse(heartbeat=25)
    await ws.prepare(request)
    queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)

    def deliver(event: Event) -> None:
        if wanted(event):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    unsubscribe = request.app[BUS].subscribe(deliver)
    sender = asyncio.create_task(_send(ws, queue))
    try:
        await ws.send_json(hello)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
    finally:
        unsubscribe()
        sender.cancel()
    return ws


async def _send(ws: web.WebSocketResponse, queue: asyncio.Queue[Event]) -> None:
    while not ws.closed:
        event = await queue.get()
        try:
            await ws.send_json(event.as_dict())
        except ConnectionError:
            return
