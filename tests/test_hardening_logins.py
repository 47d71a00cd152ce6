"""Sessions (issue 11, item 5): logout ends the login in the database, a password change
ends every login and token of the account, the password policy holds on every path
that sets one, and the login throttle keys on the real client address behind trusted
proxies, backs off instead of locking out, and can be cleared by an admin."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import select

from dispatch import accounts, demo, logins, passwords
from dispatch.db import Database
from dispatch.errors import InvalidInput, NotAuthenticated
from dispatch.settings import Settings
from web.app import create_app
from web.throttle import LoginThrottle

from conftest import Cast, bearer, make_token

DISTRICT_PW = demo.DEMO_PASSWORDS["district_operator"]
COOKIE = re.compile(r"pd_session=([^;]+)")


async def cookie_login(client: TestClient, username: str, password: str) -> str:
    """Log in through the form with a fresh cookie jar; the session cookie's value."""
    client.session.cookie_jar.clear()
    html = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert csrf
    resp = await client.post("/login", allow_redirects=False, data={
        "username": username, "password": password, "csrf_token": csrf.group(1)})  # fmt: skip
    assert resp.status == 303, await resp.text()
    found = COOKIE.search(resp.headers["Set-Cookie"])
    assert found
    return found.group(1)


async def me_with_cookie(client: TestClient, cookie: str) -> int:
    client.session.cookie_jar.clear()
    resp = await client.get("/api/v1/me", headers={"Cookie": f"pd_session={cookie}"})
    return resp.status


async def csrf_for(client: TestClient, cookie: str) -> str:
    client.session.cookie_jar.clear()
    html = await (await client.get("/", headers={"Cookie": f"pd_session={cookie}"})).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)  # fmt: skip
    assert found, html[:500]
    return found.group(1)


async def token_for(client: TestClient, username: str, password: str) -> tuple[int, str]:
    client.session.cookie_jar.clear()  # a bearer client: no cookie, no CSRF
    resp = await client.post("/api/v1/auth/token",
                             json={"username": username, "password": password})  # fmt: skip
    data = await resp.json()
    return resp.status, data.get("token", "")


async def test_a_copied_cookie_is_worthless_after_logout(client: TestClient, cast: Cast) -> None:
    cookie = await cookie_login(client, cast.district, DISTRICT_PW)
    assert await me_with_cookie(client, cookie) == 200
    csrf = await csrf_for(client, cookie)
    resp = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False,
                             headers={"Cookie": f"pd_session={cookie}"})  # fmt: skip
    assert resp.status == 303
    assert await me_with_cookie(client, cookie) == 401  # the old cookie, replayed


async def test_a_password_change_ends_every_login_and_token(
    client: TestClient, cast: Cast
) -> None:
    first = await cookie_login(client, cast.district, DISTRICT_PW)
    second = await cookie_login(client, cast.district, DISTRICT_PW)
    _, token = await token_for(client, cast.district, DISTRICT_PW)
    _, other = await token_for(client, cast.district, DISTRICT_PW)
    village = await cookie_login(client, cast.village_a1, demo.DEMO_PASSWORDS["village"])
    client.session.cookie_jar.clear()
    new = "纠纷排查-new-2026"
    resp = await client.post("/api/v1/me/password", headers=bearer(token), json={
        "current_password": "wrong-password", "new_password": new})  # fmt: skip
    assert resp.status == 400 and (await resp.json())["field"] == "current_password"
    assert await me_with_cookie(client, first) == 200  # a refused change ends nothing
    resp = await client.post("/api/v1/me/password", headers=bearer(token), json={
        "current_password": DISTRICT_PW, "new_password": new})  # fmt: skip
    assert resp.status == 200
    for cookie in (first, second):
        assert await me_with_cookie(client, cookie) == 401
    for t in (token, other):
        assert (await client.get("/api/v1/me", headers=bearer(t))).status == 401
    assert await me_with_cookie(client, village) == 200  # another account is untouched
    assert (await token_for(client, cast.district, DISTRICT_PW))[0] == 401
    assert (await token_for(client, cast.district, new))[0] == 201


@pytest.mark.parametrize("weak", ["short-pw", "1234567890", "Password123", "QWERTYUIOP",
                                  "aaaaaaaaaaaa", "5678901234", "woaini1314"])  # fmt: skip
