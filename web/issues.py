"""The issue ledger (问题台账) in the web: raise, act, escalate; the board of a centre, the
escalation inbox, an issue's history; the dispute-screening ledgers as files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import centres
from dispatch.errors import InvalidInput
from logs import issues, ledgers

from .appkeys import BUS, CLOCK, DB
from .auth import scope_of
from .bodies import IssueAction, NewIssue
from .reading import parse_int, path_int, read_body
from .render import render

FILE_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _issue_id(request: web.Request) -> int:
    return path_int(request, "issue_id")


async def _act(request: web.Request, fn: Callable[[Session], issues.Outcome]) -> web.Response:
    """Run an action, publish its events once committed, answer the issue (overdue by the
    application's clock, as every page and answer below)."""
    outcome = await request.app[DB].write(fn)
    for event in outcome.events:
        request.app[BUS].publish(event)
    today = request.app[CLOCK].today()
    return web.json_response(
        outcome.issue.as_dict(today), status=201 if outcome.change.action == "raised" else 200
    )


async def raise_issue(request: web.Request) -> web.Response:
    """POST /api/v1/issues {centre, category, severity, parties, description, deadline?,
    call_id?, subcategory?, assignee?}"""
    scope, now = scope_of(request), request.app[CLOCK].now()
    body = await read_body(request, NewIssue)

    def run(s: Session) -> issues.Outcome:
        return issues.raise_issue(
            s, scope, centre=body.centre, category=body.category, severity=body.severity,
            parties=body.parties, description=body.description, deadline=body.deadline,
            call_id=body.call_id, subcategory=body.subcategory, assignee=body.assignee, now=now,
        )  # fmt: skip

    return await _act(request, run)


ACTIONS = {"start", "assign", "resolve", "escalate", "reopen", "comment", "edit"}


async def act(request: web.Request) -> web.Response:
    """POST /api/v1/issues/{id}/{action} {note?, assignee?, changes?}"""
    scope = scope_of(request)
    issue_id, action = _issue_id(request), request.match_info["action"]
    body = await read_body(request, IssueAction)
    note, now = body.note, request.app[CLOCK].now()

    def run(s: Session) -> issues.Outcome:
        if action == "assign":
            return issues.assign(s, scope, issue_id, body.assignee, note, now=now)
        if action == "edit":
            if body.changes is None:
                raise InvalidInput("changes", "an object of the fields to correct")
            return issues.edit(s, scope, issue_id, body.changes.sent(), now=now)
        fn = {"start": issues.start, "resolve": issues.resolve, "escalate": issues.escalate,
              "reopen": issues.reopen, "comment": issues.comment}[action]  # fmt: skip
        return fn(s, scope, issue_id, note, now=now)

    return await _act(request, run)


async def get_issue(request: web.Request) -> web.Response:
    scope = scope_of(request)
    issue_id, today = _issue_id(request), request.app[CLOCK].today()

    def run(s: Session) -> dict[str, Any]:
        issue = issues.get_issue(s, scope, issue_id)
        changes = issues.history(s, scope, issue_id)
        return {**issue.as_dict(today),
                "history": [c.as_dict() for c in changes]}  # fmt: skip

    return web.json_response(await request.app[DB].read(run))


async def list_issues(request: web.Request) -> web.Response:
    """GET /api/v1/issues?centre=&state=&overdue=1&inbox=1"""
    scope = scope_of(request)
    centre = request.query.get("centre") or scope.centre_code
    if centre is None:
        raise InvalidInput("centre", "an admin names the centre whose issues to list")
    today = request.app[CLOCK].today()

    def run(s: Session) -> list[dict[str, Any]]:
        if request.query.get("inbox") == "1":
            rows = issues.inbox(s, scope, centre)
        else:
            rows = _board(s, request, centre, today)
        return [i.as_dict(today) for i in rows]

    return web.json_response({"issues": await request.app[DB].read(run)})


def _board(s: Session, request: web.Request, centre: str, today: date) -> list[issues.Issue]:
    """The board of `centre`, filtered by ?state= and ?overdue=1."""
    state = request.query.get("state") or None
    overdue = request.query.get("overdue") == "1"
    return issues.board(s, scope_of(request), centre, state=state, overdue_only=overdue,
                        today=today)  # fmt: skip


async def ledger_file(request: web.Request) -> web.Response:
    """GET /api/v1/ledgers/{screening|tracking}?town=CODE&format=xlsx|csv&from=&to=&day="""
    scope = scope_of(request)
    kind, fmt = request.match_info["kind"], request.query.get("format", "xlsx")
    if fmt not in FILE_TYPES:
        raise InvalidInput("format", "xlsx or csv")
    town = request.query.get("town") or scope.centre_code
    if not town:
        raise InvalidInput("town", "name the town")
    today = request.app[CLOCK].today()

    start, end = ledgers.half_month(today)
    start_s, end_s = request.query.get("from") or str(start), request.query.get("to") or str(end)
    day = request.query.get("day") or str(today)

    def run(s: Session) -> bytes:
        if kind == "screening":
            return ledgers.screening_file(s, scope, town, start_s, end_s, fmt)
        return ledgers.tracking_file(s, scope, town, day, fmt)

    data = await request.app[DB].read(run)
    period = f"{start_s}_{end_s}" if kind == "screening" else day  # checked by the ledger
    return web.Response(body=data, content_type=FILE_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{kind}-{town}-{period}.{fmt}"'})  # fmt: skip


# --- pages -----------------------------------------------------------------------------


async def board_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    centre = request.query.get("centre") or scope.centre_code
    today = request.app[CLOCK].today()

    def run(s: Session) -> dict[str, Any]:
        code = centre or centres.roots(s)[0].code
        root = scope.require(centres.get(s, code))
        rows = _board(s, request, code, today)
        inbox = issues.inbox(s, scope, code) if root.level != "village" else []
        names = {c.code: c.name for c in centres.all_below(s, root, include_self=True)}
        names.update({c.code: c.name for c in centres.path_up(s, root)})
        return {"centre": root, "rows": rows, "inbox": inbox, "names": names,
                "villages": [c for c in centres.all_below(s, root, include_self=True)]}  # fmt: skip

    ctx = await request.app[DB].read(run)
    return render(request, "issues.html", today=today,
                  request_state=request.query.get("state", ""), call_id=_call_param(request),
                  **ctx)  # fmt: skip


def _call_param(request: web.Request) -> int | None:
    raw = request.query.get("call", "")
    return parse_int(raw, "call") if raw else None


async def issue_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    issue_id = _issue_id(request)

    def run(s: Session) -> dict[str, Any]:
        issue = issues.get_issue(s, scope, issue_id)
        codes = {issue.centre_code, issue.holder_code, issue.assignee_code} - {None}
        return {"issue": issue, "history": issues.history(s, scope, issue_id),
                "names": {c: centres.get(s, c).name for c in codes if c}}  # fmt: skip

    ctx = await request.app[DB].read(run)
    return render(request, "issue.html", today=request.app[CLOCK].today(), **ctx)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/issues", board_page),
        web.get("/issues/{issue_id}", issue_page),
        web.get("/api/v1/issues", list_issues),
        web.post("/api/v1/issues", raise_issue),
        web.get("/api/v1/issues/{issue_id}", get_issue),
        web.post("/api/v1/issues/{issue_id}/{action:" + "|".join(sorted(ACTIONS)) + "}", act),
        web.get("/api/v1/ledgers/{kind:screening|tracking}", ledger_file),
    ]
