"""A frame's packets to one viewer: segmented writes deliver every packet, in order.

Real UDP sockets on 127.0.0.1 through asyncio's own datagram transport."""

from __future__ import annotations

import asyncio
import os
import socket

from media import datagrams
from media.datagrams import MAX_SEGMENTS, _batch, send_packets

from conftest import received_datagrams


async def test_every_packet_arrives_in_order_as_its_own_datagram(
    udp_link: tuple[asyncio.DatagramTransport, socket.socket],
) -> None:
    transport, rx = udp_link
    # A key frame longer than one write can carry, a shorter packet in the middle (a
    # batch ends there), a lone audio packet.
    sizes = [1310] * (MAX_SEGMENTS + 5) + [600, 1310, 1310, 90, 120]
    packets = [os.urandom(n) for n in sizes]
    send_packets(transport, packets, rx.getsockname())
    send_packets(transport, [b"audio"], rx.getsockname())
    got = await received_datagrams(rx, len(packets) + 1)
    assert got == [*packets, b"audio"]
    assert datagrams.segmentation_enabled()  # this kernel takes segmented writes


def test_a_batch_is_equal_sizes_then_at_most_one_shorter() -> None:
    sizes = [1300, 1300, 1300, 700, 1300, 1400, 1400]
    packets = [bytes(n) for n in sizes]
    assert [len(p) for p in _batch(packets, 0)] == [1300, 1300, 1300, 700]
    assert [len(p) for p in _batch(packets, 4)] == [1300]  # a longer one starts anew
    assert [len(p) for p in _batch(packets, 5)] == [1400, 1400]
    many = [bytes(1300)] * (MAX_SEGMENTS * 2)
    assert len(_batch(many, 0)) == MAX_SEGMENTS
