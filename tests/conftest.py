"""Shared fixtures: a real SQLite file per test, with the schema created."""

from __future__ import annotations

import asyncio
import filecmp
import logging
import os
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import select

from dispatch import accounts, centres, demo
from dispatch.db import Database, make_engine
from dispatch.settings import Settings
from web.schema import open_database

# Test files that may run side by side (`make test` runs them on two pytest-xdist
# workers, then the rest one at a time): each works on its own SQLite files, its own
# PostgreSQL database (one a worker: worker_pg_url), in-process servers on ephemeral ports
# and, for some, its own headless Chromium or subprocesses, with no media peers, network
# namespace or step whose outcome depends on real-time delivery (waits have generous
# limits; nothing asserts a speed). A file that holds both kinds marks its cases of the
# first kind `@pytest.mark.parallel` itself. Everything else runs alone so that no media
# test shares the two cores with another test.
PARALLEL_FILES = frozenset({
    "test_backup.py", "test_browser_csp.py", "test_browser_forms.py",
    "test_browser_layout.py", "test_browser_layout_en.py", "test_browser_login.py",
    "test_calls.py", "test_calls_api.py", "test_cameras.py", "test_centre_files.py",
    "test_checks.py", "test_cli.py", "test_clock.py", "test_clock_users.py",
    "test_config_file.py", "test_console.py", "test_coverage.py", "test_crash.py",
    "test_demo.py", "test_deploy.py", "test_first_run.py", "test_hardening_bodies.py",
    "test_hardening_files.py", "test_hardening_headers.py", "test_hardening_logins.py",
    "test_hardening_sessions.py", "test_heap.py", "test_history.py", "test_i18n.py",
    "test_issues.py", "test_issues_web.py", "test_jitter.py", "test_journal.py",
    "test_journals_web.py",
    "test_labels.py", "test_layering.py", "test_leader.py", "test_linkrate.py",
    "test_migrations.py", "test_offline_install.py", "test_openapi.py",
    "test_openapi_fuzz.py", "test_outcome.py", "test_pages_smoke.py", "test_periods.py",
    "test_postgres.py", "test_ratecount.py", "test_recording_retention.py", "test_remb.py",
    "test_reports_stored.py", "test_reports_web.py", "test_rota.py", "test_rota_service.py",
    "test_rtpout.py", "test_rtpsend.py",
    "test_scope_matrix.py", "test_settings.py", "test_spot_checks.py", "test_web_auth.py",
    "test_week_in_progress.py", "test_wording.py", "test_workdays.py",
})  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in PARALLEL_FILES:
            item.add_marker(pytest.mark.parallel)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs `dispatch serve` in-process installs the service's log handler on
    the root logger (web/logging_setup.py), writing to that test's captured stderr; left
    there, every later log line would hit a closed stream. Each test ends with the root
    logger's handlers and level as it found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


# --- the shared test PostgreSQL ----------------------------------------------------------

# A database the tests may wipe (`make test` sets it up through .ci/postgres.sh); the
# PostgreSQL tests skip, saying so, when it is not given.
SHARED_PG_URL = os.environ.get("DISPATCH_TEST_PG_URL", "")


def worker_pg_url(url: str, worker: str) -> str:
    """The database a pytest-xdist worker wipes: one of its own beside the given one
    (`dispatch_test_gw0`, `dispatch_test_gw1`, …), so that the PostgreSQL cases of two
    workers never drop each other's tables. One process alone (no worker id) uses the
    given database itself."""
    if not url or not worker:
        return url
    parsed = sa.make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(False)


PG_URL = worker_pg_url(SHARED_PG_URL, os.environ.get("PYTEST_XDIST_WORKER", ""))


def create_pg_database(shared: str, url: str) -> None:
    """Create `url`'s database through the server of `shared` unless it is there (the
    test role needs CREATEDB: .ci/postgres.sh grants it). It is kept after the run, as
    the shared one is: every test wipes what it finds first."""
    name = sa.make_url(url).database
    engine = make_engine(shared)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        known = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if known.first() is None:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def pytest_sessionstart(session: pytest.Session) -> None:
    if PG_URL != SHARED_PG_URL:
        create_pg_database(SHARED_PG_URL, PG_URL)


def wipe_pg(url: str) -> None:
    """Leave the database with nothing of ours: every table, the schema version and the
    sealing functions. It is shared by every run on the machine, so a test never trusts
    what an earlier one (or an earlier checkout's run) left there."""
    engine = Database(url).engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        for table in sa.inspect(conn).get_table_names():
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
        for fn in ("dispatch_refuse", "dispatch_refuse_sealed_event", "dispatch_refuse_truncate"):
            conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {fn}() CASCADE"))
    engine.dispose()


