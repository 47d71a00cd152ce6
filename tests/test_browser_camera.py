"""In headless Chromium: the town operator's call page shows a camera of its village —
added from the page, pulled from a real RTSP server on 127.0.0.1 — as a tile whose
video decodes the camera's green test pattern, and says the camera is live; and issue
13's done-when, a recorded call of a town, two villages and a camera whose journal page
plays every file and shows its hash."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rtsp_server import RtspServer
from test_camera_media import PASSWORD, register_camera, start_call

from dispatch import recordings
from dispatch.settings import Settings
from web.app import create_app
from web.schema import open_database

from browser import DECODED_MORE_THAN, PLAYS, chromium, log_in
from conftest import Cast, bearer, make_token

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# The tile's picture: the camera's size (320x240, not a black slot's 640x360) and
# mostly green, read back through a small canvas.
GREEN_PICTURE = """(selector) => {
  const video = document.querySelector(selector);
  if (!video || video.videoWidth !== 320 || video.readyState < 2) return false;
  const canvas = document.createElement("canvas");
  canvas.width = 32; canvas.height = 24;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0, 32, 24);
  const data = context.getImageData(0, 0, 32, 24).data;
  let r = 0, g = 0, b = 0;
  for (let i = 0; i < data.length; i += 4) { r += data[i]; g += data[i + 1]; b += data[i + 2]; }
  return g > 1.5 * r && g > 1.5 * b;
}"""


async def test_the_console_shows_a_camera_tile_with_its_frames(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    camera = RtspServer(colour="green", username="viewer", password=PASSWORD)
    camera.start()
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession(base) as http:
            call_id, camera_id, _ = await start_call(http, settings, cast, camera, "村口监控")
            village = bearer(make_token(settings, cast.village_a1))
            resp = await http.post(f"/api/v1/calls/{call_id}/accept", headers=village)
            assert resp.status == 200

        async with chromium(tmp_path / "town") as context:
            page = await context.new_page()
            await log_in(page, base, cast.town_a, "town-demo-2026")
            await page.goto(f"{base}/calls/{call_id}")
            await page.wait_for_function("() => window.dispatchPeer", timeout=20_000)
            await page.select_option("#camera-choice", str(camera_id))
            await page.get_by_role("button", name="接入摄像头").click()

            tile = f'.tile[data-centre="camera-{camera_id}"]'
            await page.wait_for_selector(f'{tile}[data-camera-state="live"]', timeout=20_000)
            await page.wait_for_function(GREEN_PICTURE, arg=f"{tile} video", timeout=20_000)
            assert "摄像头在线" in await page.locator(f"{tile} .camera-state").inner_text()
            assert "村口监控" in await page.locator(f"{tile} .name").inner_text()
            assert PASSWORD not in await page.content()
    finally:
        camera.stop()


@pytest.mark.timeout(150)
async def test_a_recorded_call_of_a_town_two_villages_and_a_camera(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    """Issue 13's done-when: a browser-run call with one camera and two villages is
    recorded (a file per publisher, the camera's too), the camera's frames reach the
    operator, and the journal page plays each file and shows its sha256."""
    camera = RtspServer(colour="green", username="viewer", password=PASSWORD)
    camera.start()
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False, recording_min_free_mb=1)
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    villages = [cast.village_a1, cast.village_a2]
    try:
        async with aiohttp.ClientSession(base) as http:
            camera_id = await register_camera(http, settings, cast, camera, "村口监控")
            town = bearer(make_token(settings, cast.town_a))
            resp = await http.post("/api/v1/calls", headers=town, json={
                "callees": villages, "kind": "meeting"})  # fmt: skip
            assert resp.status == 201, await resp.text()
            launched = await resp.json()
        call_id = launched["call"]["id"]
        joins = {i["centre"]: i["join_url"].replace("http://localhost:8080", base)
                 for i in launched["invites"]}  # fmt: skip

        async with (
            chromium(tmp_path / "town") as town_ctx,
            chromium(tmp_path / "villages") as village_ctx,
        ):
            operator = await town_ctx.new_page()
            await log_in(operator, base, cast.town_a, "town-demo-2026")
            await operator.goto(f"{base}/calls/{call_id}")
            pages = []
            for code in villages:
                page = await village_ctx.new_page()
                await page.goto(joins[code])
                await page.locator("#accept").click()
                pages.append(page)
            for page in (operator, *pages):
                await page.wait_for_function(DECODED_MORE_THAN, arg=20, timeout=30_000)

            # The operator records the call (a town's meeting is not recorded by policy)
            # and shows the camera; every page shows the recording mark.
            await operator.get_by_test_id("rec-toggle").click()
            for page in (operator, *pages):
                await page.get_by_test_id("rec-mark").wait_for(state="visible", timeout=15_000)
            await operator.select_option("#camera-choice", str(camera_id))
            await operator.get_by_role("button", name="接入摄像头").click()
            tile = f'.tile[data-centre="camera-{camera_id}"]'
            await operator.wait_for_selector(f'{tile}[data-camera-state="live"]', timeout=20_000)
            await operator.wait_for_function(GREEN_PICTURE, arg=f"{tile} video", timeout=20_000)

            everyone = {cast.town_a, *villages, f"camera-{camera_id}"}

            def begun() -> set[str]:
                db = open_database(settings.db_url)
                with db.session() as s:
                    out = {r.participant for r in recordings.of_call(s, call_id)}
                db.close()
                return out

            for _ in range(300):  # each file begins on its publisher's first key frame
                if begun() == everyone:
                    break
                await operator.wait_for_timeout(100)
            assert begun() == everyone
            await operator.wait_for_timeout(4000)
            await operator.locator("#end").click()
            await pages[0].get_by_test_id("call-state").filter(has_text="调度已结束").wait_for()

            db = open_database(settings.db_url)
            with db.session() as s:
                files = {r.participant: r for r in recordings.of_call(s, call_id)}
            db.close()
            assert set(files) == everyone
            for row in files.values():
                path = recordings.file_of(settings.data_path, row)
                assert row.ended_at and row.sha256 == sha256(path.read_bytes()).hexdigest()
            assert files[f"camera-{camera_id}"].kind == "video"
            assert files[cast.village_a2].kind == "audio+video"

            # The journal page plays every file and shows its hash.
            await operator.goto(f"{base}/journals/{call_id}")
            await operator.get_by_test_id("recordings").wait_for()
            assert "村口监控" in await operator.get_by_test_id("recordings").inner_text()
            for row in files.values():
                shown = await operator.get_by_test_id(f"recording-sha256-{row.id}").inner_text()
                assert shown == row.sha256
                played = await operator.evaluate(PLAYS, f'[data-testid="recording-{row.id}"]')
                assert played["error"] is None, (row.participant, played)
                assert played["ready"] >= 2 and played["now"] > played["start"], played
                assert played["width"] > 0, (row.participant, played)
            assert PASSWORD not in await operator.content()

        # A village's journal lists its own file, never the camera's (the calling side's).
        async with aiohttp.ClientSession(base) as http:
            village = bearer(make_token(settings, cast.village_a2))
            resp = await http.get(f"/api/v1/calls/{call_id}/recordings", headers=village)
            listed = [r["participant"] for r in (await resp.json())["recordings"]]
            assert listed == [cast.village_a2]
            resp = await http.get(
                f"/api/v1/recordings/{files[f'camera-{camera_id}'].id}", headers=village
            )
            assert resp.status == 404
    finally:
        camera.stop()
