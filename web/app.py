"""The composition root: `create_app(settings)` wires every part of the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from dispatch.calls import VERIFIED, Attendance
from dispatch.clock import SYSTEM, Clock
from dispatch.conference import Conference
from dispatch.events import Event, EventBus
from dispatch.settings import (
    Settings,
    ice_settings,
    media_span_at,
    media_workers,
    publish_limits,
    video_codec,
)
from dispatch.switchboard import Switchboard
from media.pool import WorkerPool
from media.room import Room
from schedules import outcome

from . import (
    admin,
    api,
    auth,
    calls,
    cameras,
    console,
    guard,
    headers,
    issues,
    journals,
    live,
    metrics,
    openapi,
    pages,
    ready,
    recordings,
    remote,
    reports,
    rota,
    scheduling,
    turn,
    whip,
)
from .appkeys import (
    BUS,
    CLOCK,
    CONFERENCE,
    DB,
    MEDIA_POOL,
    SECRET,
    SETTINGS,
    SWITCHBOARD,
    TEMPLATES,
    THROTTLE,
)
from .errors import error_middleware
from .render import make_templates
from .schema import open_database
from .sessions import session_middleware
from .throttle import LoginThrottle

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "pd_session"


async def healthz(request: web.Request) -> web.Response:
    ok = await request.app[DB].read(request.app[DB].ping)
    return web.json_response({"status": "ok" if ok else "degraded", "db": "ok" if ok else "down"})


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = open_database(app[SETTINGS].db_url)
    app[DB] = db
    log.info("database ready: %s", db.engine.url.render_as_string(hide_password=True))
    yield
    db.close()


async def _switchboard(app: web.Application) -> AsyncIterator[None]:
    """The switchboard, after the database; calls a dead process left open are
    interrupted first. Verified attendance marks the call's rota slot held (by the one
    coverage rule, `schedules.outcome`)."""
    db, bus = app[DB], app[BUS]
    settings = app[SETTINGS]
    board = Switchboard(db, bus, app[SECRET], clock=app[CLOCK])
    await board.recover()
    ice, workers = ice_settings(settings), media_workers(settings)
    publish_limits(settings)  # a bad cap stops the start, not a call page later
    pool = WorkerPool(workers, ice, span_at=media_span_at(settings)) if workers else None
    if pool is not None:
        await pool.start()  # media in worker processes; 0 workers: in this process
    conference = Conference(board, ice, settings.data_path, video_codec=video_codec(settings),
                            rooms=pool.room if pool is not None else Room)  # fmt: skip
    pending: set[asyncio.Task[bool]] = set()  # strong references until each write is done

    def follow(event: Event) -> None:
        if isinstance(event, Attendance) and event.kind == VERIFIED and event.slot_id:
            held = db.write(outcome.record_verified, event.slot_id, event.centre or "")
            task = asyncio.get_running_loop().create_task(held)
            pending.add(task)
            task.add_done_callback(pending.discard)

    unsubscribe = bus.subscribe(follow)
    app[SWITCHBOARD] = board
    app[CONFERENCE] = conference
    if pool is not None:
        app[MEDIA_POOL] = pool  # read by /readyz and /metrics
    yield
    unsubscribe()
    await conference.close()
    if pool is not None:
        await pool.close()
    board.close()


def create_app(settings: Settings, *, clock: Clock = SYSTEM) -> web.Application:
    """The server for `settings`; `clock` is the time it decides by (tests set one)."""
    secret = settings.session_key()  # read (or created) once, not per request
    app = web.Application(
        middlewares=[
            error_middleware,
            remote.forwarded_middleware(settings.trusted_proxies),  # before the Origin check
            headers.origin_middleware(settings.public_url),
            session_middleware(
                secret,
                cookie_name=SESSION_COOKIE,
                max_age=settings.session_max_age,
                secure=settings.cookie_secure,
            ),
            auth.auth_middleware,
        ],
        client_max_size=20 * 1024 * 1024,
    )
    guard.install(app, header_timeout=settings.header_timeout,
                  body_timeout=settings.body_timeout,
                  per_address=settings.max_connections_per_address,
                  trusted=settings.trusted_proxies)  # fmt: skip
    app.on_response_prepare.append(headers.add_headers)
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[SECRET] = secret
    app[TEMPLATES] = make_templates()
    app[THROTTLE] = LoginThrottle()
    app[BUS] = EventBus()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_switchboard)
    app.cleanup_ctx.append(recordings.recording_ctx)  # after the switchboard
    app.cleanup_ctx.append(scheduling.scheduler_ctx)  # the leader's, on PostgreSQL
    metrics.install(app)  # /metrics; after the parts it reads
    ready.install(app)  # /readyz
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/ws/events", live.events_socket),
            web.get("/login", auth.login_page),
            web.post("/login", auth.login_submit),
            web.post("/logout", auth.logout),
            web.post("/api/v1/auth/token", auth.token_create),
            web.delete("/api/v1/auth/token", auth.token_revoke),
            *pages.routes(),
            *openapi.routes(),
            *api.routes(),
            *rota.routes(),
            *admin.routes(),
            *calls.routes(),
            *cameras.routes(),
            *console.routes(),
            *whip.routes(),
            *turn.routes(),
            *issues.routes(),
            *journals.routes(),
            *recordings.routes(),
            *reports.routes(),
            web.static("/static", STATIC_DIR),
        ]
    )
    return app
