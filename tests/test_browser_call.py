"""In headless Chromium with a fake camera: the town operator launches a slot from the
console, the village's open page rings and accepts, both sides decode video, and the
village's attendance is video verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_scheduler import WEDNESDAY, add_slot, open_the_rest_of_the_week

from dispatch import calls
from dispatch.clock import SetClock
from dispatch.settings import Settings
from schedules import policy
from web.app import create_app
from web.schema import open_database

from browser import chromium, log_in
from conftest import Cast

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

FRAMES = """() => window.dispatchPeer.getStats().then((stats) => {
  let decoded = 0, sent = 0;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") decoded += s.framesDecoded || 0;
    if (s.type === "outbound-rtp" && s.kind === "video") sent += s.framesSent || 0;
  });
  return { decoded, sent };
})"""
# The page's camera sender: its caps and the frame rate the camera was opened at.
SENDER = """() => {
  const sender = window.dispatchPeer.getSenders().find((s) => s.track?.kind === "video");
  const encoding = sender.getParameters().encodings[0];
  return [encoding.maxBitrate, encoding.maxFramerate, sender.track.getSettings().frameRate];
}"""


async def test_launch_ring_accept_and_verified_video(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path
) -> None:
    clock = SetClock(WEDNESDAY)  # the console lists the slot on the clock's day
    db = open_database(demo_settings.db_url)
    week = open_the_rest_of_the_week(db, clock)
    with db.session() as s:
        policy.set_policy(s, None, {"min_verified_seconds": 3}, "test")
    slot_id = add_slot(db, week, clock, starts_in=60, minutes=10)  # town A → its first village
    db.close()
    settings = demo_settings.with_(
        ice_hosts="127.0.0.1", scheduler=False, video_fps=12, video_kbps=600
    )
    server = await aiohttp_server(create_app(settings, clock=clock))
    base = f"http://127.0.0.1:{server.port}"
    async with (
        chromium(tmp_path / "village") as village_ctx,
        chromium(tmp_path / "town") as town_ctx,
    ):
        village = await village_ctx.new_page()
        await log_in(village, base, cast.village_a1, "village-demo-2026")
        town = await town_ctx.new_page()
        await log_in(town, base, cast.town_a, "town-demo-2026")

        await town.goto(f"{base}/console")
        await town.locator(f'button.launch[data-slot="{slot_id}"]').click()
        await town.wait_for_url(f"{base}/calls/*")
        call_id = int(town.url.rsplit("/", 1)[1])

        ring = village.locator("#live .ring")
        await ring.wait_for(timeout=10_000)
        assert "来电" in await ring.inner_text()
        await ring.locator("button.accept").click()
        await village.wait_for_url(f"{base}/calls/{call_id}")

        # Both sides decode video (the village sees the operator; the operator the village).
        await village.wait_for_function(
            f"() => window.dispatchPeer && ({FRAMES})().then((f) => f.decoded > 20)",
            timeout=20_000,
        )  # fmt: skip
        await town.wait_for_function(
            f"() => window.dispatchPeer && ({FRAMES})().then((f) => f.decoded > 20)",
            timeout=20_000,
        )  # fmt: skip
        for page in (village, town):  # both publish within the server's caps
            bitrate, framerate, opened_at = await page.evaluate(SENDER)
            assert (bitrate, framerate) == (600_000, 12) and opened_at <= 12
        status = town.get_by_test_id(f"status-{cast.village_a1}")
        await town.wait_for_function(
            f"""() => document.querySelector('.tile[data-centre="{cast.village_a1}"] .verified')
                    .textContent.includes('视频已核验')""",
            timeout=20_000,
        )  # fmt: skip
        assert "已入会" in await status.inner_text()
        await town.get_by_role("button", name="结束调度").click()
        await village.get_by_test_id("call-state").filter(has_text="调度已结束").wait_for()

        # The journal shows the village's answer time, its stay and its verified video.
        await town.goto(f"{base}/journals/{call_id}")
        row = town.locator("table.attendance tbody tr").first
        text = await row.inner_text()
        assert "已接听" in text and "秒" in text and "已核验" in text
        assert "–" in text  # a joined–left interval

    db = open_database(settings.db_url)
    with db.session() as s:
        got = [(r.centre_code, r.kind) for r in calls.events(s, call_id)]
        call = calls.get_call(s, call_id)
        from schedules import plans

        assert plans.get_slot(s, slot_id).status == plans.HELD
    db.close()
    assert call.state == calls.ENDED and call.slot_id == slot_id
    for kind in ("answered", "joined", "video_live", "snapshot", "verified"):
        assert (cast.village_a1, kind) in got, kind
