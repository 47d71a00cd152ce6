"""Soak: a town's whole meeting (operator + 20 villages) through the real app for
10 minutes; does anyone drop, does any stream stall? Media on 127.0.0.1 only.

Run:  .venv/bin/python tests/bench/soak.py               (10 minutes)
      .venv/bin/python tests/bench/soak.py --minutes 2  (a shorter look)

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
import socket
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(folder: Path) -> tuple[Settings, str, list[str], dict[str, str]]:
    """A demo database; its largest town, that town's first villages, a token for it."""
    db_url = f"sqlite:///{folder / 'soak.db'}"
    db = open_database(db_url)
    with db.session() as s:
        demo.load_demo(s, "district")
        district = centres.roots(s)[0]
        sizes = {t.code: [v.code for v in centres.children(s, t.code)]
                 for t in centres.children(s, district.code)}  # fmt: skip
        town = max(sizes, key=lambda code: len(sizes[code]))
        stmt = select(accounts.Account).where(accounts.Account.username == town)
        token, _ = accounts.issue_token(s, s.exec(stmt).one(), 7200, "soak")
    db.close()
    settings = Settings.from_env(env={}, db_url=db_url, data_dir=str(folder / "data"),
                                 secret_key="", ice_hosts="127.0.0.1", scheduler=False,
                                 media_workers="2")  # fmt: skip
    return settings, town, sizes[town][:VILLAGES], {"Authorization": f"Bearer {token}"}


def journal(settings: Settings, call_id: int) -> list[tuple[str, str, str]]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = [(r.centre_code or "", r.kind, str(r.data.get("reason", "")))
               for r in calls.events(s, call_id)]  # fmt: skip
    db.close()
    return out


async def soak(minutes: float) -> bool:
    configure_host_addresses(LOOPBACK)
    folder = Path(tempfile.mkdtemp(prefix="pingan-soak-"))
    settings, _town, codes, auth = prepare(folder)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    operator = Client("op", "blue", light=True)
    villages: asyncio.subprocess.Process | None = None
    latest: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/v1/calls", headers=auth,
                                 json={"callees": codes, "kind": "meeting"}) as r:  # fmt: skip
                launched = await r.json()
                assert r.status == 201, launched
            call_id = launched["call"]["id"]
            tokens = {i["centre"]: i["join_token"] for i in launched["invites"]}
            operator.pc.addTransceiver(PrecodedVideo("blue", fps=FPS), direction="sendonly")
            operator.pc.addTransceiver(PrecodedSilence(), direction="sendonly")
            for _ in codes:
                operator.pc.addTransceiver("video", direction="recvonly")
                operator.pc.addTransceiver("audio", direction="recvonly")
            offer = {"type": "offer", "sdp": await operator.offer()}
            async with http.post(f"{base}/api/v1/calls/{call_id}/sdp", headers=auth,
                                 json=offer) as r:  # fmt: skip
                await operator.accept((await r.json())["sdp"])
            villages = await asyncio.create_subprocess_exec(
                sys.executable, str(CLIENTS), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, limit=1 << 24)  # fmt: skip
            assert villages.stdin is not None and villages.stdout is not None
            order = {"base": base, "call_id": call_id, "fps": FPS,
                     "villages": [[c, tokens[c], "red"] for c in codes]}  # fmt: skip
            villages.stdin.write(json.dumps(order).encode() + b"\n")
            stdout = villages.stdout

            async def read_reports() -> None:
                while line := await stdout.readline():
                    latest.update(json.loads(line))

            reading = asyncio.create_task(read_reports())

            def counts() -> list[int]:
                slots = dict(runner.app[CONFERENCE].operator_slots(call_id))
                video = latest.get("video", {})
                ours = [operator.frames[slots[c]] if c in slots else 0 for c in codes]
                theirs = [int(video[c][0][0]) if c in video else 0 for c in codes]
                return ours + theirs

            started = time.monotonic()
            while min(counts()) == 0:
                if time.monotonic() - started > 120:
                    raise TimeoutError("not every stream had a frame within 120 s")
                await asyncio.sleep(0.5)
            print(f"1 + {len(codes)}: every stream flowing after "
                  f"{time.monotonic() - started:.1f} s; soaking {minutes:g} min", flush=True)
            worst: list[float] = []
            stalls = 0
            before, end = counts(), time.monotonic() + minutes * 60
            while time.monotonic() < end:
                tick = time.monotonic()
                await asyncio.sleep(INTERVAL)
                after = counts()
                took = time.monotonic() - tick
                shares = [(b - a) / (took * FPS) for a, b in zip(before, after, strict=True)]
                before = after
                low = min(shares)
                worst.append(low)
                stalls += low < STALL
                elapsed = (time.monotonic() - end) / 60 + minutes
                print(f"  {elapsed:5.1f} min: frames per stream min {low:.0%}, "
                      f"median {statistics.median(shares):.0%}", flush=True)
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
    print(f"\n1 + {len(codes)} for {minutes:g} min, {len(worst)} intervals of {INTERVAL:g} s:")
    print(f"  participants that dropped: {len(drops)}" + (f" — {'; '.join(drops)}" if drops
                                                           else ""))  # fmt: skip
    print(f"  rejoins: {sum(n - 1 for n in joins.values())}")
    print(f"  intervals with a stream under {STALL:.0%} of its frames: {stalls}")
    if worst:
        print(f"  worst interval: lowest stream at {min(worst):.0%} of its frames")
    passed = not drops and stalls == 0
    print(f"  soak: {'pass' if passed else 'FAIL'}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(soak(args.minutes)) else 1)


if __name__ == "__main__":
    main()
