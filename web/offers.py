"""Taking an SDP offer in, for the call API (`POST /api/v1/calls/{id}/sdp`) and WHIP
(`POST /whip/{id}`): who offers, how large its offer may be, the body read no further
than that, and the offer checked (`web.sdp_checks`) — all before the conference sees it.

Invariant: nothing here writes. A request refused here (401/403/404/409/413/400)
leaves the call, its invitations and its events exactly as they were; only an offer
that passed goes on to `Conference.join`, which records (a WHIP publisher's first
offer answers the ring).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web
from sqlmodel import Session

from dispatch import call_cameras, calls
from dispatch.errors import Conflict, InvalidInput, NotAuthorised
from dispatch.settings import video_codec

from .appkeys import DB, SETTINGS
from .errors import TooLarge
from .sdp_checks import OfferLimits, check_offer, check_size

READ_CHUNK = 16 * 1024


@dataclass(frozen=True)
class _Role:
    operator: bool
    invited: int


def _role(session: Session, call_id: int, centre: str, whip: bool) -> _Role:
    """The same checks `Conference.join` makes first, read only: the call is open, the
    centre is its caller or invited, and has accepted (a WHIP publisher's offer accepts)."""
    call = calls.get_call(session, call_id)
    if call.state not in calls.OPEN_STATES:
        raise Conflict(f"call {call_id} has {call.state}")
    invited = len(calls.invitations(session, call_id))
    if centre == call.caller_code:
        return _Role(True, invited)
    invite = session.get(calls.Invitation, (call_id, centre))
    if invite is None:
        raise NotAuthorised(f"centre {centre} is not invited to call {call_id}")
    allowed = (calls.RANG, calls.ANSWERED) if whip else (calls.ANSWERED,)
    if invite.state not in allowed:
        raise Conflict(f"centre {centre} has not accepted call {call_id} ({invite.state})")
    return _Role(False, invited)


async def read_capped(request: web.Request, cap: int, field: str) -> bytes:
    """The body, or 413 as soon as it is known to exceed `cap` bytes: at once from
    Content-Length, else while reading (a chunked body is never held beyond `cap`)."""
    if request.content_length is not None and request.content_length > cap:
        raise TooLarge(field, f"the body is {request.content_length} bytes; at most {cap}")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await request.content.read(READ_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise TooLarge(field, f"the body is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def take_offer(request: web.Request, call_id: int, centre: str, *, whip: bool) -> str:
    """The offer `centre` sends for `call_id`, checked (and for WHIP perhaps completed
    with BUNDLE); raises before anything is recorded if it is refused."""
    role = await request.app[DB].read(_role, call_id, centre, whip)
    settings = request.app[SETTINGS]
    # The operator's page also receives each camera the call shows (dispatch.call_cameras).
    invited = role.invited + (call_cameras.MAX_PER_CALL if role.operator else 0)
    limits = OfferLimits.for_role(settings.sdp_max_bytes, operator=role.operator,
                                  invited=invited)  # fmt: skip
    if whip:
        if request.content_type != "application/sdp":
            raise InvalidInput("Content-Type", "send the offer as application/sdp")
        raw = await read_capped(request, limits.max_bytes, "sdp")
        try:
            sdp = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("sdp", "not UTF-8 text") from None
    else:
        if request.content_type != "application/json":
            raise InvalidInput("Content-Type", "send application/json")
        raw = await read_capped(request, limits.max_body, "body")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise InvalidInput("body", "not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidInput("body", "must be a JSON object")
        if body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
            raise InvalidInput("sdp", 'send {"type": "offer", "sdp": "v=0…"}')
        sdp = body["sdp"]
    check_size(sdp, limits)
    return check_offer(sdp, limits, room_codec=video_codec(settings), whip=whip).sdp
