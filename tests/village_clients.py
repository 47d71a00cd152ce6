"""Many villages' browsers in one separate process, for meeting tests and benches.

Run by a test as ``python tests/village_clients.py``; it reads one JSON line on
standard input::

    {"base": "http://127.0.0.1:PORT", "call_id": 7, "fps": 10,
     "villages": [["511703002001", "jt1…", "red"], …]}

accepts and joins each village's invitation through the HTTP API (a join token
each, as a browser's join link does), sending pre-encoded video of the given colour
and Opus silence, and then prints, ten times a second, one JSON line of what each village
receives, and how many frames it has sent::

    {"video": {"CODE": [[frames, "last sampled colour"], [frames, "…"]]},
     "audio": {"CODE": [packets, packets]}, "sent": {"CODE": frames}}

Commands on later input lines: ``close CODE`` hangs that village up. End of input
closes every village and ends the process. Media stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from peers import PACER, Client, HeldTrack, PacedStream, layered_key_frames, silence_frames

REPORT_INTERVAL = 0.1
JOINING_AT_ONCE = 5
CAMERAS: dict[str, PacedStream] = {}  # each village's camera stream, for its sent count


async def join(
    http: aiohttp.ClientSession,
    base: str,
    call_id: int,
    code: str,
    token: str,
    colour: str,
    fps: int,
) -> Client:
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/v1/calls/{call_id}/accept", headers=auth) as resp:
        assert resp.status == 200, await resp.text()
    client = Client(code, colour, light=True)
    # Written by the process's pacer (one task for every village, as the server writes
    # its streams), so that 20 villages cost this process little beside the server.
    # Labelled L1T3 as a browser publishes (its key frames decode in any subset): the
    # server checks a quarter of them, and a small tile gets a quarter.
    camera = client.pc.addTrack(HeldTrack("video"))  # sendrecv: it also receives slot 0
    CAMERAS[code] = PACER.add(camera, "video", layered_key_frames(colour), fps)
    PACER.add(client.pc.addTrack(HeldTrack("audio")), "audio", silence_frames(), 50)
    client.pc.addTransceiver("video", direction="recvonly")
    client.pc.addTransceiver("audio", direction="recvonly")
    offer = {"type": "offer", "sdp": await client.offer()}
    async with http.post(f"{base}/api/v1/calls/{call_id}/sdp", headers=auth, json=offer) as resp:
        assert resp.status == 200, await resp.text()
        await client.accept((await resp.json())["sdp"])
    return client


def report(clients: dict[str, Client]) -> str:
    return json.dumps({
        "video": {code: [[frames, seen[-1] if seen else ""]
                          for frames, seen in zip(c.frames, c.video, strict=True)]
                  for code, c in clients.items()},
        "audio": {code: list(c.audio) for code, c in clients.items()},
        "sent": {code: len(CAMERAS[code].sent) for code in clients},
    })  # fmt: skip


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    order = json.loads(await reader.readline())
    clients: dict[str, Client] = {}
    async with aiohttp.ClientSession() as http:
        # Villages answer the ring at about the same time, a few at once, as their
        # operators would; one after another, 20 joins on a loaded machine could
        # outlast the call's answer deadline.
        gate = asyncio.Semaphore(JOINING_AT_ONCE)

        async def one(code: str, token: str, colour: str) -> None:
            async with gate:
                clients[code] = await join(
                    http, order["base"], order["call_id"], code, token, colour, order["fps"]
                )

        await asyncio.gather(*(one(*village) for village in order["villages"]))

        async def reports() -> None:
            while True:
                print(report(clients), flush=True)
                await asyncio.sleep(REPORT_INTERVAL)

        reporting = asyncio.create_task(reports())
        while line := (await reader.readline()).decode().strip():
            command, _, code = line.partition(" ")
            if command == "close" and code in clients:
                await clients[code].close()
        reporting.cancel()
    await asyncio.gather(*(client.close() for client in clients.values()))  # all at once


if __name__ == "__main__":
    asyncio.run(main())
