"""In headless Chromium with a fake camera (all media on 127.0.0.1): the operator's page
(Chinese) rings a village whose page (English) answers from its join link.

- Both pages publish VP8 with temporal layers (L1T3), and the server's room sees the
  layers in what arrives (the feed of each is `layered`).
- Every tile shows its link quality as numbers (bitrate, loss, round trip), labelled
  in its page's language.
- The operator page's state reads 呼叫中, then 通话中 once the village answers, then
  调度已结束; its log names centres and events, never codes or event identifiers.
- When the village's camera stops while its sound goes on (what a viewer sees when the
  server pauses video on a weak link), its tile says 仅音频 and claims no live video,
  the page keeps its connection, and frames coming back clear it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Page
from test_browser_reconnect import launch, until

from dispatch import centres
from dispatch.settings import Settings
from media.forwarding import Feed
from media.room import Room
from web.app import create_app
from web.appkeys import CONFERENCE
from web.schema import open_database

from browser import chromium, log_in
from conftest import Cast, make_token

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

WAIT = 30_000  # ms: generous, the machine is shared

# The tile of `code`: its connection state, overlay, labels, link line and whether its
# picture is shown; and the page's peer generation (a reconnect makes a new one).
TILE = """(code) => {
  const tile = document.querySelector(`.tile[data-centre="${code}"]`);
  const link = tile.querySelector(".link");
  return {
    conn: tile.dataset.conn || "", generation: Number(tile.dataset.generation || 0),
    overlay: tile.querySelector(".conn").hidden ? "" : tile.querySelector(".conn").textContent,
    video: tile.querySelector(".video").textContent,
    verified: tile.querySelector(".verified").textContent,
    faces: tile.querySelector(".faces").textContent,
    shown: getComputedStyle(tile.querySelector("video")).visibility !== "hidden",
    link: link.textContent, kbps: link.dataset.kbps ?? "", loss: link.dataset.loss ?? "",
    rtt: link.dataset.rtt ?? "",
  };
}"""

# True once the link line of a tile (by test id) carries three numbers.
MEASURED = """(id) => {
  const link = document.querySelector(`[data-testid="${id}"]`);
  const numeric = (v) => v !== undefined && /^[0-9]+(\\.[0-9]+)?$/.test(v);
  return numeric(link.dataset.kbps) && Number(link.dataset.kbps) > 0
    && numeric(link.dataset.loss) && numeric(link.dataset.rtt);
}"""


def video_feed(app: web.Application, call_id: int, centre: str) -> Feed | None:
    """The video the server's room receives from `centre` (media in this process:
    DISPATCH_MEDIA_WORKERS is 0 in the tests). Reaches into the conference's private
    state: there is no public handle on a room's feeds, nor should there be."""
    live = app[CONFERENCE]._live.get(call_id)
    if live is None:
        return None
    assert isinstance(live.room, Room)
    peer = live.room._peers.get(centre)
    return peer.feed("video") if peer is not None else None


def layered(app: web.Application, call_id: int, centre: str) -> bool:
    feed = video_feed(app, call_id, centre)
    return feed is not None and feed.frames > 30 and feed.layered


def name_of(settings: Settings, code: str) -> str:
    db = open_database(settings.db_url)
    with db.session() as s:
        name = centres.get(s, code).name
    db.close()
    return name


async def phase(page: Page) -> tuple[str, str]:
    state = page.get_by_test_id("call-state")
    return await state.inner_text(), str(await state.get_attribute("data-phase"))


