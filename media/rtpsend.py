"""A forwarded frame's RTP packets to one viewer in one native call.

``media.rtpout`` writes every packet of every frame to every viewer. In Python that is,
per packet per viewer, the header's ``struct.pack``, a ``bytes`` join, pylibsrtp's
``protect`` (a cffi call plus two copies) and the socket call; at hundreds of viewers
it is most of a worker's time (tests/bench/fanout.py, ``python`` beside ``forward``).
``send_frame`` hands a frame to ``media/_rtpsend.c``, which writes the headers, calls
libsrtp's ``srtp_protect`` on the viewer's own session and sends (one segmented write
per run of equal-sized packets, as ``media.datagrams``) in a single call.

The C side links no libsrtp: it is given the address of ``srtp_protect`` in the libsrtp
that pylibsrtp carries and of the viewer's ``srtp_t`` in aiortc's session, so the
stream's SRTP state stays in one place (pylibsrtp 1.0's private cffi module
``pylibsrtp._binding`` and ``Session._srtp``).

Invariants:
- Used only on a plain UDP socket of the viewer's selected pair whose asyncio transport
  buffers nothing (the packets would otherwise overtake queued ones), and only while the
  socket is open (a closed socket's descriptor may already be another socket's).
- Whatever the kernel refuses is handed back protected and goes through
  ``transport.sendto`` in order, exactly as ``media.datagrams`` does; a refused
  segmented write turns segmentation off for the process there too.
- Without the compiled module (a source tree nobody built), or with a pylibsrtp whose
  ``srtp_protect`` is not libsrtp 2's, ``available()`` is False and the caller keeps its
  Python path.
"""

from __future__ import annotations

import logging
import socket
import struct
from asyncio import DatagramTransport
from typing import Any

from pylibsrtp import Session

from media import datagrams

logger = logging.getLogger(__name__)

NO_DESCRIPTOR, VP8_DESCRIPTOR, VP8_LAYERED = 0, 1, 2  # as media/_rtpsend.c's enum
# The one srtp_protect the C side is written for (libsrtp 2, what pylibsrtp 1.0 carries):
# called with another signature it would corrupt memory, so any other turns it off.
_PROTECT_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"


def _load() -> tuple[Any, Any, int]:
    """The compiled module, pylibsrtp's cffi ``ffi`` and ``srtp_protect``'s address; a
    None module when either is missing or not the libsrtp it was written for."""
    try:
        from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]  # cffi

        from media import _rtpsend as native  # type: ignore[attr-defined]
    except ImportError:  # not built (`pip install -e .` compiles it), or pylibsrtp moved
        return None, None, 0
    protect = ffi.addressof(lib, "srtp_protect")
    if ffi.typeof(protect).cname != _PROTECT_TYPE:
        logger.warning("pylibsrtp's srtp_protect is %s, not %s: frames are sent by the Python "
                       "path", ffi.typeof(protect).cname, _PROTECT_TYPE)  # fmt: skip
        return None, ffi, 0
    return native, ffi, int(ffi.cast("uintptr_t", protect))


_rtpsend, _ffi, _PROTECT = _load()
_SOCKADDR_IN = struct.Struct("=H")  # sa_family, in the host's byte order
_SOCKADDR_IN6_TAIL = struct.Struct("=I")  # sin6_scope_id


class _Switch:
    enabled = _rtpsend is not None


def available() -> bool:
    """Frames can go through the native path in this process."""
    return _Switch.enabled


def enable(on: bool) -> None:
    """Turn the native path on or off for this process (benches compare the two)."""
    _Switch.enabled = on and _rtpsend is not None


def session_address(session: Session) -> int:
    """The address of ``session``'s ``srtp_t``: valid while ``session`` lives."""
    return int(_ffi.cast("uintptr_t", session._srtp[0]))


def sockaddr(addr: tuple[Any, ...]) -> bytes | None:
    """``addr`` (host, port[, flowinfo, scope]) as the kernel's ``sockaddr_in`` or
    ``sockaddr_in6``; None when the host is not a numeric address."""
    host, port = addr[0], int(addr[1])
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
        return _SOCKADDR_IN.pack(socket.AF_INET) + port.to_bytes(2, "big") + packed + bytes(8)
    except (OSError, TypeError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.split("%")[0])
    except (OSError, TypeError):
        return None
    flow = int(addr[2]) if len(addr) > 2 else 0
    scope = int(addr[3]) if len(addr) > 3 else 0
    return (_SOCKADDR_IN.pack(socket.AF_INET6) + port.to_bytes(2, "big")
            + flow.to_bytes(4, "big") + packed + _SOCKADDR_IN6_TAIL.pack(scope))  # fmt: skip


def open_socket(transport: DatagramTransport) -> int:
    """The descriptor to write to directly, or -1: not a plain UDP transport, closing, or
    still holding packets asyncio queued."""
    sock: socket.socket | None = getattr(transport, "_sock", None)
    if sock is None or getattr(transport, "_buffer", True) or transport.is_closing():
        return -1
    return sock.fileno()


def send_frame(
    transport: DatagramTransport,
    fd: int,
    to: bytes,
    session: int,
    chunks: list[bytes],
    pt: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    extensions: bytes,
    descriptor: int,
    picture: int,
    layer: int,
    addr: Any,
) -> None:
    """Send one frame's packets (``seq`` the first one's number, the marker on the last)
    to ``to`` through ``fd``; see the module doc. ``addr``: the same address as asyncio
    takes it, for what the kernel refuses."""
    assert _rtpsend is not None
    segment = datagrams.segmentation_enabled()
    refused = _rtpsend.send_frame(fd, to, _PROTECT, session, chunks, pt, seq, timestamp, ssrc,
                                  extensions, descriptor, picture, layer, segment)  # fmt: skip
    if refused is None:
        return
    error, segmented, left = refused
    if segmented:
        datagrams.refused_segmentation(error)
    for packet in left:
        transport.sendto(packet, addr)
