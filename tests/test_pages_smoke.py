"""Every page answers every role without a server error, in both languages."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from dispatch.settings import Settings

from conftest import Cast, bearer, make_token

PAGES = ["/", "/centers", "/rota", "/rota?week=2026-W41", "/console", "/journals",
         "/journals?unsigned=1&week=2026-W48", "/issues", "/admin/policy"]  # fmt: skip


@pytest.mark.parametrize("who", ["admin", "district", "town_a", "village_a1"])
@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_pages_never_fail(
    client: TestClient, cast: Cast, demo_settings: Settings, who: str, lang: str
) -> None:
    username = "admin" if who == "admin" else getattr(cast, who)
    h = {**bearer(make_token(demo_settings, username)), "Accept-Language": lang}
    for page in PAGES:
        resp = await client.get(page, headers=h, allow_redirects=False)
        assert resp.status < 500, (page, resp.status, await resp.text())
        if resp.status == 200:
            assert ('lang="zh-CN"' if lang == "zh" else 'lang="en"') in await resp.text()
