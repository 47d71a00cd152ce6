"""JSON API v1. Every handler takes its scope from `auth.scope_of(request)`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import accounts, centre_files, centres, logins
from dispatch.errors import InvalidInput, NotAuthorised

from .appkeys import ACCOUNT, DB, SETTINGS, THROTTLE
from .auth import scope_of
from .bodies import CentrePatch, NewAccount, PasswordChange
from .reading import parse_int, read_body
from .sessions import get_session

MAX_PAGE = 1000
EXPORT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return parse_int(raw, name, lo=lo, hi=hi)


def _under_path(session: Session, scope: accounts.Scope, under: str | None) -> str | None:
    """The subtree to search: `under` if the scope covers it, else the scope's own root."""
    if under:
        return accounts.get_centre_in_scope(session, scope, under).path
    return scope.root_path


async def me(request: web.Request) -> web.Response:
    scope = scope_of(request)
    return web.json_response({"account": request[ACCOUNT].as_dict(), "scope": scope.as_dict()})


async def list_centres(request: web.Request) -> web.Response:
    scope = scope_of(request)
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    level = centres.parse_level(request.query["level"]) if request.query.get("level") else None
    under, query = request.query.get("under"), request.query.get("q")

    def run(s: Session) -> tuple[list[centres.Centre], int]:
        return centres.search(
            s, _under_path(s, scope, under), level=level, query=query, limit=limit, offset=offset
        )

    rows, total = await request.app[DB].read(run)
    return web.json_response(
        {"total": total, "limit": limit, "offset": offset, "centers": [c.as_dict() for c in rows]}
    )


async def get_centre(request: web.Request) -> web.Response:
    scope = scope_of(request)
    code = request.match_info["code"]

    def run(s: Session) -> dict[str, Any]:
        centre = accounts.get_centre_in_scope(s, scope, code)
        counts = centres.counts_below(s, centre.path)
        return {
            **centre.as_dict(),
            # Ancestors by code and name only: enough to place the centre, no contacts.
            "path": [{"code": a.code, "name": a.name} for a in centres.path_up(s, centre)],
            "children": len(centres.children(s, centre.code)),
            "counts": {"by_level": counts.by_level, "by_class": counts.by_class},
            "may_manage": scope.may_manage(centre),
        }

    return web.json_response(await request.app[DB].read(run))


async def centre_children(request: web.Request) -> web.Response:
    scope = scope_of(request)
    code = request.match_info["code"]

    def run(s: Session) -> list[dict[str, Any]]:
        centre = accounts.get_centre_in_scope(s, scope, code)
        return [c.as_dict() for c in centres.children(s, centre.code)]

    return web.json_response({"centers": await request.app[DB].read(run)})


async def patch_centre(request: web.Request) -> web.Response:
    scope = scope_of(request)
    code = request.match_info["code"]
    changes = (await read_body(request, CentrePatch)).sent()
    centre = await request.app[DB].write(accounts.update_centre, scope, code, changes)
    return web.json_response(centre.as_dict())


async def export_centres(request: web.Request) -> web.Response:
    scope = scope_of(request)
    fmt = request.query.get("format", "csv")
    if fmt not in EXPORT_TYPES:
        raise InvalidInput("format", "use csv or xlsx")
    under = request.query.get("under")

    def run(s: Session) -> tuple[bytes, str]:
        path = _under_path(s, scope, under)
        name = under or scope.centre_code or "all"
        return centre_files.export_centres(s, path, fmt), name

    data, name = await request.app[DB].read(run)
    return web.Response(
        body=data,
        content_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="centres-{name}.{fmt}"'},
    )


async def import_centres(request: web.Request) -> web.Response:
    """POST the file itself as the body (text/csv or the xlsx type). Admin only."""
    scope = scope_of(request)
    accounts.require_admin(scope)
    fmt = {v: k for k, v in EXPORT_TYPES.items()}.get(request.content_type)
    if fmt is None:
        raise InvalidInput("Content-Type", "send text/csv or an xlsx file as the body")
    data = await request.read()
    max_rows = request.app[SETTINGS].import_max_rows
    result = await request.app[DB].write(centre_files.import_centres, data, fmt,
                                         max_rows=max_rows)  # fmt: skip
    return web.json_response(
        {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}
    )


async def list_accounts(request: web.Request) -> web.Response:
    scope = scope_of(request)
    rows = await request.app[DB].read(accounts.accounts_in_scope, scope)
    return web.json_response({"accounts": [a.as_dict() for a in rows]})


async def create_account(request: web.Request) -> web.Response:
    """Admins add any account; operators add accounts for centres strictly below theirs."""
    scope = scope_of(request)
    body = await read_body(request, NewAccount)
    centre_code = body.centre

    def run(s: Session) -> accounts.Account:
        if not scope.is_admin:
            if not centre_code:
                raise InvalidInput("centre", "required")
            centre = accounts.get_centre_in_scope(s, scope, centre_code)
            if not scope.may_manage(centre):
                raise NotAuthorised("you may add accounts only for centres below yours")
        return accounts.create_account(
            s,
            username=body.username,
            password=body.password,
            role=body.role,
            centre_code=centre_code,
            display_name=body.display_name,
        )

    account = await request.app[DB].write(run)
    return web.json_response(account.as_dict(), status=201)


async def change_password(request: web.Request) -> web.Response:
    """The caller's own password. Every login and token of the account ends with it,
    this request's included: the client logs in again with the new password."""
    scope_of(request)
    body = await read_body(request, PasswordChange)
    account_id = request[ACCOUNT].id
    await request.app[DB].write(logins.change_password, account_id, body.current_password,
                                body.new_password)  # fmt: skip
    get_session(request).renew()
    return web.json_response({"changed": True, "logged_out": True})


async def unlock_account(request: web.Request) -> web.Response:
    """Admin: forget the login throttle's failures of a username from every address."""
    accounts.require_admin(scope_of(request))
    username = request.match_info["username"]
    return web.json_response({"unlocked": request.app[THROTTLE].unlock(username)})


def routes() -> list[web.RouteDef]:
    # The fixed paths come before /centers/{code} so "export" is never taken for a code.
    return [
        web.get("/api/v1/me", me),
        web.get("/api/v1/centers", list_centres),
        web.get("/api/v1/centers/export", export_centres),
        web.post("/api/v1/centers/import", import_centres),
        web.get("/api/v1/centers/{code}", get_centre),
        web.get("/api/v1/centers/{code}/children", centre_children),
        web.patch("/api/v1/centers/{code}", patch_centre),
        web.get("/api/v1/accounts", list_accounts),
        web.post("/api/v1/accounts", create_account),
        web.post("/api/v1/accounts/{username}/unlock", unlock_account),
        web.post("/api/v1/me/password", change_password),
    ]
