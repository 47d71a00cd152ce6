"""The scope rule, proven over roles × endpoints × targets.

Every account sees and acts on its own centre and the centres below it, nothing else.
Each cell of the matrix is one request with that account's bearer token; the expected
status comes from the rule, computed independently of the server's code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conftest import Cast, bearer, make_token

# Which targets each actor's subtree holds (the rule, stated by hand).
COVERS: dict[str, set[str]] = {
    "admin": {"district", "town_a", "town_b", "village_a1", "village_a2", "village_b1"},
    "district": {"district", "town_a", "town_b", "village_a1", "village_a2", "village_b1"},
    "town_a": {"town_a", "village_a1", "village_a2"},
    "town_b": {"town_b", "village_b1"},
    "village_a1": {"village_a1"},
    "village_b1": {"village_b1"},
}
# Managed fields and new accounts: only for centres strictly below (admin: all).
MANAGES: dict[str, set[str]] = {
    actor: (targets if actor == "admin" else targets - {actor}) for actor, targets in COVERS.items()
}
MANAGES["village_a1"] = set()
MANAGES["village_b1"] = set()

ROLE_FOR_LEVEL = {
    "district": "district_operator",
    "town_a": "town_operator",
    "town_b": "town_operator",
    "village_a1": "village",
    "village_a2": "village",
    "village_b1": "village",
}


def username_of(actor: str, cast: Cast) -> str:
    return "admin" if actor == "admin" else cast.all()[actor]


Request = Callable[[TestClient, dict[str, str], str, str], Any]


async def get_record(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    return (await c.get(f"/api/v1/centers/{code}", headers=h)).status


async def get_children(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    return (await c.get(f"/api/v1/centers/{code}/children", headers=h)).status


async def list_under(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    return (await c.get("/api/v1/centers", params={"under": code}, headers=h)).status


async def export_under(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    return (await c.get("/api/v1/centers/export", params={"under": code}, headers=h)).status


async def page(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    return (await c.get(f"/centers/{code}", headers=h, allow_redirects=False)).status


async def patch_contacts(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    body = {"director": {"name": "测试主任", "phone": "13800000000"}}
    return (await c.patch(f"/api/v1/centers/{code}", json=body, headers=h)).status


async def patch_managed(c: TestClient, h: dict[str, str], code: str, _t: str) -> int:
    return (
        await c.patch(f"/api/v1/centers/{code}", json={"class": "demonstration"}, headers=h)
    ).status


async def add_account(c: TestClient, h: dict[str, str], code: str, target: str) -> int:
    body = {
        "username": f"new-{code}",
        "password": "a-long-password",
        "centre": code,
        "role": ROLE_FOR_LEVEL[target],
    }
    return (await c.post("/api/v1/accounts", json=body, headers=h)).status


READS: list[Request] = [get_record, get_children, list_under, export_under, page]


@pytest.mark.parametrize("actor", sorted(COVERS))
async def test_reads_follow_the_scope(client: TestClient, cast: Cast, demo_settings, actor) -> None:  # type: ignore[no-untyped-def]
    h = bearer(make_token(demo_settings, username_of(actor, cast)))
    got, want = {}, {}
    for request in READS:
        for target, code in cast.all().items():
            key = f"{request.__name__} {target}"
            got[key] = await request(client, h, code, target)
            want[key] = 200 if target in COVERS[actor] else 403
    assert got == want


@pytest.mark.parametrize("actor", sorted(COVERS))
async def test_writes_follow_the_scope(
    client: TestClient, cast: Cast, demo_settings, actor
) -> None:  # type: ignore[no-untyped-def]
    h = bearer(make_token(demo_settings, username_of(actor, cast)))
    got, want = {}, {}
    for target, code in cast.all().items():
        got[f"contacts {target}"] = await patch_contacts(client, h, code, target)
        want[f"contacts {target}"] = 200 if target in COVERS[actor] else 403
        got[f"managed {target}"] = await patch_managed(client, h, code, target)
        want[f"managed {target}"] = 200 if target in MANAGES[actor] else 403
        got[f"account {target}"] = await add_account(client, h, code, target)
        want[f"account {target}"] = 201 if target in MANAGES[actor] else 403
    assert got == want


@pytest.mark.parametrize("actor", sorted(COVERS))
async def test_lists_hold_only_the_subtree(
    client: TestClient, cast: Cast, demo_settings, actor
) -> None:  # type: ignore[no-untyped-def]
    h = bearer(make_token(demo_settings, username_of(actor, cast)))
    resp = await client.get("/api/v1/centers", params={"limit": "1000"}, headers=h)
    codes = {c["code"] for c in (await resp.json())["centers"]}
    mine = cast.all().get(actor)
    if actor == "admin":
        assert {cast.district, cast.village_b1} <= codes
    else:
        assert mine in codes
        for target, code in cast.all().items():
            assert (code in codes) == (target in COVERS[actor]), target
    resp = await client.get("/api/v1/accounts", headers=h)
    owners = {a["centre"] for a in (await resp.json())["accounts"]}
    for target, code in cast.all().items():
        assert (code in owners) == (target in COVERS[actor]), target


async def test_a_village_cannot_read_another_village_anywhere(
    client: TestClient, cast: Cast, demo_settings
) -> None:  # type: ignore[no-untyped-def]
    h = bearer(make_token(demo_settings, cast.village_a1))
    other = cast.village_a2
    for url in (
        f"/api/v1/centers/{other}",
        f"/api/v1/centers/{other}/children",
        f"/centers/{other}",
        f"/api/v1/centers?under={other}",
        f"/api/v1/centers/export?under={other}&format=xlsx",
    ):
        resp = await client.get(url, headers=h)
        assert resp.status == 403, url
        assert other not in (await resp.text()).replace(f"centre {other} is outside", ""), url
    for url in ("/api/v1/centers?q=村", "/api/v1/accounts", "/api/v1/centers/export", "/centers"):
        body = await (await client.get(url, headers=h)).text()
        assert other not in body, url


async def test_identity_comes_from_the_token_not_the_body(
    client: TestClient, cast: Cast, demo_settings
) -> None:  # type: ignore[no-untyped-def]
    h = bearer(make_token(demo_settings, cast.village_a1))
    # Fields that would change who or where the caller is are refused, not obeyed.
    for body in (
        {"centre": cast.district},
        {"role": "admin"},
        {"parent_code": cast.town_b},
        {"code": cast.village_a2},
    ):
        resp = await client.patch(f"/api/v1/centers/{cast.village_a1}", json=body, headers=h)
        assert resp.status == 400, body
        assert "field" in await resp.json()
    me = await (await client.get("/api/v1/me?centre=" + cast.district, headers=h)).json()
    assert me["scope"]["centre"] == cast.village_a1 and me["scope"]["role"] == "village"
