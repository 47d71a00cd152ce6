"""media.sockets: a datagram socket's waiting datagrams are read in one wake-up."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aioice
import pytest

from media import sockets
from media.ice import IceSettings, configure_host_addresses, restore_host_addresses


class Counting(asyncio.DatagramProtocol):
    def __init__(self, close_after: int | None = None) -> None:
        self.received: list[bytes] = []
        self.close_after = close_after
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        if self.close_after is not None and len(self.received) == self.close_after:
            assert self.transport is not None
            self.transport.close()


async def waiting(protocol: Counting, count: int) -> asyncio.DatagramTransport:
    """A transport with ``count`` datagrams waiting in its socket, none read yet."""
    assert sockets.install()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol,
                                                       local_addr=("127.0.0.1", 0))  # fmt: skip
    port = transport.get_extra_info("sockname")[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for index in range(count):
            sender.sendto(index.to_bytes(2, "big"), ("127.0.0.1", port))
    return transport


async def test_one_wake_up_delivers_every_waiting_datagram_in_order() -> None:
    protocol = Counting()
    transport = await waiting(protocol, 40)
    transport._read_ready()  # type: ignore[attr-defined]  # one wake-up, by hand
    assert [int.from_bytes(d, "big") for d in protocol.received] == list(range(40))
    transport.close()


async def test_the_largest_udp_datagram_arrives_whole() -> None:
    """Reads ask for 64 KB, not asyncio's 256 KB: still room for any UDP datagram."""
    protocol = Counting()
    transport = await waiting(protocol, 0)
    port = transport.get_extra_info("sockname")[1]
    largest = bytes(range(256)) * 255 + bytes(range(227))  # 65,507: IPv4's largest payload
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
        sender.sendto(largest, ("127.0.0.1", port))
        sender.sendto(b"next", ("127.0.0.1", port))
    transport._read_ready()  # type: ignore[attr-defined]
    assert protocol.received == [largest, b"next"]
    transport.close()


async def test_draining_stops_when_the_transport_closes() -> None:
    protocol = Counting(close_after=3)
    transport = await waiting(protocol, 10)
    transport._read_ready()  # type: ignore[attr-defined]
    assert len(protocol.received) == 3


async def test_a_wake_up_reads_at_most_drain_datagrams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "DRAIN", 4)
    protocol = Counting()
    transport = await waiting(protocol, 10)
    transport._read_ready()  # type: ignore[attr-defined]
    assert len(protocol.received) == 4
    await asyncio.sleep(0.05)  # the loop's own wake-ups take the rest
    assert len(protocol.received) == 10
    transport.close()


RMEM_MAX = int(Path("/proc/sys/net/core/rmem_max").read_text())  # the kernel's ceiling


async def test_ice_sockets_get_the_roomy_receive_buffer() -> None:
    assert sockets.install()
    configure_host_addresses(IceSettings(host_addresses=("127.0.0.1",)))
    connection = aioice.Connection(ice_controlling=True)
    try:
        await connection.gather_candidates()
        (protocol,) = connection._protocols
        sock = protocol.transport.get_extra_info("socket")
        booked = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert booked == 2 * min(sockets.RECEIVE_BUFFER, RMEM_MAX)  # the kernel books twice
    finally:
        await connection.close()
        restore_host_addresses()
