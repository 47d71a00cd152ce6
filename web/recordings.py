"""Recordings in the web: the operator starts and stops a call's recording, every page of
the call asks whether it is recorded (its mark), and a recorded file is listed, played
(HTTP Range) and downloaded by whoever may read its journal.

Invariants:
- Starting and stopping is the calling centre's operator's (as the floor is); anybody
  the call admits (an invited centre's join token, an account that may see the call)
  may read whether it is recorded.
- A file is served only when its `recorded` event is in the journal as `scope` may read
  it (web/journals.py `journal_for`): the calling side sees every file of its call, an
  invited centre its own (and call-wide ones, as with every journal event); anything
  else is refused (403 for a call outside the scope, 404 for a file not shown to it).
  Files still being written and removed files are not served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from sqlmodel import Session

from dispatch import calls, recordings
from dispatch.accounts import Role, Scope
from dispatch.calls import Attendance
from dispatch.errors import NotAuthorised, NotFound
from dispatch.events import Event
from dispatch.recordings import Recording
from dispatch.settings import recording_limits

from .appkeys import ACCOUNT, BUS, CONFERENCE, DB, SETTINGS, SWITCHBOARD
from .auth import join_token, scope_of
from .bodies import RecordingSwitch
from .journals import recordings_shown
from .reading import path_int, read_body

MEDIA_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}


async def recording_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the switchboard: the conference's recording gets its free-space floor, and
    files a dead server left unfinished are completed before any call starts."""
    _, min_free = recording_limits(app[SETTINGS])
    recording = app[CONFERENCE].recording
    recording.min_free_bytes = min_free
    await recording.recover()

    def follow(event: Event) -> None:
        if isinstance(event, Attendance) and event.kind in (calls.CALL_ENDED,
                                                            calls.CALL_INTERRUPTED):  # fmt: skip
            recording.call_over(event.call_id)

    unsubscribe = app[BUS].subscribe(follow)
    yield
    unsubscribe()


# --- the call's recording: on, off, and its mark ---------------------------------------


def _require_operator(s: Session, scope: Scope, call_id: int) -> None:
    call = calls.get_call(s, call_id)
    if scope.centre_code != call.caller_code or scope.role is Role.village:
        raise NotAuthorised("only the calling centre's operator starts or stops recording")


async def switch(request: web.Request) -> web.Response:
    """POST {"on": true | false}: record the call from now, or stop."""
    call_id = path_int(request, "call_id")
    if join_token(request) is not None:
        raise NotAuthorised("only the calling centre's operator starts or stops recording")
    scope = scope_of(request)
    on = (await read_body(request, RecordingSwitch)).on
    await request.app[DB].read(_require_operator, scope, call_id)
    recording = request.app[CONFERENCE].recording
    who = request[ACCOUNT].username
    if on:
        state = await recording.start(call_id, who)
    else:
        state = await recording.stop(call_id, who)
    return web.json_response(state)


async def state(request: web.Request) -> web.Response:
    """GET: whether the call is being recorded (every page of the call shows a mark)."""
    call_id = path_int(request, "call_id")
    token = join_token(request)
    if token is not None:
        request.app[SWITCHBOARD].centre_for_token(token, call_id)
        await request.app[DB].read(calls.get_call, call_id)
    else:
        await request.app[DB].read(calls.require_visible, scope_of(request), call_id)
    return web.json_response(request.app[CONFERENCE].recording.state(call_id))


# --- files: listed, played, downloaded ------------------------------------------------------


def _servable(s: Session, scope: Scope, recording_id: int) -> Recording:
    row = recordings.get(s, recording_id)
    if not any(r["id"] == row.id for r in recordings_shown(s, scope, row.call_id)):
        raise NotFound("recording", str(recording_id))
    if row.removed_at is not None:
        raise NotFound("recording file", f"{recording_id} (removed: {row.removed_reason})")
    return row


async def api_list(request: web.Request) -> web.Response:
    call_id = path_int(request, "call_id")
    rows = await request.app[DB].read(recordings_shown, scope_of(request), call_id)
    return web.json_response({"call_id": call_id, "recordings": rows})


async def _file(request: web.Request, download: bool) -> web.StreamResponse:
    scope, recording_id = scope_of(request), path_int(request, "recording_id")
    row = await request.app[DB].read(_servable, scope, recording_id)
    path = recordings.file_of(request.app[SETTINGS].data_path, row)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("recording file", Path(row.path).name)
    headers = {"Content-Type": MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
               "Cache-Control": "private, max-age=3600"}  # fmt: skip
    if download:
        headers["Content-Disposition"] = f'attachment; filename="call{row.call_id}-{path.name}"'
    return web.FileResponse(path, headers=headers)  # answers Range with 206


async def play(request: web.Request) -> web.StreamResponse:
    return await _file(request, download=False)


async def download(request: web.Request) -> web.StreamResponse:
    return await _file(request, download=True)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/calls/{call_id}/recording", switch),
        web.get("/api/v1/calls/{call_id}/recording", state),
        web.get("/api/v1/calls/{call_id}/recordings", api_list),
        web.get("/api/v1/recordings/{recording_id}", play),
        web.get("/api/v1/recordings/{recording_id}/download", download),
    ]
