"""Typed request bodies (issue 11, item 3): wrong types, unknown fields, lone surrogates,
deep nesting, integers past the column range and far weeks get 400 naming the field —
never a 500 — and change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dispatch.settings import Settings

from conftest import Cast, bearer, make_token

BIG = 2**70
DEEP: Any = {"a": 1}
for _ in range(20):
    DEEP = [DEEP]
DEEP = {"a": DEEP}
VERY_DEEP = "[" * 100_000 + "]" * 100_000


async def send(client: TestClient, method: str, path: str, body: Any,
               headers: dict[str, str]) -> tuple[int, dict[str, Any]]:  # fmt: skip
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = {**headers, "Content-Type": "application/json"}
    resp = await client.request(method, path, data=raw.encode("utf-8", "surrogatepass"),
                                headers=headers)  # fmt: skip
    data = await resp.json() if resp.content_type == "application/json" else {}
    return resp.status, data


def surrogate(text: str) -> str:
    """`text` as JSON with a lone surrogate escaped in it (valid JSON, invalid Unicode)."""
    return text.replace("LONE", "\\ud800")


async def test_hostile_centre_patches_name_the_field_and_change_nothing(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    h = bearer(make_token(demo_settings, cast.district))
    url = f"/api/v1/centers/{cast.town_a}"
    before = await (await client.get(url, headers=h)).json()
    cases: list[tuple[Any, str]] = [
        ({"name": 5}, "name"),
        ({"name": ["a"]}, "name"),
        ({"target_year": BIG}, "target_year"),
        ({"active": 1}, "active"),
        ({"director": "张三"}, "director"),
        ({"director": {"name": "张三", "phone": 13800000000}}, "director.phone"),
        ({"director": {"name": "张三", "mobile": "1"}}, "director.mobile"),
        (surrogate('{"director": {"name": "LONE", "phone": ""}}'), "director.name"),
        (surrogate('{"name": "a\\u0000b"}'), "name"),
        ({"grid_workers": DEEP}, "grid_workers"),
        (VERY_DEEP, "body"),
        ('{"name": NaN}', "body"),
        ({"code": cast.village_a2}, "code"),
    ]
    for body, field in cases:
        status, data = await send(client, "PATCH", url, body, h)
        shown = body if len(str(body)) < 200 else "deep"
        assert status == 400 and data.get("field") == field, (shown, status, data)
    after = await (await client.get(url, headers=h)).json()
    assert after == before


async def test_integers_past_the_column_range_are_refused(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    h = bearer(make_token(demo_settings, cast.town_a))
    for body, field in (
        ({"slot_id": BIG}, "slot_id"),
        ({"slot_id": 2**63}, "slot_id"),
        ({"slot_id": "7"}, "slot_id"),
        ({"slot_id": True}, "slot_id"),
        ({"callees": [cast.village_a1], "kind": "meeting", "extra": 1}, "extra"),
    ):
        status, data = await send(client, "POST", "/api/v1/calls", body, h)
        assert status == 400 and data["field"] == field, (body, status, data)
    issue = {"centre": cast.village_a1, "category": "hazard", "severity": "general",
             "description": "d", "call_id": BIG}  # fmt: skip
    status, data = await send(client, "POST", "/api/v1/issues", issue, h)
    assert status == 400 and data["field"] == "call_id"
    for path, field in (
        ("/api/v1/calls/99999999999999999999", "call_id"),
        ("/api/v1/calls/9223372036854775808/media", "call_id"),
        ("/api/v1/issues/99999999999999999999", "issue_id"),
        ("/api/v1/journals/99999999999999999999", "call_id"),
        ("/api/v1/calls/1/snapshots/99999999999999999999", "event_id"),
        ("/rota/slots/99999999999999999999", None),
        ("/issues?call=%C2%B2", None),
    ):
        resp = await client.get(path, headers=h)
        assert resp.status == 400, (path, resp.status)
        if field:
            assert (await resp.json())["field"] == field
    resp = await client.delete("/api/v1/blackouts/99999999999999999999", headers=h)
    assert resp.status == 400 and (await resp.json())["field"] == "id"


async def test_far_and_invalid_weeks_are_refused(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    h = bearer(make_token(demo_settings, cast.district))
    for week in ("9999-W52", "0001-W01", "2026-W54", "2026-W00", "２０２６-W01"):
        status, data = await send(client, "POST", "/api/v1/rota/build", {"week": week}, h)
        assert status == 400 and data["field"] == "week", (week, status, data)
        for path in ("/api/v1/rota", "/api/v1/journals"):
            resp = await client.get(path, params={"week": week}, headers=h)
            assert resp.status == 400 and (await resp.json())["field"] == "week", (path, week)
    status, data = await send(client, "POST", "/api/v1/rota/build", {"week": 202641}, h)
    assert status == 400 and data["field"] == "week"
    status, data = await send(client, "POST", "/api/v1/rota/build",
                              {"week": "2026-W41", "seed": -1}, h)  # fmt: skip
    assert status == 400 and data["field"] == "seed"


async def test_missing_and_unknown_fields_are_named(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    admin = bearer(make_token(demo_settings, "admin"))
    for method, path, body, field in (
        ("POST", "/api/v1/auth/token", {"username": "admin", "password": "x", "role": "admin"},
         "role"),
        ("POST", "/api/v1/accounts", {"username": "newbie", "password": "p" * 12}, "role"),
        ("POST", "/api/v1/accounts", {"username": "newbie", "password": 123456789012,
                                      "role": "village"}, "password"),
        ("PATCH", "/api/v1/policy", {"windows": [["09:00"]]}, "windows.0"),
        ("PATCH", "/api/v1/policy", {"town_consoles": "2"}, "town_consoles"),
        ("PATCH", "/api/v1/policy", {"weekends": True}, "weekends"),
        ("POST", "/api/v1/blackouts", {"centre": cast.village_a1, "kind": "weekday",
                                       "weekday": 9}, "weekday"),
        ("POST", "/api/v1/blackouts", {"kind": "weekday", "weekday": 1}, "centre"),
        ("POST", "/api/v1/blackouts", surrogate(f'{{"centre": "{cast.village_a1}", '
                                                '"kind": "weekday", "weekday": 1, '
                                                '"note": "LONE"}'), "note"),
        ("POST", "/api/v1/issues", {"centre": cast.village_a1}, "category"),
    ):  # fmt: skip
        status, data = await send(client, method, path, body, admin)
        assert status == 400 and data.get("field") == field, (path, body, status, data)
    resp = await client.get("/api/v1/blackouts", headers=admin)
    assert (await resp.json())["blackouts"] == []


JSON_ENDPOINTS = [
    ("POST", "/api/v1/auth/token"),
    ("PATCH", "/api/v1/centers/{village}"),
    ("POST", "/api/v1/accounts"),
    ("PATCH", "/api/v1/policy"),
    ("POST", "/api/v1/blackouts"),
    ("POST", "/api/v1/rota/build"),
    ("POST", "/api/v1/calls"),
    ("POST", "/api/v1/calls/1/leave"),
    ("POST", "/api/v1/calls/1/floor"),
    ("POST", "/api/v1/calls/1/snapshot"),
    ("POST", "/api/v1/issues"),
    ("POST", "/api/v1/issues/1/edit"),
    ("POST", "/api/v1/journals/1/notes"),
    ("POST", "/api/v1/journals/1/amend"),
]
HOSTILE: list[Any] = [
    [], "x", 5, None, VERY_DEEP, '{"a": Infinity}', surrogate('{"LONE": 1}'),
    {"centre": BIG, "week": BIG, "slot_id": -BIG, "note": {"x": [1]}},
    {"changes": {"deadline": "2026-02-30"}, "text": surrogate("LONE")},
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
async def test_no_hostile_body_gets_a_500(
    client: TestClient, cast: Cast, demo_settings: Settings, method: str, path: str
) -> None:
    h = bearer(make_token(demo_settings, "admin"))
    for body in HOSTILE:
        status, data = await send(client, method, path.format(village=cast.village_a1), body, h)
        assert 400 <= status < 500 and "error" in data, (path, str(body)[:80], status, data)
