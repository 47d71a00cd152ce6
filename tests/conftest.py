"""Shared fixtures: a real SQLite file per test, with the schema created."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import select

from dispatch import accounts, centres, demo
from dispatch.db import Database
from dispatch.settings import Settings
from web.schema import open_database


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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(aiohttp_client, demo_settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(demo_settings))
