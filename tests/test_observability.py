"""Observability (issue 12 item 7) through the real app over a temp SQLite file:
/readyz passes and fails for real causes (a locked database, a stopped scheduler, media
workers gone); /metrics answers only an administrator or a configured scraper, with
service-wide figures and nothing per centre; the real APScheduler's job runs and
failures, report times, loop lag; media counters from a real call of aiortc peers;
and the log lines of a login, a token call and a join hold none of their secrets."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from apscheduler.triggers.date import DateTrigger

from dispatch import demo
from dispatch.errors import InvalidInput
from dispatch.settings import Settings
from schedules import policy
from web import logging_setup, ready
from web.app import create_app
from web.appkeys import MEDIA_POOL, SCHEDULER
from web.schema import open_database

from conftest import Cast, bearer, make_token
from peers import Client

pytestmark = pytest.mark.timeout(60)
SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$")


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample of an exposition."""
    out = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


async def scrape(client: TestClient, headers: dict[str, str]) -> dict[str, float]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    return samples(await resp.text())


async def eventually(check, within: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture
def admin(demo_settings: Settings) -> dict[str, str]:
    return bearer(make_token(demo_settings, demo.ADMIN_USERNAME))


# --- readiness ----------------------------------------------------------------------


async def test_ready_when_database_scheduler_and_media_are(
    aiohttp_client: Any, demo_settings: Settings
) -> None:
    client: TestClient = await aiohttp_client(create_app(demo_settings))
    resp = await client.get("/readyz")  # no login: a load balancer or systemd asks
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {
        "database": "ok", "scheduler": "ok", "media": "in process"}}  # fmt: skip
    assert (await client.get("/healthz")).status == 200


async def test_not_ready_while_the_database_is_locked_then_ready_again(
    aiohttp_client: Any, demo_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ready, "CHECK_TIMEOUT", 1.0)
    client: TestClient = await aiohttp_client(create_app(demo_settings.with_(scheduler=False)))
    other = sqlite3.connect(demo_settings.db_url.removeprefix("sqlite:///"))
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503 and body["status"] == "not ready"
        assert body["checks"]["database"].startswith("no answer within")
        assert body["checks"]["scheduler"] == "disabled"
    finally:
        other.rollback()
        other.close()
    await eventually(lambda: _status(client, "/readyz", 200))


async def _status(client: TestClient, path: str, status: int) -> bool:
    return (await client.get(path)).status == status


async def test_not_ready_when_the_scheduler_stopped(
    aiohttp_client: Any, demo_settings: Settings
) -> None:
    app = create_app(demo_settings)
    client: TestClient = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    app[SCHEDULER].scheduler.shutdown(wait=False)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["scheduler"] == "not running"


async def test_media_workers_ready_replaced_and_gone(
    aiohttp_client: Any, demo_settings: Settings, admin: dict[str, str]
) -> None:
    app = create_app(demo_settings.with_(media_workers="1", scheduler=False))
    client: TestClient = await aiohttp_client(app)
    assert (await (await client.get("/readyz")).json())["checks"]["media"] == "ok"
    got = await scrape(client, admin)
    assert got["pingan_media_workers"] == 1 and got["pingan_media_in_process"] == 0
    assert got["pingan_media_worker_restarts_total"] == 0
    assert not any(name.startswith("pingan_media_frames_forwarded") for name in got)

    pool = app[MEDIA_POOL]
    os.kill(pool.workers[0].pid, signal.SIGKILL)  # the pool starts another in its place

    async def replaced() -> bool:
        now = await scrape(client, admin)
        return now["pingan_media_worker_restarts_total"] == 1 and now["pingan_media_workers"] == 1

    await eventually(replaced)
    await eventually(lambda: _status(client, "/readyz", 200))
    await pool.close()  # no worker left, none replaced
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["media"] == "0 of 1 media workers running"


# --- who reads /metrics -------------------------------------------------------------


