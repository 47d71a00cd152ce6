"""SIGKILL mid-call: every event acknowledged before the kill is in the database, and
the next start marks the call interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ports import free_port

from dispatch import calls
from dispatch.settings import Settings
from web.schema import open_database

from conftest import Cast

BIN = Path(sys.executable).parent / "dispatch"


def start(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    # Media in the server's own process: no worker processes to import the media stack
    # on each start, and none left behind by the kill (this test is about the database).
    env = {**os.environ, "DISPATCH_SCHEDULER": "0", "DISPATCH_ICE_HOSTS": "127.0.0.1",
           "DISPATCH_MEDIA_WORKERS": "0"}  # fmt: skip
    proc = subprocess.Popen(
        [str(BIN), "serve", "--db", settings.db_url, "--data-dir", settings.data_dir,
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    # Not a speed check: a loaded 2-core machine takes over 30 s to import and start.
    deadline = time.monotonic() + 100
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def post(port: int, path: str, body: dict | None = None, token: str | None = None) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST",
        data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.timeout(300)  # two server starts; each imports the whole stack
def test_sigkill_mid_call_leaves_it_interrupted_with_every_event(
    demo_settings: Settings, cast: Cast
) -> None:
    port = free_port()
    server = start(demo_settings, port)
    try:
        token = post(port, "/api/v1/auth/token",
                     {"username": cast.town_a, "password": "town-demo-2026"})["token"]  # fmt: skip
        meeting = {"callees": [cast.village_a1, cast.village_a2], "kind": "meeting"}
        launched = post(port, "/api/v1/calls", meeting, token)
        call_id = launched["call"]["id"]
        joins = {i["centre"]: i["join_token"] for i in launched["invites"]}
        acknowledged = post(port, f"/api/v1/calls/{call_id}/accept", None, joins[cast.village_a1])
        assert [e["kind"] for e in acknowledged["events"]] == ["answered"]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)

    db = open_database(demo_settings.db_url)
    with db.session() as s:
        before = [(r.centre_code, r.kind) for r in calls.events(s, call_id)]
        assert calls.get_call(s, call_id).state == calls.LIVE  # nobody closed it
    db.close()
    assert before == [
        (cast.village_a1, "invited"), (cast.village_a1, "rang"),
        (cast.village_a2, "invited"), (cast.village_a2, "rang"),
        (cast.village_a1, "answered"),
    ]  # fmt: skip

    again = start(demo_settings, port)  # the next start finds it open
    again.terminate()
    again.wait(timeout=30)
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        call = calls.get_call(s, call_id)
        after = [(r.centre_code, r.kind) for r in calls.events(s, call_id)]
    db.close()
    assert call.state == calls.INTERRUPTED and call.end_reason == "server stopped"
    assert after == [*before, (None, "interrupted")]
