"""Signalling limits (issue 11, item 1): offers are bounded, checked line by line before
aiortc sees them, never stall the event loop, and a refused offer changes nothing.

- `web.sdp_checks` alone: real offers pass, each malformed kind is refused naming its
  attribute, and a fuzz run shows that whatever the check passes, aiortc takes.
- Through the server: 413 before parsing (by Content-Length and for chunked bodies),
  400 naming the attribute, the call's events unchanged, and no stall of the loop above
  100 ms (`loopstall.StallWatch`) while hostile offers of every shape arrive — on the
  call API (a join link's token and a logged-in village account) and on WHIP.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCSessionDescription
from loopstall import StallWatch

from dispatch import calls
from dispatch.settings import Settings
from media.room import OfferError, _offer_directions
from web.app import create_app
from web.schema import open_database
from web.sdp_checks import MAX_SSRC_LINES, OfferLimits, check_offer

from conftest import Cast, bearer, make_token
from peers import Client

pytestmark = pytest.mark.timeout(120)

CHROMIUM = (Path(__file__).parent / "data" / "chromium_operator_offer.sdp").read_text()
LIMITS = OfferLimits.for_role(64 * 1024, operator=False, invited=1)
STALL_LIMIT = 0.100  # seconds: the "no event-loop stall above 100 ms"
FINGERPRINT = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32)


def session_head(mids: str = "0 1 2 3") -> list[str]:
    return ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", f"a=group:BUNDLE {mids}",
            FINGERPRINT, "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx",
            "a=setup:actpass"]  # fmt: skip


def media_section(mid: str, kind: str = "video", direction: str = "sendrecv") -> list[str]:
    codec = "VP8/90000" if kind == "video" else "opus/48000/2"
    return [f"m={kind} 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", f"a=mid:{mid}",
            "a=rtcp-mux", f"a={direction}", f"a=rtpmap:96 {codec}",
            f"a=candidate:1 1 udp 2122260223 127.0.0.1 {40000 + int(mid)} typ host"]  # fmt: skip


def small_offer() -> list[str]:
    lines = session_head()
    for mid, kind in enumerate(("video", "audio", "video", "audio")):
        lines += media_section(str(mid), kind, "sendrecv" if mid < 2 else "recvonly")
    return lines


def text(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def refusal(sdp: str, limits: OfferLimits = LIMITS, **kw: Any) -> str:
    from dispatch.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        check_offer(sdp, limits, **kw)
    assert info.value.field == "sdp"
    return info.value.message


# --- the check alone --------------------------------------------------------------------


async def test_real_offers_pass() -> None:
    check_offer(CHROMIUM, LIMITS)  # Chromium 156: operator camera + one receiving pair
    check_offer(text(small_offer()), LIMITS)
    village = Client("v", "green")
    try:
        village.offer_as_participant()
        check_offer(await village.offer(), LIMITS)  # aiortc, as the tests' clients
    finally:
        await village.close()


def plus(lines: list[str], extra: list[str]) -> str:
    return text([*lines, *extra])


def without(lines: list[str], prefix: str) -> str:
    return text([line for line in lines if not line.startswith(prefix)])


@pytest.mark.parametrize(
    "mutate, named",
    [
        (lambda ls: without(ls, "a=fingerprint"), "a=fingerprint"),
        (
            lambda ls: text([FINGERPRINT[:-3] if x == FINGERPRINT else x for x in ls]),
            "a=fingerprint",
        ),
        (lambda ls: text([x.replace("sha-256 AB", "sha-256 ZZ") for x in ls]), "a=fingerprint"),
        (lambda ls: without(ls, "a=ice-ufrag"), "a=ice-ufrag"),
        (lambda ls: without(ls, "a=ice-pwd"), "a=ice-pwd"),
        (
            lambda ls: text(
                [x.replace("ice-pwd:abcdefghijklmnopqrstuvwx", "ice-pwd:short") for x in ls]
            ),
            "a=ice-pwd",
        ),
        (lambda ls: without(ls, "a=rtcp-mux"), "a=rtcp-mux"),
        (lambda ls: without(ls, "a=setup"), "a=setup"),
        (lambda ls: without(ls, "a=mid"), "a=mid"),
        (lambda ls: without(ls, "a=group"), "BUNDLE"),
        (lambda ls: without(ls, "a=rtpmap"), "no codec"),
        (lambda ls: text([x.replace("VP8", "AV1") for x in ls]), "no codec"),
        (
            lambda ls: text(
                [x.replace("a=sendrecv", "a=recvonly").replace("VP8", "H264") for x in ls]
            ),
            "no codec",
        ),
        (lambda ls: without(ls, "a=sendrecv"), "direction"),
        (
            lambda ls: text([x for x in ls if not x.startswith(("m=", "a=mid", "a=rtcp-mux"))]),
            "no audio or video m-line",
        ),
        (lambda ls: plus(ls, media_section("4")), "more than 4 m-lines"),
        (lambda ls: plus(ls, ["a=fmtp:97 apt=96"]), "a=fmtp"),
        (lambda ls: plus(ls, ["a=candidate:1 1 udp 1 not-an-ip 9 typ host"]), "a=candidate"),
        (lambda ls: text(ls + ["a=ssrc:1 cname:x"] * (MAX_SSRC_LINES + 1)), "a=ssrc"),
        (lambda ls: plus(ls, [f"a=ssrc:{n} cname:x" for n in range(20)]), "different SSRCs"),
        (lambda ls: plus(ls, ["a=extmap:1 urn:x extra"]), "a=extmap"),
        (lambda ls: plus(ls, ["a=x:" + "y" * 2000]), "characters"),
        (
            lambda ls: plus(ls[:-7], ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel"]),
            "only audio and video",
        ),
        (lambda ls: text(["v=0 garbage", *ls[1:]]), "v=0"),
        (lambda ls: "v=0\r\n\ud800\r\n", "UTF-8"),
    ],
)
def test_each_malformed_offer_is_refused_naming_what_is_wrong(mutate: Any, named: str) -> None:
    assert named in refusal(mutate(small_offer()))


def test_whip_offers_must_leave_the_server_the_dtls_server() -> None:
    sdp = text(small_offer()).replace("a=setup:actpass", "a=setup:passive")
    check_offer(sdp, LIMITS)  # on the call API the server may be the DTLS client
    assert "a=setup:passive" in refusal(sdp, whip=True)


def test_the_operator_may_offer_a_pair_per_invited_centre() -> None:
    lines = session_head(" ".join(str(i) for i in range(42)))
    for mid in range(42):
        lines += media_section(str(mid), "video" if mid % 2 == 0 else "audio", "recvonly")
    sdp = text(lines)
    operator = OfferLimits.for_role(64 * 1024, operator=True, invited=20)
    assert operator.max_media == 42 and operator.max_bytes > 64 * 1024
    check_offer(sdp, operator)
    assert "m-lines" in refusal(sdp, OfferLimits.for_role(64 * 1024, operator=True, invited=19))


MUTATIONS = [
    "a=fingerprint:sha-256 00",
    "a=setup:holdconn",
    "a=rtpmap:96",
    "a=rtpmap:96 VP8/x",
    "a=fmtp:96",
    "a=fmtp:96 apt=x",
    "a=rtcp-fb:96",
    "a=rtcp:x",
    "a=rtcp:9 IN IP7 ::",
    "a=ssrc:1",
    "a=ssrc-group:FID x",
    "a=extmap:x y",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ host rport x",
    "a=group",
    "a=msid-semantic",
    "c=IN IP4",
    "m=video x UDP/TLS/RTP/SAVPF 96",
    "m=video 9 UDP/TLS/RTP/SAVPF 300",
    "m=video 9 UDP/TLS/RTP/SAVPF 72",
    "a=mid:",
    "a=inactive",
    "a=max-message-size:x",
    "a=sctp-port:5000",
]


def mutated(rng: random.Random, lines: list[str]) -> str:
    out = list(lines)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        at = rng.randrange(len(out))
        if op == 0:
            del out[at]
        elif op == 1:
            out.insert(at, out[rng.randrange(len(out))])
        elif op == 2:
            out.insert(at, rng.choice(MUTATIONS))
        elif op == 3 and out[at]:
            cut = rng.randrange(len(out[at]))
            out[at] = out[at][:cut] + rng.choice(" :/=;x0\t") + out[at][cut + 1 :]
        elif op == 4:
            out[at] = out[at][: rng.randrange(len(out[at]) + 1)]
        else:
            other = rng.randrange(len(out))
            out[at], out[other] = out[other], out[at]
    return text(out)


async def aiortc_takes(sdp: str) -> None:
    """What the media room does with an offer before it gathers: its own check, then
    aiortc's parse, validation and codec negotiation, then the answer."""
    _offer_directions(sdp, passive_dtls=False)
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.createAnswer()
    finally:
        await pc.close()


