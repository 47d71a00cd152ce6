"""A camera in a call, end to end: a real RTSP server on 127.0.0.1 (tests/rtsp_server.py)
serving an H.264 test pattern behind a password, the service pulling it with PyAV into
the call's room, and the operator's aiortc peer decoding its frames — transcoded once
to VP8, or forwarded as is in an H.264 room, in process or through a media worker. A
camera whose server goes away is shown reconnecting and comes back; it records no
attendance; its snapshot is kept with its sha256; its password is in no log line."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from rtsp_server import RtspServer

from dispatch import calls
from dispatch.settings import Settings
from web.app import create_app
from web.schema import open_database

from conftest import Cast, bearer, make_token
from peers import Client, eventually

pytestmark = pytest.mark.timeout(90)

PASSWORD = "Cam-Pa55word-7x!"


@pytest.fixture
def camera_server() -> Any:
    server = RtspServer(colour="green", username="viewer", password=PASSWORD)
    server.start()
    yield server
    server.stop()


def media_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.with_(ice_hosts="127.0.0.1", scheduler=False, camera_timeout=3.0,
                          camera_retry_max=2.0, **changes)  # fmt: skip


async def register_camera(
    client: Any, settings: Settings, cast: Cast, server: RtspServer, name: str = "村口"
) -> int:
    """The district registers a camera of town A's first village with the server's
    address and password (in the URL); its id. ``client``: a TestClient or an
    aiohttp ClientSession with a base URL."""
    district = bearer(make_token(settings, cast.district))
    url = server.address.replace("rtsp://", f"rtsp://viewer:{PASSWORD}@")
    resp = await client.post("/api/v1/cameras", headers=district, json={
        "name": name, "centre": cast.village_a1, "url": url})  # fmt: skip
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def start_call(
    client: Any, settings: Settings, cast: Cast, server: RtspServer, name: str = "村口"
) -> tuple[int, int, dict[str, str]]:
    """A town A call to its first village, and a camera of that village registered
    (``register_camera``): (call id, camera id, the town's headers)."""
    camera_id = await register_camera(client, settings, cast, server, name)
    town = bearer(make_token(settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town,
                             json={"callees": [cast.village_a1], "kind": "inspection"})  # fmt: skip
    return (await resp.json())["call"]["id"], camera_id, town


async def join_operator(client: TestClient, call_id: int, town: dict[str, str],
                        slots: int) -> Client:  # fmt: skip
    operator = Client("op", "blue")
    operator.offer_as_operator(slots=slots)
    resp = await client.post(f"/api/v1/calls/{call_id}/sdp", headers=town,
                             json={"type": "offer", "sdp": await operator.offer()})  # fmt: skip
    assert resp.status == 200, await resp.text()
    await operator.accept((await resp.json())["sdp"])
    return operator


async def media_map(client: TestClient, call_id: int, town: dict[str, str]) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/calls/{call_id}/media", headers=town)
    assert resp.status == 200
    return dict(await resp.json())


def camera_state(media: dict[str, Any], camera_id: int) -> str:
    return next((c["state"] for c in media["cameras"] if c["camera"] == camera_id), "")


async def show_the_camera(
    client: TestClient, call_id: int, camera_id: int, town: dict[str, str], operator: Client
) -> int:
    """The operator adds the camera to the call and sees it (``see_the_camera``)."""
    resp = await client.post(f"/api/v1/calls/{call_id}/cameras", headers=town,
                             json={"camera": camera_id})  # fmt: skip
    assert resp.status == 201, await resp.text()
    return await see_the_camera(client, call_id, camera_id, town, operator)


async def see_the_camera(
    client: TestClient, call_id: int, camera_id: int, town: dict[str, str], operator: Client
) -> int:
    """Wait until the camera is live and the operator decodes green frames on its slot;
    returns the slot."""
    state: dict[str, Any] = {}

    async def live() -> bool:
        state.update(await media_map(client, call_id, town))
        return camera_state(state, camera_id) == "live" and f"camera-{camera_id}" in state["slots"]

    await until(live, 20)
    slot = state["slots"][f"camera-{camera_id}"]
    seen = len(operator.video[slot])
    await eventually(lambda: operator.video[slot][seen:].count("green") >= 10, 20)
    return int(slot)


async def until(check: Any, within: float) -> None:
    import asyncio

    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


def jpeg_sha256(path: str) -> str:
    data = Path(path).read_bytes()
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    return hashlib.sha256(data).hexdigest()


def recorded(settings: Settings, call_id: int) -> list[calls.AttendanceRow]:
    db = open_database(settings.db_url)
    with db.session() as s:
        rows = calls.events(s, call_id)
        for row in rows:
            s.expunge(row)
    db.close()
    return rows


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_the_operator_sees_a_camera_and_snapshots_it(
    aiohttp_client: Any,
    demo_settings: Settings,
    cast: Cast,
    camera_server: RtspServer,
    codec: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = media_settings(demo_settings, video_codec=codec)
    client: TestClient = await aiohttp_client(create_app(settings))
    call_id, camera_id, town = await start_call(client, settings, cast, camera_server)
    operator = await join_operator(client, call_id, town, slots=2)
    try:
        await show_the_camera(client, call_id, camera_id, town, operator)
        assert any(r.startswith("PLAY") for r in camera_server.requests)

        async def snapshot() -> Any:
            return await client.post(f"/api/v1/calls/{call_id}/cameras/{camera_id}/snapshot",
                                     headers=town)  # fmt: skip

        resp = await snapshot()
        assert resp.status == 201, await resp.text()
        shot = (await resp.json())["data"]
        assert jpeg_sha256(shot["path"]) == shot["sha256"]
        assert (shot["camera"], shot["width"], shot["height"]) == (camera_id, 320, 240)
    finally:
        await operator.close()
    await client.post(f"/api/v1/calls/{call_id}/end", headers=town)

    # The camera is in the record only as its snapshot (a call-wide event): no
    # attendance of its own, nothing a coverage report could count.
    rows = recorded(settings, call_id)
    assert all(r.centre_code in (cast.town_a, cast.village_a1, None) for r in rows)
    camera_rows = [r for r in rows if r.data.get("camera") == camera_id]
    assert [(r.kind, r.centre_code) for r in camera_rows] == [(calls.SNAPSHOT, None)]
    assert not any(r.kind == calls.JOINED and r.centre_code == cast.village_a1 for r in rows)
    assert PASSWORD not in caplog.text
    assert "camera-" in caplog.text  # it did log, by the camera's name


async def test_a_camera_that_drops_is_shown_reconnecting_and_comes_back(
    aiohttp_client: Any,
    demo_settings: Settings,
    cast: Cast,
    camera_server: RtspServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = media_settings(demo_settings)
    client: TestClient = await aiohttp_client(create_app(settings))
    call_id, camera_id, town = await start_call(client, settings, cast, camera_server)
    operator = await join_operator(client, call_id, town, slots=2)
    events: list[dict[str, Any]] = []
    socket = await client.ws_connect(f"/ws/calls/{call_id}", headers=town)
    try:
        slot = await show_the_camera(client, call_id, camera_id, town, operator)

        camera_server.stop()  # the camera drops off the network

        async def reconnecting() -> bool:
            return camera_state(await media_map(client, call_id, town), camera_id) == (
                "reconnecting"
            )

        await until(reconnecting, 20)
        # Its slot shows black meanwhile, not a frozen picture.
        seen = len(operator.video[slot])
        await eventually(lambda: "black" in operator.video[slot][seen:], 10)

        camera_server.start()  # back, on the same address
        await see_the_camera(client, call_id, camera_id, town, operator)
        assert camera_server.plays >= 2

        while True:  # the page's socket said so too
            message = await socket.receive_json(timeout=5)
            if message.get("type") == "camera":
                events.append(message)
                if [e["state"] for e in events][-1:] == ["live"] and len(events) >= 3:
                    break
    finally:
        await socket.close()
        await operator.close()
    states = [e["state"] for e in events]
    assert "reconnecting" in states and states[-1] == "live"
    assert all(PASSWORD not in str(e) for e in events)
    assert PASSWORD not in caplog.text


async def test_a_camera_through_a_media_worker(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast, camera_server: RtspServer
) -> None:
    settings = media_settings(demo_settings, media_workers="1")
    client: TestClient = await aiohttp_client(create_app(settings))
    call_id, camera_id, town = await start_call(client, settings, cast, camera_server)
    operator = await join_operator(client, call_id, town, slots=2)
    try:
        await show_the_camera(client, call_id, camera_id, town, operator)
        resp = await client.post(f"/api/v1/calls/{call_id}/cameras/{camera_id}/snapshot",
                                 headers=town)  # fmt: skip
        assert resp.status == 201, await resp.text()
    finally:
        await operator.close()
