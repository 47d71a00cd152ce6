"""Live events to open pages over WebSockets: `GET /ws/events` (the account's own
centre: reminders, rings) and the per-call stream in web/calls.py.

Invariant: a connection receives only the events its filter admits, and the filter is
built from the session or token, as for every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from dispatch.events import Event
from schedules import jobs

from .appkeys import BUS, CLOCK, DB
from .auth import scope_of

log = logging.getLogger(__name__)
QUEUE_LIMIT = 100  # a page that stops reading loses old events, never the server's memory


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    """The centre's own events; on connecting, the reminders it was already sent for
    calls that have not started yet (a page opened after the reminder still gets it)."""
    scope = scope_of(request)
    code = scope.centre_code

    async def backlog() -> list[Event]:
        if code is None:
            return []
        now = request.app[CLOCK].now()
        return list(await request.app[DB].read(jobs.reminders_due, code, now))

    return await stream(
        request,
        lambda event: code is not None and code in event.centres,
        hello={"type": "hello", "centre": code},
        backlog=backlog,
    )


async def stream(
    request: web.Request,
    wanted: Callable[[Event], bool],
    *,
    hello: dict[str, Any],
    backlog: Callable[[], Awaitable[list[Event]]] | None = None,
) -> web.WebSocketResponse:
    """Push every published event that `wanted` admits, until the page goes away.

    `backlog` gives events published before the page connected; they are sent after
    the hello, and a live event equal to one of them is not sent twice (the page
    subscribes before reading the backlog, so nothing falls between the two)."""
    ws = web.WebSocketResponse(heartbeat=25)
    await ws.prepare(request)
    queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)

    def deliver(event: Event) -> None:
        if wanted(event):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    unsubscribe = request.app[BUS].subscribe(deliver)
    sender: asyncio.Task[None] | None = None
    try:
        await ws.send_json(hello)
        sent: set[str] = set()
        for event in await backlog() if backlog is not None else []:
            body = event.as_dict()
            sent.add(_key(body))
            await ws.send_json(body)
        sender = asyncio.create_task(_send(ws, queue, sent))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
    finally:
        unsubscribe()
        if sender is not None:
            sender.cancel()
    return ws


def _key(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, default=str)


async def _send(ws: web.WebSocketResponse, queue: asyncio.Queue[Event], sent: set[str]) -> None:
    while not ws.closed:
        event = await queue.get()
        body = event.as_dict()
        if sent and _key(body) in sent:
            continue  # already sent from the backlog
        try:
            await ws.send_json(body)
        except ConnectionError:
            return
