"""Prometheus metrics at /metrics: what the main process knows of the service.

Every metric is service-wide. No label names a centre, a call, an account or an
address; each label takes values from a fixed set (a job's kind, a report's kind and
format, a media kind, a media worker's index), so the page tells a reader how busy
the service is, never who is calling whom.

    pingan_calls_live                      calls whose media room is open here
    pingan_call_participants               participants connected in those rooms
    pingan_media_in_process                1: the media runs in this process
    pingan_media_workers                   media worker processes running
    pingan_media_workers_wanted            DISPATCH_MEDIA_WORKERS, resolved
    pingan_media_worker_participants{worker}
    pingan_media_worker_restarts_total     workers started to replace one that died
    pingan_media_frames_forwarded_total{kind}   (media in this process only, see below)
    pingan_media_bytes_forwarded_total{kind}    RTP bytes sent to viewers
    pingan_media_frames_dropped_total{kind}     left out for a viewer's weak link
    pingan_event_loop_lag_seconds          histogram: how late a 0.5 s timer fires
    pingan_scheduler_job_runs_total{job,outcome}  ok | failed | missed | skipped
    pingan_scheduler_job_seconds{job}      histogram of a run's duration
    pingan_report_seconds{report,format,source}   scheduled runs and requests

Frames, bytes and drops are counted by media/forwarding.py per viewer slot (`Slot.
forwarded`, `Slot.dropped`, its RtpOut's `octets`). When the media runs in worker
processes (DISPATCH_MEDIA_WORKERS above 0, the default) those slots live in the
workers, which send the main process only presence, the floor and audio levels: the
three families are then not reported, rather than reported as zeros. The slots are
sampled every `SAMPLE_INTERVAL` seconds and at each scrape; a slot's last counts
before it closes are kept in the totals, so the counters only grow, and what a slot
forwards in its last fraction of a second may be missed.

Who may read it (`metrics_gate`): a request from an address in DISPATCH_METRICS_ALLOW
(the client's address, through DISPATCH_TRUSTED_PROXIES), one bearing
DISPATCH_METRICS_TOKEN, or a logged-in system administrator. A stranger is sent to the
login page (as for any page); a logged-in account of another role gets 403. A scrape
with a wrong token is judged as a stranger.

Not counted: reports produced by the start-up catch-up (`report_jobs.catch_up` runs
before this listens), and the media counts of worker processes (above).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dispatch.accounts import Role
from dispatch.errors import InvalidInput, NotAuthorised
from dispatch.settings import Settings, media_workers
from media.forwarding import Slot
from media.room import Room
from schedules.jobs import WeekScheduler

from .appkeys import ACCOUNT, CONFERENCE, MEDIA_POOL, METRICS, SCHEDULER, SETTINGS
from .remote import client_address

log = logging.getLogger(__name__)

PATH = "/metrics"
SAMPLE_INTERVAL = 0.5  # seconds: the loop-lag timer, and how often media slots are read
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REPORT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
JOB_BUCKETS = REPORT_BUCKETS
KINDS = ("audio", "video")
# Scheduled jobs that produce reports, by job id (logs/report_jobs.py).
REPORT_JOBS = {"weekly-reports": "weekly", "period-reports": "period"}
REPORT_FORMATS = frozenset({"json", "csv", "xlsx", "pdf", "html", "page"})
REPORT_ROUTES = {
    "/reports/weekly": "weekly", "/api/v1/reports/weekly": "weekly",
    "/reports/{kind}": "kind", "/api/v1/reports/{kind}": "kind",
    "/reports/{report_id}": "stored", "/api/v1/reports/{report_id}": "stored",
}  # fmt: skip


class Metrics:
    """The registry of one application (not the process-wide default: tests run many
    applications in one process) and the instruments the service updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.loop_lag = Histogram(
            "pingan_event_loop_lag_seconds",
            "How late a timer on the main event loop fires (sampled every 0.5 s).",
            buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.job_runs = Counter(
            "pingan_scheduler_job_runs",
            "Scheduled job runs by job kind and outcome (ok, failed, missed, skipped).",
            ["job", "outcome"], registry=r,
        )  # fmt: skip
        self.job_seconds = Histogram(
            "pingan_scheduler_job_seconds", "Duration of a scheduled job's run, by job kind.",
            ["job"], buckets=JOB_BUCKETS, registry=r,
        )  # fmt: skip
        self.report_seconds = Histogram(
            "pingan_report_seconds",
            "Time to produce a report: a scheduled run (source=scheduled) or a request for "
            "one (source=request), by report kind and format.",
            ["report", "format", "source"], buckets=REPORT_BUCKETS, registry=r,
        )  # fmt: skip
        self.media = MediaTally()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# --- media counters, read from the slots media/forwarding.py keeps ----------------------


def _slots(room: Room) -> Iterator[Slot]:
    """Every viewer slot of an in-process room.

    Private media 1.x (read only; media/ is not ours to change): `Room._peers` holds
    each participant's current peer, `_Peer.slots` its slots by kind, and `Slot._out`
    the RtpOut whose `octets` is the stream's RTCP sender-report byte count.
    """
    for peer in list(room._peers.values()):
        for slots in peer.slots.values():
            yield from slots


def _counts(slot: Slot) -> tuple[int, int, int]:
    out = slot._out
    return slot.forwarded, int(out.octets) if out is not None else 0, slot.dropped


class MediaTally:
    """Totals of forwarded frames, bytes and drops per kind that only grow: live slots'
    counts plus the last counts read of every slot since closed."""

    def __init__(self) -> None:
        self._seen: dict[Slot, tuple[int, int, int]] = {}
        self._closed: dict[str, list[int]] = {kind: [0, 0, 0] for kind in KINDS}

    def sample(self, rooms: Iterable[Any]) -> dict[str, list[int]]:
        live: dict[Slot, tuple[int, int, int]] = {}
        for room in rooms:
            if isinstance(room, Room):
                for slot in _slots(room):
                    live[slot] = _counts(slot)
        for slot, last in self._seen.items():
            if slot not in live and slot.kind in self._closed:
                totals = self._closed[slot.kind]
                for i, value in enumerate(last):
                    totals[i] += value
        self._seen = live
        out = {kind: list(values) for kind, values in self._closed.items()}
        for slot, counts in live.items():
            if slot.kind in out:
                for i, value in enumerate(counts):
                    out[slot.kind][i] += value
        return out


class LiveCollector:
    """Gauges and media counters read from the application's parts at each scrape."""

    def __init__(self, app: web.Application, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        self._restarts = 0

    def describe(self) -> list[Metric]:
        return []  # names are checked at collection; nothing to read before start-up

    def collect(self) -> Iterator[Metric]:
        app = self.app
        conference = app.get(CONFERENCE)
        rooms = conference.rooms() if conference is not None else ()
        yield _gauge("pingan_calls_live", "Calls whose media room is open in this process.",
                     len(rooms))  # fmt: skip
        yield _gauge("pingan_call_participants",
                     "Participants connected in the open calls' media rooms.",
                     sum(len(room.participants) for room in rooms))  # fmt: skip
        pool = app.get(MEDIA_POOL)
        yield _gauge("pingan_media_in_process",
                     "1: the media runs in this process (DISPATCH_MEDIA_WORKERS=0).",
                     int(pool is None))  # fmt: skip
        if pool is not None:
            yield from self._workers(pool)
        else:
            yield from self._media(rooms)

    def _workers(self, pool: Any) -> Iterator[Metric]:
        workers = pool.workers
        yield _gauge("pingan_media_workers", "Media worker processes running.", len(workers))
        yield _gauge("pingan_media_workers_wanted", "Media worker processes configured.",
                     pool.size)  # fmt: skip
        load = GaugeMetricFamily("pingan_media_worker_participants",
                                 "Participants (and joins in flight) each media worker carries.",
                                 labels=["worker"])  # fmt: skip
        for worker in workers:
            load.add_metric([str(worker.index)], worker.load)
        yield load
        if workers:  # indexes count every worker started: those past `size` replaced one
            self._restarts = max(self._restarts, max(w.index for w in workers) + 1 - pool.size)
        yield _counter("pingan_media_worker_restarts",
                       "Media workers started to replace one that stopped.",
                       self._restarts)  # fmt: skip

    def _media(self, rooms: Iterable[Any]) -> Iterator[Metric]:
        totals = self.metrics.media.sample(rooms)
        names = (
            ("pingan_media_frames_forwarded", "Frames sent to viewers (in-process media only)."),
            ("pingan_media_bytes_forwarded", "RTP bytes sent to viewers (in-process media only)."),
            ("pingan_media_frames_dropped",
             "Frames left out for a viewer's weak link (in-process media only)."),
        )  # fmt: skip
        for i, (name, help_text) in enumerate(names):
            family = CounterMetricFamily(name, help_text, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], totals[kind][i])
            yield family


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


# --- the scheduler -------------------------------------------------------------------


def job_kind(job_id: str) -> str:
    """A job's kind: its id without the slot it concerns (`remind:42` -> `remind`)."""
    return job_id.partition(":")[0]


def watch_scheduler(metrics: Metrics, week: WeekScheduler) -> Callable[[], None]:
    """Count the scheduler's job runs; returns a function that stops counting."""
    started: dict[tuple[str, datetime], float] = {}

    def on_event(event: JobEvent) -> None:
        job = job_kind(event.job_id)
        if event.code == EVENT_JOB_SUBMITTED:
            for run_time in event.scheduled_run_times:
                started[(event.job_id, run_time)] = time.monotonic()
            return
        if event.code in (EVENT_JOB_MISSED, EVENT_JOB_MAX_INSTANCES):
            metrics.job_runs.labels(job, "missed" if event.code == EVENT_JOB_MISSED
                                    else "skipped").inc()  # fmt: skip
            return
        began = started.pop((event.job_id, event.scheduled_run_time), None)
        metrics.job_runs.labels(job, "ok" if event.code == EVENT_JOB_EXECUTED else "failed").inc()
        if began is None:
            return
        seconds = time.monotonic() - began
        metrics.job_seconds.labels(job).observe(seconds)
        if event.code == EVENT_JOB_EXECUTED and event.job_id in REPORT_JOBS:
            metrics.report_seconds.labels(REPORT_JOBS[event.job_id], "json",
                                          "scheduled").observe(seconds)  # fmt: skip

    mask = (EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
            | EVENT_JOB_MAX_INSTANCES)  # fmt: skip
    week.scheduler.add_listener(on_event, mask)
    return lambda: week.scheduler.remove_listener(on_event)


# --- requests for reports ------------------------------------------------------------


@web.middleware
async def report_timer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Times requests that produce a report (innermost: the handler's own work)."""
    route = request.match_info.route.resource
    which = REPORT_ROUTES.get(route.canonical if route is not None else "")
    if which is None:
        return await handler(request)
    began = time.monotonic()
    response = await handler(request)
    if response.status < 300:
        report = request.match_info.get("kind", "") if which == "kind" else which
        fmt = request.query.get("format") or ("json" if request.path.startswith("/api/")
                                               else "page")  # fmt: skip
        request.app[METRICS].report_seconds.labels(
            report, fmt if fmt in REPORT_FORMATS else "other", "request"
        ).observe(time.monotonic() - began)
    return response


# --- who may read /metrics -----------------------------------------------------------


def allowed_networks(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in filter(None, (p.strip() for p in setting.split(","))):
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise InvalidInput("DISPATCH_METRICS_ALLOW", f"not an address: {part!r}") from None
    return tuple(nets)


def _machine_may_read(request: web.Request, settings: Settings) -> bool:
    """A scraper: the metrics token, or an allowed address. A request relayed by a proxy
    we do not trust (it carries X-Forwarded-For) is judged by its token only: behind an
    untrusted proxy on this machine every stranger would look like 127.0.0.1."""
    token = settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode()):  # fmt: skip
            return True
    nets = allowed_networks(settings.metrics_allow)
    if not nets:
        return False
    address = client_address(request, settings.trusted_proxies)
    if address == request.remote and "X-Forwarded-For" in request.headers:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)


@web.middleware
async def metrics_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers a scraper before sessions and logins are looked at (a scraper has no
    cookie, and its token is not an account's). Other requests for /metrics go on to the
    login check and `metrics_page`."""
    if request.path == PATH and request.method == "GET":
        if _machine_may_read(request, request.app[SETTINGS]):
            return _respond(request.app)
    return await handler(request)


async def metrics_page(request: web.Request) -> web.Response:
    """GET /metrics for a logged-in system administrator."""
    account = request.get(ACCOUNT)
    if account is None or account.role != Role.admin:
        raise NotAuthorised("the metrics are for a system administrator or a configured "
                            "scraper (DISPATCH_METRICS_TOKEN, DISPATCH_METRICS_ALLOW)")  # fmt: skip
    return _respond(request.app)


def _respond(app: web.Application) -> web.Response:
    body = app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                            "Cache-Control": "no-store"})  # fmt: skip


# --- wiring --------------------------------------------------------------------------


async def _watch_loop(app: web.Application, metrics: Metrics) -> None:
    """Loop lag, and the media slots read often enough to keep closed slots' counts."""
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        await asyncio.sleep(SAMPLE_INTERVAL)
        metrics.loop_lag.observe(max(0.0, loop.time() - began - SAMPLE_INTERVAL))
        conference = app.get(CONFERENCE)
        if conference is not None and app.get(MEDIA_POOL) is None:
            try:
                metrics.media.sample(conference.rooms())
            except Exception:
                log.exception("metrics: reading the media slots failed")


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the scheduler and the switchboard: counts job runs, watches the loop."""
    metrics = app[METRICS]
    media_workers(app[SETTINGS])  # a bad setting fails at start, as the switchboard's does
    scheduler = app.get(SCHEDULER)
    unwatch = watch_scheduler(metrics, scheduler) if scheduler is not None else None
    watcher = asyncio.get_running_loop().create_task(_watch_loop(app, metrics))
    yield
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    if unwatch is not None:
        unwatch()


def install(app: web.Application) -> None:
    """Register /metrics and its instruments. Call after the switchboard's and the
    scheduler's cleanup contexts are added (this one reads what they start)."""
    allowed_networks(app[SETTINGS].metrics_allow)  # a bad address fails at start
    metrics = Metrics()
    metrics.registry.register(LiveCollector(app, metrics))
    app[METRICS] = metrics
    app.middlewares.insert(1, metrics_gate)  # after the error middleware, before sessions
    app.middlewares.append(report_timer)  # innermost
    app.cleanup_ctx.append(metrics_ctx)
    app.router.add_get(PATH, metrics_page)
