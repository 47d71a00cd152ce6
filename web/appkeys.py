"""Typed keys for what the application holds; one place so handlers and the root agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from dispatch.accounts import Account, Scope
from dispatch.clock import Clock
from dispatch.conference import Conference
from dispatch.db import Database
from dispatch.events import EventBus
from dispatch.settings import Settings
from dispatch.switchboard import Switchboard
from media.pool import WorkerPool
from schedules.jobs import WeekScheduler
from schedules.leader import Leadership

from .throttle import LoginThrottle

if TYPE_CHECKING:  # web.metrics imports these keys
    from .metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)  # the time every handler and job decides by
DB = web.AppKey("db", Database)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
THROTTLE = web.AppKey("throttle", LoginThrottle)
BUS = web.AppKey("bus", EventBus)
SECRET = web.AppKey("secret", bytes)  # the session key, read once at start-up
SCHEDULER = web.AppKey("scheduler", WeekScheduler)  # running only on the leader
LEADERSHIP = web.AppKey("leadership", Leadership)
SWITCHBOARD = web.AppKey("switchboard", Switchboard)
CONFERENCE = web.AppKey("conference", Conference)
MEDIA_POOL = web.AppKey("media_pool", WorkerPool)  # absent: media in this process
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

# Per-request state, set only by the auth middleware.
SCOPE = web.RequestKey("scope", Scope)
ACCOUNT = web.RequestKey("account", Account)
VIA = web.RequestKey("via", str)  # "session" or "token"
CSRF = web.RequestKey("csrf", str)
