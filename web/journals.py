"""The dispatch journal (调度日志) in the web: list with filters, detail with snapshots,
notes, sign-off (which seals it), amendments; printable page and PDF."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import calls, cameras, centres, recordings
from dispatch.accounts import Role, Scope, display_name
from dispatch.clock import SHANGHAI
from dispatch.errors import InvalidInput, NotAuthorised, NotFound
from logs import issues, journal, seal
from logs.journal import Journal

from .appkeys import ACCOUNT, CLOCK, DB
from .auth import scope_of
from .bodies import Amendment, JournalNotes
from .printing import render_pdf
from .reading import parse_week, path_int, read_body
from .render import render


def _call_id(request: web.Request) -> int:
    return path_int(request, "call_id")


def journal_for(s: Session, scope: Scope, call_id: int) -> Journal:
    """The journal as `scope` may read it: the calling side sees every centre; an invited
    centre only its own record and events (not the other villages')."""
    call = calls.require_visible(s, scope, call_id)
    whole = journal.load_journal(s, call_id)
    if scope.covers(centres.get(s, call.caller_code)):
        return whole
    mine = scope.centre_code
    return replace(
        whole,
        centres=tuple(c for c in whole.centres if c.centre == mine),
        events=tuple(e for e in whole.events if e.get("centre") in (mine, None)),
    )


def recordings_shown(
    s: Session, scope: Scope, call_id: int, found: Journal | None = None
) -> list[dict[str, Any]]:
    """The call's recorded files whose `recorded` event is in the journal as `scope` may
    read it (`found`, if already loaded), with their publisher's name and where to play
    and download them (web/recordings.py serves them under the same rule). A camera's
    file is the calling side's alone: only its operator's page ever showed the camera."""
    found = found or journal_for(s, scope, call_id)
    shown = {e["data"].get("recording") for e in found.events if e["kind"] == calls.RECORDED}
    caller_side = scope.covers(centres.get(s, calls.get_call(s, call_id).caller_code))
    rows = [r for r in recordings.of_call(s, call_id) if r.id in shown
            and (caller_side or cameras.camera_id_of(r.participant) is None)]  # fmt: skip
    names = {c: centres.get(s, c).name for c in {r.centre_code for r in rows} if c}
    for r in rows:  # a camera's file: the camera's registered name (removed: its id)
        camera_id = cameras.camera_id_of(r.participant)
        if camera_id is not None and (camera := s.get(cameras.Camera, camera_id)) is not None:
            names[r.participant] = camera.name
    return [{**r.as_dict(),
             "name": names.get(r.centre_code or r.participant, r.participant),
             "url": f"/api/v1/recordings/{r.id}",
             "download": f"/api/v1/recordings/{r.id}/download"} for r in rows]  # fmt: skip


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    return None if raw in (None, "") else raw in ("1", "true", "yes")


def _filters(request: web.Request) -> dict[str, Any]:
    week = request.query.get("week")
    return {
        "week": parse_week(week, request.app[CLOCK].today()) if week else None,
        "centre": request.query.get("centre") or None,
        "interrupted": _flag(request, "interrupted"),
        "unsigned": _flag(request, "unsigned"),
    }


def _list(s: Session, scope: Scope, filters: dict[str, Any]) -> list[journal.JournalSummary]:
    if filters["centre"]:
        scope.require(centres.get(s, centres.parse_code(filters["centre"], "centre")))
    return journal.list_journals(s, scope.root_path, **filters)


async def api_list(request: web.Request) -> web.Response:
    scope = scope_of(request)
    rows = await request.app[DB].read(_list, scope, _filters(request))
    return web.json_response({"journals": [r.as_dict() for r in rows]})


async def api_get(request: web.Request) -> web.Response:
    scope = scope_of(request)
    found = await request.app[DB].read(journal_for, scope, _call_id(request))
    return web.json_response(found.as_dict())


def _require_signer(s: Session, scope: Scope, call_id: int) -> calls.Call:
    call = calls.get_call(s, call_id)
    if scope.centre_code != call.caller_code or scope.role is Role.village:
        raise NotAuthorised("only the calling centre's operator keeps and signs its journal")
    return call


async def api_notes(request: web.Request) -> web.Response:
    scope, call_id = scope_of(request), _call_id(request)
    body = await read_body(request, JournalNotes)
    agenda, notes = body.agenda, body.notes
    who = request[ACCOUNT].username

    def run(s: Session) -> None:
        _require_signer(s, scope, call_id)
        journal.set_notes(s, call_id, agenda, notes, who)

    await request.app[DB].write(run)
    return web.json_response({"saved": call_id})


async def api_sign(request: web.Request) -> web.Response:
    scope, call_id = scope_of(request), _call_id(request)
    who, now = request[ACCOUNT].username, request.app[CLOCK].now()

    def run(s: Session) -> dict[str, Any]:
        _require_signer(s, scope, call_id)
        entry = seal.sign_off(s, call_id, who, now)
        return {"call_id": call_id, "seq": entry.seq, "sha256": entry.sha256,
                "prev_sha256": entry.prev_sha256}  # fmt: skip

    return web.json_response(await request.app[DB].write(run), status=201)


async def api_amend(request: web.Request) -> web.Response:
    scope, call_id = scope_of(request), _call_id(request)
    body = await read_body(request, Amendment)
    reason, text = body.reason, body.text
    if not text.strip():
        raise InvalidInput("text", "required text")
    who, now = request[ACCOUNT].username, request.app[CLOCK].now()

    def run(s: Session) -> dict[str, Any]:
        _require_signer(s, scope, call_id)
        a = seal.amend(s, call_id, who, reason, text, now=now)
        return {"n": a.n, "sha256": a.sha256, "prev_sha256": a.prev_sha256}

    return web.json_response(await request.app[DB].write(run), status=201)


async def snapshot_file(request: web.Request) -> web.StreamResponse:
    """A snapshot JPEG of a call, for whoever may read that centre's record."""
    scope, call_id = scope_of(request), _call_id(request)
    event_id = path_int(request, "event_id")

    def run(s: Session) -> Path:
        found = journal_for(s, scope, call_id)
        for event in found.events:
            if event["id"] == event_id and event["kind"] == calls.SNAPSHOT:
                return Path(event["data"]["path"])
        raise NotFound("snapshot", str(event_id))

    path = await request.app[DB].read(run)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("snapshot file", path.name)
    return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})


