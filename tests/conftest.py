"""Shared fixtures: a real SQLite file per test, with the schema created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatch.db import Database
from dispatch.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        env={},
        db_url=f"sqlite:///{tmp_path / 'dispatch.db'}",
        data_dir=str(tmp_path / "data"),
        secret_key="",
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.db_url)
    database.create_schema()
    yield database
    database.close()