async def test_metrics_for_an_admin_or_a_configured_scraper_only(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast, admin: dict[str, str]
) -> None:
    settings = demo_settings.with_(metrics_token="scrape-secret-1234", scheduler=False)
    client: TestClient = await aiohttp_client(create_app(settings))
    resp = await client.get("/metrics", allow_redirects=False)  # a stranger: log in first
    assert resp.status == 302 and resp.headers["Location"] == "/login?next=/metrics"
    wrong = await client.get("/metrics", headers=bearer("wrong-secret"), allow_redirects=False)
    assert wrong.status in (302, 401)
    village = bearer(make_token(settings, cast.village_a1))
    district = bearer(make_token(settings, cast.district))
    assert (await client.get("/metrics", headers=village)).status == 403
    assert (await client.get("/metrics", headers=district)).status == 403
    await scrape(client, admin)
    got = await scrape(client, bearer("scrape-secret-1234"))
    assert got["pingan_calls_live"] == 0 and got["pingan_media_in_process"] == 1
    await eventually(lambda: _lag_counted(client))


async def _lag_counted(client: TestClient) -> bool:
    got = await scrape(client, bearer("scrape-secret-1234"))
    return got.get("pingan_event_loop_lag_seconds_count", 0) >= 1


async def test_the_allow_list_admits_an_address_but_not_one_relayed_by_a_stranger(
    aiohttp_client: Any, demo_settings: Settings
) -> None:
    settings = demo_settings.with_(metrics_allow="127.0.0.1", scheduler=False)
    client: TestClient = await aiohttp_client(create_app(settings))
    assert (await client.get("/metrics")).status == 200  # the test client is 127.0.0.1
    # A proxy on this machine that we were not told to trust: judged by token only.
    relayed = {"X-Forwarded-For": "198.51.100.7"}
    assert (await client.get("/metrics", headers=relayed, allow_redirects=False)).status == 302
    # A proxy we trust: the client's own address is judged, and it is not allowed.
    trusted = settings.with_(trusted_proxies="127.0.0.1")
    other: TestClient = await aiohttp_client(create_app(trusted))
    assert (await other.get("/metrics", headers=relayed, allow_redirects=False)).status == 302
    assert (await other.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})).status == 200
    with pytest.raises(InvalidInput, match="DISPATCH_METRICS_ALLOW"):
        create_app(settings.with_(metrics_allow="not-an-address"))


# --- the scheduler and the reports --------------------------------------------------


async def _fails() -> None:
    raise RuntimeError("a job that fails")


async def _works() -> None:
    await asyncio.sleep(0)


async def test_job_runs_failures_and_report_times(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast, admin: dict[str, str]
) -> None:
    app = create_app(demo_settings)
    client: TestClient = await aiohttp_client(app)
    scheduler = app[SCHEDULER].scheduler
    now = datetime.now(UTC)
    scheduler.add_job(_works, DateTrigger(now), id="probe:1")
    scheduler.add_job(_works, DateTrigger(now), id="probe:2")
    scheduler.add_job(_fails, DateTrigger(now), id="probe:3")
    scheduler.modify_job("weekly-reports", next_run_time=now)  # the Monday 08:00 run, now

    async def counted() -> bool:
        got = await scrape(client, admin)
        return (
            got.get('pingan_scheduler_job_runs_total{job="probe",outcome="ok"}') == 2
            and got.get('pingan_scheduler_job_runs_total{job="probe",outcome="failed"}') == 1
            and got.get('pingan_scheduler_job_runs_total{job="weekly-reports",outcome="ok"}') == 1
        )

    await eventually(counted)
    got = await scrape(client, admin)
    assert got['pingan_scheduler_job_seconds_count{job="probe"}'] == 3
    assert got['pingan_report_seconds_count{format="json",report="weekly",source="scheduled"}'] == 1

    district = bearer(make_token(demo_settings, cast.district))
    resp = await client.get("/api/v1/reports/weekly?format=csv", headers=district)
    assert resp.status == 200
    got = await scrape(client, admin)
    assert got['pingan_report_seconds_count{format="csv",report="weekly",source="request"}'] == 1


