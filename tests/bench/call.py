"""Bench: a call's set-up latency beside the bare aiortc handshake, and the largest
meeting the server carries. Media on 127.0.0.1 only (issue 4, item 9).

Run:  .venv/bin/python tests/bench/call.py      (≈2-3 min; prints the tables and a summary)
      .venv/bin/python tests/bench/call.py --latency-only    (part (a) alone, ≈30 s)

Not a test: pytest never collects it (the name does not match test_*.py). Clients are the
aiortc peers of tests/peers.py, sending PatternTrack video (640x360 at 15 fps) and
silence on audio, as a browser sends camera and microphone.

(a) Latency, REPEATS runs of each after one warm-up of each (discarded), alternating:
  - bare    two aiortc peers in this process, no server: createOffer → both peers
            `connected` (ICE+DTLS), and → the first decoded video frame.
  - call    the real app (`web.app.create_app`) served in this process on 127.0.0.1, a
            fresh demo database. A town operator launches an inspection of one village
            (POST /api/v1/calls), joins (1 receiving slot), the village accepts (POST
            …/accept) and, as its page does, makes its offer meanwhile, then joins
            once accepted; measured: accept → the village's first decoded frame
            showing the operator, and launch → the operator's first decoded frame showing
            the village (less RING, the pause before the village answers). Each call
            is then ended (POST …/end).
(b) Capacity: three processes — `dispatch serve` (env DISPATCH_ICE_HOSTS=127.0.0.1,
    DISPATCH_SCHEDULER=0, a fresh demo database), the operator's client (this file run
    with --operator; see "the operator's client" below for why it has its own), and
    this one with the N village clients. CPU of each is read from /proc before and after
    the window. The district operator launches a meeting with N villages (spread over the
    towns) and offers N receiving slots; every village accepts, then joins, all at once.
    Once every stream shows its first frame, a WINDOW-second window counts decoded frames
    of the right colour — on the operator's slot of each village, and on each village's
    slot of the operator — against 15 fps × the window. N rises through SIZES until a
    meeting delivers < 90% in either direction (all streams of that direction together)
    or the time budget is spent (a size that fails while other processes took more than
    a quarter of a core is run once more). Latency under load is read from the picture:
    PatternTrack's white bar gives the frame index mod 75 (5 s), so latency = decode
    time − the frame's scheduled capture time (valid below 5 s). A second table gives the
    RTP video counters of each hop (from the clients' getStats) and the kernel's UDP
    receive-buffer drops, to tell where frames went missing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT, ROOT / "tests"):  # run as a script: make `dispatch` and `peers` importable
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import (  # noqa: E402
    AudioStreamTrack,
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.mediastreams import MediaStreamError  # noqa: E402
from av import VideoFrame  # noqa: E402
from ports import free_port  # noqa: E402
from sqlmodel import select  # noqa: E402

from dispatch import accounts, centres, demo  # noqa: E402
from dispatch.settings import Settings  # noqa: E402
from media.ice import configure_host_addresses, peer_connection  # noqa: E402
from web.app import create_app  # noqa: E402
from web.schema import open_database  # noqa: E402

from peers import FPS, LOOPBACK, Client, PatternTrack, browser_like_buffer  # noqa: E402

REPEATS = 10
# Seconds between the operator's join and the village's answer. A person answers a ringing
# call seconds later; without a pause the village's first frame waited on the operator
# client's encoder starting up (its first frame reached the server 90-160 ms after it
# connected), which measures the test client, not the server.
RING = 1.0
WINDOW = 10.0  # seconds of a capacity meeting that are counted
SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 16, 24)  # villages per meeting, tried in this order
CAPACITY_BUDGET = 180.0  # seconds for part (b): no new size starts beyond it
READY_TIMEOUT = 20.0  # seconds for every stream of a meeting to show its first frame
PASS = 0.90
OTHERS_LIMIT = 0.25  # cores other processes may use before a failed size is rerun
OPERATOR, VILLAGE = "blue", "green"
BAR_PERIOD = 75  # PatternTrack's bar: x = (index * 8) % 600, so index mod 75 = x / 8
PYTHON = Path(sys.executable)
SELF = Path(__file__).resolve()


def now() -> float:
    return time.monotonic()  # PatternTrack schedules its frames on this clock


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pct(xs: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); NaN without data."""
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


# --- clients that time what they decode ---------------------------------------------------


def read_picture(frame: VideoFrame) -> tuple[str, int]:
    """(colour as peers.colour_of names it, PatternTrack frame index mod 75 or -1)."""
    rows = frame.reformat(width=640, height=4, format="bgr24").to_ndarray()
    line = rows.mean(axis=0)  # 640 x 3
    means = line.mean(axis=0)
    if means.max() < 50:
        return "black", -1
    colour = ("blue", "green", "red")[int(means.argmax())]
    white = (line.min(axis=1) > 170).nonzero()[0]  # the bar; the colours have a channel at 40
    return colour, (round(int(white[0]) / 8) % BAR_PERIOD) if len(white) else -1


