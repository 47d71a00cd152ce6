"""The layout check of tests/test_browser_layout.py in English: a case of its own, so
that `make test`'s two parallel workers can run the two locales side by side."""

from __future__ import annotations

import pytest
from test_browser_layout import every_page_holds_its_layout

from dispatch.settings import Settings

from conftest import Cast

pytestmark = pytest.mark.timeout(300)


@pytest.mark.browser
async def test_every_page_holds_its_layout_in_english(
    aiohttp_server, demo_settings: Settings, cast: Cast
) -> None:  # type: ignore[no-untyped-def]
    await every_page_holds_its_layout(aiohttp_server, demo_settings, cast, "en-US")