async def test_layers_link_quality_call_state_and_audio_only(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)
    app = create_app(settings)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    village, town = cast.village_a1, cast.town_a
    village_name = name_of(settings, village)
    async with (
        ClientSession() as http,
        chromium(tmp_path / "town") as town_ctx,
        chromium(tmp_path / "village", locale="en-US") as village_ctx,
    ):
        call_id, tokens = await launch(
            http, base, make_token(settings, town), [village], kind="inspection"
        )
        operator = await town_ctx.new_page()
        await log_in(operator, base, town, "town-demo-2026", then=f"/calls/{call_id}")
        assert await phase(operator) == ("呼叫中", "ringing")

        # The village answers on its own page, opened from the join link.
        page = await village_ctx.new_page()
        await page.goto(f"{base}/calls/{call_id}?token={tokens[village]}")
        await page.get_by_role("button", name="Accept").click()
        await operator.get_by_test_id("call-state").filter(has_text="通话中").wait_for(timeout=WAIT)
        assert await phase(operator) == ("通话中", "live")
        assert await phase(page) == ("in call", "live")

        # What reaches the server from both browsers has temporal layers above 0.
        await until(lambda: layered(app, call_id, village), 30, "village's video layered")
        await until(lambda: layered(app, call_id, town), 30, "operator's video layered")

        # Link quality on every tile, in each page's language.
        tile = f"link-{village}"
        await operator.wait_for_function(MEASURED, arg=tile, timeout=WAIT)
        text = await operator.get_by_test_id(tile).inner_text()
        assert re.search(r"码率 \d+ kbit/s", text), text
        assert re.search(r"丢包 \d+\.\d%", text), text
        assert re.search(r"往返 \d+ ms", text), text
        await page.wait_for_function(MEASURED, arg="link-operator", timeout=WAIT)
        text = await page.get_by_test_id("link-operator").inner_text()
        assert re.search(r"rate \d+ kbit/s", text), text
        assert re.search(r"loss \d+\.\d%", text), text
        assert re.search(r"RTT \d+ ms", text), text

        # The floor, for a log line naming the centre.
        await operator.locator(f'.tile[data-centre="{village}"] button.floor').click()
        await (
            operator.get_by_test_id("log")
            .filter(has_text=f"{village_name} 点名发言")
            .wait_for(timeout=WAIT)
        )

        # Audio only: the village's camera stops, its microphone goes on.
        await operator.wait_for_function(f"() => ({TILE})('{village}').conn === 'ok'", timeout=WAIT)
        before = await operator.evaluate(TILE, village)
        await page.evaluate(
            """async () => {
              const senders = window.dispatchPeer.getSenders();
              window.cameraSender = senders.find((s) => s.track?.kind === "video");
              window.camera = window.cameraSender.track;
              await window.cameraSender.replaceTrack(null);
            }"""
        )
        await operator.wait_for_function(
            f"() => ({TILE})('{village}').conn === 'audio'", timeout=WAIT
        )
        paused = await operator.evaluate(TILE, village)
        assert paused["overlay"] == "仅音频", paused
        assert paused["video"] == paused["verified"] == paused["faces"] == "", paused
        assert not paused["shown"], paused  # no frozen picture either
        assert re.search(r"码率 \d+ kbit/s", paused["link"]), paused  # its sound still measured
        await page.evaluate("() => window.cameraSender.replaceTrack(window.camera)")
        await operator.wait_for_function(f"() => ({TILE})('{village}').conn === 'ok'", timeout=WAIT)
        back = await operator.evaluate(TILE, village)
        assert back["overlay"] == "" and back["shown"], back
        assert back["generation"] == before["generation"], "the page reconnected"

        await operator.get_by_role("button", name="结束调度").click()
        await (
            operator.get_by_test_id("call-state")
            .filter(has_text="调度已结束")
            .wait_for(timeout=WAIT)
        )
        assert (await phase(operator))[1] == "ended"
        await page.get_by_test_id("call-state").filter(has_text="call ended").wait_for(timeout=WAIT)

        # The logs: names and labels in each page's language, no codes, no identifiers.
        log = await operator.get_by_test_id("log").inner_text()
        print(f"operator's log:\n{log}")
        assert village_name in log and "已接听" in log and "调度已结束" in log
        assert not re.search(r"\d{12}", log), log
        assert not re.search(r"[A-Za-z_]{3,}", log), log  # no identifiers, no English
        assert "正在重新连接" not in log
        village_log = await page.get_by_test_id("log").inner_text()
        print(f"village's log:\n{village_log}")
        assert "answered" in village_log and "call ended" in village_log
        assert not re.search(r"\d{12}", village_log), village_log
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", village_log), village_log