# --- media counters from a real call ------------------------------------------------


@pytest.fixture
def media_settings(demo_settings: Settings) -> Settings:
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        policy.set_policy(s, None, {"min_verified_seconds": 3}, "test")
    db.close()
    return demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)


async def _join(client: TestClient, peer: Client, call_id: int, headers: dict[str, str]) -> None:
    resp = await client.post(f"/api/v1/calls/{call_id}/sdp", headers=headers,
                             json={"type": "offer", "sdp": await peer.offer()})  # fmt: skip
    assert resp.status == 200, await resp.text()
    await peer.accept((await resp.json())["sdp"])


async def test_a_call_shows_in_the_metrics_and_its_counts_outlive_it(
    aiohttp_client: Any, media_settings: Settings, cast: Cast, admin: dict[str, str]
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    town = bearer(make_token(media_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a1]})
    launched = await resp.json()
    call_id = launched["call"]["id"]
    join_token = bearer(launched["invites"][0]["join_token"])
    assert (await client.post(f"/api/v1/calls/{call_id}/accept",
                              headers=join_token)).status == 200  # fmt: skip
    operator, village = Client("op", "blue"), Client(cast.village_a1, "green")
    try:
        operator.offer_as_operator(slots=1)
        await _join(client, operator, call_id, town)
        village.offer_as_participant()
        await _join(client, village, call_id, join_token)

        async def flowing() -> bool:
            got = await scrape(client, admin)
            return (
                got["pingan_calls_live"] == 1
                and got["pingan_call_participants"] == 2
                and got['pingan_media_frames_forwarded_total{kind="video"}'] > 20
                and got['pingan_media_frames_forwarded_total{kind="audio"}'] > 20
            )

        await eventually(flowing)
        text = await (await client.get("/metrics", headers=admin)).text()
        # Nothing per centre or call: no centre code, and only the fixed label names.
        assert not re.search(r"(?<![.\d])\d{12}(?![.\d])", text)
        labels = set(re.findall(r"[{,](\w+)=", text))
        assert labels <= {"kind", "le", "job", "outcome", "report", "format", "source", "worker"}
        during = samples(text)
        assert during['pingan_media_bytes_forwarded_total{kind="video"}'] > 0

        assert (await client.post(f"/api/v1/calls/{call_id}/end", headers=town)).status == 200
        await eventually(lambda: _no_call(client, admin))
        after = await scrape(client, admin)
        for name in ("frames_forwarded", "bytes_forwarded", "frames_dropped"):
            for kind in ("audio", "video"):
                key = f'pingan_media_{name}_total{{kind="{kind}"}}'
                assert after[key] >= during[key], key  # counters never go back
    finally:
        await operator.close()
        await village.close()


async def _no_call(client: TestClient, admin: dict[str, str]) -> bool:
    got = await scrape(client, admin)
    return got["pingan_calls_live"] == 0 and got["pingan_call_participants"] == 0


# --- log lines ----------------------------------------------------------------------


