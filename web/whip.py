"""WHIP (RFC 9725): a third-party publisher — OBS, GStreamer, a 雪亮工程 camera bridge —
joins a call as the centre its join token names.

POST /whip/{call_id} with `Authorization: Bearer <join token>` and an `application/sdp`
offer → `201 Created`, `Content-Type: application/sdp`, `Location` of the session, an
`ETag`. DELETE on the Location leaves. Trickle PATCH is answered 405: the publisher's
offer must carry its candidates (ICE completes from its connectivity checks). The
server answers as DTLS server (`a=setup:passive`), which publishers with RSA
certificates need (see ../shared/WEBRTC-NOTES.md).
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from dispatch.errors import InvalidInput, NotAuthenticated

from . import offers
from .appkeys import CONFERENCE, SWITCHBOARD
from .auth import bearer_token

SDP = "application/sdp"


def _token_centre(request: web.Request, call_id: int) -> str:
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated("send the call's join token: Authorization: Bearer <token>")
    return request.app[SWITCHBOARD].centre_for_token(token, call_id)


def _call_id(request: web.Request) -> int:
    try:
        return int(request.match_info["call_id"])
    except ValueError:
        raise InvalidInput("call_id", "must be a number") from None


async def publish(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    centre = _token_centre(request, call_id)
    # Checked before the conference answers the ring for the publisher: a refused offer
    # leaves the invite ringing and the call as it was.
    offer = await offers.take_offer(request, call_id, centre, whip=True)
    answer = await request.app[CONFERENCE].join(call_id, centre, offer, whip=True)
    return web.Response(
        status=201,
        body=answer.encode(),
        headers={
            "Content-Type": SDP,
            "Location": f"/whip/{call_id}/{centre}",
            "ETag": '"' + hashlib.sha256(answer.encode()).hexdigest()[:16] + '"',
        },
    )


async def stop(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    centre = _token_centre(request, call_id)
    if request.match_info["centre"] != centre:
        raise InvalidInput("centre", "this session belongs to another centre")
    await request.app[CONFERENCE].leave(call_id, centre)
    return web.Response(status=200)


async def no_trickle(request: web.Request) -> web.Response:
    return web.Response(status=405, headers={"Allow": "POST, DELETE"})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/whip/{call_id}", publish),
        web.delete("/whip/{call_id}/{centre}", stop),
        web.patch("/whip/{call_id}/{centre}", no_trickle),
    ]