def fresh_pg(url: str) -> Database:
    """The test PostgreSQL wiped, then opened as the service opens it: created at the
    migrations' head, triggers included."""
    wipe_pg(url)
    return open_database(url)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        env={},
        db_url=f"sqlite:///{tmp_path / 'dispatch.db'}",
        data_dir=str(tmp_path / "data"),
        secret_key="",
        media_workers="0",  # media in the test's own process; tests of workers set it
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings.db_url)
    yield database
    database.close()


# --- the demo district, built once per run and copied into each test's own file ------


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "demo.db"
    database = open_database(f"sqlite:///{path}")
    with database.session() as s:
        demo.load_demo(s, "district")
    database.close()
    return path


@pytest.fixture
def demo_settings(settings: Settings, demo_template: Path) -> Settings:
    target = Path(settings.db_url.removeprefix("sqlite:///"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo_template, target)
    return settings


@pytest.fixture(scope="session")
def started_template(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo district as the application's first start leaves it, started once per run:
    the scheduler's catch-up has stored last week's reports (and a period's that is due),
    the only rows a start adds. Started in a thread of its own (its own event loop)."""
    folder = tmp_path_factory.mktemp("started")
    path = folder / "demo.db"
    shutil.copyfile(demo_template, path)
    settings = Settings.from_env(env={}, db_url=f"sqlite:///{path}", data_dir=str(folder / "data"),
                                 secret_key="", media_workers="0")  # fmt: skip

    async def start_and_stop() -> None:
        from web.app import create_app

        server = TestServer(create_app(settings))
        await server.start_server()
        await server.close()

    starter = threading.Thread(target=asyncio.run, args=(start_and_stop(),))
    starter.start()
    starter.join()
    return path


def as_started(settings: Settings, template: Path, started: Path) -> None:
    """The test's demo file becomes the started copy when it is still the template byte
    for byte (nothing before the caller wrote to it): the application started on it then
    finds its catch-up done, as at its second start, instead of producing the same
    reports again in each test. A file already changed is left as it is (the start
    catches up on it itself)."""
    target = Path(settings.db_url.removeprefix("sqlite:///"))
    if Path(f"{target}-wal").exists() or not filecmp.cmp(target, template, shallow=False):
        return
    shutil.copyfile(started, target)


@dataclass(frozen=True)
class Cast:
    """Centres of the demo district that the scope tests act on and against."""

    district: str
    town_a: str
    town_b: str
    village_a1: str
    village_a2: str
    village_b1: str

    def all(self) -> dict[str, str]:
        return dict(self.__dict__)


@pytest.fixture
def cast(demo_settings: Settings) -> Cast:
    database = Database(demo_settings.db_url)
    with database.session() as s:
        district = centres.roots(s)[0]
        town_a, town_b = centres.children(s, district.code)[:2]
        va = centres.children(s, town_a.code)
        vb = centres.children(s, town_b.code)
        result = Cast(district.code, town_a.code, town_b.code, va[0].code, va[1].code, vb[0].code)
    database.close()
    return result


def make_token(settings: Settings, username: str) -> str:
    database = Database(settings.db_url)
    with database.session() as s:
        stmt = select(accounts.Account).where(accounts.Account.username == username)
        account = s.exec(stmt).one()
        token, _ = accounts.issue_token(s, account, 3600, "test")
    database.close()
    return token


async def wait_for(check: Callable[[], bool], within: float = 10.0) -> None:
    """Poll `check` until it holds (fails after `within` seconds): a test waits for the
    event it expects, never a fixed time."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(
    aiohttp_client, demo_settings: Settings, demo_template: Path, started_template: Path
) -> TestClient:  # type: ignore[no-untyped-def]
    """The application over the test's demo district, started as `dispatch serve` starts
    it (the scheduler on)."""
    from web.app import create_app

    as_started(demo_settings, demo_template, started_template)
    return await aiohttp_client(create_app(demo_settings))


@pytest.fixture
async def udp_link() -> AsyncIterator[tuple[asyncio.DatagramTransport, socket.socket]]:
    """An asyncio datagram transport on 127.0.0.1 and a non-blocking socket to send to
    (a 4 MB receive buffer: a test's whole burst fits before it reads)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    yield transport, rx
    transport.close()
    rx.close()


async def received_datagrams(rx: socket.socket, count: int) -> list[bytes]:
    """The next ``count`` datagrams on ``rx`` (5 s each at most)."""
    loop = asyncio.get_running_loop()
    return [await asyncio.wait_for(loop.sock_recv(rx, 65536), 5) for _ in range(count)]