async def test_whatever_the_check_passes_aiortc_takes() -> None:
    rng = random.Random(11)
    bases = [small_offer(), CHROMIUM.splitlines()]
    passed = refused_by_aiortc = 0
    for _ in range(400):
        sdp = mutated(rng, rng.choice(bases))
        try:
            check_offer(sdp, LIMITS)
        except Exception as exc:
            assert type(exc).__name__ in ("InvalidInput", "TooLarge"), repr(exc)
            continue
        passed += 1
        try:
            await aiortc_takes(sdp)
        except (OfferError, Exception) as exc:
            refused_by_aiortc += 1
            pytest.fail(f"the check passed an offer aiortc refuses: {exc!r}\n{sdp}")
    assert passed > 50 and refused_by_aiortc == 0  # the run exercised both sides


# --- through the server ------------------------------------------------------------------


@pytest.fixture
def media_settings(demo_settings: Settings) -> Settings:
    return demo_settings.with_(ice_hosts="127.0.0.1", scheduler=False)


def events_of(settings: Settings, call_id: int) -> list[tuple[str | None, str]]:
    db = open_database(settings.db_url)
    with db.session() as s:
        out = [(r.centre_code, r.kind) for r in calls.events(s, call_id)]
        out.append((None, calls.get_call(s, call_id).state))
        out += [(i.centre_code, i.state) for i in calls.invitations(s, call_id)]
    db.close()
    return out