@dataclass
class Stream:
    """One receiving video m-line of a client: every decoded frame, timed."""

    frames: list[tuple[float, str, int]] = field(default_factory=list)  # (t, colour, bar)

    def first(self, colour: str) -> float | None:
        return next((t for t, c, _ in self.frames if c == colour), None)

    def count(self, colour: str, start: float, end: float) -> int:
        return sum(1 for t, c, _ in self.frames if c == colour and start <= t < end)

    def latencies(self, colour: str, origin: float, start: float, end: float) -> list[float]:
        """Decode time − scheduled capture time of each frame in [start, end); `origin`:
        when the sending PatternTrack made its frame 0."""
        out = []
        for t, c, bar in self.frames:
            if c != colour or bar < 0 or not start <= t < end:
                continue
            elapsed = (t - origin) * FPS  # in frames
            index = bar + BAR_PERIOD * ((elapsed - bar + 1) // BAR_PERIOD)
            out.append((elapsed - index) / FPS)
        return out


class Peer(Client):
    """peers.Client keeping its own camera track and timing connection and frames."""

    def __init__(self, name: str, colour: str) -> None:
        super().__init__(name, colour)
        self.camera = PatternTrack(colour)
        self.streams: list[Stream] = []
        self.connected_at: float | None = None
        self.pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected" and self.connected_at is None:
            self.connected_at = now()

    def offer_as_operator(self, slots: int) -> None:
        self.pc.addTransceiver(self.camera, direction="sendonly")
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        for _ in range(slots):
            self.pc.addTransceiver("video", direction="recvonly")
            self.pc.addTransceiver("audio", direction="recvonly")

    def offer_as_participant(self, camera: MediaStreamTrack | None = None) -> None:
        super().offer_as_participant(camera or self.camera)

    async def accept(self, answer: str) -> None:
        await super().accept(answer)
        self.streams = [Stream() for _ in self.video]  # before any reader task runs

    async def _read_video(self, track: MediaStreamTrack, seen: list[str]) -> None:
        stream = self.streams[next(i for i, s in enumerate(self.video) if s is seen)]
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, VideoFrame)
                colour, bar = read_picture(frame)
                stream.frames.append((now(), colour, bar))
        except MediaStreamError:
            pass

    def sent(self) -> int:
        return self.camera._index + 1  # frames the camera has produced so far

    def camera_origin(self) -> float:
        return self.camera._start  # private to peers.PatternTrack: when frame 0 was made


async def until(check: Callable[[], bool], within: float) -> bool:
    deadline = now() + within
    while not check():
        if now() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


# --- the server side ------------------------------------------------------------------------


def make_template(folder: Path) -> Path:
    path = folder / "demo.db"
    db = open_database(f"sqlite:///{path}")
    with db.session() as s:
        demo.load_demo(s, "district")
    db.close()
    return path


def fresh_db(template: Path, folder: Path, name: str) -> str:
    target = folder / f"{name}.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def bearer(db_url: str, username: str) -> dict[str, str]:
    """An API token for `username`, as tests/conftest.py's make_token makes it."""
    db = open_database(db_url)
    with db.session() as s:
        stmt = select(accounts.Account).where(accounts.Account.username == username)
        token, _ = accounts.issue_token(s, s.exec(stmt).one(), 3600, "bench")
    db.close()
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Cast:
    district: str
    town: str  # the first town
    village: str  # its first village
    villages: list[str]  # every village, round-robin over the towns


def read_cast(db_url: str) -> Cast:
    db = open_database(db_url)
    with db.session() as s:
        district = centres.roots(s)[0].code
        towns = [t.code for t in centres.children(s, district)]
        per_town = [[v.code for v in centres.children(s, t)] for t in towns]
    db.close()
    spread = [v[i] for i in range(max(map(len, per_town))) for v in per_town if i < len(v)]
    return Cast(district, towns[0], per_town[0][0], spread)


