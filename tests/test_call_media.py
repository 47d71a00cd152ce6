"""A call end to end with real aiortc peers over 127.0.0.1: the operator launches, two
villages answer and join, the checks see live video and a face, attendance is
verified, the floor and a snapshot are recorded, and a village that hangs up has left."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dispatch import calls
from dispatch.settings import Settings
from schedules import policy
from web.app import create_app
from web.appkeys import CONFERENCE
from web.schema import open_database

from conftest import Cast, bearer, make_token
from peers import Client, FaceTrack, count_key_frame_requests

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def media_settings(demo_settings: Settings) -> Settings:
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        policy.set_policy(s, None, {"min_verified_seconds": 3}, "test")
    db.close()
    return demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)


async def eventually(check, within: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def kinds(settings: Settings, call_id: int) -> list[tuple[str | None, str]]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = [(r.centre_code, r.kind) for r in calls.events(s, call_id)]
    db.close()
    return out


def jpeg_sha256(path: str) -> str:
    data = Path(path).read_bytes()
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    return hashlib.sha256(data).hexdigest()


async def join(client: TestClient, peer: Client, call_id: int, headers: dict[str, str]) -> None:
    resp = await client.post(f"/api/v1/calls/{call_id}/sdp", headers=headers,
                             json={"type": "offer", "sdp": await peer.offer()})  # fmt: skip
    assert resp.status == 200, await resp.text()
    await peer.accept((await resp.json())["sdp"])


async def launch_meeting(
    client: TestClient, settings: Settings, cast: Cast
) -> tuple[dict[str, str], int, dict[str, dict[str, str]]]:
    """Town A calls villages A1 and A2 to a meeting: the town's headers, the call's id
    and each village's join-token headers."""
    town = bearer(make_token(settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={
        "callees": [cast.village_a1, cast.village_a2], "kind": "meeting"})  # fmt: skip
    assert resp.status == 201, await resp.text()
    launched = await resp.json()
    tokens = {i["centre"]: bearer(i["join_token"]) for i in launched["invites"]}
    return town, launched["call"]["id"], tokens


async def test_a_meeting_with_two_villages(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    town, call_id, token = await launch_meeting(client, media_settings, cast)
    peers: list[Client] = []
    try:
        operator = Client("op", "blue")
        operator.offer_as_operator(slots=2)
        peers.append(operator)
        await join(client, operator, call_id, town)
        for code in (cast.village_a1, cast.village_a2):
            assert (await client.post(f"/api/v1/calls/{call_id}/accept",
                                      headers=token[code])).status == 200  # fmt: skip
            village = Client(code, None)
            village.offer_as_participant(FaceTrack())
            peers.append(village)
            await join(client, village, call_id, token[code])

        await eventually(lambda: all(len(v) > 10 for v in operator.video))  # sees both
        await eventually(lambda: peers[1].video and len(peers[1].video[0]) > 10)  # sees operator
        both = {(cast.village_a1, "verified"), (cast.village_a2, "verified")}
        await eventually(lambda: both <= set(kinds(media_settings, call_id)))
        got = kinds(media_settings, call_id)
        for code in (cast.village_a1, cast.village_a2):
            for kind in ("answered", "joined", "video_live", "faces_seen", "snapshot", "verified"):
                assert (code, kind) in got, (code, kind)

        resp = await client.post(f"/api/v1/calls/{call_id}/floor", headers=town,
                                 json={"centre": cast.village_a1})  # fmt: skip
        assert resp.status == 200
        resp = await client.post(f"/api/v1/calls/{call_id}/snapshot", headers=town,
                                 json={"centre": cast.village_a2})  # fmt: skip
        assert resp.status == 201
        shot = (await resp.json())["data"]
        assert jpeg_sha256(shot["path"]) == shot["sha256"]
        assert Path(shot["path"]).is_relative_to(Path(media_settings.data_dir))
        # A village may not take the floor or snapshots.
        resp = await client.post(f"/api/v1/calls/{call_id}/floor", headers=token[cast.village_a2],
                                 json={"centre": cast.village_a2})  # fmt: skip
        assert resp.status in (401, 403)

        await peers[2].close()  # village 2 hangs up
        await eventually(lambda: (cast.village_a2, "left") in kinds(media_settings, call_id),
                         within=5)  # fmt: skip
        resp = await client.post(f"/api/v1/calls/{call_id}/end", headers=town)
        assert resp.status == 200
        assert kinds(media_settings, call_id)[-1] == (None, "ended")
    finally:
        for peer in peers:
            await peer.close()


async def test_while_a_centre_rings_key_frames_keep_coming_and_stop_once_answered(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    # dispatch.conference.RINGING_KEYFRAME_EVERY: the operator's camera is asked for a
    # key frame every second while a village rings, so the answer finds a fresh one
    # kept; once every ring is answered the requests stop.
    client: TestClient = await aiohttp_client(create_app(media_settings))
    town, call_id, token = await launch_meeting(client, media_settings, cast)
    operator = Client("op", "blue")
    village = Client(cast.village_a1, None)
    try:
        operator.offer_as_operator(slots=2)
        asked = count_key_frame_requests(operator)
        await join(client, operator, call_id, town)
        await eventually(lambda: len(asked) >= 1)
        start = len(asked)
        await asyncio.sleep(3.2)
        assert len(asked) - start >= 2, asked  # both villages still ring

        assert (await client.post(f"/api/v1/calls/{call_id}/decline",
                                  headers=token[cast.village_a2])).status == 200  # fmt: skip
        assert (await client.post(f"/api/v1/calls/{call_id}/accept",
                                  headers=token[cast.village_a1])).status == 200  # fmt: skip
        village.offer_as_participant(FaceTrack())
        await join(client, village, call_id, token[cast.village_a1])
        await eventually(lambda: village.video and len(village.video[0]) > 10)
        await asyncio.sleep(1.5)  # the join's own request, if any, has been answered
        settled = len(asked)
        await asyncio.sleep(3.2)
        assert len(asked) == settled, asked  # nobody rings: no more key frames asked
    finally:
        await village.close()
        await operator.close()


async def test_the_operator_page_says_which_tiles_are_small(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    app = create_app(media_settings)
    client: TestClient = await aiohttp_client(app)
    town, call_id, token = await launch_meeting(client, media_settings, cast)
    url = f"/api/v1/calls/{call_id}/view"
    small = {"small": [cast.village_a2, cast.village_a1]}
    resp = await client.post(url, headers=town, json=small)
    assert resp.status == 409, await resp.text()  # no media yet
    operator = Client("op", "blue")
    try:
        operator.offer_as_operator(slots=2)
        await join(client, operator, call_id, town)
        resp = await client.post(url, headers=town, json=small)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["small"] == sorted(small["small"])
        room = app[CONFERENCE].rooms()[0]
        assert room._small == frozenset(small["small"])  # type: ignore[union-attr]
        # Refused, and nothing changes: a village's token, an unknown participant, bad bodies.
        for headers, body, status in (
            (token[cast.village_a1], {"small": []}, 401),  # a join token counts for nothing
            (bearer(make_token(media_settings, cast.town_b)), {"small": []}, 403),
            (bearer(make_token(media_settings, cast.village_a1)), {"small": []}, 403),
            (town, {"small": ["999999999999"]}, 400),
            (town, {"small": ["camera-999"]}, 400),  # a camera the call never showed
            (town, {"small": "all"}, 400),
            (town, {"small": [cast.village_a1] * 65}, 400),
            (town, {}, 400),
        ):
            resp = await client.post(url, headers=headers, json=body)
            assert resp.status == status, (body, await resp.text())
            assert "message" in await resp.json()
        assert room._small == frozenset(small["small"])  # type: ignore[union-attr]
        resp = await client.post(url, headers=town, json={"small": []})
        assert resp.status == 200 and room._small == frozenset()  # type: ignore[union-attr]
    finally:
        await operator.close()


async def test_bad_offers_and_foreign_tokens(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    town = bearer(make_token(media_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a1]})
    first = await resp.json()
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a2]})
    second = await resp.json()
    a1 = bearer(first["invites"][0]["join_token"])
    await client.post(f"/api/v1/calls/{first['call']['id']}/accept", headers=a1)
    url = f"/api/v1/calls/{first['call']['id']}/sdp"
    for body in ({"type": "offer", "sdp": "v=0 garbage"}, {"type": "answer", "sdp": "x"}, {}):
        resp = await client.post(url, headers=a1, json=body)
        assert resp.status == 400, body
        assert (await resp.json())["field"] == "sdp"
    # A token for this call used on the other call, and the other village's token here.
    resp = await client.post(f"/api/v1/calls/{second['call']['id']}/sdp", headers=a1,
                             json={"type": "offer", "sdp": "v=0"})  # fmt: skip
    assert resp.status == 403
    a2 = bearer(second["invites"][0]["join_token"])
    resp = await client.post(url, headers=a2, json={"type": "offer", "sdp": "v=0"})
    assert resp.status == 403
    # Not yet accepted: no media.
    resp = await client.post(f"/api/v1/calls/{second['call']['id']}/sdp", headers=a2,
                             json={"type": "offer", "sdp": "v=0"})  # fmt: skip
    assert resp.status == 409
    assert (await client.get("/healthz")).status == 200  # the server stays up


async def test_a_whip_publisher_joins_as_its_tokens_centre(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    from aiortc import AudioStreamTrack

    from peers import PatternTrack

    client: TestClient = await aiohttp_client(create_app(media_settings))
    town = bearer(make_token(media_settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a1]})
    launched = await resp.json()
    call_id = launched["call"]["id"]
    token = launched["invites"][0]["join_token"]
    operator, camera = Client("op", "blue"), Client("cam", None)
    try:
        operator.offer_as_operator(slots=1)
        await join(client, operator, call_id, town)
        camera.pc.addTransceiver(PatternTrack("green"), direction="sendonly")
        camera.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        offer = await camera.offer()
        sdp = {"Content-Type": "application/sdp"}
        resp = await client.post(f"/whip/{call_id}", data=offer, headers={**sdp})
        assert resp.status == 401
        other = bearer(make_token(media_settings, cast.town_a))
        resp = await client.post(f"/whip/{call_id}", data=offer, headers={**sdp, **other})
        assert resp.status == 401  # an account token is not a join token
        resp = await client.post(f"/whip/{call_id}", data=offer, headers={**sdp, **bearer(token)})
        assert resp.status == 201 and resp.content_type == "application/sdp"
        location = resp.headers["Location"]
        assert location == f"/whip/{call_id}/{cast.village_a1}" and resp.headers["ETag"]
        answer = await resp.text()
        assert "a=setup:passive" in answer
        await camera.accept(answer)
        await eventually(lambda: operator.video and operator.video[0].count("green") > 10)
        assert (await client.patch(location, headers=bearer(token))).status == 405
        assert (await client.delete(location, headers=bearer(token))).status == 200
        await eventually(lambda: (cast.village_a1, "left") in kinds(media_settings, call_id), 5)
        got = kinds(media_settings, call_id)
        assert (cast.village_a1, "answered") in got and (cast.village_a1, "joined") in got
    finally:
        await operator.close()
        await camera.close()


async def test_network_faults(aiohttp_client: Any, media_settings: Settings, cast: Cast) -> None:
    """A drop that comes back within the grace is the same attendance; a reload rejoins."""
    client: TestClient = await aiohttp_client(create_app(media_settings))
    town = bearer(make_token(media_settings, cast.town_a))
    launched = await (await client.post("/api/v1/calls", headers=town,
                                        json={"callees": [cast.village_a1]})).json()  # fmt: skip
    call_id = launched["call"]["id"]
    token = bearer(launched["invites"][0]["join_token"])
    await client.post(f"/api/v1/calls/{call_id}/accept", headers=token)
    village, reloaded = Client(cast.village_a1, "green"), Client(cast.village_a1, "red")
    try:
        village.offer_as_participant()
        await join(client, village, call_id, token)
        joined = (cast.village_a1, "joined")
        await eventually(lambda: joined in kinds(media_settings, call_id))
        conference = client.app[CONFERENCE]
        village.cut_network(True)  # silent: the room notices after ~3 s …
        await eventually(lambda: cast.village_a1 in conference.away(call_id))
        village.cut_network(False)  # … and back within the grace
        await eventually(lambda: cast.village_a1 not in conference.away(call_id))
        assert (cast.village_a1, "left") not in kinds(media_settings, call_id)
        assert kinds(media_settings, call_id).count(joined) == 1  # the same attendance
        # The page reloads: a new connection of the same centre replaces the old one.
        reloaded.offer_as_participant()
        await join(client, reloaded, call_id, token)
        await village.close()
        await eventually(lambda: reloaded.video and len(reloaded.video[0]) > 5)
        await asyncio.sleep(1)
        assert (cast.village_a1, "left") not in kinds(media_settings, call_id)
    finally:
        await village.close()
        await reloaded.close()
