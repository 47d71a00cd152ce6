"""Live events to open pages over a WebSocket (`GET /ws/events`).

Invariant: a connection receives only events that name its account's own centre
(`Event.centres`); the account comes from the session or token, as for every request.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from dispatch.events import Event

from .appkeys import BUS
from .auth import scope_of

log = logging.getLogger(__name__)
QUEUE_LIMIT = 100  # a page that stops reading loses old events, never the server's memory


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    scope = scope_of(request)
    ws = web.WebSocketResponse(heartbeat=25)
    await ws.prepare(request)
    queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)

    def deliver(event: Event) -> None:
        if scope.centre_code is not None and scope.centre_code in event.centres:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    unsubscribe = request.app[BUS].subscribe(deliver)
    sender = asyncio.create_task(_send(ws, queue))
    try:
        await ws.send_json({"type": "hello", "centre": scope.centre_code})
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