async def launch(client: TestClient, settings: Settings, cast: Cast) -> tuple[int, dict[str, Any]]:
    town = bearer(make_token(settings, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town, json={"callees": [cast.village_a1]})
    launched = await resp.json()
    return launched["call"]["id"], bearer(launched["invites"][0]["join_token"])


def ssrc_flood(size: int) -> str:
    """The probe's offer: one m-line with ever more distinct a=ssrc lines."""
    lines = small_offer()
    total, n = len(text(lines)), 0
    while total < size:
        lines.append(f"a=ssrc:{1000 + n} cname:flood{n}")
        total += len(lines[-1]) + 2
        n += 1
    return text(lines)


def many_mlines(count: int) -> str:
    lines = session_head(" ".join(str(i) for i in range(count)))
    for mid in range(count):
        lines += media_section(str(mid), "video", "recvonly")
    return text(lines)


def worst_within_bounds() -> str:
    """An offer at every per-section bound the check allows: the most work aiortc's
    parser can be given by an invited centre."""
    lines = session_head()
    pts = [p for p in range(128) if not 72 <= p <= 76 and not 64 <= p < 96][:48]
    for mid in range(4):
        kind = "video" if mid % 2 == 0 else "audio"
        codec = "VP8/90000" if kind == "video" else "opus/48000/2"
        lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF " + " ".join(map(str, pts)),
                  "c=IN IP4 0.0.0.0", f"a=mid:{mid}", "a=rtcp-mux", "a=sendrecv"]  # fmt: skip
        lines += [f"a=rtpmap:{p} {codec}" for p in pts]
        lines += [f"a=fmtp:{p} x-google-start-bitrate=100" for p in pts]
        lines += [f"a=rtcp-fb:{pts[i % 48]} nack" for i in range(128)]
        lines += [
            f"a=ssrc:{1000 + i % 16} cname:abcdefgh" for i in range(29)
        ]  # 256 attribute lines
    return text(lines)


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), 8192):
        yield data[at : at + 8192]


