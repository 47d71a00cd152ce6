"""Writing a frame's RTP packets to one viewer in as few system calls as the kernel allows.

Forwarding spends most of its time in ``sendto``: one system call per packet per viewer,
and on one machine the call also carries the receiving side's work (measured on the
2-core bench machine: 7-8 µs a packet, SRTP 4 µs, the rest of the per-packet Python
2-3 µs). A video frame is several packets to the same address, all of one size but the
last: Linux's UDP generic segmentation offload (``UDP_SEGMENT``, since 4.18) takes them
in one ``sendmsg`` and the receiver still gets one datagram per packet (4 × 1,250 bytes:
4.6 µs a packet instead of 7.5). A single packet goes straight to the socket, past the
asyncio transport's checks (≈ 1 µs).

Invariants:
- Packets leave in the order given, and after anything the asyncio transport still
  buffers: while its buffer is not empty everything goes through ``transport.sendto``,
  which appends to it.
- A would-block or any other error on the direct path falls back to
  ``transport.sendto`` for the packets not yet handed to the kernel, so asyncio queues
  them or reports the error to the protocol as it always does.
- A kernel or device that refuses segmentation (EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP)
  turns it off for the process, logged once; packets are then sent one by one.
- Only plain UDP transports are written directly: anything else (a TURN allocation's
  protocol, a transport without a socket) gets ``transport.sendto`` per packet.

Private CPython attributes used: the selector datagram transport's ``_sock`` and
``_buffer`` (asyncio 3.8-3.13).
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import sys
from asyncio import DatagramTransport
from typing import Any

logger = logging.getLogger(__name__)

UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
SOL_UDP = getattr(socket, "SOL_UDP", 17)
MAX_SEGMENTS = 32  # per call: well inside the kernel's 64 segments and 64 KB
_NO_GSO = {errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
_SEGMENT_SIZE = struct.Struct("=H")


class _Offload:
    enabled = sys.platform.startswith("linux")


def segmentation_enabled() -> bool:
    """Whether frames still go out as segmented writes in this process."""
    return _Offload.enabled


def refused_segmentation(error: int | None) -> None:
    """A segmented write failed with ``error``: the kernel's refusal of segmentation
    turns it off for the process (logged once); any other error leaves it on."""
    if error in _NO_GSO and _Offload.enabled:
        _Offload.enabled = False
        logger.warning("UDP segmentation offload refused (%s): packets go one by one from "
                       "now on", errno.errorcode.get(error or 0, error))  # fmt: skip


def send_packets(transport: DatagramTransport, packets: list[bytes], addr: Any) -> None:
    """Send ``packets`` to ``addr`` in order; see the module doc for the invariants."""
    sock: socket.socket | None = getattr(transport, "_sock", None)
    if sock is None or getattr(transport, "_buffer", True):
        for packet in packets:
            transport.sendto(packet, addr)
        return
    if len(packets) == 1:  # most packets: an audio frame
        try:
            sock.sendto(packets[0], addr)
        except OSError:
            transport.sendto(packets[0], addr)
        return
    start = 0
    while start < len(packets):
        batch = _batch(packets, start)
        try:
            if len(batch) == 1:
                sock.sendto(batch[0], addr)
            else:
                size = _SEGMENT_SIZE.pack(len(batch[0]))
                sock.sendmsg(batch, [(SOL_UDP, UDP_SEGMENT, size)], 0, addr)
        except OSError as exc:
            if len(batch) > 1:
                refused_segmentation(exc.errno)
            for packet in packets[start:]:
                transport.sendto(packet, addr)
            return
        start += len(batch)


def _batch(packets: list[bytes], start: int) -> list[bytes]:
    """The longest run from ``start`` one segmented write can carry: equal sizes, a
    last one no longer, at most ``MAX_SEGMENTS``; a single packet when offload is off."""
    if not _Offload.enabled:
        return packets[start : start + 1]
    size = len(packets[start])
    end = start + 1
    limit = min(len(packets), start + MAX_SEGMENTS)
    while end < limit and len(packets[end]) == size:
        end += 1
    if end < limit and len(packets[end]) < size:
        end += 1  # a shorter last segment is allowed
    return packets[start:end]
