"""Issue 12 item 2: Debian's coturn from the file `dispatch deploy turnserver` writes, on
127.0.0.1 with a non-default port (`--lab`: loopback peers allowed, the only peers a
one-machine test has). The credentials a call page is handed
(GET /api/v1/calls/{id}/ice) allocate a relay with aioice's TURN client, over UDP and
TCP, and a datagram sent through it reaches a peer from the relayed address and comes
back; an expired credential, and one made with another secret, are refused. The
server's own peers (IceSettings from the settings, as the media workers get them)
gather a relay candidate from it.

aiortc has no iceTransportPolicy "relay", so "can only use the relay" is shown at the
TURN layer: the peer sees the relay's address, never the client's."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aioice.stun
import aioice.turn
import pytest
from aiohttp.test_utils import TestClient
from deploy_daemons import binary, running, until_listening
from ports import free_port

from dispatch import turn
from dispatch.settings import Settings, ice_settings
from media.ice import peer_connection, restore_host_addresses
from web.app import create_app
from web.cli import main

from conftest import Cast, bearer, make_token

pytestmark = pytest.mark.timeout(120)
SECRET = "lab-secret-not-for-production"


class Echo(asyncio.DatagramProtocol):
    """A UDP peer that sends every datagram back, remembering who sent it."""

    def __init__(self) -> None:
        self.senders: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.senders.append(addr)
        assert self.transport is not None
        self.transport.sendto(data, addr)


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


async def handed_out(settings: Settings, cast: Cast, aiohttp_client: Any) -> dict[str, Any]:
    """The ICE servers a village's call page gets, through the real endpoint."""
    client: TestClient = await aiohttp_client(create_app(settings))
    town = bearer(make_token(settings, cast.town_a))
    launched = await (await client.post("/api/v1/calls", headers=town, json={
        "callees": [cast.village_a1], "kind": "inspection"})).json()  # fmt: skip
    token = launched["invites"][0]["join_token"]
    resp = await client.get(f"/api/v1/calls/{launched['call']['id']}/ice", headers=bearer(token))
    assert resp.status == 200
    [server] = (await resp.json())["iceServers"]
    return dict(server)


async def relay_round_trip(port: int, user: str, password: str, transport: str) -> None:
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    peer = echo_transport.get_extra_info("sockname")
    relay, inbox = await aioice.turn.create_turn_endpoint(
        Inbox, ("127.0.0.1", port), user, password, transport=transport)  # fmt: skip
    try:
        relayed = relay.get_extra_info("sockname")
        relay.sendto(b"village video", (peer[0], peer[1]))
        data, source = await asyncio.wait_for(inbox.received.get(), 15)
        assert data == b"village video" and tuple(source) == tuple(peer)
        assert echo.senders == [tuple(relayed)]  # the peer saw the relay, not the client
    finally:
        relay.close()
        echo_transport.close()


async def refused(port: int, user: str, password: str) -> None:
    with pytest.raises((aioice.stun.TransactionFailed, ConnectionError)):
        relay, _ = await aioice.turn.create_turn_endpoint(
            Inbox, ("127.0.0.1", port), user, password)  # fmt: skip
        relay.close()


async def test_coturn_relays_with_handed_out_credentials_only(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    turnserver = binary("turnserver")
    port = free_port()
    url = f"turn:127.0.0.1:{port}?transport=udp"
    for name, value in (("DISPATCH_TURN_SECRET", SECRET), ("DISPATCH_TURN_URLS", url),
                        ("DISPATCH_PUBLIC_URL", "https://dispatch.example.cn")):  # fmt: skip
        monkeypatch.setenv(name, value)
    conf = tmp_path / "turnserver.conf"
    assert main(["deploy", "turnserver", "--out", str(conf), "--port", str(port),
                 "--listen-ip", "127.0.0.1", "--relay-ports", "41000-41200", "--lab"]) == 0
    assert conf.stat().st_mode & 0o077 == 0  # it holds the secret
    settings = demo_settings.with_(turn_urls=url, turn_secret=SECRET, turn_ttl=600,
                                   scheduler=False, ice_hosts="127.0.0.1")  # fmt: skip
    server = await handed_out(settings, cast, aiohttp_client)
    assert server["username"].endswith(f":{cast.village_a1}")

    log = tmp_path / "turnserver.log"
    args = [turnserver, "-c", str(conf), "--pidfile", str(tmp_path / "turnserver.pid"),
            "--log-file", "stdout", "--simple-log", "--userdb", str(tmp_path / "turndb")]
    with running(args, log) as proc:
        await until_listening(port, proc, log)
        user, password = server["username"], server["credential"]
        await relay_round_trip(port, user, password, "udp")
        await relay_round_trip(port, user, password, "tcp")

        expired = turn.credential(SECRET, cast.village_a1, 60, now=time.time() - 3600)
        await refused(port, expired.username, expired.password)
        forged = turn.credential("another-secret", cast.village_a1, 600)
        await refused(port, forged.username, forged.password)

        # The server's own peers: a relay candidate with the server's credential.
        pc = peer_connection(ice_settings(settings))
        try:
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            assert " typ relay " in pc.localDescription.sdp
        finally:
            await pc.close()
            restore_host_addresses()
