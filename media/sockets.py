"""UDP sockets that are drained, not sipped: every datagram waiting, once awake.

asyncio's selector loop reads a UDP socket one datagram per readiness event, so a
socket can take at most one datagram per turn of the event loop. A server peer of
the operator receives nothing but its own client's ~110 packets a second, but a
socket that many streams converge on (an operator's client receiving 20 villages,
a bench's probe) or any socket while the loop is busy falls behind, and the kernel
drops what its receive buffer (≈ 200 KB, ≈ 50 loopback packets) cannot hold —
silently, before aiortc could ask for a retransmission (WEBRTC-NOTES.md: at 1 + 15
the kernel dropped UDP packets). ``install()`` makes each readiness event read up to
``DRAIN`` datagrams, stopping early when the socket is empty or the transport
closes; each one reaches the protocol in order, exactly as before.

Each read asks for at most ``DATAGRAM_MAX`` bytes, not the transport's ``max_size``
(256 KB): CPython allocates the size asked for before the call, and a block that large
is mapped and unmapped by glibc (above its 128 KB mmap threshold) on every datagram —
measured on this machine, 15-22 µs a ``recvfrom`` against 1.8-2.5 µs with 64 KB, for a
1,200-byte datagram. No UDP datagram is larger than 64 KB (without IPv6 jumbograms), so
nothing is ever cut short.

It also sizes each ICE socket's receive buffer to ``RECEIVE_BUFFER`` (aioice asks
for 256 KB): a server whose process waits for a core (a saturated machine, or a key
frame from every publisher at once) takes the backlog instead of the kernel dropping
it — the browser soak's media worker dropped 1,161 datagrams in 4 minutes with aioice's
size. The kernel books twice the size asked, capped at ``net.core.rmem_max`` (4 MB here,
212 KB on a stock Debian: docs/deploy.md raises it).

It replaces ``asyncio.selector_events._SelectorDatagramTransport._read_ready``
process-wide (the loop registers the method when a transport is made, so install
before peers open sockets). It was written against Python 3.11's body of that
method, recognised by a hash of its source; another body is left alone with a
warning, and everything works as before, only without the draining.
"""

from __future__ import annotations

import asyncio.selector_events
from typing import Any

import aioice.turn

from media.patching import replace_method

DRAIN = 64  # datagrams read per readiness event at most: bounds one callback's work
DATAGRAM_MAX = 65_536  # bytes asked for per read: the largest UDP payload fits
RECEIVE_BUFFER = 1 << 20  # bytes of receive buffer asked for each ICE socket

# A private stdlib class (no stub names it): the one whose _read_ready is replaced.
_Transport: Any = asyncio.selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]
# sha256 prefixes of the stdlib bodies this replacement was checked against (3.11).
_KNOWN = frozenset({"a94e5a17"})


def _read_ready_drained(self: Any) -> None:
    for _ in range(DRAIN):
        if self._conn_lost:
            return
        try:
            data, addr = self._sock.recvfrom(min(self.max_size, DATAGRAM_MAX))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
            return
        else:
            self._protocol.datagram_received(data, addr)


def install() -> bool:
    """Drain datagram sockets made from now on, and give each ICE socket opened from now
    on a roomy receive buffer; False if this Python's loop differs (no draining)."""
    aioice.turn.UDP_SOCKET_BUFFER_SIZE = RECEIVE_BUFFER  # read by aioice when it binds
    return replace_method(_Transport, "_read_ready", _read_ready_drained, _KNOWN)
