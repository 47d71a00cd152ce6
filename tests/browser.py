"""Debian's Chromium driven by Playwright: never a downloaded browser."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]


# Watches every 50 ms for a tile that says 视频正常 / 已核验 while its picture is not
# the current connection's live track: the thing a reconnect must never show.
WATCH_LABELS = """() => {
  window.labelViolations = [];
  setInterval(() => {
    const pc = window.dispatchPeer;
    const open = pc && pc.connectionState !== "closed";
    const current = new Set(open ? pc.getReceivers().map((r) => r.track.id) : []);
    for (const tile of document.querySelectorAll(".tile[data-centre]")) {
      const says = tile.querySelector(".video").textContent
        + tile.querySelector(".verified").textContent;
      if (!/视频正常|已核验/.test(says)) continue;
      const track = tile.querySelector("video").srcObject?.getVideoTracks()[0];
      if (!track || track.readyState !== "live" || !current.has(track.id)) {
        window.labelViolations.push({ centre: tile.dataset.centre, says, at: performance.now() });
      }
    }
  }, 50);
}"""


# True once the page's peer decoded more than `least` video frames (all its streams).
DECODED_MORE_THAN = """(least) => window.dispatchPeer
  && window.dispatchPeer.getStats().then((stats) => {
  let decoded = 0;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") decoded += s.framesDecoded || 0;
  });
  return decoded > least;
})"""

# Plays the <video> at `selector` (muted) for 1.5 s: its readyState, currentTime before
# and after, its width and any media error code.
PLAYS = """async (selector) => {
  const video = document.querySelector(selector);
  video.muted = true;
  await video.play();
  const start = video.currentTime;
  await new Promise((done) => setTimeout(done, 1500));
  return { ready: video.readyState, start, now: video.currentTime, width: video.videoWidth,
           error: video.error && video.error.code };
}"""


@asynccontextmanager
async def chromium(
    profile: Path,
    locale: str = "zh-CN",
    *,
    executable: str | Path = CHROMIUM,
    flags: Sequence[str] = (),
    timezone: str | None = None,
) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile in `profile`; the context closes with the block.
    ``executable``: a wrapper that runs Debian's chromium (e.g. in a network
    namespace); ``flags``: more command-line flags; ``timezone``: the browser's own
    time zone (an IANA name), default the machine's."""
    assert os.access(CHROMIUM, os.X_OK), "run `make test` (it installs Debian's chromium)"
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            headless=True,
            args=[*FLAGS, *flags],
            locale=locale,
            timezone_id=timezone,
        )
        try:
            yield context
        finally:
            await context.close()


@asynccontextmanager
async def chromium_windows() -> AsyncIterator[Browser]:
    """Debian's Chromium with no profile, for a test that opens several pages at once:
    each ``browser.new_context(...)`` is a window of its own with its own cookies (pass
    ``storage_state`` to share a login). Unlike a second tab of one context, a page in
    its own window is in the foreground, so Chromium does not throttle its animation
    frames (a background tab's frame waited up to 2 s)."""
    assert os.access(CHROMIUM, os.X_OK), "run `make test` (it installs Debian's chromium)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(page: Page, base: str, username: str, password: str, then: str = "/") -> None:
    """Log in through the form; `then` is where the site should land afterwards."""
    await page.goto(f"{base}/login?next={then}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}{then}")
