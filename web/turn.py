"""The ICE servers a call page connects with: GET /api/v1/calls/{call_id}/ice.

A page asks before each peer connection (its first and every reconnect), so the TURN
credential it relays with is always fresh (dispatch/turn.py). Only a participant of the
call gets one — the centre its join token names, or the account's own centre — and the
credential's username names that centre, which coturn logs with each allocation.
"""

from __future__ import annotations

from aiohttp import web

from dispatch import calls, turn

from .appkeys import DB, SETTINGS
from .auth import join_token, scope_of
from .calls import _call_id, _participant


async def ice_servers(request: web.Request) -> web.Response:
    """{"iceServers": [RTCIceServer…], "expires": unix time or null}; never cached."""
    call_id = _call_id(request)
    centre = _participant(request, call_id)  # the join token's centre, else the account's
    if join_token(request) is None:  # an account: only for a call within its scope
        await request.app[DB].read(calls.require_visible, scope_of(request), call_id)
    servers, expires = turn.for_client(request.app[SETTINGS], centre)
    return web.json_response(
        {"iceServers": servers, "expires": expires}, headers={"Cache-Control": "no-store"}
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/calls/{call_id}/ice", ice_servers)]
