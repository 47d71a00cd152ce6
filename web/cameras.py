"""Cameras in the web: the register (pages and JSON API) and cameras in a call.

The register (`/cameras`, `/api/v1/cameras`) is for an admin (every centre) and a
district operator (its district's centres); anyone else gets 403. A call's operator
(the calling centre's account) adds a camera of a centre in its scope to the call,
removes it, and snapshots it (`/api/v1/calls/{id}/cameras…`).

Invariant: no answer, page or log line carries a camera's credentials — the URL
shown is `dispatch.cameras.Camera.shown_url`, and only `dispatch.cameras.pull_url`
(here, to hand the media the stream) ever puts them back.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import calls, cameras, centres
from dispatch.accounts import Role, Scope
from dispatch.errors import InvalidInput, NotAuthorised

from .appkeys import CONFERENCE, DB, SECRET, SETTINGS
from .auth import redirect, scope_of
from .bodies import CallCamera, CameraPatch, NewCamera
from .reading import parse_int, path_int, read_body
from .render import render


def _key(request: web.Request) -> bytes:
    return cameras.credentials_key(request.app[SECRET])


def _listed(s: Session, scope: Scope, under: str | None = None) -> list[dict[str, Any]]:
    found = cameras.list_in_scope(s, scope, under=under)
    names = cameras.names_of(s, found)
    return [c.as_dict(names.get(c.centre_code, "")) for c in found]


# --- the register: JSON API ------------------------------------------------------------


async def api_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    cameras.require_manager(scope)
    under = request.query.get("under") or None
    return web.json_response({"cameras": await request.app[DB].read(_listed, scope, under)})


async def api_add(request: web.Request) -> web.Response:
    scope = scope_of(request)
    body = await read_body(request, NewCamera)
    key = _key(request)

    def run(s: Session) -> dict[str, Any]:
        camera = cameras.register(s, scope, key, name=body.name, centre=body.centre,
                                  url=body.url, username=body.username,
                                  password=body.password)  # fmt: skip
        return camera.as_dict(centres.get(s, camera.centre_code).name)

    return web.json_response(await request.app[DB].write(run), status=201)


async def api_change(request: web.Request) -> web.Response:
    scope = scope_of(request)
    camera_id = path_int(request, "id")
    sent = (await read_body(request, CameraPatch)).sent()
    changes = {k: v for k, v in sent.items() if v is not None}  # null: left as it is
    key = _key(request)

    def run(s: Session) -> dict[str, Any]:
        camera = cameras.change(s, scope, key, camera_id, changes)
        return camera.as_dict(centres.get(s, camera.centre_code).name)

    return web.json_response(await request.app[DB].write(run))


async def api_remove(request: web.Request) -> web.Response:
    scope = scope_of(request)
    camera_id = path_int(request, "id")
    await request.app[DB].write(cameras.remove, scope, camera_id)
    return web.json_response({"removed": camera_id})


# --- the register: pages -----------------------------------------------------------------


async def cameras_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    cameras.require_manager(scope)

    def run(s: Session) -> dict[str, Any]:
        return {"cameras": _listed(s, scope), "centres": _centre_choices(s, scope),
                "camera": None, "address": ""}  # fmt: skip

    return render(request, "cameras.html", **await request.app[DB].read(run))


async def camera_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    cameras.require_manager(scope)
    camera_id = path_int(request, "id")

    def run(s: Session) -> dict[str, Any]:
        camera = cameras.get_in_scope(s, scope, camera_id)
        return {"camera": camera.as_dict(centres.get(s, camera.centre_code).name),
                "address": camera.url, "centres": _centre_choices(s, scope)}  # fmt: skip

    return render(request, "camera.html", **await request.app[DB].read(run))


def _centre_choices(s: Session, scope: Scope) -> list[tuple[str, str]]:
    """(code, name) of every centre of the district operator's district, in tree order;
    none for the admin, who types a code (a province has tens of thousands)."""
    if scope.centre_code is None:
        return []
    own = centres.get(s, scope.centre_code)
    return [(c.code, c.name) for c in centres.all_below(s, own, include_self=True)]


def _form_text(form: Any, name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(name, "must be text")
    return value


async def cameras_submit(request: web.Request) -> web.StreamResponse:
    """POST /cameras: add (action=add), change (action=edit, id) or remove (action=remove)."""
    scope = scope_of(request)
    cameras.require_manager(scope)
    form = await request.post()
    action = _form_text(form, "action") or "add"
    key = _key(request)

    def run(s: Session) -> None:
        if action == "add":
            cameras.register(s, scope, key, name=_form_text(form, "name"),
                             centre=_form_text(form, "centre"), url=_form_text(form, "url"),
                             username=_form_text(form, "username") or None,
                             password=_form_text(form, "password") or None)  # fmt: skip
        elif action == "edit":
            changes: dict[str, Any] = {k: _form_text(form, k) for k in ("name", "centre", "url")}
            # Credentials left empty on the form are kept; "clear" drops them.
            if _form_text(form, "clear_credentials") == "1":
                changes.update(username="", password="")
            else:
                for k in ("username", "password"):
                    if _form_text(form, k):
                        changes[k] = _form_text(form, k)
            cameras.change(s, scope, key, parse_int(_form_text(form, "id"), "id"), changes)
        elif action == "remove":
            cameras.remove(s, scope, parse_int(_form_text(form, "id"), "id"))
        else:
            raise InvalidInput("action", "add, edit or remove")

    await request.app[DB].write(run)
    return redirect("/cameras")


# --- cameras in a call -------------------------------------------------------------------


def camera_choices(s: Session, scope: Scope) -> list[dict[str, Any]]:
    """The cameras an operator may show in its calls: those of the centres in scope."""
    return _listed(s, scope)


async def _require_operator(request: web.Request, call_id: int) -> Scope:
    """The calling centre's operator of an existing call."""
    scope = scope_of(request)

    def check(s: Session) -> None:
        call = calls.get_call(s, call_id)
        if scope.centre_code != call.caller_code or scope.role is Role.village:
            raise NotAuthorised("only the calling centre's operator shows cameras in a call")

    await request.app[DB].read(check)
    return scope


