"""Calls in the web: launch, answer, end, and the call's state — the JSON API and the
call page. The media (SDP) endpoints join these once the room exists. The console that
launches them is web/console.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import accounts, call_cameras, calls, centres, recordings
from dispatch.accounts import Role
from dispatch.call_cameras import CameraChanged
from dispatch.calls import Attendance
from dispatch.errors import Conflict, InvalidInput, NotAuthorised
from dispatch.events import Event
from dispatch.settings import publish_limits
from logs.issues import IssueRaised
from schedules import plans, policy

from . import live, offers
from .appkeys import CONFERENCE, DB, SETTINGS, SWITCHBOARD
from .auth import join_token, scope_of
from .bodies import CallLaunch, Floor, Leave, Snapshot, View
from .cameras import camera_choices
from .reading import path_int, read_body
from .render import render


def _call_id(request: web.Request) -> int:
    return path_int(request, "call_id")


def _one_to_one(callees: list[str], kind: str) -> None:
    """An ad-hoc 1:1 inspection calls exactly one centre (the console refuses more too)."""
    if kind == "inspection" and len(callees) > 1:
        raise InvalidInput("callees", f"a 1:1 inspection calls exactly one centre, got "
                           f"{len(callees)}; launch a meeting to call several")  # fmt: skip


async def launch(request: web.Request) -> web.Response:
    """POST /api/v1/calls {"slot_id"} or {"callees": [...], "kind"?} — ring them now."""
    scope = scope_of(request)
    body = await read_body(request, CallLaunch)
    slot_id = body.slot_id

    def plan(s: Session) -> dict[str, Any]:
        if scope.centre_code is None:
            raise NotAuthorised("only a district or town operator launches calls")
        if slot_id is not None:
            slot = plans.get_slot(s, slot_id)
            if slot.caller_code != scope.centre_code:
                raise NotAuthorised(f"rota slot {slot_id} is not your centre's call")
            callees, kind = list(slot.callees), slot.kind
        else:
            if body.callees is None:
                raise InvalidInput("callees", "a list of 12-digit centre codes, or a slot_id")
            callees, kind = body.callees, body.kind
            _one_to_one(callees, kind)
        caller = centres.get(s, scope.centre_code)
        rules = policy.policy_for(s, caller.path.split("/")[0])
        record = recordings.recorded_by_policy(kind, caller.level, rules.record_district_meetings)
        return {"callees": callees, "kind": kind, "deadline": rules.answer_deadline_seconds,
                "minimum": rules.min_verified_seconds, "record": record}  # fmt: skip

    p = await request.app[DB].read(plan)
    launched, tokens = await request.app[SWITCHBOARD].launch(
        scope, p["callees"], kind=p["kind"], slot_id=slot_id,
        answer_deadline_seconds=p["deadline"], min_verified_seconds=p["minimum"],
    )  # fmt: skip
    call_id = launched.call.id
    if p["record"]:  # the policy records district meetings from their start
        try:
            await request.app[CONFERENCE].recording.start(call_id or 0, "policy")
        except Conflict:
            pass  # a full disk: its event is in the journal, and the call goes on
    base = request.app[SETTINGS].public_url.rstrip("/")
    return web.json_response({
        "call": launched.call.as_dict(),
        "invites": [{"centre": c, "join_token": t, "join_url": f"{base}/calls/{call_id}?token={t}"}
                    for c, t in tokens.items()],
    }, status=201)  # fmt: skip


async def get_call(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    centre = _viewer_centre(request, call_id)

    def run(s: Session) -> dict[str, Any]:
        call = calls.get_call(s, call_id)
        if centre is None:
            call = calls.require_visible(s, scope_of(request), call_id)
        data = calls.summary(s, call)
        if not _is_caller_side(s, request, call, centre):
            mine = centre or scope_of(request).centre_code
            data["invites"] = [i for i in data["invites"] if i["centre"] == mine]
        return data

    return web.json_response(await request.app[DB].read(run))


def _viewer_centre(request: web.Request, call_id: int) -> str | None:
    """The centre a join token admits to this call, if the request carries one."""
    token = join_token(request)
    return None if token is None else request.app[SWITCHBOARD].centre_for_token(token, call_id)


def _is_caller_side(
    s: Session, request: web.Request, call: calls.Call, token_centre: str | None
) -> bool:
    if token_centre is not None:
        return False
    return scope_of(request).covers(centres.get(s, call.caller_code))


async def answer(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    centre = _participant(request, call_id)
    accept = request.match_info["verb"] == "accept"
    if accept:  # first: the key frame is on its way while the answer is written
        request.app[CONFERENCE].prime(call_id, centre)
    recorded = await request.app[SWITCHBOARD].answer(call_id, centre, accept=accept)
    return web.json_response({"events": [e.as_dict() for e in recorded]})


async def end_call(request: web.Request) -> web.Response:
    scope = scope_of(request)
    call_id = _call_id(request)

    def check(s: Session) -> None:
        call = calls.get_call(s, call_id)
        if not scope.covers(centres.get(s, call.caller_code)) or scope.role is Role.village:
            raise NotAuthorised("only the calling side ends a call")

    await request.app[DB].read(check)
    await request.app[CONFERENCE].end(call_id, f"ended by {scope.username}")
    return web.json_response({"ended": call_id})


# --- media: SDP, floor, snapshots, leaving -------------------------------------------------


def _participant(request: web.Request, call_id: int) -> str:
    """The centre acting in the call: the join token's, else the account's own."""
    centre = _viewer_centre(request, call_id)
    if centre is not None:
        return centre
    scope = scope_of(request)
    if scope.centre_code is None:
        raise NotAuthorised("an admin account belongs to no centre and cannot join calls")
    return scope.centre_code


async def sdp_offer(request: web.Request) -> web.Response:
    """POST {"type": "offer", "sdp"} → {"type": "answer", "sdp"} (complete, no trickle)."""
    call_id = _call_id(request)
    centre = _participant(request, call_id)
    # Checked (size first, then every line) before the conference records anything.
    offer = await offers.take_offer(request, call_id, centre, whip=False)
    conference = request.app[CONFERENCE]
    answer = await conference.join(call_id, centre, offer)
    # Read before any await: the token of the connection this answer belongs to.
    leave_token = conference.leave_token(call_id, centre)
    return web.json_response({"type": "answer", "sdp": answer, "leave_token": leave_token})


async def leave(request: web.Request) -> web.Response:
    """POST, optionally {"leave_token"}: leave now (with the token: only if it is still
    the connection that token was given with)."""
    call_id = _call_id(request)
    centre = _participant(request, call_id)
    token = None
    if request.can_read_body:
        token = (await read_body(request, Leave)).leave_token
    closed = await request.app[CONFERENCE].leave(call_id, centre, token=token)
    return web.json_response({"left": call_id, "closed": closed})


async def page_gone(request: web.Request) -> web.Response:
    """POST /calls/{id}: the call page's `pagehide` beacon (navigator.sendBeacon, which
    cannot set headers). It authenticates as the page does — the session cookie with the
    page's CSRF token as the `csrf_token` form field, or the join token in `?token=` —
    and ends only the connection whose `leave_token` it carries (see PROTOCOL.md)."""
    call_id = _call_id(request)
    centre = _participant(request, call_id)
    token = (await request.post()).get("leave_token")
    if not isinstance(token, str) or not token:
        raise InvalidInput("leave_token", "the leave token of the page's connection")
    await request.app[CONFERENCE].leave(call_id, centre, token=token, reason="page closed")
    return web.Response(status=204)


async def _require_caller_side(request: web.Request, call_id: int) -> None:
    scope = scope_of(request)

    def check(s: Session) -> None:
        call = calls.get_call(s, call_id)
        if scope.centre_code != call.caller_code:
            raise NotAuthorised("only the calling centre's operator does this")

    await request.app[DB].read(check)


async def floor(request: web.Request) -> web.Response:
    """POST {"centre": code | null}: who every participant sees besides the operator."""
    call_id = _call_id(request)
    await _require_caller_side(request, call_id)
    centre = (await read_body(request, Floor)).centre
    event = await request.app[CONFERENCE].give_floor(call_id, centre)
    return web.json_response(event.as_dict())


async def view(request: web.Request) -> web.Response:
    """POST {"small": [participant, …]}: the tiles the operator's page shows small."""
    call_id = _call_id(request)
    await _require_caller_side(request, call_id)
    small = (await read_body(request, View)).small
    return web.json_response({"small": await request.app[CONFERENCE].view(call_id, small)})


