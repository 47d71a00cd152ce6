"""In headless Chromium: a camera added to a running, recorded call shows on its tile
over the operator's page's existing connection (issue 13's leftover). The page offers
its camera slots up front (web/calls.py `camera_slots`), so adding one makes no new peer:
the operator is not recorded left and joined again, and its recording stays one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rtsp_server import RtspServer
from test_browser_camera import GREEN_PICTURE
from test_camera_media import PASSWORD, register_camera

from dispatch import calls, recordings
from dispatch.settings import Settings
from web.app import create_app
from web.schema import open_database

from browser import DECODED_MORE_THAN, chromium, log_in
from conftest import Cast, bearer, make_token, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]


def read(settings: Settings, fn: Any) -> Any:
    db = open_database(settings.db_url)
    try:
        with db.session() as s:
            return fn(s)
    finally:
        db.close()


async def test_a_camera_added_mid_call_rides_the_operators_connection(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    camera = RtspServer(colour="green", username="viewer", password=PASSWORD)
    camera.start()
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False, recording_min_free_mb=1)
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    town_a = cast.town_a

    def files(participant: str) -> list[recordings.Recording]:
        return read(settings, lambda s: [r for r in recordings.of_call(s, call_id)
                                         if r.participant == participant])  # fmt: skip

    def operator_events() -> list[str]:
        return read(settings, lambda s: [e.kind for e in calls.events(s, call_id)
                                         if e.centre_code == town_a])  # fmt: skip

    try:
        async with aiohttp.ClientSession(base) as http:
            camera_id = await register_camera(http, settings, cast, camera, "村口监控")
            town = bearer(make_token(settings, town_a))
            resp = await http.post("/api/v1/calls", headers=town, json={
                "callees": [cast.village_a1], "kind": "inspection"})  # fmt: skip
            assert resp.status == 201, await resp.text()
            launched = await resp.json()
        call_id = launched["call"]["id"]
        (invite,) = launched["invites"]
        join = invite["join_url"].replace("http://localhost:8080", base)

        async with (
            chromium(tmp_path / "town") as town_ctx,
            chromium(tmp_path / "village") as village_ctx,
        ):
            operator = await town_ctx.new_page()
            await log_in(operator, base, town_a, "town-demo-2026")
            await operator.goto(f"{base}/calls/{call_id}")
            village = await village_ctx.new_page()
            await village.goto(join)
            await village.locator("#accept").click()
            for page in (operator, village):
                await page.wait_for_function(DECODED_MORE_THAN, arg=20, timeout=30_000)

            # Recorded: the operator's file begins before the camera comes.
            await operator.get_by_test_id("rec-toggle").click()
            await wait_for(lambda: len(files(town_a)) == 1, within=30)  # the operator's file
            assert operator_events().count(calls.JOINED) == 1
            # One spare receiving pair for the one camera of the town's scope.
            assert await operator.get_attribute("#call", "data-camera-slots") == "1"
            await operator.evaluate("() => { window.firstPeer = window.dispatchPeer; }")

            await operator.select_option("#camera-choice", str(camera_id))
            await operator.get_by_role("button", name="接入摄像头").click()
            tile = f'.tile[data-centre="camera-{camera_id}"]'
            await operator.wait_for_selector(f'{tile}[data-camera-state="live"]', timeout=20_000)
            await operator.wait_for_function(GREEN_PICTURE, arg=f"{tile} video", timeout=20_000)
            await wait_for(lambda: len(files(f"camera-{camera_id}")) == 1, within=30)

            # One connection throughout: the same peer, still connected, never replaced.
            same = await operator.evaluate(
                "() => window.dispatchPeer === window.firstPeer"
                " && window.dispatchPeer.connectionState === 'connected'"
            )
            assert same
            assert "正在重新连接" not in await operator.locator("#log").inner_text()
            # The village's tile still shows it (the camera took a spare slot, not its).
            village_tile = f'.tile[data-centre="{cast.village_a1}"]'
            assert await operator.get_attribute(village_tile, "data-conn") == "ok"

            kinds = operator_events()
            assert kinds.count(calls.JOINED) == 1 and calls.LEFT not in kinds, kinds
            await operator.locator("#end").click()
            await village.get_by_test_id("call-state").filter(has_text="调度已结束").wait_for()

        await wait_for(lambda: all(r.ended_at for r in files(town_a)), within=30)
        (only,) = files(town_a)  # one file for the operator: its recording never split
        assert only.ended_at is not None and only.bytes > 0
    finally:
        camera.stop()


async def test_a_camera_beyond_the_offered_slots_makes_the_page_offer_again(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    """The page offered no camera slot (no camera in scope when it loaded); a camera
    registered and added afterwards by another client still shows, over a new offer."""
    camera = RtspServer(colour="green", username="viewer", password=PASSWORD)
    camera.start()
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    try:
        town = bearer(make_token(settings, cast.town_a))
        async with aiohttp.ClientSession(base) as http:
            resp = await http.post("/api/v1/calls", headers=town, json={
                "callees": [cast.village_a1], "kind": "inspection"})  # fmt: skip
            assert resp.status == 201, await resp.text()
            call_id = (await resp.json())["call"]["id"]

        async with chromium(tmp_path / "town") as context:
            page = await context.new_page()
            await log_in(page, base, cast.town_a, "town-demo-2026")
            await page.goto(f"{base}/calls/{call_id}")
            await page.wait_for_function("() => window.dispatchPeer", timeout=20_000)
            assert await page.get_attribute("#call", "data-camera-slots") == "0"
            async with aiohttp.ClientSession(base) as http:
                camera_id = await register_camera(http, settings, cast, camera, "村口监控")
                resp = await http.post(f"/api/v1/calls/{call_id}/cameras", headers=town,
                                       json={"camera": camera_id})  # fmt: skip
                assert resp.status == 201, await resp.text()
            tile = f'.tile[data-centre="camera-{camera_id}"]'
            await page.wait_for_selector(f'{tile}[data-camera-state="live"]', timeout=20_000)
            await page.wait_for_function(GREEN_PICTURE, arg=f"{tile} video", timeout=20_000)
            assert "连接中断（接入摄像头）" in await page.locator("#log").inner_text()
    finally:
        camera.stop()
