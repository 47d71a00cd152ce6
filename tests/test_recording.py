"""Recording calls through the real app (issue 13): a district meeting of the operator and
three towns, aiortc peers over 127.0.0.1, the call's media in a media worker process;
the files read back by ffprobe (Debian's ffmpeg), their sha256 in the sealed journal;
scope refusals; HTTP Range; a full disk stops the recording and the call goes on."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from test_recorder import tmpfs

from dispatch import calls, centres, recordings
from dispatch.db import Database
from dispatch.recordings import Recording
from dispatch.settings import Settings
from schedules import policy
from web.app import create_app
from web.cli import main
from web.schema import open_database

from conftest import Cast, bearer, make_token
from peers import Client, PrecodedSilence, PrecodedVideo

pytestmark = pytest.mark.timeout(150)

FPS = 10
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"


def towns(settings: Settings) -> tuple[str, list[str]]:
    database = Database(settings.db_url)
    with database.session() as s:
        district = centres.roots(s)[0]
        out = district.code, [t.code for t in centres.children(s, district.code)]
    database.close()
    return out


def rows(settings: Settings, call_id: int) -> list[Recording]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = recordings.of_call(s, call_id)
    db.close()
    return out


def events(settings: Settings, call_id: int) -> list[calls.AttendanceRow]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = calls.events(s, call_id)
    db.close()
    return out


async def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within, f"not true within {within} s"
        await asyncio.sleep(0.1)


def probe(path: Path) -> tuple[float, int, int]:
    """ffprobe's duration of the file, and its video and audio packets."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_packets", "-show_format", "-show_streams",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    found = json.loads(out.stdout)
    packets = {s["codec_name"]: int(s["nb_read_packets"]) for s in found["streams"]}
    assert sorted(packets) == ["opus", "vp8"], found
    return float(found["format"]["duration"]), packets["vp8"], packets["opus"]


def duration(path: Path) -> float:
    return probe(path)[0]


class Meeting:
    """A call of the district with some towns: every centre an aiortc peer sending VP8
    key frames and Opus silence encoded once."""

    def __init__(
        self,
        client: TestClient,
        settings: Settings,
        district: str,
        callees: list[str],
        grain: int = 0,
    ) -> None:
        self.client, self.settings = client, settings
        self.district, self.callees, self.grain = district, callees, grain
        self.auth = bearer(make_token(settings, district))
        self.peers: dict[str, Client] = {}
        self.tokens: dict[str, dict[str, str]] = {}
        self.call_id = 0

    async def launch(self) -> int:
        resp = await self.client.post(
            "/api/v1/calls", headers=self.auth, json={"callees": self.callees, "kind": "meeting"}
        )
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        self.call_id = body["call"]["id"]
        self.tokens = {i["centre"]: bearer(i["join_token"]) for i in body["invites"]}
        return self.call_id

    async def join(self) -> None:
        operator = Client(self.district, "blue", light=True)
        operator.pc.addTransceiver(
            PrecodedVideo("blue", fps=FPS, grain=self.grain), direction="sendonly"
        )
        operator.pc.addTransceiver(PrecodedSilence(), direction="sendonly")
        for _ in self.callees:
            operator.pc.addTransceiver("video", direction="recvonly")
            operator.pc.addTransceiver("audio", direction="recvonly")
        self.peers[self.district] = operator
        await self._sdp(operator, self.auth)
        for code in self.callees:
            accept = await self.client.post(
                f"/api/v1/calls/{self.call_id}/accept", headers=self.tokens[code]
            )
            assert accept.status == 200, await accept.text()
            village = Client(code, "red", light=True)
            village.pc.addTrack(PrecodedVideo("red", fps=FPS, grain=self.grain))
            village.pc.addTrack(PrecodedSilence())
            village.pc.addTransceiver("video", direction="recvonly")
            village.pc.addTransceiver("audio", direction="recvonly")
            self.peers[code] = village
            await self._sdp(village, self.tokens[code])

    async def _sdp(self, peer: Client, headers: dict[str, str]) -> None:
        resp = await self.client.post(
            f"/api/v1/calls/{self.call_id}/sdp",
            headers=headers,
            json={"type": "offer", "sdp": await peer.offer()},
        )
        assert resp.status == 200, await resp.text()
        await peer.accept((await resp.json())["sdp"])

    async def end(self) -> None:
        resp = await self.client.post(f"/api/v1/calls/{self.call_id}/end", headers=self.auth)
        assert resp.status == 200, await resp.text()

    async def close(self) -> None:
        for peer in self.peers.values():
            await peer.close()


