"""The rota end to end: CLI, storage, API scope, calendar feeds, pages, a whole year."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise

import icalendar
import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import Session

from dispatch import centres
from dispatch.clock import SHANGHAI
from dispatch.settings import Settings
from schedules import planner, plans, policy, workdays
from schedules.workdays import IsoWeek
from web.cli import main
from web.rota import feed_token
from web.schema import open_database

from conftest import Cast, bearer, make_token


def cli(settings: Settings, *argv: str) -> int:
    return main(["--db", settings.db_url, "--data-dir", settings.data_dir, *argv])


def build_json(settings: Settings, capsys, week: str, *extra: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert cli(settings, "rota", "build", "--week", week, "--format", "json", *extra) == 0
    return json.loads(capsys.readouterr().out)


def overlaps(slots: list[dict]) -> list[str]:  # type: ignore[type-arg]
    """Independent check: no centre (caller or callee) in two calls at once, and no
    caller's console used twice at once."""
    busy: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    problems = []
    for i, s in enumerate(slots):
        start, end = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
        for code in s["callees"]:
            busy[code].append((start, end, i))
        busy[f"console {s['caller']} #{s['console']}"].append((start, end, i))
    for who, spans in busy.items():
        spans.sort()
        for (_s1, e1, a), (s2, _e2, b) in pairwise(spans):
            if s2 < e1:
                problems.append(f"{who}: slots {a} and {b} overlap")
    callers = {s["caller"] for s in slots}
    for code in callers:  # a caller may run parallel calls, but not while it is called
        called = [x for x in busy.get(code, [])]
        for start, end, i in called:
            for j, s in enumerate(slots):
                if s["caller"] == code and j != i:
                    s2, e2 = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
                    if s2 < end and start < e2:
                        problems.append(f"{code} calls in slot {j} while called in slot {i}")
    return problems