class Api:
    """The JSON API, as a client sees it."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        async with self.http.request(method, self.base + path, headers=headers, json=body) as r:
            text = await r.text()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path} → {r.status} {text}")
            return json.loads(text)

    async def launch(self, who: dict[str, str], callees: list[str], kind: str) -> tuple[int, dict]:
        got = await self.call("POST", "/api/v1/calls", who, {"callees": callees, "kind": kind})
        return got["call"]["id"], {i["centre"]: i["join_token"] for i in got["invites"]}

    async def join(self, peer: Peer, call_id: int, who: dict[str, str]) -> None:
        offer = await peer.offer()
        got = await self.call("POST", f"/api/v1/calls/{call_id}/sdp", who,
                              {"type": "offer", "sdp": offer})  # fmt: skip
        await peer.accept(got["sdp"])


def token(join_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {join_token}"}


# --- (a) latency --------------------------------------------------------------------------


async def bare_handshake(*, clients_receiver: bool = False) -> dict[str, float]:
    """Two aiortc peers, no server: createOffer → connected, → first decoded frame.
    ``clients_receiver``: the receiving peer reassembles frames as the call's village
    client does (peers.browser_like_buffer: a frame out at its last packet) instead of
    with aiortc's buffer (out when the next frame's first packet arrives)."""
    a, b = peer_connection(LOOPBACK), peer_connection(LOOPBACK)
    marks: dict[str, float] = {}
    readers: list[asyncio.Task[None]] = []

    def watch(pc: RTCPeerConnection, name: str) -> None:
        @pc.on("connectionstatechange")
        def _() -> None:
            if pc.connectionState == "connected":
                marks.setdefault(name, now())

    async def first_frame(track: MediaStreamTrack) -> None:
        await track.recv()
        marks.setdefault("frame", now())

    @b.on("track")
    def _(track: MediaStreamTrack) -> None:
        readers.append(asyncio.ensure_future(first_frame(track)))

    watch(a, "a")
    watch(b, "b")
    a.addTrack(PatternTrack(OPERATOR))
    try:
        start = now()
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        for transceiver in b.getTransceivers() if clients_receiver else ():
            browser_like_buffer(transceiver.receiver)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        if not await until(lambda: {"a", "b", "frame"} <= marks.keys(), 10):
            raise RuntimeError(f"bare peers did not connect: {marks}")
        return {"connected": max(marks["a"], marks["b"]) - start, "frame": marks["frame"] - start}
    finally:
        for reader in readers:
            reader.cancel()
        await a.close()
        await b.close()


async def one_call(api: Api, town: dict[str, str], village: str) -> dict[str, float]:
    """Launch, operator joins, village accepts and joins; timed as the docstring says."""
    op, vil = Peer("operator", OPERATOR), Peer(village, VILLAGE)
    t: dict[str, float] = {"launch": now()}
    call_id = 0
    try:
        call_id, tokens = await api.launch(town, [village], "inspection")
        t["launched"] = now()
        op.offer_as_operator(slots=1)
        await api.join(op, call_id, town)
        t["operator_joined"] = now()
        await asyncio.sleep(RING)
        t["accept"] = now()

        async def accept() -> None:
            await api.call("POST", f"/api/v1/calls/{call_id}/accept", token(tokens[village]))
            t["accepted"] = now()

        async def offer() -> None:
            vil.offer_as_participant()
            await vil.offer()
            t["offered"] = now()

        await asyncio.gather(accept(), offer())  # as the page: the offer is made meanwhile
        got = await api.call("POST", f"/api/v1/calls/{call_id}/sdp", token(tokens[village]),
                             {"type": "offer", "sdp": vil.pc.localDescription.sdp})  # fmt: skip
        await vil.accept(got["sdp"])
        t["answered"] = now()

        def both() -> bool:
            return bool(op.streams and vil.streams) and None not in (
                op.streams[0].first(VILLAGE),
                vil.streams[0].first(OPERATOR),
            )

        if not await until(both, 15):
            raise RuntimeError(f"call {call_id}: no video both ways within 15 s")
        seen_op, seen_vil = vil.streams[0].first(OPERATOR), op.streams[0].first(VILLAGE)
        assert seen_op is not None and seen_vil is not None and vil.connected_at is not None
        return {
            "accept_to_frame": seen_op - t["accept"],
            "launch_to_frame": seen_vil - t["launch"] - RING,
            "launch_post": t["launched"] - t["launch"],
            "operator_join": t["operator_joined"] - t["launched"],
            "accept_post": t["accepted"] - t["accept"],
            "village_offer": t["offered"] - t["accept"],
            "village_sdp": t["answered"] - max(t["offered"], t["accepted"]),
            "village_connected": vil.connected_at - t["answered"],
            "village_first_frame": seen_op - vil.connected_at,
        }
    finally:
        if call_id:
            await api.call("POST", f"/api/v1/calls/{call_id}/end", town)
        await asyncio.gather(op.close(), vil.close())


async def part_a(template: Path, folder: Path) -> tuple[dict[str, list[float]], float]:
    db_url = fresh_db(template, folder, "latency")
    settings = Settings.from_env(env={}, db_url=db_url, data_dir=str(folder / "data-a"),
                                 secret_key="", ice_hosts="127.0.0.1",
                                 scheduler=False)  # fmt: skip
    cast = read_cast(db_url)
    town = bearer(db_url, cast.town)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    results: dict[str, list[float]] = {}
    started, box0, own0 = now(), box_busy(), own_cpu()[0]
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, f"http://127.0.0.1:{port}")
            await bare_handshake()  # warm-up: codecs, first DTLS certificate, imports
            await one_call(api, town, cast.village)
            for _ in range(REPEATS):
                for key, value in (await bare_handshake()).items():
                    results.setdefault(f"bare_{key}", []).append(value)
                same = await bare_handshake(clients_receiver=True)
                results.setdefault("bare_same_frame", []).append(same["frame"])
                for key, value in (await one_call(api, town, cast.village)).items():
                    results.setdefault(key, []).append(value)
    finally:
        await runner.cleanup()
    box1, own1, took = box_busy(), own_cpu()[0], now() - started
    box = (box1[0] - box0[0]) / max(1, box1[1] - box0[1]) * (os.cpu_count() or 1)
    results["others"] = [max(0.0, box - (own1 - own0) / took)]
    return results, took


def print_a(results: dict[str, list[float]], took: float) -> None:
    connected, frame = median(results["bare_connected"]), median(results["bare_frame"])
    print(f"\n(a) call set-up on 127.0.0.1, {REPEATS} runs each after 1 warm-up, "
          f"server in this process ({took:.0f} s; other processes used "
          f"{results['others'][0]:.0%} of a core meanwhile)")  # fmt: skip
    head = f"  {'measure':<58}{'median ms':>10}{'p90 ms':>8}{'× bare conn':>12}{'× bare frame':>13}"
    print(head)
    rows = [
        ("bare aiortc: createOffer → connected (ICE+DTLS)", "bare_connected", True),
        ("bare aiortc: createOffer → first decoded frame", "bare_frame", True),
        ("  the same, received as the village client does", "bare_same_frame", True),
        ("call: village accept → its first frame of the operator", "accept_to_frame", True),
        ("call: launch → operator's first frame of the village", "launch_to_frame", True),
        ("  launch: POST /api/v1/calls", "launch_post", False),
        ("  operator: offer (gather) + POST sdp + setRemote", "operator_join", False),
        ("  village: POST accept (while the offer is made)", "accept_post", False),
        ("  village: createOffer + gather (while accepting)", "village_offer", False),
        ("  village: POST sdp (server answers) + setRemote", "village_sdp", False),
        ("  village: answer applied → connected (ICE+DTLS)", "village_connected", False),
        ("  village: connected → first frame of the operator", "village_first_frame", False),
    ]
    for label, key, ratio in rows:
        xs = results[key]
        m, p = median(xs) * 1000, pct(xs, 90) * 1000
        extra = f"{m / connected / 1000:>12.1f}{m / frame / 1000:>13.1f}" if ratio else ""
        print(f"  {label:<58}{m:>10.0f}{p:>8.0f}{extra}")
    accept, same = median(results["accept_to_frame"]), median(results["bare_same_frame"])
    print(
        f"  village accept → first frame: {accept / frame:.1f}× bare aiortc's first frame "
        f"(target ≤ 1.5×: {'met' if accept <= 1.5 * frame else 'NOT met'}); "
        f"{accept / same:.1f}× when the bare peer receives as the village client does, "
        "a frame out at its last packet (aiortc's own buffer waits for the next frame)"
    )


# --- (b) capacity -------------------------------------------------------------------------


class Server:
    """`dispatch serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, db_url: str, folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        env = {**os.environ, "DISPATCH_DB": db_url, "DISPATCH_DATA": str(folder / "data-b"),
               "DISPATCH_ICE_HOSTS": "127.0.0.1", "DISPATCH_SCHEDULER": "0",
               "DISPATCH_HOST": "127.0.0.1", "DISPATCH_PORT": str(self.port),
               "DISPATCH_ICE_SERVERS": "", "DISPATCH_SECRET": ""}  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([str(PYTHON.parent / "dispatch"), "serve"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    async def ready(self, http: aiohttp.ClientSession) -> None:
        deadline = now() + 30
        while now() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                async with http.get(self.base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"dispatch serve did not start:\n{self.log.read_text()[-3000:]}")

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the server process so far: (all threads, the event loop's)."""
        return proc_cpu(f"/proc/{self.proc.pid}/stat"), proc_cpu(
            f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def proc_cpu(stat: str) -> float:
    """User + system CPU seconds from a /proc/…/stat file (a process or one thread)."""
    fields = Path(stat).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> tuple[float, float]:
    """CPU seconds of this process so far: (all threads, the main thread's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    main = proc_cpu(f"/proc/self/task/{os.getpid()}/stat")
    return usage.ru_utime + usage.ru_stime, main


def box_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped, machine-wide, because a socket's buffer was full."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    head, values = [x for x in lines if x[0] == "Udp:"][:2]
    return int(values[head.index("RcvbufErrors")])


@dataclass
class Leg:
    """RTP video packets of one direction of one hop, summed over its streams."""

    streams: int = 0
    packets: int = 0  # sent (upstream legs) or received (downstream legs)
    lost: int = 0  # as the receiving end counts them

    def __sub__(self, other: Leg) -> Leg:
        return Leg(self.streams, self.packets - other.packets, self.lost - other.lost)

    def __add__(self, other: Leg) -> Leg:
        return Leg(self.streams + other.streams, self.packets + other.packets,
                   self.lost + other.lost)  # fmt: skip

    def loss(self) -> float:
        total = self.packets + self.lost
        return self.lost / total if total > 0 else 0.0


async def rtp_leg(side: RTCRtpSender | RTCRtpReceiver) -> Leg:
    """One stream: packets a sender sent (lost: the far end's RTCP reports), or packets
    a receiver received (lost: counted from the sequence numbers)."""
    leg = Leg(streams=1)
    for stats in (await side.getStats()).values():
        if stats.type == "outbound-rtp":
            leg.packets += stats.packetsSent
        elif stats.type == "remote-inbound-rtp":
            leg.lost += stats.packetsLost
        elif stats.type == "inbound-rtp":
            leg.packets += stats.packetsReceived
            leg.lost += stats.packetsLost
    return leg


async def operator_legs(op: Peer) -> dict[str, Leg]:
    """The operator's RTP video so far: its camera (first video m-line), its slots."""
    video = [t for t in op.pc.getTransceivers() if t.kind == "video"]
    down = Leg()
    for transceiver in video[1:]:
        down += await rtp_leg(transceiver.receiver)
    return {"op→s": await rtp_leg(video[0].sender), "s→op": down}


async def village_legs(villages: list[Peer]) -> dict[str, Leg]:
    """The villages' RTP video so far: camera m-line up, and the operator received on it."""
    legs = {"v→s": Leg(), "s→v": Leg()}
    for peer in villages:
        camera = next(t for t in peer.pc.getTransceivers() if t.kind == "video")
        legs["v→s"] += await rtp_leg(camera.sender)
        legs["s→v"] += await rtp_leg(camera.receiver)
    return legs


# --- the operator's client, in a process of its own ------------------------------------------
#
# All N + 1 clients in one event loop starve the operator's: asyncio reads one datagram
# per socket per loop iteration, and the operator's one socket carries N video and N audio
# streams, so its receive buffer overflows long before the server is busy. The operator
# runs as `call.py --operator BASE CALL_ID SLOTS` (API token in the environment) and talks
# one JSON line per message: → joined, flowing; ← mark → mark (its RTP counters); ← stop
# → done (every decoded frame, timed on CLOCK_MONOTONIC, which all processes share).

TOKEN_ENV = "BENCH_OPERATOR_TOKEN"


def emit(kind: str, data: Any) -> None:
    print(kind, json.dumps(data), flush=True)


async def operator_client(base: str, call_id: int, slots: int) -> None:
    configure_host_addresses(LOOPBACK)
    who = {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
    op = Peer("operator", OPERATOR)
    try:
        op.offer_as_operator(slots)
        async with aiohttp.ClientSession() as http:
            await Api(http, base).join(op, call_id, who)
        emit("joined", {})
        ok = await until(lambda: all(s.first(VILLAGE) for s in op.streams), READY_TIMEOUT)
        emit("flowing", {"ok": ok})
        while (await asyncio.to_thread(sys.stdin.readline)).strip() == "mark":
            legs = await operator_legs(op)
            emit("mark", {k: [v.streams, v.packets, v.lost] for k, v in legs.items()})
        emit("done", {"frames": [s.frames for s in op.streams], "origin": op.camera_origin()})
    finally:
        await op.close()


class OperatorProcess:
    """The bench's handle on the operator's client process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(
        cls, base: str, call_id: int, slots: int, who: dict[str, str]
    ) -> OperatorProcess:
        env = {**os.environ, TOKEN_ENV: who["Authorization"].removeprefix("Bearer ")}
        proc = await asyncio.create_subprocess_exec(
            str(PYTHON), str(SELF), "--operator", base, str(call_id),
            str(slots), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env, limit=1 << 26,
        )  # fmt: skip
        return cls(proc)

    async def expect(self, kind: str, within: float) -> Any:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), within)
            if not line:
                raise RuntimeError(f"the operator's client exited before {kind!r}")
            got, _, data = line.decode().partition(" ")
            if got == kind:
                return json.loads(data)

    async def ask(self, command: str, reply: str, within: float = 30) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        return await self.expect(reply, within)

    async def legs(self) -> dict[str, Leg]:
        return {k: Leg(*v) for k, v in (await self.ask("mark", "mark")).items()}

    def cpu(self) -> tuple[float, float]:
        pid = self.proc.pid
        return proc_cpu(f"/proc/{pid}/stat"), proc_cpu(f"/proc/{pid}/task/{pid}/stat")

    async def close(self) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Meeting:
    n: int
    ready: bool = False
    ready_s: float = 0.0
    window: float = 0.0
    to_operator: list[float] = field(default_factory=list)  # delivered fraction per village
    to_villages: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # frames the cameras made / expected
    lat_operator: list[float] = field(default_factory=list)
    lat_villages: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    server_loop_cpu: float = 0.0  # of which the main thread: the event loop
    client_cpu: float = 0.0  # this process: the village clients
    client_loop_cpu: float = 0.0
    op_cpu: float = 0.0  # the operator's client process
    op_loop_cpu: float = 0.0
    box: float = 0.0  # fraction of all cores busy
    healthz: list[float] = field(default_factory=list)
    loop_lag: list[float] = field(default_factory=list)
    took: float = 0.0
    legs: dict[str, Leg] = field(default_factory=dict)  # RTP video over the window
    udp_drops: int = 0  # kernel receive-buffer drops over the window, machine-wide
    error: str = ""  # the meeting could not be run: why

    @property
    def op_pct(self) -> float:
        return sum(self.to_operator) / len(self.to_operator) if self.to_operator else 0.0

    @property
    def vil_pct(self) -> float:
        return sum(self.to_villages) / len(self.to_villages) if self.to_villages else 0.0

    @property
    def passed(self) -> bool:
        return not self.error and self.op_pct >= PASS and self.vil_pct >= PASS

    @property
    def others(self) -> float:
        """Cores other processes on the machine used during the window."""
        if not self.window:
            return 0.0
        ours = (self.server_cpu + self.client_cpu + self.op_cpu) / self.window
        return max(0.0, self.box * (os.cpu_count() or 1) - ours)

    @property
    def clean(self) -> bool:
        """Passed, and 95% of frames decoded within 200 ms both ways."""
        worst = max(pct(self.lat_operator, 95), pct(self.lat_villages, 95))
        return self.passed and worst < 0.2


async def sample_while(stop: asyncio.Event, probe: Callable[[], Awaitable[float]], out: list[float],
                       every: float) -> None:  # fmt: skip
    while not stop.is_set():
        out.append(await probe())
        await asyncio.sleep(every)


async def meeting(
    api: Api, server: Server, district: dict[str, str], villages: list[str]
) -> Meeting:
    n, result, started = len(villages), Meeting(len(villages)), now()
    peers: dict[str, Peer] = {}
    op: OperatorProcess | None = None
    call_id = 0
    try:
        call_id, tokens = await api.launch(district, villages, "meeting")
        op = await OperatorProcess.start(api.base, call_id, n, district)
        await op.expect("joined", 30)

        async def village(code: str) -> None:
            await api.call("POST", f"/api/v1/calls/{call_id}/accept", token(tokens[code]))
            peers[code] = peer = Peer(code, VILLAGE)
            peer.offer_as_participant()
            await api.join(peer, call_id, token(tokens[code]))

        await asyncio.gather(*(village(code) for code in villages))
        operator_ok = (await op.expect("flowing", READY_TIMEOUT + 10))["ok"]
        villages_ok = await until(lambda: all(p.streams and p.streams[0].first(OPERATOR)
                                              for p in peers.values()), READY_TIMEOUT)  # fmt: skip
        result.ready, result.ready_s = operator_ok and villages_ok, now() - started
        slots = (await api.call("GET", f"/api/v1/calls/{call_id}/media", district))["slots"]

        stop, lag = asyncio.Event(), []

        async def healthz() -> float:
            t0 = now()
            async with api.http.get(server.base + "/healthz") as r:
                await r.read()
            return now() - t0

        async def tick() -> float:
            t0 = now()
            await asyncio.sleep(0.05)
            return now() - t0 - 0.05

        samplers = [asyncio.ensure_future(sample_while(stop, healthz, result.healthz, 0.5)),
                    asyncio.ensure_future(sample_while(stop, tick, lag, 0.0))]  # fmt: skip
        sent0 = {code: p.sent() for code, p in peers.items()}
        legs0 = {**await op.legs(), **await village_legs(list(peers.values()))}
        drops0 = udp_rcvbuf_errors()
        cpu0, own0, op0, box0, w0 = server.cpu(), own_cpu(), op.cpu(), box_busy(), now()
        await asyncio.sleep(WINDOW)
        cpu1, own1, op1, box1, w1 = server.cpu(), own_cpu(), op.cpu(), box_busy(), now()
        drops1 = udp_rcvbuf_errors()
        legs1 = {**await op.legs(), **await village_legs(list(peers.values()))}
        sent1 = {code: p.sent() for code, p in peers.items()}
        stop.set()
        await asyncio.gather(*samplers)
        done = await op.ask("stop", "done")
        result.legs = {leg: legs1[leg] - legs0[leg] for leg in legs1}
        result.udp_drops = drops1 - drops0
        result.loop_lag = lag
        result.window = w1 - w0
        expected = FPS * result.window
        result.server_cpu, result.server_loop_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        result.client_cpu, result.client_loop_cpu = own1[0] - own0[0], own1[1] - own0[1]
        result.op_cpu, result.op_loop_cpu = op1[0] - op0[0], op1[1] - op0[1]
        result.box = (box1[0] - box0[0]) / max(1, box1[1] - box0[1])
        op_streams = [Stream([(t, c, bar) for t, c, bar in f]) for f in done["frames"]]
        for code, peer in peers.items():
            result.sent.append((sent1[code] - sent0[code]) / expected)
            to_op = op_streams[slots[code]] if code in slots else Stream()
            result.to_operator.append(to_op.count(VILLAGE, w0, w1) / expected)
            result.lat_operator += to_op.latencies(VILLAGE, peer.camera_origin(), w0, w1)
            mine = peer.streams[0] if peer.streams else Stream()
            result.to_villages.append(mine.count(OPERATOR, w0, w1) / expected)
            result.lat_villages += mine.latencies(OPERATOR, done["origin"], w0, w1)
    finally:
        if call_id:
            await api.call("POST", f"/api/v1/calls/{call_id}/end", district)
        await asyncio.gather(*(p.close() for p in peers.values()))
        if op is not None:
            await op.close()
        result.took = now() - started
    return result


async def part_b(template: Path, folder: Path) -> tuple[list[Meeting], float]:
    db_url = fresh_db(template, folder, "capacity")
    cast = read_cast(db_url)
    district = bearer(db_url, cast.district)
    server = Server(db_url, folder)
    results: list[Meeting] = []
    started = now()
    try:
        async with aiohttp.ClientSession() as http:
            await server.ready(http)
            api = Api(http, server.base)
            last: Meeting | None = None
            for n in SIZES:
                if last is not None:
                    guess = last.took * max(1.0, n / last.n)
                    if not last.passed or now() - started + guess > CAPACITY_BUDGET:
                        break
                for attempt in (1, 2):
                    try:
                        last = await meeting(api, server, district, cast.villages[:n])
                    except Exception as exc:  # a size that cannot even be set up fails
                        last = Meeting(n, error=f"{type(exc).__name__}: {exc}"[:300])
                        print(f"  N={n}: {last.error}", flush=True)
                    if last.passed or last.others < OTHERS_LIMIT or attempt == 2:
                        break
                    print(f"  N={n}   failed while other processes used {last.others:.0%} of "
                          f"a core: once more", flush=True)  # fmt: skip
                    await asyncio.sleep(3)
                results.append(last)
                print(f"  N={n:<3} {'pass' if last.passed else 'FAIL'}  operator gets "
                      f"{last.op_pct:.0%}, villages get {last.vil_pct:.0%}  "
                      f"({last.took:.0f} s)", flush=True)  # fmt: skip
                await asyncio.sleep(1)  # let the server settle after the call ends
    finally:
        server.stop()
    return results, now() - started


def print_b(results: list[Meeting], took: float) -> None:
    cores = os.cpu_count() or 1
    print(f"\n(b) meeting capacity: 1 operator + N villages, 640x360 @ {FPS} fps + audio, "
          f"{WINDOW:.0f} s counted; the server, the operator's client and the villages' "
          f"clients in 3 processes ({took:.0f} s; {cores} cores)")  # fmt: skip
    print(f"  {'':3}{'delivered % (worst)':>24}{'sent':>6}{'latency p50/p95 ms':>20}"
          f"{'CPU, % of one core (event-loop thread)':>50}")  # fmt: skip
    print(f"  {'N':>3}{'op←vil':>12}{'vil←op':>12}{'%':>6}{'op←vil':>10}{'vil←op':>10}"
          f"{'server':>11}{'/part.':>7}{'operator':>11}{'villages':>11}{'others':>7}"
          f"{'healthz p90':>12}{'lag p90':>8}{'ready s':>8}  verdict")  # fmt: skip
    for m in results:
        w = m.window or 1.0
        server, others = m.server_cpu / w * 100, m.others * 100
        lat_op = f"{pct(m.lat_operator, 50) * 1000:.0f}/{pct(m.lat_operator, 95) * 1000:.0f}"
        lat_vil = f"{pct(m.lat_villages, 50) * 1000:.0f}/{pct(m.lat_villages, 95) * 1000:.0f}"
        op = f"{m.op_pct * 100:.0f} ({min(m.to_operator, default=0) * 100:.0f})"
        vil = f"{m.vil_pct * 100:.0f} ({min(m.to_villages, default=0) * 100:.0f})"
        srv = f"{server:.0f} ({m.server_loop_cpu / w * 100:.0f})"
        opc = f"{m.op_cpu / w * 100:.0f} ({m.op_loop_cpu / w * 100:.0f})"
        cli = f"{m.client_cpu / w * 100:.0f} ({m.client_loop_cpu / w * 100:.0f})"
        print(f"  {m.n:>3}{op:>12}{vil:>12}{median(m.sent) * 100:>6.0f}{lat_op:>10}{lat_vil:>10}"
              f"{srv:>11}{server / (m.n + 1):>7.1f}{opc:>11}{cli:>11}{others:>7.0f}"
              f"{pct(m.healthz, 90) * 1000:>10.0f}ms{pct(m.loop_lag, 90) * 1000:>6.0f}ms"
              f"{m.ready_s:>8.1f}  {'pass' if m.passed else 'FAIL'}"
              f"{'' if m.ready else ' (not every stream flowing after 20 s)'}"
              f"{' (' + m.error + ')' if m.error else ''}")  # fmt: skip
    print(
        "  delivered: decoded frames from the right sender / (15 fps × window), all streams "
        "of a direction together (the worst single stream); op←vil: the operator's slots "
        "of the villages, vil←op: each village's picture of the operator. sent: frames the "
        "village cameras produced (median), < 100 when their process falls behind. "
        "latency: scheduled capture → decoded. CPU: server = `dispatch serve`, /part. = "
        "server / (N + 1) participants, operator = the operator's client process, villages "
        "= this process with the N village clients, others = the rest of the machine. "
        "healthz p90: the server's GET /healthz round trip; lag p90: this process's "
        "event-loop lag; ready s: launch → every stream showing its first frame (includes "
        "starting the operator's process, ≈1.5 s)."
    )


def warn_others(results: list[Meeting]) -> None:
    busy = [m for m in results if m.others >= OTHERS_LIMIT]
    if busy:
        sizes = ", ".join(f"N={m.n} ({m.others:.0%})" for m in busy)
        print(f"  WARNING: other processes used CPU during {sizes}: those rows understate.")


def print_legs(results: list[Meeting]) -> None:
    print("\n  RTP video by hop over the same windows: packets per second per stream, and % lost "
          "as the receiving end counts them (server-side losses are the server's RTCP "
          "reports); udp drops: datagrams the kernel dropped machine-wide for a full socket "
          "buffer")  # fmt: skip
    names = {"v→s": "village→server", "s→op": "server→operator", "op→s": "operator→server",
             "s→v": "server→village"}  # fmt: skip
    print(f"  {'N':>3}" + "".join(f"{names[k]:>20}" for k in names) + f"{'udp drops':>11}")
    for m in results:
        cells = []
        for key in names:
            leg = m.legs.get(key, Leg())
            rate = leg.packets / max(1, leg.streams) / m.window if m.window else 0.0
            cells.append(f"{rate:.0f}/s {leg.loss() * 100:.1f}%")
        print(f"  {m.n:>3}" + "".join(f"{c:>20}" for c in cells) + f"{m.udp_drops:>11}")


def summary(results: list[Meeting]) -> None:
    cores = os.cpu_count() or 1
    passed = [m for m in results if m.passed]
    failed = next((m for m in results if not m.passed), None)
    print("\nSummary.")
    if not passed:
        print("  No meeting size delivered ≥ 90% of frames both ways.")
        return
    best = passed[-1]
    per = median([m.server_cpu / m.window / (m.n + 1) for m in passed])  # cores
    client_per = median([(m.client_cpu + m.op_cpu) / m.window / (m.n + 1) for m in passed])
    text = (
        f"The largest meeting that delivered ≥ 90% of frames both ways was 1 operator + "
        f"{best.n} villages ({best.op_pct:.0%} to the operator, {best.vil_pct:.0%} to the "
        f"villages, latency p50 {pct(best.lat_operator, 50) * 1000:.0f} ms). "
    )
    clean = [m for m in passed if m.clean]
    if clean:
        text += f"Latency stayed low (p95 < 200 ms both ways) up to {clean[-1].n} villages. "
    if failed is not None and failed.error:
        text += f"At {failed.n} villages the meeting could not be set up ({failed.error}). "
    elif failed is not None:
        total = (failed.server_cpu + failed.client_cpu + failed.op_cpu) / failed.window
        text += (
            f"At {failed.n} villages delivery fell to {failed.op_pct:.0%} / "
            f"{failed.vil_pct:.0%} and latency to {pct(failed.lat_operator, 50):.1f} s, "
            f"with the server at {failed.server_cpu / failed.window:.0%} of a core, the "
            f"client processes at {(failed.client_cpu + failed.op_cpu) / failed.window:.0%} "
            f"and the {cores}-core machine {failed.box:.0%} busy ({total:.0%} of a core "
            f"ours). "
        )
    else:
        text += "Every size tried passed within the time budget. "
    text += (
        f"The server's cost is linear in the meeting: about {per:.0%} "
        f"of a core per participant, so one core serves about {1 / per:.0f} participants. "
        f"The server forwards each frame as it arrived (no encoding; one decode per "
        f"publisher, in its receiver thread, for the once-a-second OpenCV check); what is "
        f"left is RTP/SRTP in Python on the event loop. The client processes, "
        f"encoding and decoding as browsers would, cost about {client_per:.0%} of a core per "
        f"participant on the same {cores} cores"
    )
    if failed is not None and failed.error:
        pass
    elif failed is not None and failed.box >= 0.85:
        text += (
            ", so on this machine the meeting stops where server and clients together fill "
            "every core; the server alone would need "
            f"≈{per * (failed.n + 1):.0%} of a core for {failed.n} villages"
        )
    elif failed is not None:
        text += (
            ", and the server stayed below its need while cores were idle, which points at "
            "the single server process (one event loop, codec threads sharing the GIL) as "
            "the ceiling"
        )
    text += (
        ". Live-encoding clients are what limit this table on a small machine; "
        "tests/bench/meeting.py measures the server with light clients."
    )
    print("  " + text)


# --- main ---------------------------------------------------------------------------------


async def run(latency_only: bool = False) -> None:
    logging.basicConfig(level=logging.ERROR)
    configure_host_addresses(LOOPBACK)  # before any client peer: gather on 127.0.0.1 only
    started = now()
    cores = os.cpu_count() or 1
    before = box_busy()
    await asyncio.sleep(1)
    after = box_busy()
    idle_load = (after[0] - before[0]) / max(1, after[1] - before[1]) * cores
    print(f"machine: {cores} cores, {idle_load:.0%} of one core busy before the bench starts"
          + (" — other processes are running: the figures will be low" if idle_load > 0.2
             else ""), flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        template = make_template(folder)
        print("(a) latency …", flush=True)
        latency, took_a = await part_a(template, folder)
        if latency_only:
            print_a(latency, took_a)
            return
        print("(b) capacity …", flush=True)
        capacity, took_b = await part_b(template, folder)
    print_a(latency, took_a)
    print_b(capacity, took_b)
    print_legs(capacity)
    warn_others(capacity)
    summary(capacity)
    print(f"\nbench took {now() - started:.0f} s")


def main() -> None:
    if sys.argv[1:2] == ["--operator"]:  # the operator's client of part (b)
        base, call_id, slots = sys.argv[2:5]
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(operator_client(base, int(call_id), int(slots)))
    else:
        asyncio.run(run(latency_only="--latency-only" in sys.argv[1:]))


if __name__ == "__main__":
    main()
