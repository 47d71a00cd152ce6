"""The one place where domain errors become HTTP responses.

API paths (/api/, /healthz) answer JSON `{"error", "message", "field"?, "problems"?}`;
pages answer the error page in the user's language. No traceback ever reaches a client.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from dispatch.errors import (
    Conflict,
    DispatchError,
    ImportRejected,
    InvalidInput,
    NotAuthenticated,
    NotAuthorised,
    NotFound,
)

from .render import render_error

log = logging.getLogger(__name__)


class TooLarge(InvalidInput):
    """A request body (or a part of it, named by `field`) over its size limit: 413."""


STATUS: list[tuple[type[DispatchError], int, str]] = [
    (ImportRejected, 422, "import_rejected"),
    (TooLarge, 413, "too_large"),
    (InvalidInput, 400, "invalid_input"),
    (NotFound, 404, "not_found"),
    (NotAuthenticated, 401, "not_authenticated"),
    (NotAuthorised, 403, "forbidden"),
    (Conflict, 409, "conflict"),
    (DispatchError, 400, "bad_request"),
]


def wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith(("/api/", "/ws/", "/calendar/", "/whip/"))
        or request.path == "/healthz"
    )


def status_of(exc: DispatchError) -> tuple[int, str]:
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def json_error(status: int, code: str, message: str, **extra: object) -> web.Response:
    body: dict[str, object] = {"error": code, "message": message, **extra}
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DispatchError as exc:
        status, code = status_of(exc)
        if wants_json(request):
            extra: dict[str, object] = {}
            if isinstance(exc, InvalidInput):
                extra["field"] = exc.field
            if isinstance(exc, ImportRejected):
                extra["problems"] = [p.as_dict() for p in exc.problems]
                extra["problem_count"] = exc.total if exc.total is not None else len(exc.problems)
            resp = json_error(status, code, exc.message, **extra)
            if status == 401:
                resp.headers["WWW-Authenticate"] = 'Bearer realm="pingan-dispatch"'
            return resp
        if status == 401:
            raise web.HTTPFound(f"/login?next={request.path_qs}") from None
        return render_error(request, status, exc.message)
    except web.HTTPException as exc:
        if wants_json(request) and exc.status >= 400:
            return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json(request):
            return json_error(500, "internal", "internal error; the server logged it")
        return render_error(request, 500, "internal error")