def test_build_prints_the_documented_json(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    out = build_json(demo_settings, capsys, "2026-W41")
    assert set(out) >= {"week", "district", "workdays", "exempt", "slots", "unplaced", "warnings"}
    assert out["week"] == "2026-W41" and out["district"] == "511703000000"
    # 1–7 October are off; Saturday 10 October is an adjusted working day.
    assert out["workdays"] == ["2026-10-08", "2026-10-09", "2026-10-10"]
    assert out["exempt"] is False and out["unplaced"] == []
    slot = out["slots"][0]
    assert set(slot) >= {"id", "kind", "caller", "callees", "start", "end", "console"}
    days = {s["start"][:10] for s in out["slots"]}
    assert days <= set(out["workdays"]) and "2026-10-10" in days
    assert all(s["start"].endswith("+08:00") for s in out["slots"])
    assert overlaps(out["slots"]) == []
    # Every town and village is covered by the district, every village patrolled.
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        district = centres.roots(s)[0]
        everyone = {c.code for c in centres.all_below(s, district)}
        villages = {c.code for c in everyone_rows(s, district) if c.level == "village"}
    db.close()
    by_district = {c for s in out["slots"] if s["caller"] == district.code for c in s["callees"]}
    patrolled = {c for s in out["slots"] if s["kind"] == "town_patrol" for c in s["callees"]}
    assert by_district == everyone and patrolled == villages


def everyone_rows(s: Session, district: centres.Centre) -> list[centres.Centre]:
    return centres.all_below(s, district)


def test_same_seed_same_rota_and_rebuilds_keep_uids(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    first = build_json(demo_settings, capsys, "2026-W50", "--seed", "7")
    again = build_json(demo_settings, capsys, "2026-W50", "--seed", "7")
    strip = lambda r: [(s["kind"], s["caller"], s["callees"], s["start"], s["console"])  # noqa: E731
                       for s in r["slots"]]  # fmt: skip
    assert strip(first) == strip(again) and again["revision"] == 2
    assert [s["uid"] for s in first["slots"]] == [s["uid"] for s in again["slots"]]


def test_2027_builds_with_a_calendar_warning(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    out = build_json(demo_settings, capsys, "2027-W02")
    assert any("2027" in w and "chinese-calendar" in w for w in out["warnings"])
    assert out["slots"] and overlaps(out["slots"]) == []


def test_exempt_week(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    week = IsoWeek.parse("2026-W51")
    for day in week.days()[:5]:
        assert cli(demo_settings, "calendar", "set", day.isoformat(), "--day-off") == 0
    capsys.readouterr()
    out = build_json(demo_settings, capsys, str(week))
    assert out["exempt"] is True and out["slots"] == [] and out["workdays"] == []
    assert cli(demo_settings, "rota", "show", "--week", str(week)) == 0
    assert "exempt" in capsys.readouterr().out


def test_undersized_capacity_names_the_unplaced(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli(demo_settings, "policy", "set", "district_consoles=1", "town_consoles=1",
               'windows=[["09:00","09:40"]]', "reserve_fraction=0") == 0  # fmt: skip
    capsys.readouterr()
    out = build_json(demo_settings, capsys, "2026-W49")
    assert out["unplaced"], "a 40-minute day cannot hold the week"
    first = out["unplaced"][0]
    assert first["caller"] and first["callee"] and "slot-minutes" in first["reason"]
    assert overlaps(out["slots"]) == []


def test_cli_refuses_bad_input(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli(demo_settings, "rota", "build", "--week", "2026-W60") == 2
    assert cli(demo_settings, "rota", "build", "--week", "2026-W10", "--district",
               "511703001000") == 2  # fmt: skip
    assert cli(demo_settings, "rota", "show", "--week", "2026-W10") == 2
    assert cli(demo_settings, "policy", "set", "district_consoles=-1") == 2
    assert cli(demo_settings, "policy", "set", "bogus=1") == 2
    assert cli(demo_settings, "calendar", "set", "2026-13-01", "--workday") == 2
    assert cli(demo_settings, "blackout", "add", "511703001001", "--market-days", "x") == 2
    err = capsys.readouterr().err
    assert "week" in err and "district_consoles" in err and "bogus" in err
    assert "Traceback" not in err


def test_blackouts_are_respected(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        town = centres.children(s, centres.roots(s)[0].code)[5]
    db.close()
    assert cli(demo_settings, "blackout", "add", town.code, "--weekday", "0") == 0
    assert cli(demo_settings, "blackout", "add", town.code, "--market-days", "1,4,7") == 0
    capsys.readouterr()
    out = build_json(demo_settings, capsys, "2026-W49")  # Mon 11-30 … Fri 12-04
    for s in out["slots"]:
        if town.code == s["caller"] or town.code in s["callees"]:
            day = date.fromisoformat(s["start"][:10])
            assert day.weekday() != 0 and day.day % 10 not in (1, 4, 7), s


def test_no_centre_is_double_booked_in_any_week_of_2026(demo_settings: Settings) -> None:
    db = open_database(demo_settings.db_url)
    week = IsoWeek(2026, 1)
    problems: list[str] = []
    carried: set[tuple[str, str, str]] = set()  # periodic calls that did not fit last week
    with db.session() as s:
        district = centres.roots(s)[0].code
        everyone = {c.code for c in centres.all_below(s, centres.get(s, district))}
        while week.year == 2026:
            record = planner.build_week(
                s, district, week, now=datetime(2025, 1, 1, tzinfo=SHANGHAI)
            )
            out = plans.week_json(record, plans.week_slots(s, record.id or 0))
            problems += [f"{week}: {p}" for p in overlaps(out["slots"])]
            # Weekly coverage always fits; a quarterly or half-monthly call due on a
            # lone working day may not, and then must come the next week.
            placed = {(x["kind"], x["caller"], c) for x in out["slots"] for c in x["callees"]}
            problems += [f"{week}: {c} not carried over" for c in carried - placed]
            carried = {(u["kind"], u["caller"], u["callee"]) for u in out["unplaced"]}
            problems += [f"{week}: {u}" for u in out["unplaced"]
                         if u["kind"] not in ("supervision", "screening")]  # fmt: skip
            if out["workdays"]:
                covered = {c for x in out["slots"] if x["caller"] == district for c in x["callees"]}
                problems += [f"{week}: {c} not covered" for c in everyone - covered]
            cal = workdays.load_calendar(s)
            assert out["workdays"] == [d.isoformat() for d in cal.workdays(week)]
            assert {x["start"][:10] for x in out["slots"]} <= set(out["workdays"])
            week = week.next()
    db.close()
    assert problems == []


# --- the API, pages and feeds ---------------------------------------------------------------


@pytest.fixture
def built_week(demo_settings: Settings) -> IsoWeek:
    """Next week, built with two spot checks."""
    week = IsoWeek.containing(datetime.now(SHANGHAI).date()).next()
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        policy.set_policy(s, None, {"spot_checks_per_week": 2}, "test")
        planner.build_week(s, centres.roots(s)[0].code, week)
    db.close()
    return week


async def test_each_role_sees_its_part_of_the_rota(
    client: TestClient, cast: Cast, demo_settings: Settings, built_week: IsoWeek
) -> None:
    async def week_as(username: str) -> dict:  # type: ignore[type-arg]
        h = bearer(make_token(demo_settings, username))
        resp = await client.get(f"/api/v1/rota?week={built_week}", headers=h)
        assert resp.status == 200
        return await resp.json()

    full = await week_as(cast.district)
    spot = [s for s in full["slots"] if s["kind"] == "spot_check"]
    assert len(spot) == 2 and all(s["hidden"] for s in spot)
    village = await week_as(cast.village_a1)
    assert village["slots"], "the village is in the district meeting and its town's patrol"
    for s in village["slots"]:
        assert s["callees"] == [cast.village_a1] and not s["hidden"]
    assert village["unplaced"] == [] and village["warnings"] == []
    town = await week_as(cast.town_a)
    mine = {cast.town_a, cast.village_a1, cast.village_a2}
    for s in town["slots"]:
        assert s["caller"] == cast.town_a or set(s["callees"]) & mine
        assert cast.village_b1 not in s["callees"] and not s["hidden"]
    other = await week_as(cast.village_b1)
    assert all(cast.village_a1 not in s["callees"] for s in other["slots"])
    # Only the district (or an admin) builds.
    h = bearer(make_token(demo_settings, cast.town_a))
    resp = await client.post("/api/v1/rota/build", json={"week": str(built_week)}, headers=h)
    assert resp.status == 403


async def test_calendar_feed(
    client: TestClient, cast: Cast, demo_settings: Settings, built_week: IsoWeek
) -> None:
    secret = demo_settings.session_key()
    url = f"/calendar/{cast.village_a1}.ics"
    assert (await client.get(url)).status == 403
    assert (await client.get(f"{url}?token={feed_token(secret, cast.village_a2)}")).status == 403
    resp = await client.get(f"{url}?token={feed_token(secret, cast.village_a1)}")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    raw = await resp.read()
    assert b"TZID=Asia/Shanghai" in raw
    cal = icalendar.Calendar.from_ical(raw)
    events = list(cal.walk("VEVENT"))
    assert events and all(str(e["UID"]).endswith("@pingan-dispatch") for e in events)
    assert all("/rota/slots/" in str(e["URL"]) for e in events)
    assert all("抽查" not in str(e["SUMMARY"]) for e in events)  # unannounced stays unannounced
    first = events[0]
    assert first.decoded("DTSTART").utcoffset() == timedelta(hours=8)
    # A rebuild that moves a call keeps its UID and raises its SEQUENCE.
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        policy.set_policy(s, None, {"windows": [["14:00", "17:30"]]}, "test")
        planner.build_week(s, centres.roots(s)[0].code, built_week)
    db.close()
    again = icalendar.Calendar.from_ical(
        await (await client.get(f"{url}?token={feed_token(secret, cast.village_a1)}")).read()
    )
    before = {str(e["UID"]): (e.decoded("DTSTART"), int(e["SEQUENCE"])) for e in events}
    after = {
        str(e["UID"]): (e.decoded("DTSTART"), int(e["SEQUENCE"])) for e in again.walk("VEVENT")
    }
    assert set(before) == set(after)
    for uid, (start, seq) in after.items():
        assert seq == before[uid][1] + (1 if start != before[uid][0] else 0)
    assert any(seq > 0 for _start, seq in after.values())
    # A rebuild that drops a call keeps it in the feed as CANCELLED with a higher SEQUENCE;
    # a later build that brings it back confirms it again, higher still.
    def feed_events() -> dict[str, tuple[str, int, str]]:
        return {str(e["UID"]): (str(e["STATUS"]), int(e["SEQUENCE"]), str(e["CATEGORIES"].cats))
                for e in icalendar.Calendar.from_ical(raw).walk("VEVENT")}  # fmt: skip

    def rebuild(mode: str) -> None:
        db = open_database(demo_settings.db_url)
        with db.session() as s:
            policy.set_policy(s, None, {"district_mode": mode}, "test")
            planner.build_week(s, centres.roots(s)[0].code, built_week)
        db.close()

    token = feed_token(secret, cast.village_a1)
    rebuild("inspection")
    raw = await (await client.get(f"{url}?token={token}")).read()
    dropped = feed_events()
    meetings = {u for u, (_st, _sq, kinds) in dropped.items() if "district_meeting" in kinds}
    assert meetings and all(dropped[u][0] == "CANCELLED" for u in meetings)
    assert all(dropped[u][1] == after[u][1] + 1 for u in meetings)
    assert any("district_inspection" in k and st == "CONFIRMED" for st, _sq, k in dropped.values())
    rebuild("meeting")
    raw = await (await client.get(f"{url}?token={token}")).read()
    back = feed_events()
    assert all(back[u][0] == "CONFIRMED" and back[u][1] == dropped[u][1] + 1 for u in meetings)


async def test_pages(
    client: TestClient, cast: Cast, demo_settings: Settings, built_week: IsoWeek
) -> None:
    from test_web_auth import csrf_of, login

    await login(client, cast.district, "district-demo-2026")
    html = await (await client.get(f"/rota?week={built_week}")).text()
    assert "区级视频调度会" in html and 'data-testid="week"' in html
    assert "个村（社区）" in html and "等%d个" not in html  # "X街道及所辖N个村（社区）"
    unbuilt = built_week.next()
    html = await (await client.get(f"/rota?week={unbuilt}")).text()
    assert 'data-testid="not-built"' in html
    token = await csrf_of(client, f"/rota?week={unbuilt}")
    resp = await client.post("/rota/build", data={"week": str(unbuilt), "csrf_token": token},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    assert 'data-testid="week"' in await (await client.get(f"/rota?week={unbuilt}")).text()
    assert (await client.get("/admin/policy")).status == 403


async def test_village_home_lists_its_next_calls(
    client: TestClient, cast: Cast, demo_settings: Settings, built_week: IsoWeek
) -> None:
    from test_web_auth import login

    await login(client, cast.village_a1, "village-demo-2026")
    html = await (await client.get("/")).text()
    assert 'data-testid="next-calls"' in html
    if datetime.now(SHANGHAI).date() + timedelta(days=14) >= built_week.monday:
        assert "镇级视频巡查" in html and "区级视频调度会" in html


async def test_admin_edits_policy_and_blackouts(client: TestClient, cast: Cast) -> None:
    from test_web_auth import csrf_of, login

    await login(client, "admin", "admin-demo-2026")
    token = await csrf_of(client, "/admin/policy")
    resp = await client.post("/admin/policy", data={"csrf_token": token, "action": "policy",
                             "district_consoles": "3", "windows": '[["08:30","12:00"]]'},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    got = await (await client.get("/api/v1/policy")).json()
    assert got["policy"]["district_consoles"] == 3
    assert got["policy"]["windows"] == [["08:30", "12:00"]]
    resp = await client.post("/admin/policy", data={"csrf_token": token, "action": "policy",
                             "windows": '[["12:00","08:00"]]'})  # fmt: skip
    assert resp.status == 400 and "windows" in await resp.text()
    resp = await client.post("/admin/policy", data={"csrf_token": token, "action": "blackout",
                             "centre": cast.town_a, "kind": "market_days",
                             "day_digits": "2,5,8"}, allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    listed = await (await client.get("/api/v1/blackouts")).json()
    assert listed["blackouts"][0]["day_digits"] == [2, 5, 8]


def test_a_build_says_what_it_does_to_stored_slots(demo_settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    from web.cli_schedules import build_note

    assert cli(demo_settings, "rota", "build", "--week", "2026-W10") == 0
    err = capsys.readouterr().err
    assert "2026-W10: 新建" in err and "the week has ended" in err
    assert "settles them as missed" in err
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        district = centres.roots(s)[0].code
        week = IsoWeek.parse("2026-W20")
        record = planner.build_week(s, district, week, now=datetime(2026, 5, 1, tzinfo=SHANGHAI))
        slots = plans.week_slots(s, record.id or 0)
        before = {x.uid: (x.start, x.end, x.console) for x in slots}
        before["gone@pingan-dispatch"] = (slots[0].start, slots[0].end, 1)
        slots[0].status = plans.CANCELLED
        slots[0].uid = "gone@pingan-dispatch"
        record.revision = 2
        note = build_note(week, record, before, slots, date(2026, 5, 13))  # a Wednesday
        s.rollback()
    db.close()
    assert "rebuilt as revision 2" in note[0] and f"kept {len(slots) - 1}" in note[0]
    assert "cancelled 1" in note[0] and "STATUS:CANCELLED" in note[0]
    assert "the week is under way" in note[1]
