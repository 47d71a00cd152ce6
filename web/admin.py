"""Policy, blackouts and calendar overrides: the admin page and the JSON API.

Policy and the calendar are the admin's; a blackout may be set by anyone whose scope
covers the centre (a town knows its villages' market days).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import accounts, centres
from dispatch.errors import InvalidInput, NotAuthorised
from schedules import policy, workdays
from schedules.policy import Policy

from .appkeys import ACCOUNT, DB
from .auth import redirect, scope_of
from .bodies import NewBlackout, PolicyPatch
from .reading import parse_int, path_int, read_body
from .render import render

# How the admin form shows each field; "json" fields are edited as JSON text.
FORM_FIELDS: list[tuple[str, str]] = [
    ("district_mode", "choice"), ("district_meeting_minutes", "int"),
    ("district_inspection_minutes", "int"), ("town_patrol_minutes", "int"),
    ("town_patrols_per_week", "int"), ("screening_minutes", "int"),
    ("screening_days", "json"), ("supervision_district_every_months", "int"),
    ("supervision_town_every_months", "int"), ("supervision_minutes", "int"),
    ("district_consoles", "int"), ("town_consoles", "int"), ("windows", "json"),
    ("slot_step_minutes", "int"), ("reserve_fraction", "float"),
    ("spot_checks_per_week", "int"), ("spot_check_minutes", "int"),
    ("answer_deadline_seconds", "int"), ("min_verified_seconds", "int"),
    ("reminder_minutes", "int"), ("record_district_meetings", "bool"),
]  # fmt: skip


def _district_param(session: Session, raw: str | None) -> str | None:
    if not raw:
        return None
    return centres.get_at_level(session, raw, centres.Level.district, "district").code


def _parse_form_value(name: str, kind: str, raw: str) -> Any:
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "json":
            return json.loads(raw)
        if kind == "bool":
            if raw not in ("0", "1"):
                raise ValueError(raw)
            return raw == "1"
    except (ValueError, RecursionError):
        raise InvalidInput(name, f"cannot read {raw!r}") from None
    return raw


async def policy_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    accounts.require_admin(scope)

    def run(s: Session) -> dict[str, Any]:
        district = _district_param(s, request.query.get("district"))
        current = policy.policy_for(s, district).as_dict()
        return {
            "district": district,
            "districts": [(c.code, c.name) for c in centres.roots(s)],
            "values": {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
                for k, v in current.items()
            },
            "blackouts": [
                (b, centres.get(s, b.centre_code).name) for b in policy.blackouts_under(s, None)
            ],
            "overrides": workdays.list_overrides(s),
        }

    return render(request, "policy.html", fields=FORM_FIELDS, **await request.app[DB].read(run))


async def policy_submit(request: web.Request) -> web.StreamResponse:
    scope = scope_of(request)
    accounts.require_admin(scope)
    form = await request.post()
    action = str(form.get("action", "policy"))
    who = request[ACCOUNT].username
    district_raw = str(form.get("district", "")) or None

    def run(s: Session) -> None:
        if action == "policy":
            district = _district_param(s, district_raw)
            current = policy.policy_for(s, district).as_dict()
            changes = {}
            for name, kind in FORM_FIELDS:
                if name in form:
                    value = _parse_form_value(name, kind, str(form[name]))
                    if value != current[name]:
                        changes[name] = value
            if changes:
                policy.set_policy(s, district, changes, who)
        elif action == "blackout":
            spec = _blackout_spec({k: str(v) for k, v in form.items()})
            policy.add_blackout(s, str(form.get("centre", "")), spec, who)
        elif action == "remove_blackout":
            policy.remove_blackout(s, _int(form.get("id"), "id"))
        elif action == "override":
            day = _day(form.get("day"))
            workday = str(form.get("workday")) == "1"
            workdays.set_override(s, day, workday, str(form.get("note", ""))[:200], who)
        elif action == "clear_override":
            workdays.clear_override(s, _day(form.get("day")))
        else:
            raise InvalidInput("action", f"unknown action {action!r}")

    await request.app[DB].write(run)
    suffix = f"?district={district_raw}" if district_raw and action == "policy" else ""
    return redirect("/admin/policy" + suffix)


def _int(value: Any, name: str) -> int:
    return parse_int(str(value if value is not None else ""), name, lo=0)


def _day(value: Any) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("day", f"must be a date like 2026-10-10, got {value!r}") from None


def _blackout_spec(form: dict[str, str]) -> dict[str, Any]:
    """The admin form's fields → the spec `policy.add_blackout` takes."""
    kind = form.get("kind", "")
    spec: dict[str, Any] = {"kind": kind, "note": form.get("note", "")}
    if kind == "weekday":
        spec["weekday"] = _int(form.get("weekday"), "weekday")
    elif kind == "market_days":
        try:
            spec["day_digits"] = [int(d) for d in form.get("day_digits", "").split(",") if d]
        except ValueError:
            raise InvalidInput("day_digits", "digits separated by commas, e.g. 1,4,7") from None
    elif kind == "date_range":
        spec["start"], spec["end"] = form.get("start"), form.get("end")
    return spec


# --- JSON API ------------------------------------------------------------------------------


async def api_policy(request: web.Request) -> web.Response:
    scope_of(request)  # any account may read the policy that governs it
    district = await request.app[DB].read(_district_param, request.query.get("district"))
    value = await request.app[DB].read(policy.policy_for, district)
    return web.json_response({"district": district, "policy": value.as_dict()})


async def api_policy_patch(request: web.Request) -> web.Response:
    scope = scope_of(request)
    accounts.require_admin(scope)
    changes = (await read_body(request, PolicyPatch)).sent()
    who = request[ACCOUNT].username

    def run(s: Session) -> Policy:
        return policy.set_policy(s, _district_param(s, request.query.get("district")), changes, who)

    value = await request.app[DB].write(run)
    return web.json_response({"policy": value.as_dict()})


async def api_blackouts(request: web.Request) -> web.Response:
    scope = scope_of(request)
    rows = await request.app[DB].read(policy.blackouts_under, scope.root_path)
    return web.json_response({"blackouts": [r.as_dict() for r in rows]})


async def api_blackout_add(request: web.Request) -> web.Response:
    scope = scope_of(request)
    body = await read_body(request, NewBlackout)
    code, spec = body.centre, {k: v for k, v in body.sent().items() if k != "centre"}
    who = request[ACCOUNT].username

    def run(s: Session) -> policy.BlackoutRecord:
        accounts.get_centre_in_scope(s, scope, code)
        return policy.add_blackout(s, code, spec, who)

    record = await request.app[DB].write(run)
    return web.json_response(record.as_dict(), status=201)


async def api_blackout_remove(request: web.Request) -> web.Response:
    scope = scope_of(request)
    blackout_id = path_int(request, "id")

    def run(s: Session) -> None:
        record = s.get(policy.BlackoutRecord, blackout_id)
        if record is None or not scope.covers(centres.get(s, record.centre_code)):
            raise NotAuthorised(f"blackout {blackout_id} is not one of your centres'")
        policy.remove_blackout(s, blackout_id)

    await request.app[DB].write(run)
    return web.json_response({"removed": blackout_id})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/policy", policy_page),
        web.post("/admin/policy", policy_submit),
        web.get("/api/v1/policy", api_policy),
        web.patch("/api/v1/policy", api_policy_patch),
        web.get("/api/v1/blackouts", api_blackouts),
        web.post("/api/v1/blackouts", api_blackout_add),
        web.delete("/api/v1/blackouts/{id}", api_blackout_remove),
    ]
