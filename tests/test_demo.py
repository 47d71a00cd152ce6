"""The demo loader: 达川区 at district scale, the synthetic 91… province at province scale."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from dispatch import accounts, centres, demo
from dispatch.accounts import Account, Role
from dispatch.centres import Centre, CentreClass, Level
from dispatch.db import Database
from dispatch.errors import Conflict, InvalidInput, NotAuthenticated

CODE_RE = re.compile(r"^\d{12}$")
CHINESE_RE = re.compile(r"^[\u4e00-\u9fff]+$")
ROLE_BY_LEVEL = {
    Level.district.value: Role.district_operator.value,
    Level.town.value: Role.town_operator.value,
    Level.village.value: Role.village.value,
}


def _load(db: Database, scale: str = "district") -> demo.DemoSummary:
    with db.session() as s:
        return demo.load_demo(s, scale)


def _all(s: Session) -> list[Centre]:
    return list(s.exec(select(Centre).order_by(Centre.code)))


# --- district scale -------------------------------------------------------------------


def test_district_shape(db: Database) -> None:
    summary = _load(db)
    with db.session() as s:
        rows = _all(s)
    by_code = {c.code: c for c in rows}
    assert len(by_code) == len(rows)  # codes unique
    assert all(CODE_RE.match(c.code) for c in rows)

    districts = [c for c in rows if c.level == Level.district.value]
    towns = [c for c in rows if c.level == Level.town.value]
    villages = [c for c in rows if c.level == Level.village.value]
    assert [(d.code, d.name) for d in districts] == [(demo.DEMO_DISTRICT_CODE, "达川区")]
    assert 18 <= len(towns) <= 22
    assert (summary.districts, summary.towns, summary.villages) == (
        1,
        len(towns),
        len(villages),
    )
    assert {"三里桥街道", "河市镇", "景市镇"} <= {t.name for t in towns}

    for town in towns:
        assert town.parent_code == demo.DEMO_DISTRICT_CODE
        assert town.code.startswith("511703") and town.code.endswith("000")
        # Streets are numbered 001–099, towns 100+.
        assert (int(town.code[6:9]) < 100) == town.name.endswith("街道")
        assert town.path == f"{demo.DEMO_DISTRICT_CODE}/{town.code}/"
        assert 0 <= len(town.grid_workers) <= 2
        below = [v for v in villages if v.parent_code == town.code]
        assert 8 <= len(below) <= 20
        names = [v.name for v in below]
        assert len(set(names)) == len(names), town.name
        for v in below:
            # 社区 001–099, 村 200+.
            assert (int(v.code[9:]) < 100) == v.name.endswith("社区")
        if town.name.endswith("街道"):
            assert sum(n.endswith("社区") for n in names) >= len(names) - 2
        else:
            assert 1 <= sum(n.endswith("社区") for n in names) <= 2

    for v in villages:
        parent = by_code[v.parent_code or ""]
        assert parent.level == Level.town.value
        assert v.code[:9] == parent.code[:9]
        assert v.path == f"{parent.path}{v.code}/"
        assert 1 <= len(v.grid_workers) <= 3

    for c in rows:
        assert CHINESE_RE.match(c.name), c.name
        assert CHINESE_RE.match(c.director_name), c.director_name
        assert re.fullmatch(r"1[358]\d{9}", c.director_phone), c.director_phone
        assert all(re.fullmatch(r"1[358]\d{9}", w["phone"]) for w in c.grid_workers)
        cls = CentreClass(c.centre_class)
        assert c.target_year == cls.default_target_year
        assert c.active
    shares = Counter(c.centre_class for c in rows)
    assert set(shares) == {cls.value for cls in CentreClass}
    assert 0.10 <= shares[CentreClass.demonstration.value] / len(rows) <= 0.22
    assert 0.40 <= shares[CentreClass.follow_on.value] / len(rows) <= 0.60
    assert by_code[demo.DEMO_DISTRICT_CODE].centre_class == CentreClass.demonstration.value


def test_tree_queries_agree_with_the_loaded_paths(db: Database) -> None:
    _load(db)
    with db.session() as s:
        rows = _all(s)
        district = centres.get(s, demo.DEMO_DISTRICT_CODE)
        assert [c.code for c in centres.roots(s)] == [district.code]
        towns = centres.children(s, district.code)
        assert [t.code for t in towns] == sorted(
            c.code for c in rows if c.level == Level.town.value
        )
        assert {c.code for c in centres.all_below(s, district)} == {
            c.code for c in rows if c.code != district.code
        }
        for town in towns:
            kids = centres.children(s, town.code)
            # Villages are leaves, so a town's subtree is exactly its children.
            assert [c.code for c in centres.all_below(s, town)] == [k.code for k in kids]
            assert [c.code for c in centres.all_below(s, town, include_self=True)] == [
                town.code,
                *(k.code for k in kids),
            ]
            assert [c.code for c in centres.path_up(s, town)] == [district.code]
            for village in kids:
                assert [c.code for c in centres.path_up(s, village)] == [
                    district.code,
                    town.code,
                ]
                assert centres.all_below(s, village) == []
                assert centres.children(s, village.code) == []
        counts = centres.counts_below(s, district.path)
        assert counts.total == len(rows)
        assert counts.by_level[Level.town.value] == len(towns)


def test_one_account_per_centre_plus_admin(db: Database) -> None:
    summary = _load(db)
    with db.session() as s:
        rows = _all(s)
        accts = list(s.exec(select(Account)))
        assert summary.accounts == len(accts) == len(rows) + 1
        by_user = {a.username: a for a in accts}
        admin = by_user.pop("admin")
        assert admin.role == Role.admin.value and admin.centre_code is None
        assert set(by_user) == {c.code for c in rows}
        for c in rows:
            a = by_user[c.code]
            assert a.centre_code == c.code
            assert a.role == ROLE_BY_LEVEL[c.level]
            assert a.display_name == c.name + "综治中心"
        # One hash per role, shared by every account of that role.
        hashes = Counter((a.role, a.password_hash) for a in accts)
        assert len(hashes) == len(Role)

        op = accounts.authenticate(s, "511703000000", "district-demo-2026")
        assert op.role == Role.district_operator.value
        assert accounts.scope_for(s, op).covers(rows[-1])
        with pytest.raises(NotAuthenticated):
            accounts.authenticate(s, "511703000000", "village-demo-2026")

        village = next(c for c in rows if c.level == Level.village.value)
        v_acct = accounts.authenticate(s, village.code, demo.DEMO_PASSWORDS["village"])
        v_scope = accounts.scope_for(s, v_acct)
        assert [c.code for c in rows if v_scope.covers(c)] == [village.code]
        assert not v_scope.may_manage(village)

        town = centres.get(s, village.parent_code or "")
        t_scope = accounts.scope_for(s, by_user[town.code])
        assert {c.code for c in rows if t_scope.covers(c)} == {
            town.code,
            *(c.code for c in centres.children(s, town.code)),
        }

        a_scope = accounts.scope_for(s, accounts.authenticate(s, "admin", "admin-demo-2026"))
        assert all(a_scope.covers(c) for c in rows)


def test_demo_credentials_all_log_in(db: Database) -> None:
    _load(db)
    with db.session() as s:
        creds = demo.demo_credentials(s)
        assert [(r, u) for r, u, _, _ in creds] == [
            ("admin", "admin"),
            ("district_operator", "511703000000"),
            ("town_operator", "511703001000"),
            ("village", "511703001001"),
        ]
        assert [n for *_, n in creds][:3] == ["", "达川区", "三里桥街道"]
        for role, username, password, _ in creds:
            assert password == demo.DEMO_PASSWORDS[role]
            assert accounts.authenticate(s, username, password).role == role


def test_generation_is_deterministic() -> None:
    hashes = {role: f"hash-{role.value}" for role in Role}
    now = centres.utcnow()
    for scale in demo.SCALES:
        first = demo.build_rows(scale, hashes, now)
        again = demo.build_rows(scale, hashes, now)
        assert first == again
    district = demo.build_rows("district", hashes, now)
    codes = [c["code"] for c in district.centres]
    paths = [c["path"] for c in district.centres]
    # Rows come in code order, which is path order: parents before children.
    assert codes == sorted(codes) and paths == sorted(paths)


def test_loading_twice_is_a_conflict(db: Database) -> None:
    first = _load(db)
    with pytest.raises(Conflict, match=r"already holds \d+ centres"):
        _load(db)
    with db.session() as s:
        held = s.exec(select(func.count()).select_from(Centre)).one()
        assert held == first.districts + first.towns + first.villages
        with pytest.raises(Conflict):
            demo.load_demo(s, "province")


def test_unknown_scale_is_invalid(db: Database) -> None:
    with db.session() as s, pytest.raises(InvalidInput) as err:
        demo.load_demo(s, "county")
    assert err.value.field == "scale"
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(Centre)).one() == 0


def test_an_existing_admin_keeps_its_password(db: Database) -> None:
    with db.session() as s:
        s.add(
            Account(
                username="admin",
                role=Role.admin.value,
                password_hash=accounts.hash_password("the-real-admin-pw"),
                created_at=centres.utcnow(),
            )
        )
    summary = _load(db)
    with db.session() as s:
        assert summary.accounts == s.exec(select(func.count()).select_from(Centre)).one()
        accounts.authenticate(s, "admin", "the-real-admin-pw")
        with pytest.raises(NotAuthenticated):
            accounts.authenticate(s, "admin", demo.DEMO_PASSWORDS["admin"])
        # Only logins that work are offered.
        assert [r for r, *_ in demo.demo_credentials(s)] == [
            "district_operator",
            "town_operator",
            "village",
        ]


# --- province scale -------------------------------------------------------------------


def test_a_province_loads_and_its_tree_queries_answer(db: Database) -> None:
    """How fast: tests/bench/demo.py (a timed assertion here failed on loaded machines)."""
    summary = _load(db, "province")
    assert 170 <= summary.districts <= 190
    assert 2_900 <= summary.towns <= 3_300
    assert 31_000 <= summary.villages <= 35_000
    total = summary.districts + summary.towns + summary.villages
    assert summary.accounts == total + 1

    with db.session() as s:
        district = s.exec(
            select(Centre).where(Centre.level == Level.district.value).order_by(Centre.code)
        ).first()
        assert district is not None and district.code.startswith("91")

        below = centres.all_below(s, district)
        assert below and all(c.path.startswith(district.path) for c in below)

        counts = centres.counts_below(s, None)
        assert counts.total == total
        assert counts.by_level == {
            "district": summary.districts,
            "town": summary.towns,
            "village": summary.villages,
        }
        assert all(counts.by_class[c.value] > 0 for c in CentreClass)

        creds = demo.demo_credentials(s)
        assert [u for _, u, _, _ in creds][:2] == ["admin", district.code]
        assert len(creds) == 4
