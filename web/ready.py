"""GET /readyz: whether this process can do its work now (readiness), beside /healthz,
which says only that it answers (liveness).

Ready when every check passes, each within `CHECK_TIMEOUT` seconds:
- database: writable — a row is updated and rolled back on the one writer thread, so
  a read-only file, a full lock, a read-only replica or a dead server all fail it;
- scheduler: running, when DISPATCH_SCHEDULER is on ("disabled" passes, and so does
  "standby": another process on the same PostgreSQL holds the scheduler's lock);
- media: every configured media worker process running ("in process" passes when
  DISPATCH_MEDIA_WORKERS=0).

503 with the failing checks otherwise. The answer names components and the kind of
error only — no paths, addresses or data — since anyone may ask (a load balancer or
systemd has no login).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlmodel import Session

from .appkeys import CONFERENCE, DB, LEADERSHIP, MEDIA_POOL, SCHEDULER, SETTINGS

PATH = "/readyz"
CHECK_TIMEOUT = 5.0  # seconds each check may take before it counts as failed


def _try_write(session: Session) -> bool:
    """Take the write lock and change a row, then roll back: nothing is kept."""
    session.connection().execute(text("UPDATE alembic_version SET version_num = version_num"))
    session.rollback()
    return True


async def _database(app: web.Application) -> str:
    await app[DB].write(_try_write)
    return "ok"


async def _scheduler(app: web.Application) -> str:
    if not app[SETTINGS].scheduler:
        return "disabled"
    leadership = app.get(LEADERSHIP)
    if leadership is not None and leadership.shared and not leadership.leader:
        return "standby"  # another process on this PostgreSQL runs the jobs
    week = app.get(SCHEDULER)
    if week is None or not week.scheduler.running:
        raise RuntimeError("not running")
    return "ok"


async def _media(app: web.Application) -> str:
    if CONFERENCE not in app:
        raise RuntimeError("not started")
    pool = app.get(MEDIA_POOL)
    if pool is None:
        return "in process"
    up = sum(1 for w in pool.workers if w.process.returncode is None)
    if up < pool.size:
        raise RuntimeError(f"{up} of {pool.size} media workers running")
    return "ok"


CHECKS = {"database": _database, "scheduler": _scheduler, "media": _media}


async def _run(check: Any, app: web.Application) -> tuple[bool, str]:
    try:
        return True, await asyncio.wait_for(check(app), CHECK_TIMEOUT)
    except TimeoutError:
        return False, f"no answer within {CHECK_TIMEOUT:g} s"
    except RuntimeError as exc:
        return False, str(exc)
    except Exception as exc:  # the kind only: a driver's message may carry paths
        return False, f"failed: {type(exc).__name__}"


async def readyz(request: web.Request) -> web.Response:
    results = await asyncio.gather(*(_run(check, request.app) for check in CHECKS.values()))
    ready = all(ok for ok, _ in results)
    checks = {name: detail for name, (_, detail) in zip(CHECKS, results, strict=True)}
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503,
                             headers={"Cache-Control": "no-store"})  # fmt: skip


def install(app: web.Application) -> None:
    app.router.add_get(PATH, readyz)
