"""Soak: a town's whole meeting (operator + 20 villages) through the real app for
10 minutes; does anyone drop, does any stream stall? Media on 127.0.0.1 only.

Run:  .venv/bin/python tests/bench/soak.py               (10 minutes)
      .venv/bin/python tests/bench/soak.py --minutes 2  (a shorter look)
      .venv/bin/python tests/bench/soak.py --browser    (the operator in Chromium)

``--browser``: the district's meeting as the issue's "done when" states it — the
district operator in headless Chromium (Debian's, fake camera) on the call page of a
meeting with the demo district's largest town and all its villages (the town and the
villages are the aiortc clients). Each interval then also reads every tile of the page
(frames decoded on the track it shows, from getStats, and its labels): a tile whose
frames did not advance while it says 视频正常 counts as a dead tile, as does a tile
that says so on a track that is not the page's current connection's (watched every
50 ms). The villages' share of the operator's frames is against the frames Chromium
sent in the interval (its outbound-rtp counter); the operator's share of a village's
frames is against the frames that village sent (tests/village_clients.py reports them),
so a village process that fell behind its schedule is not counted as the server's loss.
The villages label their frames L1T3 as browsers publish, so a tile the page shows
small gets the base layer (media/room.py ``Room.view``): its share is against a quarter
of the frames its village sent.

The rig stands for other machines: Chromium and the village clients run at
``--rig-nice`` (10) so that, on a machine they saturate, the server under test is
not the one kept waiting for a core by its own clients (on a 2-core machine the rig
takes ≈ 1.4 cores: Chromium decoding 21 tiles ≈ 0.85, the villages ≈ 0.5).
A counter that goes down between two reads (the operator's page made a new
connection) counts from zero, and each such reconnection is reported and fails
the soak.

Not a test (pytest never collects it). The app (``web.app.create_app``, a fresh demo
database, media in 2 worker processes) and the operator's peer run in this process;
the 20 villages run in another (tests/village_clients.py), as in tests/test_meeting.py:
aiortc peers sending VP8 key frames and Opus packets encoded once, 320x180 at 10 fps,
counting what they receive from RTP without decoding but for colour samples.

Every INTERVAL seconds it reads the frames received on each of the 40 streams (the
operator's slot of each village, each village's slot of the operator) and prints the
lowest and median share of the frames sent. At the end it prints, from the call's
journal, every ``left`` / ``joined`` after the first join (a participant that dropped),
the intervals in which any stream got under half its frames (a stall), and the
worst interval. A soak passes with no drop and no stall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:  # run as a script: make the packages importable
        sys.path.insert(0, str(path))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from ports import free_port  # noqa: E402
from sqlmodel import select  # noqa: E402

from dispatch import accounts, calls, centres, demo  # noqa: E402
from dispatch.settings import Settings  # noqa: E402
from media.ice import configure_host_addresses  # noqa: E402
from web.app import create_app  # noqa: E402
from web.appkeys import CONFERENCE  # noqa: E402
from web.schema import open_database  # noqa: E402

from peers import LOOPBACK, Client, PrecodedSilence, PrecodedVideo  # noqa: E402

VILLAGES = 20
FPS = 10
INTERVAL = 10.0
STALL = 0.5  # a stream with less than this share of its frames in an interval stalled
CLIENTS = ROOT / "tests" / "village_clients.py"


def prepare(folder: Path, browser: bool) -> tuple[Settings, str, list[str], dict[str, str]]:
    """A demo database; its largest town, the centres of its meeting and a token for the
    caller: the town and its first VILLAGES villages (aiortc operator), or the district
    calling the town and all its villages (``browser``)."""
    db_url = f"sqlite:///{folder / 'soak.db'}"
    db = open_database(db_url)
    with db.session() as s:
        demo.load_demo(s, "district")
        district = centres.roots(s)[0]
        sizes = {t.code: [v.code for v in centres.children(s, t.code)]
                 for t in centres.children(s, district.code)}  # fmt: skip
        town = max(sizes, key=lambda code: len(sizes[code]))
        caller = district.code if browser else town
        stmt = select(accounts.Account).where(accounts.Account.username == caller)
        token, _ = accounts.issue_token(s, s.exec(stmt).one(), 7200, "soak")
    db.close()
    settings = Settings.from_env(env={}, db_url=db_url, data_dir=str(folder / "data"),
                                 secret_key="", ice_hosts="127.0.0.1", scheduler=False,
                                 media_workers="2")  # fmt: skip
    codes = [town, *sizes[town]] if browser else sizes[town][:VILLAGES]
    return settings, caller, codes, {"Authorization": f"Bearer {token}"}


def journal(settings: Settings, call_id: int) -> list[tuple[str, str, str]]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = [(r.centre_code or "", r.kind, str(r.data.get("reason", "")))
               for r in calls.events(s, call_id)]  # fmt: skip
    db.close()
    return out


class AiortcOperator:
    """The operator as an aiortc peer sending precoded video: counts frames per slot."""

    def __init__(self) -> None:
        self.peer = Client("op", "blue", light=True)

    async def join(self, http: aiohttp.ClientSession, base: str, call_id: int,
                   auth: dict[str, str], codes: list[str]) -> None:  # fmt: skip
        self.peer.pc.addTransceiver(PrecodedVideo("blue", fps=FPS), direction="sendonly")
        self.peer.pc.addTransceiver(PrecodedSilence(), direction="sendonly")
        for _ in codes:
            self.peer.pc.addTransceiver("video", direction="recvonly")
            self.peer.pc.addTransceiver("audio", direction="recvonly")
        offer = {"type": "offer", "sdp": await self.peer.offer()}
        async with http.post(f"{base}/api/v1/calls/{call_id}/sdp", headers=auth,
                             json=offer) as r:  # fmt: skip
            await self.peer.accept((await r.json())["sdp"])

    async def read(self, app: web.Application, call_id: int) -> tuple[dict[str, int], float]:
        """Frames received per centre, and frames sent (for the villages' share)."""
        slots = dict(app[CONFERENCE].operator_slots(call_id))
        return {c: self.peer.frames[i] for c, i in slots.items()}, 0.0

    async def close(self) -> None:
        await self.peer.close()


# Every tile of the call page: frames decoded on the track it shows (getStats), whether
# that track is the current connection's, and its video label; and Chromium's frames sent.
TILES = """async () => {
  const pc = window.dispatchPeer;
  const decoded = {};
  let sent = 0;
  if (pc && pc.connectionState !== "closed") {
    (await pc.getStats()).forEach((s) => {
      if (s.kind !== "video") return;
      if (s.type === "inbound-rtp") decoded[s.trackIdentifier] = s.framesDecoded || 0;
      if (s.type === "outbound-rtp") sent += s.framesSent || s.framesEncoded || 0;
    });
  }
  const current = new Set(pc ? pc.getReceivers().map((r) => r.track.id) : []);
  const tiles = {};
  for (const tile of document.querySelectorAll(".tile[data-centre]")) {
    const track = tile.querySelector("video").srcObject?.getVideoTracks()[0];
    tiles[tile.dataset.centre] = {
      frames: track && current.has(track.id) ? decoded[track.id] ?? 0 : 0,
      video: tile.querySelector(".video").textContent,
      small: tile.dataset.small === "1", // the server has it at the base layer
    };
  }
  return { tiles, sent, violations: (window.labelViolations || []).length };
}"""


class BrowserOperator:
    """The district operator's call page in headless Chromium (fake camera)."""

    def __init__(self, folder: Path, username: str, nice: int) -> None:
        self._folder, self._username, self._nice = folder, username, nice
        self._context: Any = None
        self.page: Any = None
        self.dead_tiles: list[str] = []  # "centre at minute" for a live label on stopped frames
        self.violations = 0

    async def join(self, http: aiohttp.ClientSession, base: str, call_id: int,
                   auth: dict[str, str], codes: list[str]) -> None:  # fmt: skip
        from browser import CHROMIUM, WATCH_LABELS, chromium, log_in  # the test extra

        wrapper = self._folder / "chromium-niced"
        wrapper.write_text(f'#!/bin/sh\nexec nice -n {self._nice} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        self._browser = chromium(self._folder / "chromium", executable=wrapper)
        self._context = await self._browser.__aenter__()
        self.page = await self._context.new_page()
        await self.page.set_viewport_size({"width": 1920, "height": 1080})
        await log_in(self.page, base, self._username, demo.DEMO_PASSWORDS["district_operator"],
                     then=f"/calls/{call_id}")  # fmt: skip
        await self.page.evaluate(WATCH_LABELS)

    async def read(self, app: web.Application, call_id: int) -> tuple[dict[str, int], float]:
        state = await self.page.evaluate(TILES)
        self.violations = int(state["violations"])
        self._labels = {c: t["video"] for c, t in state["tiles"].items()}
        self.small = {c for c, t in state["tiles"].items() if t.get("small")}
        return {c: int(t["frames"]) for c, t in state["tiles"].items()}, float(state["sent"])

    def says_live(self, centre: str) -> bool:
        return "视频正常" in getattr(self, "_labels", {}).get(centre, "")

    async def close(self) -> None:
        if self._context is not None:
            await self._browser.__aexit__(None, None, None)


def since(before: list[int], after: list[int]) -> list[int]:
    """Frames counted between two reads; a counter that went down restarted from 0."""
    return [b - a if b >= a else b for a, b in zip(before, after, strict=True)]


async def soak(minutes: float, browser: bool, nice: int) -> bool:
    configure_host_addresses(LOOPBACK)
    folder = Path(tempfile.mkdtemp(prefix="pingan-soak-"))
    settings, caller, codes, auth = prepare(folder, browser)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    operator: AiortcOperator | BrowserOperator = (
        BrowserOperator(folder, caller, nice) if browser else AiortcOperator()
    )
    villages: asyncio.subprocess.Process | None = None
    latest: dict[str, Any] = {}
    dead: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/v1/calls", headers=auth,
                                 json={"callees": codes, "kind": "meeting"}) as r:  # fmt: skip
                launched = await r.json()
                assert r.status == 201, launched
            call_id = launched["call"]["id"]
            tokens = {i["centre"]: i["join_token"] for i in launched["invites"]}
            await operator.join(http, base, call_id, auth, codes)
            villages = await asyncio.create_subprocess_exec(
                "nice", "-n", str(nice), sys.executable, str(CLIENTS),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=1 << 24)  # fmt: skip
            assert villages.stdin is not None and villages.stdout is not None
            order = {"base": base, "call_id": call_id, "fps": FPS,
                     "villages": [[c, tokens[c], "red"] for c in codes]}  # fmt: skip
            villages.stdin.write(json.dumps(order).encode() + b"\n")
            stdout = villages.stdout

            async def read_reports() -> None:
                while line := await stdout.readline():
                    latest.update(json.loads(line))

            reading = asyncio.create_task(read_reports())

            async def counts() -> tuple[list[int], list[int], float, list[int]]:
                """Frames the operator got per village, frames each village got of the
                operator, frames the operator sent (0: a precoded FPS), frames each
                village sent."""
                ours, sent = await operator.read(runner.app, call_id)
                video, gone = latest.get("video", {}), latest.get("sent", {})
                theirs = [int(video[c][0][0]) if c in video else 0 for c in codes]
                # A small tile gets the base layer: a quarter of the (labelled) frames.
                small = getattr(operator, "small", set())
                return (
                    [ours.get(c, 0) for c in codes],
                    theirs,
                    sent,
                    [int(gone.get(c, 0)) // (4 if c in small else 1) for c in codes],
                )

            started = time.monotonic()
            while min((got := await counts())[0] + got[1]) == 0:
                if time.monotonic() - started > 120:
                    none = [
                        f"{c} (operator's tile)"
                        for c, n in zip(codes, got[0], strict=True)
                        if n == 0
                    ] + [
                        f"{c} (its operator slot)"
                        for c, n in zip(codes, got[1], strict=True)
                        if n == 0
                    ]
                    raise TimeoutError(f"no frame within 120 s on: {', '.join(none)}")
                await asyncio.sleep(0.5)
            print(
                f"1 + {len(codes)}: every stream flowing after "
                f"{time.monotonic() - started:.1f} s; soaking {minutes:g} min",
                flush=True,
            )
            worst: list[float] = []
            stalls = reconnections = 0
            before, end = await counts(), time.monotonic() + minutes * 60
            while time.monotonic() < end:
                tick = time.monotonic()
                await asyncio.sleep(INTERVAL)
                after = await counts()
                took = time.monotonic() - tick
                elapsed = (time.monotonic() - end) / 60 + minutes
                if browser and after[2] < before[2]:  # the page's connection is a new one
                    reconnections += 1
                    print(f"  {elapsed:5.1f} min: the operator's page reconnected", flush=True)
                sent = since([int(before[2])], [int(after[2])])[0]
                operator_fps = sent / took if browser else FPS
                got = [
                    n / max(s, 1)
                    for n, s in zip(
                        since(before[0], after[0]), since(before[3], after[3]), strict=True
                    )
                ]
                gave = [n / (took * max(operator_fps, 1e-9)) for n in since(before[1], after[1])]
                shares = got + gave
                if isinstance(operator, BrowserOperator):
                    for code, a, b in zip(codes, before[0], after[0], strict=True):
                        if b <= a and operator.says_live(code):
                            dead.append(f"{code} at {elapsed:.1f} min")
                before = after
                low = min(shares)
                worst.append(low)
                stalls += low < STALL
                print(f"  {elapsed:5.1f} min: frames per stream min {low:.0%}, "
                      f"median {statistics.median(shares):.0%} (operator receives "
                      f"{min(got):.0%}/{statistics.median(got):.0%}, villages "
                      f"{min(gave):.0%}/{statistics.median(gave):.0%} min/median)"
                      + (f"; operator sends {operator_fps:.1f} fps" if browser else ""),
                      flush=True)  # fmt: skip
            reading.cancel()
        events = journal(settings, call_id)
    finally:
        await operator.close()
        if villages is not None:
            if villages.stdin is not None:
                villages.stdin.close()
            try:
                await asyncio.wait_for(villages.wait(), 20)
            except TimeoutError:
                villages.kill()
        await runner.cleanup()
    joins: dict[str, int] = {}
    drops = []
    for centre, kind, reason in events:
        if kind == "joined":
            joins[centre] = joins.get(centre, 0) + 1
        elif kind == "left":
            drops.append(f"{centre} left ({reason})")
    who = "district operator in Chromium" if browser else "aiortc operator"
    print(f"\n1 + {len(codes)} ({who}) for {minutes:g} min, {len(worst)} intervals of "
          f"{INTERVAL:g} s:")  # fmt: skip
    print(f"  participants that dropped: {len(drops)}" + (f" — {'; '.join(drops)}" if drops
                                                           else ""))  # fmt: skip
    print(f"  rejoins: {sum(n - 1 for n in joins.values())}")
    print(f"  intervals with a stream under {STALL:.0%} of its frames: {stalls}")
    if worst:
        print(f"  worst interval: lowest stream at {min(worst):.0%} of its frames")
    print(f"  reconnections of the operator's page: {reconnections}")
    passed = not drops and stalls == 0 and reconnections == 0
    if isinstance(operator, BrowserOperator):
        print(f"  dead tiles (said 视频正常, no new frame in an interval): {len(dead)}"
              + (f" — {'; '.join(dead[:10])}" if dead else ""))  # fmt: skip
        print(f"  live labels on a track not the connection's (checked every 50 ms): "
              f"{operator.violations}")  # fmt: skip
        passed = passed and not dead and operator.violations == 0
    print(f"  soak: {'pass' if passed else 'FAIL'}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--browser",
        action="store_true",
        help="the district operator in Chromium, the largest town's meeting",
    )
    parser.add_argument(
        "--rig-nice",
        type=int,
        default=10,
        help="niceness of Chromium and the village clients (0: as the server)",
    )
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(soak(args.minutes, args.browser, args.rig_nice)) else 1)


if __name__ == "__main__":
    main()
