"""WHIP (RFC 9725): a third-party publisher — OBS, GStreamer, a 雪亮工程 camera bridge —
joins a call as the centre its join token names.

POST /whip/{call_id} with `Authorization: Bearer <join token>` and an `application/sdp`
offer → `201 Created`, `Content-Type: application/sdp`, `Location` of the session, an
`ETag`, and a `Link: <url>; rel="ice-server"` per configured STUN/TURN server (RFC 9725
§4.6). OPTIONS answers what the endpoint takes (and, with the token, the ICE servers).
DELETE on the Location leaves: 403 on another centre's session, 404 when the centre
has no session. Trickle PATCH is answered 405: the publisher's offer must carry its
candidates (ICE completes from its connectivity checks). The server answers as DTLS
server (`a=setup:passive`), which publishers with RSA certificates need (see
../shared/WEBRTC-NOTES.md). A publisher of one stream may leave BUNDLE out of its offer
(`web.sdp_checks` completes it).
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from aiohttp import web

from dispatch import turn
from dispatch.errors import InvalidInput, NotAuthenticated, NotAuthorised, NotFound
from dispatch.settings import Settings

from . import offers
from .appkeys import CONFERENCE, SETTINGS, SWITCHBOARD
from .auth import bearer_token

SDP = "application/sdp"
ALLOW_ENDPOINT = "OPTIONS, POST"
ALLOW_SESSION = "DELETE, OPTIONS"  # PATCH (trickle, ICE restart) is not taken


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


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_links(settings: Settings, centre: str = "") -> list[str]:
    """One `Link` value per STUN/TURN URL (RFC 9725 §4.6): the configured servers, then
    DISPATCH_TURN_URLS with a fresh credential for the publisher's centre
    (dispatch/turn.py); TURN servers with their username and credential."""
    links = []
    for server in turn.for_client(settings, centre)[0]:
        for url in server["urls"]:
            value = f'<{quote(url, safe=":/?=&.-_[]")}>; rel="ice-server"'
            if server.get("username"):
                value += f'; username={_quoted(server["username"])}'
                value += f'; credential={_quoted(server.get("credential") or "")}'
                value += '; credential-type="password"'
            links.append(value)
    return links


def _with_links(
    response: web.StreamResponse, settings: Settings, centre: str
) -> web.StreamResponse:
    for link in ice_links(settings, centre):
        response.headers.add("Link", link)
    return response


async def publish(request: web.Request) -> web.StreamResponse:
    call_id = _call_id(request)
    centre = _token_centre(request, call_id)
    # Checked before the conference answers the ring for the publisher: a refused offer
    # leaves the invite ringing and the call as it was.
    offer = await offers.take_offer(request, call_id, centre, whip=True)
    answer = await request.app[CONFERENCE].join(call_id, centre, offer, whip=True)
    response = web.Response(
        status=201,
        body=answer.encode(),
        headers={
            "Content-Type": SDP,
            "Location": f"/whip/{call_id}/{centre}",
            "ETag": '"' + hashlib.sha256(answer.encode()).hexdigest()[:16] + '"',
        },
    )
    return _with_links(response, request.app[SETTINGS], centre)


async def options(request: web.Request) -> web.StreamResponse:
    """What the endpoint takes; a CORS pre-flight carries no credentials, so the ICE
    servers (TURN credentials among them) only with the call's join token."""
    call_id = _call_id(request)
    response = web.Response(
        status=204, headers={"Allow": ALLOW_ENDPOINT, "Accept-Post": SDP}
    )  # fmt: skip
    if bearer_token(request) is not None:
        centre = _token_centre(request, call_id)  # 401/403: a token not this call's
        _with_links(response, request.app[SETTINGS], centre)
    return response


def _own_session(request: web.Request) -> tuple[int, str]:
    """The session named by the path, if it is the token's centre's and it exists."""
    call_id = _call_id(request)
    centre = _token_centre(request, call_id)
    if request.match_info["centre"] != centre:
        raise NotAuthorised("this WHIP session belongs to another centre")
    if not request.app[CONFERENCE].leave_token(call_id, centre):
        raise NotFound("WHIP session", f"/whip/{call_id}/{centre}")
    return call_id, centre


async def stop(request: web.Request) -> web.Response:
    call_id, centre = _own_session(request)
    await request.app[CONFERENCE].leave(call_id, centre)
    return web.Response(status=200)


async def session_options(request: web.Request) -> web.Response:
    _own_session(request)
    return web.Response(status=204, headers={"Allow": ALLOW_SESSION})


async def no_trickle(request: web.Request) -> web.Response:
    _own_session(request)
    return web.Response(status=405, headers={"Allow": ALLOW_SESSION})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/whip/{call_id}", publish),
        web.options("/whip/{call_id}", options),
        web.delete("/whip/{call_id}/{centre}", stop),
        web.options("/whip/{call_id}/{centre}", session_options),
        web.patch("/whip/{call_id}/{centre}", no_trickle),
    ]