# --- pages -------------------------------------------------------------------------------


async def list_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    filters = _filters(request)
    rows = await request.app[DB].read(_list, scope, filters)
    names = await request.app[DB].read(_names, {r.caller for r in rows})
    head = None
    if scope.root_path is not None:
        head = await request.app[DB].read(seal.chain_head, scope.root_path.split("/")[0])
    return render(request, "journals.html", rows=rows, names=names, q=request.query, head=head)


def _names(s: Session, codes: set[str]) -> dict[str, str]:
    return {c: centres.get(s, c).name for c in codes}


def _detail(s: Session, scope: Scope, call_id: int) -> dict[str, Any]:
    found = journal_for(s, scope, call_id)
    call = calls.get_call(s, call_id)
    signer = scope.centre_code == call.caller_code and scope.role is not Role.village
    names = {c.centre: c.name for c in found.centres} | {found.caller: found.caller_name}
    return {"j": found, "raised": issues.raised_in(s, scope, call_id), "may_sign": signer,
            "recordings": recordings_shown(s, scope, call_id, found), "names": names,
            "operator_name": display_name(s, found.operator)}  # fmt: skip


async def detail_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    ctx = await request.app[DB].read(_detail, scope, _call_id(request))
    return render(request, "journal.html", shanghai=SHANGHAI, **ctx)


async def detail_pdf(request: web.Request) -> web.Response:
    scope, call_id = scope_of(request), _call_id(request)
    ctx = await request.app[DB].read(_detail, scope, call_id)
    data = await asyncio.to_thread(render_pdf, "journal_print.html", shanghai=SHANGHAI,
                                   journals=[ctx["j"]])  # fmt: skip
    return web.Response(body=data, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="journal-{call_id}.pdf"'})  # fmt: skip


def routes() -> list[web.RouteDef]:
    return [
        web.get("/journals", list_page),
        web.get("/journals/{call_id}", detail_page),
        web.get("/journals/{call_id}/pdf", detail_pdf),
        web.get("/api/v1/journals", api_list),
        web.get("/api/v1/journals/{call_id}", api_get),
        web.post("/api/v1/journals/{call_id}/notes", api_notes),
        web.post("/api/v1/journals/{call_id}/sign", api_sign),
        web.post("/api/v1/journals/{call_id}/amend", api_amend),
        web.get("/api/v1/calls/{call_id}/snapshots/{event_id}", snapshot_file),
    ]
