"""The same domain on PostgreSQL: tree queries, import/export and the scope rule.

Runs when DISPATCH_TEST_PG_URL names a database the tests may wipe (`make test` sets
it up through .ci/postgres.sh); otherwise every test here skips and says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from dispatch import accounts, centre_files, centres, demo
from dispatch.db import Database
from dispatch.settings import Settings
from web.app import create_app

from conftest import PG_URL, bearer, fresh_pg

pytestmark = pytest.mark.skipif(not PG_URL, reason="DISPATCH_TEST_PG_URL is not set")


@pytest.fixture
def pg() -> Iterator[Database]:
    database = fresh_pg(PG_URL)
    with database.session() as s:
        demo.load_demo(s, "district")
    yield database
    database.close()


def tree_facts(s: Session) -> dict[str, object]:
    district = centres.roots(s)[0]
    town = centres.children(s, district.code)[3]
    village = centres.children(s, town.code)[-1]
    counts = centres.counts_below(s, town.path)
    return {
        "children": [c.code for c in centres.children(s, district.code)],
        "below": [c.code for c in centres.all_below(s, district)],
        "up": [c.code for c in centres.path_up(s, village)],
        "counts": (counts.by_level, counts.by_class),
        "search": [c.code for c in centres.search(s, town.path, query="村")[0]],
    }


def test_tree_queries_agree_with_sqlite(pg: Database, db: Database) -> None:
    with db.session() as s:
        demo.load_demo(s, "district")
    with pg.session() as a, db.session() as b:
        assert tree_facts(a) == tree_facts(b)
        # The range scan relies on byte order: "/" sorts below "0" on this server too.
        assert a.exec(text("SELECT '511703001000/' < '5117030010000'")).one()[0]  # type: ignore[call-overload]


def test_export_import_round_trip_matches_sqlite(pg: Database, db: Database) -> None:
    with pg.session() as s:
        exported = centre_files.export_centres(s, None, "csv")
    with db.session() as s:
        centre_files.import_centres(s, exported, "csv")
    with db.session() as s:
        assert centre_files.export_centres(s, None, "csv") == exported
    bad = exported.replace(b"511703001000,", b"511703001000x,", 1)
    with pytest.raises(Exception, match="nothing was imported"), pg.session() as s:
        centre_files.import_centres(s, bad, "csv")
    with pg.session() as s:
        assert centre_files.export_centres(s, None, "csv") == exported


async def test_scope_on_postgres(aiohttp_client, pg: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env(env={}, db_url=PG_URL, data_dir=str(tmp_path))
    with pg.session() as s:
        town = centres.children(s, demo.DEMO_DISTRICT_CODE)[0]
        v1, v2 = centres.children(s, town.code)[:2]
        account = s.exec(
            accounts.select(accounts.Account).where(accounts.Account.username == v1.code)
        ).one()
        token, _ = accounts.issue_token(s, account, 600)
    client = await aiohttp_client(create_app(settings))
    h = bearer(token)
    assert (await client.get(f"/api/v1/centers/{v1.code}", headers=h)).status == 200
    assert (await client.get(f"/api/v1/centers/{v2.code}", headers=h)).status == 403
    listed = await (await client.get("/api/v1/centers", headers=h)).json()
    assert [c["code"] for c in listed["centers"]] == [v1.code]


def test_a_rota_week_on_postgres(pg: Database) -> None:
    from datetime import datetime

    from dispatch.clock import SHANGHAI
    from schedules import planner, plans
    from schedules.workdays import IsoWeek

    week = IsoWeek(2026, 41)
    with pg.session() as s:
        record = planner.build_week(s, demo.DEMO_DISTRICT_CODE, week,
                                    now=datetime(2025, 1, 1, tzinfo=SHANGHAI))  # fmt: skip
        slots = plans.week_slots(s, record.id or 0)
        assert record.workdays == ["2026-10-08", "2026-10-09", "2026-10-10"]
        assert len(slots) > 250 and slots[0].start.utcoffset() is not None
        village = slots[-1].callees[0]
        mine = plans.slots_for_centre(s, village, slots[0].start, slots[-1].end)
        assert mine and all(village in x.callees for x in mine)
