"""The JSON API described as OpenAPI 3.1, served at /api/v1/openapi.json.

Built from the route table below and the body models of web/bodies.py, so what the
handlers accept and what the document says are one thing. Invariant (checked by
tests/test_openapi.py): every /api/v1 route the application serves is in ROUTES and
every operation in ROUTES is served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import bodies, replies
from .appkeys import SETTINGS

ID: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": bodies.INT64_MAX}
CODE: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{12}$",
                        "description": "a centre's 12-digit statistical area code"}  # fmt: skip
TEXT: dict[str, Any] = {"type": "string", "maxLength": 100}
WEEK: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{4}-?[Ww][0-9]{2}$",
                        "description": "an ISO week, e.g. 2026-W41"}  # fmt: skip
FLAG: dict[str, Any] = {"type": "string", "enum": ["0", "1"]}
PERIODS = ("monthly", "quarterly", "half-year")
ISSUE_ACTIONS = ["assign", "comment", "edit", "escalate", "reopen", "resolve", "start"]

PATH_PARAMS: dict[str, dict[str, Any]] = {
    "code": CODE, "call_id": ID, "issue_id": ID, "event_id": ID, "id": ID, "report_id": ID,
    "recording_id": ID,
    "action": {"type": "string", "enum": ISSUE_ACTIONS},
    "username": {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{3,64}$"},
    "kind": {"type": "string", "enum": ["screening", "tracking"]},
}  # fmt: skip

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ERROR_STATUSES = (400, 401, 403, 404, 409, 413)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. invalid_input"},
        "message": {"type": "string", "description": "safe to show"},
        "field": {"type": "string", "description": "the input at fault, e.g. director.phone"},
        "problems": {"type": "array", "items": {"type": "object"}},
        "problem_count": {"type": "integer"},
    },
}


@dataclass(frozen=True)
class Op:
    """One operation: `path` in OpenAPI form, `query` names mapped to their schemas."""

    method: str
    path: str
    summary: str
    body: type[BaseModel] | None = None
    reply: type[BaseModel] | None = None  # the success answer's model (else: an object)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int = 200
    produces: tuple[str, ...] = ("application/json",)
    consumes: tuple[str, ...] = ()  # a raw (non-JSON) request body's types
    extra_statuses: tuple[int, ...] = ()
    public: bool = False


ROUTES: list[Op] = [
    Op("get", "/api/v1/openapi.json", "This document.", public=True),
    Op("post", "/api/v1/auth/token", "Log in with a username and password; a bearer token, "
       "shown once.", bodies.TokenRequest, replies.TokenOut, status=201,
       extra_statuses=(429,), public=True),
    Op("delete", "/api/v1/auth/token", "Revoke the bearer token this request carries."),
    Op("get", "/api/v1/me", "The caller's account and scope.", reply=replies.MeOut),
    Op("post", "/api/v1/me/password", "Change one's own password; every login and token "
       "of the account ends.", bodies.PasswordChange, replies.PasswordChanged),
    Op("post", "/api/v1/accounts/{username}/unlock", "Admin: clear the login throttle's "
       "failures of a username.", reply=replies.Unlocked),
    Op("get", "/api/v1/centers", "Centres in the caller's scope.", query={
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        "offset": {"type": "integer", "minimum": 0, "maximum": 10**9},
        "level": {"type": "string", "enum": ["district", "town", "village"]},
        "under": CODE, "q": TEXT}, reply=replies.CentrePage),
    Op("get", "/api/v1/centers/export", "The centres as a file.",
       query={"format": {"type": "string", "enum": ["csv", "xlsx"]}, "under": CODE},
       produces=("text/csv", XLSX)),
    Op("post", "/api/v1/centers/import", "Import centres (admin); the file is the body.",
       consumes=("text/csv", XLSX), extra_statuses=(422,)),
    Op("get", "/api/v1/centers/{code}", "One centre, its path and counts.",
       reply=replies.CentreOut),
    Op("get", "/api/v1/centers/{code}/children", "A centre's children.",
       reply=replies.CentreList),
    Op("patch", "/api/v1/centers/{code}", "Change a centre's contacts or (from above) its "
       "managed fields.", bodies.CentrePatch, replies.CentreOut),
    Op("get", "/api/v1/accounts", "Accounts in the caller's scope.",
       reply=replies.AccountList),
    Op("post", "/api/v1/accounts", "Add an account for a centre below the caller's.",
       bodies.NewAccount, replies.AccountOut, status=201),
    Op("get", "/api/v1/policy", "The policy in force.", query={"district": CODE}),
    Op("patch", "/api/v1/policy", "Change the policy (admin).", bodies.PolicyPatch,
       query={"district": CODE}),
    Op("get", "/api/v1/blackouts", "Blackouts in the caller's scope."),
    Op("post", "/api/v1/blackouts", "Add a blackout for a centre in scope.",
       bodies.NewBlackout, status=201),
    Op("delete", "/api/v1/blackouts/{id}", "Remove a blackout of a centre in scope."),
    Op("get", "/api/v1/rota", "A week's rota.", query={"week": WEEK, "district": CODE}),
    Op("post", "/api/v1/rota/build", "Build a week's rota (district operator, admin).",
       bodies.RotaBuild, status=201),
    Op("get", "/api/v1/rota/upcoming", "The caller's coming slots."),
    Op("get", "/api/v1/console", "The operator's console."),
    Op("post", "/api/v1/calls", "Ring a rota slot's callees, or ad-hoc ones, now.",
       bodies.CallLaunch, status=201),
    Op("get", "/api/v1/calls/{call_id}", "A call's state."),
    Op("get", "/api/v1/calls/{call_id}/media", "The operator's media slots and tiles."),
    Op("get", "/api/v1/calls/{call_id}/ice",
       "ICE servers for a participant's next connection, with fresh TURN credentials."),
    Op("post", "/api/v1/calls/{call_id}/accept", "Accept an invitation."),
    Op("post", "/api/v1/calls/{call_id}/decline", "Decline an invitation."),
    Op("post", "/api/v1/calls/{call_id}/end", "End a call (calling side)."),
    Op("post", "/api/v1/calls/{call_id}/sdp", "Join with an SDP offer; the answer back.",
       bodies.Offer),
    Op("post", "/api/v1/calls/{call_id}/leave", "Leave the call.", bodies.Leave),
    Op("post", "/api/v1/calls/{call_id}/floor", "Give the floor.", bodies.Floor),
    Op("post", "/api/v1/calls/{call_id}/view",
       "The participants the operator's page shows in small tiles (base layer only).",
       bodies.View),
    Op("post", "/api/v1/calls/{call_id}/snapshot", "Take a centre's picture.",
       bodies.Snapshot, status=201),
    Op("get", "/api/v1/calls/{call_id}/snapshots/{event_id}", "A snapshot.",
       produces=("image/jpeg",)),
    Op("get", "/api/v1/calls/{call_id}/cameras", "Cameras the call shows, and those the "
       "operator may add."),
    Op("post", "/api/v1/calls/{call_id}/cameras", "Show a camera of a centre in scope in "
       "the call (its operator).", bodies.CallCamera, status=201),
    Op("delete", "/api/v1/calls/{call_id}/cameras/{id}", "Stop showing a camera."),
    Op("post", "/api/v1/calls/{call_id}/cameras/{id}/snapshot", "Take a camera's picture.",
       status=201),
    Op("get", "/api/v1/cameras", "Cameras of the centres in scope (admin, district "
       "operator); URLs shown without credentials.", query={"under": CODE}),
    Op("post", "/api/v1/cameras", "Register a camera (admin, district operator).",
       bodies.NewCamera, status=201),
    Op("patch", "/api/v1/cameras/{id}", "Change a camera.", bodies.CameraPatch),
    Op("delete", "/api/v1/cameras/{id}", "Remove a camera."),
    Op("get", "/api/v1/issues", "Issues of a centre.", query={
        "centre": CODE, "state": TEXT, "overdue": FLAG, "inbox": FLAG}),
    Op("post", "/api/v1/issues", "Raise an issue.", bodies.NewIssue, status=201),
    Op("get", "/api/v1/issues/{issue_id}", "An issue and its history."),
    Op("post", "/api/v1/issues/{issue_id}/{action}", "Act on an issue.", bodies.IssueAction),
    Op("get", "/api/v1/ledgers/{kind}", "A town's screening or tracking ledger.", query={
        "town": CODE, "format": {"type": "string", "enum": ["xlsx", "csv"]},
        "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
        "day": {"type": "string", "format": "date"}}, produces=(XLSX, "text/csv")),
    Op("get", "/api/v1/journals", "Dispatch journals in scope.", query={
        "week": WEEK, "centre": CODE, "interrupted": FLAG, "unsigned": FLAG}),
    Op("get", "/api/v1/journals/{call_id}", "A call's journal."),
    Op("post", "/api/v1/journals/{call_id}/notes", "Keep the agenda and notes.",
       bodies.JournalNotes),
    Op("post", "/api/v1/journals/{call_id}/sign", "Sign off (seals the journal).", status=201),
    Op("post", "/api/v1/journals/{call_id}/amend", "Amend a sealed journal.",
       bodies.Amendment, status=201),
    Op("get", "/api/v1/calls/{call_id}/recording", "Whether the call is being recorded."),
    Op("post", "/api/v1/calls/{call_id}/recording", "Start or stop recording the call "
       "(its operator).", bodies.RecordingSwitch),
    Op("get", "/api/v1/calls/{call_id}/recordings", "The call's recorded files its journal "
       "shows the caller."),
    Op("get", "/api/v1/recordings/{recording_id}", "A recorded file (HTTP Range: 206).",
       produces=("video/webm", "video/x-matroska")),
    Op("get", "/api/v1/recordings/{recording_id}/download", "A recorded file, to save.",
       produces=("video/webm", "video/x-matroska")),
    Op("get", "/api/v1/reports", "Stored reports."),
    Op("get", "/api/v1/reports/{report_id}", "A stored report."),
    Op("get", "/api/v1/reports/weekly", "The weekly coverage report.",
       query={"week": WEEK, "district": CODE}),
    *(Op("get", f"/api/v1/reports/{kind}", f"The {kind} report.") for kind in PERIODS),
]  # fmt: skip


def _parameters(op: Op) -> list[dict[str, Any]]:
    params = []
    for name in _path_names(op.path):
        params.append({"name": name, "in": "path", "required": True,
                       "schema": PATH_PARAMS[name]})  # fmt: skip
    for name, schema in op.query.items():
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    return params


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Op) -> dict[str, Any]:
    error = {"description": "refused", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}  # fmt: skip
    json_schema = ({"$ref": f"#/components/schemas/{op.reply.__name__}"} if op.reply
                   else {"type": "object"})  # fmt: skip
    success: dict[str, Any] = {"description": "done", "content": {
        t: {"schema": json_schema if t == "application/json" else {}}
        for t in op.produces}}  # fmt: skip
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path.removeprefix('/api/v1/')}".replace("/", "_")
        .replace("{", "").replace("}", "").replace(".", "_").replace("-", "_"),
        "parameters": _parameters(op),
        "responses": {str(op.status): success,
                      **{str(s): error for s in (*ERROR_STATUSES, *op.extra_statuses)}},
    }  # fmt: skip
    if op.body is not None:
        ref = {"$ref": f"#/components/schemas/{op.body.__name__}"}
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    elif op.consumes:
        raw = {"schema": {"type": "string", "format": "binary"}}
        out["requestBody"] = {"required": True, "content": dict.fromkeys(op.consumes, raw)}
    if op.public:
        out["security"] = []
    return out


def _without_null_defaults(node: Any) -> Any:
    """A left-out field is simply absent: `"default": null` (pydantic's mark of an optional
    field) would contradict a type that refuses null."""
    if isinstance(node, dict):
        return {k: _without_null_defaults(v) for k, v in node.items()
                if not (k == "default" and v is None)}  # fmt: skip
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node


@lru_cache(maxsize=4)
def document(public_url: str = "") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once per URL; callers do not change it)."""
    models = {m for op in ROUTES for m in (op.body, op.reply) if m is not None}
    _, schemas = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}")  # fmt: skip
    components = {**_without_null_defaults(schemas.get("$defs", {})), "Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for op in ROUTES:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Pingan Dispatch API", "version": "1",
                 "description": "Identity comes from the bearer token or the session cookie "
                 "(with X-CSRF-Token on writes), never from a body."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "pd_session"},
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
    }  # fmt: skip
    if public_url:
        doc["servers"] = [{"url": public_url.rstrip("/")}]
    return doc


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[SETTINGS].public_url))


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/openapi.json", serve)]