async def snapshot(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    await _require_caller_side(request, call_id)
    centre = (await read_body(request, Snapshot)).centre
    event = await request.app[CONFERENCE].snapshot(call_id, centre)
    return web.json_response(event.as_dict(), status=201)


async def call_events(request: web.Request) -> web.WebSocketResponse:
    """WebSocket of one call's events: the calling side sees all, an invitee its own."""
    call_id = _call_id(request)
    token_centre = _viewer_centre(request, call_id)

    def check(s: Session) -> bool:
        call = calls.get_call(s, call_id)
        if token_centre is None:
            calls.require_visible(s, scope_of(request), call_id)
        return _is_caller_side(s, request, call, token_centre)

    caller_side = await request.app[DB].read(check)
    mine = token_centre or (None if caller_side else scope_of(request).centre_code)
    page = token_centre or scope_of(request).centre_code  # whose page this socket is

    def wanted(event: Event) -> bool:
        if isinstance(event, CameraChanged):  # a camera's stream: the calling side's
            return event.call_id == call_id and caller_side
        if isinstance(event, Attendance):
            return event.call_id == call_id and (caller_side or event.centre in (mine, None))
        if isinstance(event, IssueRaised):  # an issue raised in this call
            return event.call_id == call_id and (caller_side or event.centre == mine)
        return False

    conference = request.app[CONFERENCE]
    if page is not None:
        conference.page_opened(call_id, page)
    try:
        return await live.stream(request, wanted, hello={"type": "hello", "call_id": call_id})
    finally:
        if page is not None:
            conference.page_closed(call_id, page)


async def media_map(request: web.Request) -> web.Response:
    """GET: which of the operator's receiving slots shows which centre, who is on, and
    each centre's labels as its recorded events left them (a page refreshes its tiles
    from this after any reconnect)."""
    call_id = _call_id(request)
    await _require_caller_side(request, call_id)
    conference = request.app[CONFERENCE]
    rows = await request.app[DB].read(calls.events, call_id)
    return web.json_response({"slots": conference.operator_slots(call_id),
                              "present": list(conference.present(call_id)),
                              "cameras": conference.cameras.listed(call_id),
                              **tile_labels(rows)})  # fmt: skip


STATUS_KINDS = (calls.RANG, calls.ANSWERED, calls.DECLINED, calls.NOT_ANSWERED, calls.JOINED,
                calls.LEFT)  # fmt: skip


def tile_labels(rows: list[calls.AttendanceRow]) -> dict[str, Any]:
    """{"tiles": {centre: {"status", "video", "faces", "verified"}}, "floor", "upto"}:
    the state the call's events leave each centre's tile in; `video` is `live`, `black`,
    `frozen` or empty (not joined: no picture to vouch for)."""
    tiles: dict[str, dict[str, Any]] = {}
    floor_holder: str | None = None
    upto = 0
    for row in rows:
        upto = max(upto, row.id or 0)
        if row.kind == calls.FLOOR:
            floor_holder = row.centre_code
        if row.centre_code is None:
            continue
        tile = tiles.get(row.centre_code)
        if tile is None:
            tile = tiles[row.centre_code] = {"status": "", "video": "", "faces": 0,
                                             "verified": False}  # fmt: skip
        if row.kind in STATUS_KINDS:
            tile["status"] = row.kind
            if row.kind == calls.LEFT:
                tile["video"] = ""
        elif row.kind == calls.VIDEO_LIVE:
            tile["video"] = "live"
        elif row.kind == calls.VIDEO_LOST:
            tile["video"] = str(row.data.get("state", "black"))
        elif row.kind == calls.FACES_SEEN:
            tile["faces"] = max(tile["faces"], int(row.data.get("faces", 0)))
        elif row.kind == calls.VERIFIED:
            tile["verified"] = True
    return {"tiles": tiles, "floor": floor_holder, "upto": upto}


async def call_page(request: web.Request) -> web.Response:
    """The call: the operator's live grid, or a centre's own view of the call."""
    call_id = _call_id(request)
    me = _participant(request, call_id)
    token = join_token(request)

    def run(s: Session) -> dict[str, Any]:
        call = calls.get_call(s, call_id)
        if token is None:
            calls.require_visible(s, scope_of(request), call_id)
        elif s.get(calls.Invitation, (call_id, me)) is None:
            raise NotAuthorised(f"centre {me} is not invited to call {call_id}")
        operator = token is None and me == call.caller_code
        invites = calls.invitations(s, call_id)
        if not operator:
            invites = [i for i in invites if i.centre_code == me]
        codes = [call.caller_code, *(i.centre_code for i in invites)]
        names = {c: centres.get(s, c).name for c in codes}
        return {"call": call, "operator": operator, "invites": invites, "names": names,
                "slot_count": len(calls.invitations(s, call_id)), "me": me}  # fmt: skip

    ctx = await request.app[DB].read(run)
    ctx["video_fps"], ctx["video_bps"] = publish_limits(request.app[SETTINGS])
    ctx["camera_slots"] = 0
    if ctx["operator"]:  # cameras it shows, and those of its scope it may add
        shown = request.app[CONFERENCE].cameras
        ctx["cameras"] = shown.listed(call_id)
        ctx["cameras_ever"] = shown.ever(call_id)  # each holds one receiving slot
        ctx["camera_choices"] = await request.app[DB].read(camera_choices, scope_of(request))
        ctx["camera_slots"] = camera_slots(ctx["camera_choices"], ctx["cameras_ever"])
    return render(request, "call.html", **ctx)


def camera_slots(choices: list[dict[str, Any]], ever: list[int]) -> int:
    """The receiving slots the operator's page offers for cameras, beyond one per invited
    centre: one for each camera it shows or may add, at most `call_cameras.MAX_PER_CALL`
    (the call's limit, which the offer check allows for). Offered up front, a camera
    added mid-call finds its slot on the page's connection as it is: no new peer, so no
    left/joined of the operator and no split of its recording. A camera beyond them (one
    added from elsewhere that the page did not list) makes the page offer again."""
    return min(call_cameras.MAX_PER_CALL, len({int(c["id"]) for c in choices} | set(ever)))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/calls/{call_id}", call_page),
        web.post("/calls/{call_id}", page_gone),
        web.get("/api/v1/calls/{call_id}/media", media_map),
        web.post("/api/v1/calls", launch),
        web.get("/api/v1/calls/{call_id}", get_call),
        web.post("/api/v1/calls/{call_id}/{verb:accept|decline}", answer),
        web.post("/api/v1/calls/{call_id}/end", end_call),
        web.post("/api/v1/calls/{call_id}/sdp", sdp_offer),
        web.post("/api/v1/calls/{call_id}/leave", leave),
        web.post("/api/v1/calls/{call_id}/floor", floor),
        web.post("/api/v1/calls/{call_id}/view", view),
        web.post("/api/v1/calls/{call_id}/snapshot", snapshot),
        web.get("/ws/calls/{call_id}", call_events),
    ]


__all__ = ["accounts", "routes"]