async def call_cameras(request: web.Request) -> web.Response:
    """GET: the cameras the call shows and those the operator could add."""
    call_id = path_int(request, "call_id")
    scope = await _require_operator(request, call_id)
    available = await request.app[DB].read(_listed, scope, None)
    return web.json_response({"shown": request.app[CONFERENCE].cameras.listed(call_id),
                              "available": available})  # fmt: skip


async def call_camera_add(request: web.Request) -> web.Response:
    """POST {"camera": id}: show a camera of a centre in the operator's scope."""
    call_id = path_int(request, "call_id")
    scope = await _require_operator(request, call_id)
    camera_id = (await read_body(request, CallCamera)).camera
    key = _key(request)

    def run(s: Session) -> tuple[cameras.Camera, str]:
        camera = cameras.get_in_scope(s, scope, camera_id)
        return camera, cameras.pull_url(key, camera)

    camera, url = await request.app[DB].read(run)
    settings = request.app[SETTINGS]
    options = {"timeout": settings.camera_timeout, "retry_max": settings.camera_retry_max}
    shown = await request.app[CONFERENCE].cameras.add(
        call_id, camera_id, camera.name, camera.centre_code, url, options
    )
    return web.json_response(shown, status=201)


async def call_camera_remove(request: web.Request) -> web.Response:
    call_id = path_int(request, "call_id")
    await _require_operator(request, call_id)
    camera_id = path_int(request, "id")
    await request.app[CONFERENCE].cameras.remove(call_id, camera_id)
    return web.json_response({"removed": camera_id})


async def call_camera_snapshot(request: web.Request) -> web.Response:
    call_id = path_int(request, "call_id")
    await _require_operator(request, call_id)
    event = await request.app[CONFERENCE].cameras.snapshot(call_id, path_int(request, "id"))
    return web.json_response(event.as_dict(), status=201)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/cameras", cameras_page),
        web.post("/cameras", cameras_submit),
        web.get("/cameras/{id}", camera_page),
        web.get("/api/v1/cameras", api_list),
        web.post("/api/v1/cameras", api_add),
        web.patch("/api/v1/cameras/{id}", api_change),
        web.delete("/api/v1/cameras/{id}", api_remove),
        web.get("/api/v1/calls/{call_id}/cameras", call_cameras),
        web.post("/api/v1/calls/{call_id}/cameras", call_camera_add),
        web.delete("/api/v1/calls/{call_id}/cameras/{id}", call_camera_remove),
        web.post("/api/v1/calls/{call_id}/cameras/{id}/snapshot", call_camera_snapshot),
    ]