@pytest.fixture
def meetings() -> Iterator[list[Meeting]]:
    made: list[Meeting] = []
    yield made


@pytest.fixture(autouse=True)
def _needs_ffprobe() -> None:
    assert shutil.which("ffprobe"), "run `make system-deps` (Debian's ffmpeg package)"


async def test_a_recorded_district_meeting_of_1_and_3(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    settings = demo_settings.with_(
        ice_hosts="127.0.0.1", scheduler=False, media_workers="1", recording_min_free_mb=1
    )
    district, all_towns = towns(settings)
    callees = all_towns[:3]
    app = create_app(settings)
    client: TestClient = await aiohttp_client(app)
    meeting = Meeting(client, settings, district, callees)
    call_id = await meeting.launch()
    data = settings.data_path
    try:
        # The policy records district meetings from the start; every page can ask.
        for headers in (meeting.auth, meeting.tokens[callees[0]]):
            resp = await client.get(f"/api/v1/calls/{call_id}/recording", headers=headers)
            assert (await resp.json())["recording"] is True
        refused = await client.post(
            f"/api/v1/calls/{call_id}/recording",
            headers=meeting.tokens[callees[0]],
            json={"on": False},
        )
        assert refused.status == 403
        bad = await client.post(
            f"/api/v1/calls/{call_id}/recording", headers=meeting.auth, json={"on": "yes"}
        )
        assert bad.status == 400 and (await bad.json())["field"] == "on"

        await meeting.join()
        everyone = {district, *callees}
        await eventually(lambda: {r.participant for r in rows(settings, call_id)} == everyone)
        await asyncio.sleep(4)
        leaver = callees[2]
        resp = await client.post(f"/api/v1/calls/{call_id}/leave", headers=meeting.tokens[leaver])
        assert resp.status == 200
        await eventually(
            lambda: any(r.participant == leaver and r.sha256 for r in rows(settings, call_id))
        )
        await asyncio.sleep(3)
        await meeting.end()
    finally:
        await meeting.close()

    # Every file is closed, hashed and in the journal when the call has ended.
    found = {r.participant: r for r in rows(settings, call_id)}
    assert set(found) == everyone
    recorded = {
        e.data["recording"]: e for e in events(settings, call_id) if e.kind == calls.RECORDED
    }
    for code, row in found.items():
        path = recordings.file_of(data, row)
        assert row.ended_at is not None and row.kind == "audio+video", row
        assert row.path.startswith(f"{call_id}/") and path.suffix == ".webm"
        assert path.stat().st_size == row.bytes > 0
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        event = recorded[row.id]
        assert event.centre_code == code and event.data["sha256"] == row.sha256
        # The right duration: the media the publisher sent while it was recorded — its
        # frames at its frame rate, its 20 ms Opus packets (the file's times are the RTP
        # clocks'; a sender that fell behind and caught up makes more media than the
        # wall-clock time it took to arrive, so the wall clock bounds it loosely).
        length, frames, packets = probe(path)
        assert abs(length - row.seconds) <= 1.0, (code, length, row.seconds)
        assert abs(length - frames / FPS) <= 1.0, (code, length, frames)
        assert abs(length - packets * 0.02) <= 1.0, (code, length, packets)
        wall = (row.ended_at - row.started_at).total_seconds()
        assert wall - 1.0 <= length <= wall + 3.0, (code, length, wall)
    assert found[leaver].end_reason == "left"
    assert duration(recordings.file_of(data, found[leaver])) + 2 <= duration(
        recordings.file_of(data, found[district])
    )

    # Signed off: the sealed journal carries every sha256, and the chain verifies.
    sign = await client.post(f"/api/v1/journals/{call_id}/sign", headers=meeting.auth)
    assert sign.status == 201, await sign.text()
    db = open_database(settings.db_url)
    with db.session() as s:
        from logs.journal import JournalEntry

        canonical = s.get(JournalEntry, call_id).canonical  # type: ignore[union-attr]
    db.close()
    assert all(row.sha256 and row.sha256 in canonical for row in found.values())
    assert main(["--db", settings.db_url, "journal", "verify"]) == 0

    # Listing, playing, downloading — scoped like the journal.
    listing = await client.get(f"/api/v1/calls/{call_id}/recordings", headers=meeting.auth)
    assert {r["participant"] for r in (await listing.json())["recordings"]} == everyone
    town = bearer(make_token(settings, callees[0]))
    mine = await client.get(f"/api/v1/calls/{call_id}/recordings", headers=town)
    assert [r["participant"] for r in (await mine.json())["recordings"]] == [callees[0]]
    own = await client.get(f"/api/v1/recordings/{found[callees[0]].id}", headers=town)
    assert own.status == 200 and own.headers["Content-Type"] == "video/webm"
    assert await own.read() == recordings.file_of(data, found[callees[0]]).read_bytes()
    other = await client.get(f"/api/v1/recordings/{found[callees[1]].id}", headers=town)
    assert other.status == 404
    outsider = bearer(make_token(settings, cast.village_b1))  # not in the call
    for url in (f"/api/v1/calls/{call_id}/recordings", f"/api/v1/recordings/{found[district].id}"):
        resp = await client.get(url, headers=outsider)
        assert resp.status == 403, url
    missing = await client.get("/api/v1/recordings/999999", headers=meeting.auth)
    assert missing.status == 404

    whole = recordings.file_of(data, found[district]).read_bytes()
    ranged = await client.get(
        f"/api/v1/recordings/{found[district].id}",
        headers={**meeting.auth, "Range": "bytes=100-1099"},
    )
    assert ranged.status == 206
    assert ranged.headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    assert await ranged.read() == whole[100:1100]
    tail = await client.get(
        f"/api/v1/recordings/{found[district].id}", headers={**meeting.auth, "Range": "bytes=-500"}
    )
    assert tail.status == 206 and await tail.read() == whole[-500:]
    saved = await client.get(
        f"/api/v1/recordings/{found[district].id}/download", headers=meeting.auth
    )
    assert saved.status == 200 and "attachment" in saved.headers["Content-Disposition"]


async def test_who_may_start_and_what_the_policy_records(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    settings = demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False, recording_min_free_mb=1)
    client: TestClient = await aiohttp_client(create_app(settings))
    town_auth = bearer(make_token(settings, cast.town_a))
    resp = await client.post(
        "/api/v1/calls",
        headers=town_auth,
        json={"callees": [cast.village_a1, cast.village_a2], "kind": "meeting"},
    )
    call_id = (await resp.json())["call"]["id"]
    state = await client.get(f"/api/v1/calls/{call_id}/recording", headers=town_auth)
    assert (await state.json())["recording"] is False  # a town's meeting: not by policy
    village = bearer(make_token(settings, cast.village_a1))
    refused = await client.post(
        f"/api/v1/calls/{call_id}/recording", headers=village, json={"on": True}
    )
    assert refused.status == 403
    other_town = bearer(make_token(settings, cast.town_b))
    refused = await client.post(
        f"/api/v1/calls/{call_id}/recording", headers=other_town, json={"on": True}
    )
    assert refused.status == 403
    started = await client.post(
        f"/api/v1/calls/{call_id}/recording", headers=town_auth, json={"on": True}
    )
    assert started.status == 200 and (await started.json())["recording"] is True
    stopped = await client.post(
        f"/api/v1/calls/{call_id}/recording", headers=town_auth, json={"on": False}
    )
    assert (await stopped.json())["recording"] is False
    marks = [
        (e.kind, e.data.get("on")) for e in events(settings, call_id) if e.kind == calls.RECORDING
    ]
    assert marks == [("recording", True), ("recording", False)]
    await client.post(f"/api/v1/calls/{call_id}/end", headers=town_auth)
    late = await client.post(
        f"/api/v1/calls/{call_id}/recording", headers=town_auth, json={"on": True}
    )
    assert late.status == 409

    # The policy switch: a district meeting is not recorded once it is off.
    db = open_database(settings.db_url)
    with db.session() as s:
        policy.set_policy(s, None, {"record_district_meetings": False}, "test")
    db.close()
    district_auth = bearer(make_token(settings, cast.district))
    resp = await client.post(
        "/api/v1/calls", headers=district_auth, json={"callees": [cast.town_b], "kind": "meeting"}
    )
    call_id = (await resp.json())["call"]["id"]
    state = await client.get(f"/api/v1/calls/{call_id}/recording", headers=district_auth)
    assert (await state.json())["recording"] is False


async def test_a_disk_below_the_free_space_floor_refuses_to_record_and_the_call_goes_on(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    free_mb = shutil.disk_usage(demo_settings.data_path.parent).free // 2**20
    settings = demo_settings.with_(
        ice_hosts="127.0.0.1", scheduler=False, recording_min_free_mb=free_mb + 10**6
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    meeting = Meeting(client, settings, cast.district, [cast.town_a])
    call_id = await meeting.launch()  # recorded by policy: refused, and said so
    try:
        await meeting.join()
        operator = meeting.peers[cast.district]
        await eventually(lambda: bool(operator.frames) and operator.frames[0] > FPS)
        off = [e.data for e in events(settings, call_id) if e.kind == calls.RECORDING]
        assert off == [
            {"on": False, "by": "policy", "reason": "disk full", "free_bytes": off[0]["free_bytes"]}
        ]
        resp = await client.post(
            f"/api/v1/calls/{call_id}/recording", headers=meeting.auth, json={"on": True}
        )
        assert resp.status == 409 and "disk is full" in (await resp.json())["message"]
        count = operator.frames[0]
        await eventually(lambda: operator.frames[0] > count + FPS)  # the call goes on
        assert rows(settings, call_id) == []
    finally:
        await meeting.close()


@pytest.fixture
def tiny_recordings(demo_settings: Settings) -> Iterator[Path]:
    """DATA_DIR/recordings on a 1 MB tmpfs (needs root; skipped where not allowed)."""
    folder = demo_settings.data_path / "recordings"
    folder.mkdir(parents=True)
    with tmpfs(folder):
        yield folder


async def test_a_disk_that_fills_stops_the_recording_and_the_call_goes_on(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast, tiny_recordings: Path
) -> None:
    settings = demo_settings.with_(
        ice_hosts="127.0.0.1", scheduler=False, media_workers="1", recording_min_free_mb=0
    )
    app = create_app(settings)
    client: TestClient = await aiohttp_client(app)
    meeting = Meeting(client, settings, cast.district, [cast.town_a], grain=120)
    call_id = await meeting.launch()
    try:
        await meeting.join()

        def stopped() -> bool:
            return any(
                e.kind == calls.RECORDING and e.data.get("reason") == "disk full"
                for e in events(settings, call_id)
            )

        await eventually(stopped, within=60)
        state = await client.get(f"/api/v1/calls/{call_id}/recording", headers=meeting.auth)
        assert (await state.json())["recording"] is False
        operator = meeting.peers[cast.district]
        count = operator.frames[0]
        await eventually(lambda: operator.frames[0] > count + FPS)  # the call goes on
        resp = await client.get(f"/api/v1/calls/{call_id}", headers=meeting.auth)
        assert (await resp.json())["state"] == "live"
        await meeting.end()
    finally:
        await meeting.close()
    found = rows(settings, call_id)
    assert found and all(r.ended_at is not None for r in found)
    assert "disk full" in {r.end_reason for r in found}
    for row in found:  # what reached the disk is hashed as it lies there
        path = recordings.file_of(settings.data_path, row)
        if row.sha256 is not None:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256


def test_wall_clock_is_utc() -> None:
    assert recordings.as_utc_from_epoch(0) == datetime(1970, 1, 1, tzinfo=UTC)
