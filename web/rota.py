"""The rota in the web: week pages, slot pages, the JSON API and the calendar feeds."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import accounts, centres
from dispatch.accounts import Role, Scope
from dispatch.clock import SHANGHAI
from dispatch.errors import NotAuthorised
from schedules import ics, planner, plans, views
from schedules.jobs import WeekScheduler
from schedules.workdays import IsoWeek

from .appkeys import ACCOUNT, CLOCK, DB, SCHEDULER, SECRET, SETTINGS
from .auth import redirect, scope_of
from .bodies import RotaBuild
from .reading import parse_week, path_int, read_body
from .render import render

WEEKDAYS = {"zh": "一二三四五六日", "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}


def _week_param(request: web.Request) -> IsoWeek:
    raw = request.query.get("week")
    if raw:
        return parse_week(raw, request.app[CLOCK].today())
    return IsoWeek.containing(request.app[CLOCK].today())


def may_build(scope: Scope, district: str) -> bool:
    return scope.is_admin or (
        scope.role is Role.district_operator and scope.centre_code == district
    )


async def _build(
    request: web.Request, week: IsoWeek, district: str | None, seed: int | None
) -> plans.RotaWeek:
    scope = scope_of(request)
    who = request[ACCOUNT].username
    now = request.app[CLOCK].now()  # a week built mid-week is planned from the next day
    scheduler: WeekScheduler | None = request.app.get(SCHEDULER)

    def run(s: Session) -> tuple[plans.RotaWeek, list[Any]]:
        code = views.district_of_scope(s, scope, district)
        if not may_build(scope, code):
            raise NotAuthorised("only the district operator or an admin builds the rota")
        record = planner.build_week(s, code, week, seed=seed, by=who, now=now)
        times = scheduler.times_for(s, plans.week_slots(s, record.id or 0)) if scheduler else []
        return record, times

    record, times = await request.app[DB].write(run)
    if scheduler is not None:
        scheduler.add_jobs(times)
    return record


# --- API -------------------------------------------------------------------------------


async def api_week(request: web.Request) -> web.Response:
    scope = scope_of(request)
    week = _week_param(request)
    district = request.query.get("district")
    view = await request.app[DB].read(views.week_view, scope, week, district)
    return web.json_response(view.as_dict())


async def api_build(request: web.Request) -> web.Response:
    body = await read_body(request, RotaBuild)
    week, district = parse_week(body.week, request.app[CLOCK].today()), body.district
    await _build(request, week, district, body.seed)
    view = await request.app[DB].read(views.week_view, scope_of(request), week, district)
    return web.json_response(view.as_dict(), status=201)


async def api_upcoming(request: web.Request) -> web.Response:
    scope = scope_of(request)
    now = request.app[CLOCK].local()
    found = await request.app[DB].read(views.upcoming, scope, now)
    return web.json_response({"slots": [v.as_dict() for v in found]})


# --- pages -----------------------------------------------------------------------------


IN = 0  # the column of calls the centre takes (it is called)


def _days(view: views.WeekView, centre: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows for the week page: each day with the centre's calls by its console, and a
    column (IN) for the calls it takes; and the columns that have any call."""
    workdays = set(view.workdays)
    not_planned = set(view.not_planned)
    cells: dict[tuple[str, int], list[views.SlotView]] = defaultdict(list)
    for v in view.slots:
        column = v.slot.console if v.slot.caller_code == centre else IN
        cells[(v.slot.start.astimezone(SHANGHAI).date().isoformat(), column)].append(v)
    columns = sorted({column for _day, column in cells}) or [1]
    days = [
        {"date": d, "workday": d.isoformat() in workdays,
         "not_planned": d.isoformat() in not_planned,
         "cells": {c: cells.get((d.isoformat(), c), []) for c in columns}}
        for d in view.week.days()
    ]  # fmt: skip
    return days, columns


async def week_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    week = _week_param(request)
    asked = request.query.get("centre")

    def run(s: Session) -> dict[str, Any]:
        district = views.district_of_scope(s, scope, request.query.get("district"))
        centre = asked or scope.centre_code or district
        accounts.get_centre_in_scope(s, scope, centre)
        view = views.week_view(s, scope, week, district, centre=centre)
        days, columns = _days(view, centre)
        return {
            "towns": [c for c in centres.children(s, view.district) if scope.covers(c)],
            "centre": centre,
            "view": view,
            "days": days,
            "columns": columns,
            "can_build": may_build(scope, view.district),
            "feed": _feed_url(request, scope.centre_code) if scope.centre_code else None,
        }

    ctx = await request.app[DB].read(run)
    return render(
        request,
        "rota.html",
        week=week,
        shanghai=SHANGHAI,
        weekdays=WEEKDAYS,
        **ctx,
    )


async def build_page(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    week = parse_week(str(form.get("week", "")), request.app[CLOCK].today())
    await _build(request, week, str(form.get("district") or "") or None, None)
    return redirect(f"/rota?week={week}")


async def slot_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    slot_id = path_int(request, "slot_id")
    shown, names = await request.app[DB].read(views.slot_for_scope, scope, slot_id)
    return render(request, "slot.html", v=shown, names=names, shanghai=SHANGHAI)


# --- calendar feeds ----------------------------------------------------------------------


def feed_token(secret: bytes, code: str) -> str:
    """The feed's capability token: calendar apps cannot log in, so the URL carries it."""
    return hmac.new(secret, f"ics:{code}".encode(), hashlib.sha256).hexdigest()[:32]


def _feed_url(request: web.Request, code: str) -> str:
    settings = request.app[SETTINGS]
    token = feed_token(request.app[SECRET], code)
    return f"{settings.public_url.rstrip('/')}/calendar/{code}.ics?token={token}"


async def calendar_feed(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    code = centres.parse_code(request.match_info["code"])
    given = request.query.get("token", "")
    if not hmac.compare_digest(given, feed_token(request.app[SECRET], code)):
        raise NotAuthorised("the feed token is missing or wrong for this centre")
    now = request.app[CLOCK].now()

    def run(s: Session) -> bytes:
        centre = centres.get(s, code)
        slots = plans.slots_for_centre(s, code, now - timedelta(days=35),
                                       now + timedelta(days=70), cancelled=True)  # fmt: skip
        names = {code: centre.name}
        if any(slot.caller_code == code for slot in slots):
            names.update({c.code: c.name for c in centres.all_below(s, centre)})
        for slot in slots:
            names.setdefault(slot.caller_code, centres.get(s, slot.caller_code).name)
        return ics.feed(
            slots,
            names,
            title=f"{centre.name}综治中心 视频调度",
            join_url=settings.public_url.rstrip("/") + "/rota/slots/{slot_id}",
            viewer=code,
        )

    body = await request.app[DB].read(run)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/rota", week_page),
        web.post("/rota/build", build_page),
        web.get("/rota/slots/{slot_id}", slot_page),
        web.get("/calendar/{code}.ics", calendar_feed),
        web.get("/api/v1/rota", api_week),
        web.post("/api/v1/rota/build", api_build),
        web.get("/api/v1/rota/upcoming", api_upcoming),
    ]
