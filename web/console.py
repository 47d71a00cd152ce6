"""The operator's console (调度台): today's slots and the rest of the week, each with
"call now"; an ad-hoc launcher over the operator's towns and villages; the week's live
coverage per town and village; who is still to be reached today; the open calls.

`GET /console` is the page, `GET /api/v1/console` the same data as JSON; the page
reloads it whenever the centre's event socket (`/ws/events`) reports a ring, an
answer, a verified video, an end or a missed slot. Calls are launched through
`POST /api/v1/calls` (web/calls.py), which checks the scope again.

Invariant: district and town operators only, each over its own centre: the slots it
calls, the centres below it, its own calls. Identity comes from the session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlmodel import Session, col, select

from dispatch import calls, centres
from dispatch.accounts import Role, Scope
from dispatch.centres import Centre, Level
from dispatch.clock import SHANGHAI
from dispatch.errors import NotAuthorised
from dispatch.wording import callees_phrase
from logs import progress
from schedules import plans
from schedules.workdays import IsoWeek

from .appkeys import CLOCK, DB
from .auth import scope_of
from .render import render


def _operator(request: web.Request) -> Scope:
    scope = scope_of(request)
    if scope.role not in (Role.district_operator, Role.town_operator) or not scope.centre_code:
        raise NotAuthorised("the console is for district and town operators")
    return scope


def console_data(session: Session, scope: Scope, now: datetime) -> dict[str, Any]:
    """Everything the console shows, for the operator's own centre."""
    now = now.astimezone(SHANGHAI)
    me = centres.get(session, scope.centre_code or "")
    below = [c for c in centres.all_below(session, me, include_self=True) if c.active]
    names = {c.code: c.name for c in below}
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week_end = datetime.combine(IsoWeek.containing(now.date()).monday, datetime.min.time(),
                                SHANGHAI) + timedelta(days=7)  # fmt: skip
    mine = [s for s in plans.slots_for_centre(session, me.code, day_start, week_end)
            if s.caller_code == me.code]  # fmt: skip
    slots = [{
        **s.as_dict(),
        "callee_names": [names.get(c, c) for c in s.callees],
        "callee_text": dict(zip(("zh", "en"), callees_phrase(s.callees, names), strict=True)),
        "today": s.start.astimezone(SHANGHAI).date() == now.date(),
        "ended": s.end.astimezone(SHANGHAI) <= now,
    } for s in mine]  # fmt: skip
    return {
        "centre": me.code,
        "centre_name": me.name,
        "level": me.level,
        "now": now.isoformat(),
        "slots": slots,
        "tree": _tree(me, below),
        "progress": progress.week_progress(session, me, now).as_dict(),
        "open": _open_calls(session, me.code, names),
    }


def _tree(me: Centre, below: list[Centre]) -> list[dict[str, Any]]:
    """The towns an ad-hoc call can reach, each with its villages (a town operator: its own)."""
    towns = [c for c in below if c.level == Level.town]
    villages: dict[str, list[Centre]] = {}
    for c in below:
        if c.level == Level.village and c.parent_code:
            villages.setdefault(c.parent_code, []).append(c)
    return [{"code": t.code, "name": t.name, "self": t.code == me.code,
             "villages": [{"code": v.code, "name": v.name}
                          for v in sorted(villages.get(t.code, []), key=lambda c: c.code)]}
            for t in sorted(towns, key=lambda c: c.code)]  # fmt: skip


def _open_calls(session: Session, caller: str, names: dict[str, str]) -> list[dict[str, Any]]:
    stmt = select(calls.Call).where(
        calls.Call.caller_code == caller, col(calls.Call.state).in_(calls.OPEN_STATES)
    )
    out = []
    for call in session.exec(stmt.order_by(col(calls.Call.id))):
        data = calls.summary(session, call)
        for invite in data["invites"]:
            invite["name"] = names.get(invite["centre"], invite["centre"])
        out.append(data)
    return out


async def console_page(request: web.Request) -> web.Response:
    scope = _operator(request)
    data = await request.app[DB].read(console_data, scope, request.app[CLOCK].local())
    return render(request, "console.html", data=data)


async def console_api(request: web.Request) -> web.Response:
    """GET /api/v1/console: the console's data for the operator's centre."""
    scope = _operator(request)
    now = request.app[CLOCK].local()
    return web.json_response(await request.app[DB].read(console_data, scope, now))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console", console_page),
        web.get("/api/v1/console", console_api),
    ]
