"""The operator's page of a town meeting tells the server which tiles are small; a small
tile's village comes at its base temporal layer, the floor holder's (large) tile at all
of them. Real app, headless Chromium for the operator and for one village (which
publishes L1T3), media on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from dispatch import centres
from dispatch.db import Database
from dispatch.settings import Settings
from media.linkrate import TOP
from media.room import Room
from web.app import create_app
from web.appkeys import CONFERENCE

from browser import chromium, log_in
from conftest import Cast, bearer, make_token, wait_for

# Frames the operator's page decoded on a tile's video track (getStats).
DECODED = """async (centre) => {
  const tile = document.querySelector(`.tile[data-centre="${centre}"]`);
  const track = tile?.bound?.video;
  if (!track || !window.dispatchPeer) return 0;
  const stats = await window.dispatchPeer.getStats(track);
  for (const s of stats.values()) if (s.type === "inbound-rtp") return s.framesDecoded || 0;
  return 0;
}"""

WIDTHS = "() => [...document.querySelectorAll('.tile[data-centre] video')].map(v => v.clientWidth)"

MARKED = "() => [...document.querySelectorAll('.tile')].filter(t => t.dataset.small === '1')" \
    ".map(t => t.dataset.centre)"


def villages_of(settings: Settings, town: str) -> list[str]:
    database = Database(settings.db_url)
    with database.session() as s:
        codes = [v.code for v in centres.children(s, town)]
    database.close()
    return codes


async def test_small_tiles_get_the_base_layer_and_the_floor_holder_all(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)
    app = create_app(settings)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    callees = villages_of(settings, cast.town_a)
    assert cast.village_a1 in callees and len(callees) >= 8, "a grid of small tiles"
    async with (
        chromium(tmp_path / "town") as town_ctx,
        chromium(tmp_path / "village") as village_ctx,
    ):
        village = await village_ctx.new_page()  # its page is open when the call rings
        await log_in(village, base, cast.village_a1, "village-demo-2026")
        async with aiohttp.ClientSession() as http:
            meeting = {"callees": callees, "kind": "meeting"}
            resp = await http.post(f"{base}/api/v1/calls", json=meeting,
                                   headers=bearer(make_token(settings, cast.town_a)))  # fmt: skip
            assert resp.status == 201, await resp.text()
            call_id = (await resp.json())["call"]["id"]
        town = await town_ctx.new_page()
        await log_in(town, base, cast.town_a, "town-demo-2026")
        await town.goto(f"{base}/calls/{call_id}")
        ring = village.locator("#live .ring")
        await ring.wait_for(timeout=15_000)
        await ring.locator("button.accept").click()
        await village.wait_for_url(f"{base}/calls/{call_id}")

        # Every village's tile is small in the page's grid, and the server knows it.
        conference = app[CONFERENCE]
        await wait_for(lambda: len(conference.rooms()) == 1)
        room = conference.rooms()[0]
        assert isinstance(room, Room)
        widths = await town.evaluate(WIDTHS)
        assert widths and max(widths) < 320, widths
        await wait_for(lambda: room._small == frozenset(callees), within=20)
        await town.wait_for_function(f"() => ({MARKED})().length === {len(callees)}")
        marked = await town.evaluate(MARKED)
        assert sorted(marked) == sorted(callees)  # the page marks what the server has

        def slot() -> Any:
            index = room.operator_slots().get(cast.village_a1)
            peer = room._peers.get(cast.town_a)
            return None if index is None or peer is None else peer.slots["video"][index]

        await wait_for(lambda: (s := slot()) is not None and s.feed is not None and s.feed.layered,
                       within=20)  # fmt: skip
        await wait_for(lambda: slot().dropped > 30 and slot().forwarded > 10, within=20)
        assert slot().ceiling == 0
        seen = await town.evaluate(DECODED, cast.village_a1)
        await wait_for_page(town, DECODED, cast.village_a1, seen + 5)  # still decodes

        # The floor holder's tile grows (2x2): it leaves the small set, all layers again.
        await town.locator(f'.tile[data-centre="{cast.village_a1}"] button.floor').click()
        await wait_for(lambda: cast.village_a1 not in room._small, within=20)
        assert room._small == frozenset(callees) - {cast.village_a1}
        await wait_for(lambda: slot().ceiling == TOP)
        forwarded = slot().forwarded
        await wait_for(lambda: slot().forwarded > forwarded + 2)  # past a layer-0 frame
        dropped, forwarded = slot().dropped, slot().forwarded
        await wait_for(lambda: slot().forwarded > forwarded + 20)
        assert slot().dropped == dropped


async def wait_for_page(page: Any, script: str, arg: str, at_least: int) -> None:
    await page.wait_for_function(
        f"async (centre) => (await ({script})(centre)) >= {at_least}", arg=arg, timeout=20_000
    )
