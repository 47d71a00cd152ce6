"""Calls in the web: launch, answer, end, and the call's state — the JSON API and the
console page. The media (SDP) endpoints join these once the room exists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import accounts, calls, centres
from dispatch.accounts import Role, Scope
from dispatch.calls import Attendance
from dispatch.errors import InvalidInput, NotAuthorised
from dispatch.events import Event
from dispatch.switchboard import Switchboard
from schedules import plans, policy, views
from schedules.plans import SHANGHAI

from .appkeys import BUS, DB, SETTINGS, SWITCHBOARD
from .auth import bearer_token, read_json, scope_of
from .render import render


async def switchboard_ctx(app: web.Application) -> AsyncIterator[None]:
    """The switchboard, after the database; calls a dead process left open are
    interrupted first. Verified attendance marks the call's rota slot held."""
    db, bus = app[DB], app[BUS]
    board = Switchboard(db, bus, app[SETTINGS].session_key())
    await board.recover()
    pending: set[asyncio.Task[bool]] = set()  # strong references until each write is done

    def follow(event: Event) -> None:
        if isinstance(event, Attendance) and event.kind == calls.VERIFIED and event.slot_id:
            task = asyncio.get_running_loop().create_task(db.write(plans.mark_held, event.slot_id))
            pending.add(task)
            task.add_done_callback(pending.discard)

    unsubscribe = bus.subscribe(follow)
    app[SWITCHBOARD] = board
    yield
    unsubscribe()
    board.close()


def _call_id(request: web.Request) -> int:
    try:
        return int(request.match_info["call_id"])
    except ValueError:
        raise InvalidInput("call_id", "must be a number") from None


def callee_of(request: web.Request, call_id: int) -> str:
    """The invited centre acting: the join token's, else the logged-in account's."""
    token = bearer_token(request)
    if token is not None and token.startswith(calls.TOKEN_PREFIX + "."):
        return request.app[SWITCHBOARD].centre_for_token(token, call_id)
    scope = scope_of(request)
    if scope.centre_code is None:
        raise NotAuthorised("an admin account belongs to no centre and cannot answer calls")
    return scope.centre_code


async def launch(request: web.Request) -> web.Response:
    """POST /api/v1/calls {"slot_id"} or {"callees": [...], "kind"?} — ring them now."""
    scope = scope_of(request)
    body = await read_json(request)
    slot_id = body.get("slot_id")
    if slot_id is not None and (isinstance(slot_id, bool) or not isinstance(slot_id, int)):
        raise InvalidInput("slot_id", "must be a number")

    def plan(s: Session) -> dict[str, Any]:
        if scope.centre_code is None:
            raise NotAuthorised("only a district or town operator launches calls")
        if slot_id is not None:
            slot = plans.get_slot(s, slot_id)
            if slot.caller_code != scope.centre_code:
                raise NotAuthorised(f"rota slot {slot_id} is not your centre's call")
            callees, kind = list(slot.callees), slot.kind
        else:
            callees, kind = body.get("callees"), body.get("kind", "inspection")
            if not isinstance(callees, list) or not all(isinstance(c, str) for c in callees):
                raise InvalidInput("callees", "a list of 12-digit centre codes")
            if kind not in ("inspection", "meeting"):
                raise InvalidInput("kind", "inspection or meeting")
        district = (centres.get(s, scope.centre_code).path.split("/"))[0]
        rules = policy.policy_for(s, district)
        return {"callees": callees, "kind": kind, "deadline": rules.answer_deadline_seconds,
                "minimum": rules.min_verified_seconds}  # fmt: skip

    p = await request.app[DB].read(plan)
    launched, tokens = await request.app[SWITCHBOARD].launch(
        scope, p["callees"], kind=p["kind"], slot_id=slot_id,
        answer_deadline_seconds=p["deadline"], min_verified_seconds=p["minimum"],
    )  # fmt: skip
    call_id = launched.call.id
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
    token = bearer_token(request)
    if token is not None and token.startswith(calls.TOKEN_PREFIX + "."):
        return request.app[SWITCHBOARD].centre_for_token(token, call_id)
    return None


def _is_caller_side(
    s: Session, request: web.Request, call: calls.Call, token_centre: str | None
) -> bool:
    if token_centre is not None:
        return False
    return scope_of(request).covers(centres.get(s, call.caller_code))


async def answer(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    centre = callee_of(request, call_id)
    accept = request.match_info["verb"] == "accept"
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
    recorded = await request.app[SWITCHBOARD].end(call_id, f"ended by {scope.username}")
    return web.json_response({"events": [e.as_dict() for e in recorded]})


# --- the console -------------------------------------------------------------------------


async def console(request: web.Request) -> web.Response:
    """Today's slots of the operator's centre, each with Launch, and its open calls."""
    scope = scope_of(request)
    if scope.role not in (Role.district_operator, Role.town_operator):
        raise NotAuthorised("the console is for district and town operators")
    now = datetime.now(SHANGHAI)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def run(s: Session) -> dict[str, Any]:
        code = scope.centre_code or ""
        today = plans.slots_for_centre(s, code, day_start, day_start + timedelta(days=1))
        mine = [x for x in today if x.caller_code == code]
        names = {c.code: c.name for c in centres.all_below(s, centres.get(s, code), True)}
        return {"slots": [views.SlotView(x, tuple(x.callees), True) for x in mine],
                "names": names, "open": _open_calls(s, scope)}  # fmt: skip

    return render(request, "console.html", shanghai=SHANGHAI, now=now,
                  **await request.app[DB].read(run))  # fmt: skip


def _open_calls(s: Session, scope: Scope) -> list[dict[str, Any]]:
    stmt = calls.select(calls.Call).where(
        calls.Call.caller_code == scope.centre_code,
        calls.col(calls.Call.state).in_(calls.OPEN_STATES),
    )
    return [calls.summary(s, c) for c in s.exec(stmt)]


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console", console),
        web.post("/api/v1/calls", launch),
        web.get("/api/v1/calls/{call_id}", get_call),
        web.post("/api/v1/calls/{call_id}/{verb:accept|decline}", answer),
        web.post("/api/v1/calls/{call_id}/end", end_call),
    ]


__all__ = ["accounts", "routes", "switchboard_ctx"]
