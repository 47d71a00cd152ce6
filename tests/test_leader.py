"""One scheduler among many processes (schedules/leader.py): on PostgreSQL an advisory
lock elects the process that runs the scheduled jobs, and another takes over when it
dies; on SQLite the one process leads at once.

The PostgreSQL tests run when DISPATCH_TEST_PG_URL names a database the tests may wipe
(.ci/postgres.sh); otherwise they skip and say why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from ports import free_port as _free_port

from dispatch.db import Database
from schedules.leader import LOCK_KEY, Leadership

from conftest import PG_URL, fresh_pg

needs_pg = pytest.mark.skipif(not PG_URL, reason="DISPATCH_TEST_PG_URL is not set")
BIN = Path(sys.executable).parent / "dispatch"
# The sessions holding the scheduler's lock (a bigint key is split into classid, objid)
# in this database: an advisory lock belongs to one database, and another database of the
# same server (another pytest-xdist worker's) has a lock of that key of its own.
HOLDERS = ("FROM pg_locks WHERE locktype = 'advisory' AND granted "
           "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
           "AND ((classid::bigint << 32) | objid::bigint) = :k")  # fmt: skip


class Calls:
    def __init__(self) -> None:
        self.log: list[str] = []

    async def elected(self) -> None:
        self.log.append("elected")

    async def lost(self) -> None:
        self.log.append("lost")


async def test_sqlite_has_one_server_and_it_leads(tmp_path: Path) -> None:
    leadership = Leadership(f"sqlite:///{tmp_path / 'd.db'}")
    calls = Calls()
    await leadership.step(calls.elected, calls.lost)
    await leadership.watch(calls.elected, calls.lost)  # returns at once: nothing to watch
    assert (leadership.shared, leadership.leader, calls.log) == (False, True, ["elected"])
    leadership.dispose()


@needs_pg
async def test_one_leader_and_the_lock_passes_on_when_it_goes() -> None:
    first, second = Leadership(PG_URL, retry=0.1), Leadership(PG_URL, retry=0.1)
    a, b = Calls(), Calls()
    try:
        await first.step(a.elected, a.lost)
        await second.step(b.elected, b.lost)
        await second.step(b.elected, b.lost)
        assert (first.leader, second.leader) == (True, False)
        assert (a.log, b.log) == (["elected"], [])
        await first.step(a.elected, a.lost)  # still holds it
        assert a.log == ["elected"]
        first.dispose()  # its session ends: PostgreSQL releases the lock
        await second.step(b.elected, b.lost)
        assert second.leader and b.log == ["elected"]
    finally:
        first.dispose()
        second.dispose()


@needs_pg
async def test_the_leader_steps_down_when_its_connection_is_killed() -> None:
    leadership, calls = Leadership(PG_URL), Calls()
    engine = sa.create_engine(Database(PG_URL).engine.url)
    try:
        await leadership.step(calls.elected, calls.lost)
        assert leadership.leader
        with engine.begin() as conn:  # as a database restart would: the session ends
            query = sa.text(f"SELECT pg_terminate_backend(pid) {HOLDERS}")
            killed = conn.execute(query, {"k": LOCK_KEY}).all()
        assert killed == [(True,)]
        await leadership.step(calls.elected, calls.lost)
        assert not leadership.leader and calls.log == ["elected", "lost"]
        await leadership.step(calls.elected, calls.lost)  # the lock is free: it leads again
        assert leadership.leader and calls.log == ["elected", "lost", "elected"]
    finally:
        leadership.dispose()
        engine.dispose()


# --- two real servers ----------------------------------------------------------------


def _scheduler_state(port: int) -> str | None:
    """The /readyz scheduler check of the server on `port`, or None while it is down."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return str(json.loads(r.read())["checks"]["scheduler"])
    except urllib.error.HTTPError as exc:
        return str(json.loads(exc.read())["checks"]["scheduler"])
    except OSError:
        return None


def _wait_for(what: str, probe: object, deadline_s: float = 100) -> object:
    """Poll `probe` until it returns something true. Not a speed check: the deadline only
    stops a hung test (a busy 2-core machine starts a server in tens of seconds)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = probe()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what}")


@pytest.fixture
def empty_pg() -> None:
    fresh_pg(PG_URL).close()


@needs_pg
def test_two_servers_run_the_jobs_once_and_the_second_takes_over(
    tmp_path: Path, empty_pg: None
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env |= {"DISPATCH_DB": PG_URL, "DISPATCH_MEDIA_WORKERS": "0",
            "DISPATCH_SCHEDULER_RETRY": "0.3", "DISPATCH_ICE_HOSTS": "127.0.0.1"}  # fmt: skip
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, port in enumerate(ports):
            argv = [str(BIN), "serve", "--port", str(port), "--data-dir", str(tmp_path / f"d{i}")]
            procs.append(subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip
        states = [_wait_for(f"server on {p}", lambda p=p: _scheduler_state(p)) for p in ports]
        assert sorted(states) == ["ok", "standby"]  # type: ignore[type-var]
        leader = states.index("ok")
        other = 1 - leader
        engine = sa.create_engine(Database(PG_URL).engine.url)
        with engine.connect() as conn:  # one session holds the lock: the leader's
            holders = conn.execute(sa.text(f"SELECT count(*) {HOLDERS}"), {"k": LOCK_KEY}).scalar()
        engine.dispose()
        assert holders == 1
        for _ in range(3):  # the standby stays so while the leader lives
            assert _scheduler_state(ports[other]) == "standby"
            time.sleep(0.3)

        procs[leader].send_signal(signal.SIGKILL)  # no clean-up: the lock goes with the socket
        procs[leader].wait(timeout=30)
        _wait_for("take-over", lambda: _scheduler_state(ports[other]) == "ok")
        assert procs[other].poll() is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