@pytest.fixture
def captured(demo_settings: Settings) -> Iterator[io.StringIO]:
    """The service's own log set-up (JSON lines, DEBUG) writing into a buffer."""
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    stream = io.StringIO()
    logging_setup.configure(demo_settings.with_(log_format="json", log_level="debug"), stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in before[0]:
        root.addHandler(handler)
    root.setLevel(before[1])


async def test_no_token_cookie_or_password_reaches_the_log(
    aiohttp_client: Any, media_settings: Settings, cast: Cast, captured: io.StringIO
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    password = demo.DEMO_PASSWORDS["town_operator"]
    wrong = "not-the-password-7731"
    # A token call (before the page's login: a logged-in cookie would need CSRF).
    resp = await client.post("/api/v1/auth/token",
                             json={"username": cast.town_a, "password": password})  # fmt: skip
    api_token = (await resp.json())["token"]
    town = bearer(api_token)
    # A failed and a good login through the page (CSRF and all), keeping the cookie.
    page = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    for attempt in (wrong, password):
        await client.post("/login", allow_redirects=False, data={
            "username": cast.town_a, "password": attempt, "csrf_token": csrf.group(1)})  # fmt: skip
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pd_session"].value
    assert (await client.get("/", headers={"Referer": "http://x/?token=abc"})).status == 200
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a1]})
    launched = await resp.json()
    call_id = launched["call"]["id"]
    join_token = launched["invites"][0]["join_token"]
    # A join: the page by its link, its event socket, the answer and the offer.
    assert (await client.get(f"/calls/{call_id}?token={join_token}")).status == 200
    ws = await client.ws_connect(f"/ws/calls/{call_id}?token={join_token}")
    await ws.receive_json()
    assert (await client.post(f"/api/v1/calls/{call_id}/accept",
                              headers=bearer(join_token))).status == 200  # fmt: skip
    village = Client(cast.village_a1, "green")
    try:
        village.offer_as_participant()
        await _join(client, village, call_id, bearer(join_token))
    finally:
        await village.close()
        await ws.close()
    await client.post(f"/api/v1/calls/{call_id}/end", headers=town)

    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    # The log is not empty of these requests: the access log has each of them.
    messages = "\n".join(line["message"] for line in lines)
    assert f"/calls/{call_id}?token=" in messages and "POST /login" in messages
    assert "POST /api/v1/auth/token" in messages
    for secret in (password, wrong, cookie, api_token, join_token, join_token.split(".")[-1],
                   csrf.group(1)):  # fmt: skip
        assert secret not in text, secret


def test_redact_and_bad_settings() -> None:
    line = ('GET /calendar/1.ics?token=abc123&x=1 "Cookie: pd_session=zzz" '
            "Authorization: Bearer pd_abcdefghijklmnopqrstu jt1.aa.bb "
            "postgresql://u:hunter2@db/x password=p4ss {\"password\": \"p5ss\"}")  # fmt: skip
    out = logging_setup.redact(line)
    for secret in ("abc123", "zzz", "pd_abcdefghijklmnopqrstu", "aa.bb", "hunter2", "p4ss",
                   "p5ss"):  # fmt: skip
        assert secret not in out, (secret, out)
    assert "/calendar/1.ics?token=" in out and "x=1" in out
    with pytest.raises(InvalidInput, match="DISPATCH_LOG_LEVEL"):
        logging_setup.configure(Settings.from_env(env={"DISPATCH_LOG_LEVEL": "loud"}))
    with pytest.raises(InvalidInput, match="DISPATCH_LOG_FORMAT"):
        logging_setup.configure(Settings.from_env(env={"DISPATCH_LOG_FORMAT": "xml"}))


def test_text_lines_and_tracebacks_are_redacted_too(demo_settings: Settings) -> None:
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        logging_setup.configure(demo_settings.with_(log_level="WARNING"), stream)
        log = logging.getLogger("test.observability")
        log.info("below the level: %s", "jt1.never-written")
        try:
            raise ValueError("bad join token jt1.abc.def for Bearer pd_0123456789abcdefghij")
        except ValueError:
            log.exception("a call failed for %s", "password=hunter22")
        log.warning("wrong arguments %s %s", "only one")  # reported, not raised
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before[0]:
            root.addHandler(handler)
        root.setLevel(before[1])
    text = stream.getvalue()
    assert "ERROR test.observability a call failed for password=[redacted]" in text
    assert "ValueError: bad join token jt1.[redacted]" in text  # the traceback, redacted
    for secret in ("never-written", "abc.def", "pd_0123456789abcdefghij", "hunter22"):
        assert secret not in text, secret
