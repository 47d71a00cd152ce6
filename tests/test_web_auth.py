"""Login, cookie sessions, CSRF, bearer tokens, language and the error contract."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from dispatch import demo

from conftest import Cast, bearer, make_token

DISTRICT_PW = demo.DEMO_PASSWORDS["district_operator"]


async def csrf_of(client: TestClient, url: str = "/login") -> str:
    html = await (await client.get(url)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def login(client: TestClient, username: str, password: str, **extra: str):  # type: ignore[no-untyped-def]
    token = await csrf_of(client)
    data = {"username": username, "password": password, "csrf_token": token, **extra}
    return await client.post("/login", data=data, allow_redirects=False)


async def test_pages_send_a_stranger_to_login(client: TestClient) -> None:
    resp = await client.get("/centers", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login?next=/centers")


async def test_district_operator_logs_in_and_sees_the_tree(client: TestClient, cast: Cast) -> None:
    resp = await login(client, cast.district, DISTRICT_PW)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "pd_session=" in cookie
    html = await (await client.get("/centers")).text()
    assert "达川区" in html and "百节镇" in html and "示范类" in html
    home = await (await client.get("/")).text()
    assert "区综治中心调度员" in home


async def test_wrong_password_is_refused_then_throttled(client: TestClient, cast: Cast) -> None:
    for _ in range(5):
        resp = await login(client, cast.district, "wrong-password")
        assert resp.status == 401
        assert "用户名或密码错误" in await resp.text()
    resp = await login(client, cast.district, DISTRICT_PW)
    assert resp.status == 429


async def test_login_without_csrf_token_is_refused(client: TestClient, cast: Cast) -> None:
    await client.get("/login")
    resp = await client.post(
        "/login", data={"username": cast.district, "password": DISTRICT_PW}, allow_redirects=False
    )
    assert resp.status == 403
    assert "CSRF" in await resp.text()


async def test_cookie_writes_need_the_csrf_header(client: TestClient, cast: Cast) -> None:
    await login(client, cast.town_a, demo.DEMO_PASSWORDS["town_operator"])
    body = {"director": {"name": "王主任", "phone": "13900000000"}}
    resp = await client.patch(f"/api/v1/centers/{cast.village_a1}", json=body)
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    token = await csrf_of(client, "/")
    resp = await client.patch(
        f"/api/v1/centers/{cast.village_a1}", json=body, headers={"X-CSRF-Token": token}
    )
    assert resp.status == 200 and (await resp.json())["director"]["name"] == "王主任"


async def test_logout_ends_the_session(client: TestClient, cast: Cast) -> None:
    await login(client, cast.district, DISTRICT_PW)
    token = await csrf_of(client, "/")
    resp = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    resp = await client.get("/api/v1/me")
    assert resp.status == 401


async def test_next_never_leaves_the_site(client: TestClient, cast: Cast) -> None:
    resp = await login(client, cast.district, DISTRICT_PW, next="https://evil.example/")
    assert resp.headers["Location"] == "/"
    resp = await login(client, cast.district, DISTRICT_PW, next="//evil.example/")
    assert resp.headers["Location"] == "/"


async def test_token_issue_use_and_revoke(client: TestClient, cast: Cast) -> None:
    resp = await client.post(
        "/api/v1/auth/token",
        json={"username": cast.village_b1, "password": demo.DEMO_PASSWORDS["village"]},
    )
    assert resp.status == 201
    token = (await resp.json())["token"]
    me = await (await client.get("/api/v1/me", headers=bearer(token))).json()
    assert me["scope"] == {
        "username": cast.village_b1,
        "role": "village",
        "centre": cast.village_b1,
    }
    assert (await client.delete("/api/v1/auth/token", headers=bearer(token))).status == 200
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_credentials_and_bad_bodies_get_json_errors(client: TestClient) -> None:
    resp = await client.post("/api/v1/auth/token", json={"username": "nobody", "password": "x"})
    assert resp.status == 401 and (await resp.json())["error"] == "not_authenticated"
    resp = await client.post("/api/v1/auth/token", json={"username": "nobody"})
    assert resp.status == 400 and (await resp.json())["field"] == "password"
    resp = await client.post(
        "/api/v1/auth/token", data="not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["field"] == "body"
    resp = await client.get("/api/v1/me", headers=bearer("pd_forged"))
    assert resp.status == 401


async def test_bad_input_names_the_field_and_changes_nothing(
    client: TestClient, cast: Cast, demo_settings
) -> None:  # type: ignore[no-untyped-def]
    h = bearer(make_token(demo_settings, cast.district))
    before = await (await client.get(f"/api/v1/centers/{cast.town_a}", headers=h)).json()
    for body, field in (
        ({"class": "gold"}, "class"),
        ({"target_year": "soon"}, "target_year"),
        ({"grid_workers": [{"phone": "1"}]}, "grid_workers"),
        ({"active": "yes"}, "active"),
        ({"name": "  "}, "name"),
        ({"name": "好", "director": {"phone": "call me"}}, "director.phone"),
    ):
        resp = await client.patch(f"/api/v1/centers/{cast.town_a}", json=body, headers=h)
        assert resp.status == 400, body
        assert (await resp.json())["field"] == field
    after = await (await client.get(f"/api/v1/centers/{cast.town_a}", headers=h)).json()
    assert after == before
    for url, field in (
        ("/api/v1/centers/12345", "code"),
        ("/api/v1/centers?limit=0", "limit"),
        ("/api/v1/centers?level=city", "level"),
        ("/api/v1/centers/export?format=pdf", "format"),
    ):
        resp = await client.get(url, headers=h)
        assert resp.status == 400, url
        assert (await resp.json())["field"] == field
    resp = await client.get("/api/v1/centers/999999999999", headers=h)
    assert resp.status == 404
    assert (await client.get("/healthz")).status == 200


async def test_language_by_query_cookie_and_header(client: TestClient) -> None:
    assert "登录" in await (await client.get("/login")).text()
    html = await (await client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})).text()
    assert "Log in" in html and 'lang="en"' in html
    html = await (await client.get("/login?lang=en")).text()
    assert "Log in" in html
    html = await (await client.get("/login", headers={"Accept-Language": "zh-CN"})).text()
    assert "Log in" in html  # the cookie set by ?lang=en wins over the header
    html = await (await client.get("/login?lang=zh")).text()
    assert "用户名" in html


async def test_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok", "db": "ok"}