async def test_hostile_offers_on_the_call_api_are_refused_without_stalling_the_loop(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, token = await launch(client, media_settings, cast)
    village_account = bearer(make_token(media_settings, cast.village_a1))
    assert (await client.post(f"/api/v1/calls/{call_id}/accept", headers=token)).status == 200
    url = f"/api/v1/calls/{call_id}/sdp"
    before = events_of(media_settings, call_id)

    async def offer(headers: dict[str, str], sdp: str) -> tuple[int, dict[str, Any]]:
        resp = await client.post(url, headers=headers, json={"type": "offer", "sdp": sdp})
        return resp.status, await resp.json()

    # Every offer is made before the watch starts: the watch measures the server only.
    huge, long, flooded = ssrc_flood(435_000), ssrc_flood(60_000), ssrc_flood(3_000)
    raw = json.dumps({"type": "offer", "sdp": huge}).encode()
    wide, worst = many_mlines(100), worst_within_bounds()
    unsigned = without(small_offer(), "a=fingerprint")
    anonymous = without(small_offer(), "a=ice-ufrag")
    async with StallWatch() as watch:
        # Over the size limit: 413 from Content-Length, before the body is read.
        status, body = await offer(token, huge)
        assert status == 413 and body["error"] == "too_large", body
        # The same without a length (chunked): 413 once the limit is passed.
        resp = await client.post(url, headers={**token, "Content-Type": "application/json"},
                                 data=chunked(raw))  # fmt: skip
        assert resp.status == 413, await resp.text()
        # Within the size limit, each shape the probe sent: 400 naming the attribute.
        for headers in (token, village_account):
            status, body = await offer(headers, long)  # 2,000 lines: too many
            assert status == 400 and body["field"] == "sdp" and "lines" in body["message"]
            status, body = await offer(headers, flooded)
            assert status == 400 and "a=ssrc" in body["message"], body
            status, body = await offer(headers, wide)
            assert status == 400 and "m-lines" in body["message"], body
            status, body = await offer(headers, unsigned)
            assert status == 400 and "a=fingerprint" in body["message"], body
            status, body = await offer(headers, anonymous)
            assert status == 400 and "a=ice-ufrag" in body["message"], body
        resp = await client.post(url, headers={**token, "Content-Type": "application/json"},
                                 data="[" * 100_000)  # fmt: skip
        assert resp.status == 400 and (await resp.json())["field"] == "body"
        assert (await client.get("/healthz")).status == 200
    assert watch.worst < STALL_LIMIT, watch
    assert events_of(media_settings, call_id) == before  # nothing recorded, nothing changed

    # The largest offer the check lets through goes on to aiortc, still without a stall.
    async with StallWatch() as watch:
        status, body = await offer(token, worst)
        assert status == 200 and body["type"] == "answer", body
    assert watch.worst < STALL_LIMIT, watch


async def test_a_refused_whip_offer_leaves_the_invite_ringing(
    aiohttp_client: Any, media_settings: Settings, cast: Cast
) -> None:
    client: TestClient = await aiohttp_client(create_app(media_settings))
    call_id, token = await launch(client, media_settings, cast)
    before = events_of(media_settings, call_id)
    assert (None, "ringing") in before and (cast.village_a1, "rang") in before
    headers = {**token, "Content-Type": "application/sdp"}
    huge = ssrc_flood(435_000)
    refused = [
        (without(small_offer(), "a=fingerprint"), 400),
        (without(small_offer(), "a=ice-pwd"), 400),
        ("v=0\r\n", 400),  # no m-line
        (text(small_offer()).replace("a=setup:actpass", "a=setup:passive"), 400),
        (ssrc_flood(60_000), 400),
        (huge, 413),
    ]
    async with StallWatch() as watch:
        for sdp, status in refused:
            resp = await client.post(f"/whip/{call_id}", data=sdp, headers=headers)
            assert resp.status == status, await resp.text()
            assert (await resp.json())["field"] == "sdp"
        resp = await client.post(f"/whip/{call_id}", data=chunked(huge.encode()), headers=headers)
        assert resp.status == 413
    assert watch.worst < STALL_LIMIT, watch
    assert events_of(media_settings, call_id) == before  # not answered, call not started


async def test_the_stall_watch_sees_a_blocked_loop() -> None:
    import time

    async with StallWatch() as watch:
        await asyncio.sleep(0.02)
        end = time.thread_time() + 0.15
        while time.thread_time() < end:  # the loop computes for 150 ms of CPU
            pass
        await asyncio.sleep(0.02)
    assert watch.worst >= 0.12, watch