def test_the_policy_refuses_short_and_common_passwords(weak: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        passwords.check(weak)
    assert refused.value.field == "password"
    with pytest.raises(InvalidInput):
        accounts.hash_password(weak)


async def test_every_path_that_sets_a_password_applies_the_policy(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    admin = bearer(make_token(demo_settings, "admin"))
    body = {"username": "newcomer", "role": "village", "centre": cast.village_b1}
    for weak in ("12345678", "1234567890", "password123"):
        resp = await client.post("/api/v1/accounts", headers=admin,
                                 json={**body, "password": weak})  # fmt: skip
        assert resp.status == 400 and (await resp.json())["field"] == "password", weak
    resp = await client.post("/api/v1/accounts", headers=admin,
                             json={**body, "password": "三里桥-village-pw"})  # fmt: skip
    assert resp.status == 201
    _, token = await token_for(client, cast.district, DISTRICT_PW)
    resp = await client.post("/api/v1/me/password", headers=bearer(token), json={
        "current_password": DISTRICT_PW, "new_password": "qwertyuiop"})  # fmt: skip
    assert resp.status == 400 and (await resp.json())["field"] == "new_password"
    assert (await client.get("/api/v1/me", headers=bearer(token))).status == 200


@pytest.fixture
async def proxied(aiohttp_client, demo_settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(demo_settings.with_(trusted_proxies="127.0.0.1")))


async def guess(client: TestClient, username: str, password: str, forwarded: str) -> int:
    resp = await client.post("/api/v1/auth/token", headers={"X-Forwarded-For": forwarded},
                             json={"username": username, "password": password})  # fmt: skip
    return resp.status


async def test_behind_a_trusted_proxy_a_guesser_slows_only_itself(
    proxied: TestClient, cast: Cast
) -> None:
    for _ in range(5):
        assert await guess(proxied, cast.town_a, "wrong-password", "203.0.113.5") == 401
    resp = await proxied.post("/api/v1/auth/token", headers={"X-Forwarded-For": "203.0.113.5"},
                              json={"username": cast.town_a, "password": "wrong-password"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    # The guesser cannot pose as someone else by prepending to the header...
    assert await guess(proxied, cast.town_a, "x-password", "198.51.100.7, 203.0.113.5") == 429
    # ...and the town itself, behind the same proxy, logs in.
    town_pw = demo.DEMO_PASSWORDS["town_operator"]
    assert await guess(proxied, cast.town_a, town_pw, "198.51.100.7") == 201


async def test_without_trusted_proxies_the_header_is_ignored(
    client: TestClient, cast: Cast
) -> None:
    for n in range(5):
        assert await guess(client, cast.town_a, "wrong-password", f"192.0.2.{n}") == 401
    assert await guess(client, cast.town_a, "wrong-password", "192.0.2.99") == 429


async def test_an_admin_unlocks_a_username(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    town_pw = demo.DEMO_PASSWORDS["town_operator"]
    for _ in range(5):
        assert (await token_for(client, cast.town_a, "wrong-password"))[0] == 401
    assert (await token_for(client, cast.town_a, town_pw))[0] == 429
    district = bearer(make_token(demo_settings, cast.district))
    resp = await client.post(f"/api/v1/accounts/{cast.town_a}/unlock", headers=district)
    assert resp.status == 403
    admin = bearer(make_token(demo_settings, "admin"))
    resp = await client.post(f"/api/v1/accounts/{cast.town_a}/unlock", headers=admin)
    assert resp.status == 200 and (await resp.json())["unlocked"] == 1
    assert (await token_for(client, cast.town_a, town_pw))[0] == 201


def test_the_throttle_backs_off_instead_of_locking_out() -> None:
    now = [1000.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    throttle = LoginThrottle(limit=5, window=3600, base_delay=15, max_delay=300, clock=clock)
    for _ in range(5):
        assert throttle.attempt("511703001000", "10.0.0.1")
    waits = []
    for _ in range(6):
        assert not throttle.attempt("511703001000", "10.0.0.1")
        waits.append(throttle.retry_after("511703001000", "10.0.0.1"))
        now[0] += waits[-1]
        assert throttle.attempt("511703001000", "10.0.0.1")  # after the wait: one more try
    assert waits == [15, 30, 60, 120, 240, 300]  # doubling, capped; never a lock-out
    assert throttle.attempt("511703001000", "10.0.0.2")  # another address is not slowed
    throttle.succeeded("511703001000", "10.0.0.1")
    assert throttle.retry_after("511703001000", "10.0.0.1") == 0


def test_the_login_table_keeps_only_logins_in_use(db: Database) -> None:
    with db.session() as s:
        account = accounts.create_account(s, username="pruned", password="纠纷排查-pruned-1",
                                          role="admin", centre_code=None)  # fmt: skip
        kept = logins.start(s, account.id or 0, 3600)
        ended = logins.start(s, account.id or 0, 3600)
        logins.end(s, ended)
        logins.start(s, account.id or 0, 3600)  # prunes the ended one
        rows = s.exec(select(logins.Login)).all()
        assert len(rows) == 2 and all(r.ended_at is None for r in rows)
        assert logins.account_for(s, account.id or 0, kept).username == "pruned"
        with pytest.raises(NotAuthenticated):
            logins.account_for(s, account.id or 0, ended)
