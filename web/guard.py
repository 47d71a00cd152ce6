"""Slow and many clients: header and body read deadlines, a per-address connection cap.

aiohttp waits as long as a client likes for the rest of a request's headers or body,
and takes any number of connections from one address. The guard watches the bytes of
each connection before aiohttp parses them:

- the headers of a request must be complete within `header_timeout` seconds of its
  first byte (of the connection's opening, for its first request);
- a body announced by Content-Length, or sent chunked, must be complete within
  `body_timeout` seconds of the end of its headers;
- one address holds at most `per_address` connections; one more is closed at once. A
  trusted reverse proxy (DISPATCH_TRUSTED_PROXIES) carries every client's connections
  and is not capped: the cap is the proxy's to keep there.

Invariants: a connection the guard closes is logged in one line (address and why) and
never reaches a handler half-read; an upgraded connection (a WebSocket) is not watched
once its upgrade request is read; idle keep-alive time between requests is aiohttp's
(`keepalive_timeout`), not the guard's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from .remote import is_trusted

log = logging.getLogger(__name__)

HEADER_END = b"\r\n\r\n"
CHUNKED_END = b"0\r\n\r\n"
MAX_HEAD = 64 * 1024  # aiohttp refuses larger headers itself; we stop looking past it
LENGTH_RE = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,19})[ \t]*\r\n", re.IGNORECASE)
CHUNKED_RE = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
UPGRADE_RE = re.compile(rb"\r\nupgrade:", re.IGNORECASE)


@dataclass
class Guard:
    """The limits, and the open connections per address (one event loop's)."""

    header_timeout: float
    body_timeout: float
    per_address: int
    trusted: str = ""  # DISPATCH_TRUSTED_PROXIES: peers not capped
    open: Counter[str] = field(default_factory=Counter)

    def capped(self, peer: str) -> bool:
        return self.open[peer] >= self.per_address and not is_trusted(peer, self.trusted)


class GuardedHandler(RequestHandler):
    """aiohttp's protocol with the guard's watch on the bytes it is fed."""

    guard: Guard  # set on the per-application subclass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._peer = "?"
        self._counted = False
        self._phase = "idle"  # idle | headers | body | chunked | upgraded
        self._head = b""
        self._remaining = 0
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None

    # --- the connection --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if self.guard.capped(self._peer):
            log.warning("refused a connection from %s: it has %d open (the limit)",
                        self._peer, self.guard.open[self._peer])  # fmt: skip
            transport.close()  # never handed to aiohttp: nothing of it to clean up
            return
        self.guard.open[self._peer] += 1
        self._counted = True
        super().connection_made(transport)
        self._phase = "headers"  # the first request's headers are due from now
        self._arm(self.guard.header_timeout, "headers")

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return
        self._counted = False
        self._disarm()
        self.guard.open[self._peer] -= 1
        if self.guard.open[self._peer] <= 0:
            del self.guard.open[self._peer]
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._counted and self._phase != "upgraded":
            self._watch(data)
        super().data_received(data)

    # --- the watch -------------------------------------------------------------------

    def _watch(self, data: bytes) -> None:
        """Follow request boundaries through `data` (pipelined requests included)."""
        while data and self._phase != "upgraded":
            if self._phase == "idle":
                self._phase, self._head = "headers", b""
                self._arm(self.guard.header_timeout, "headers")
            if self._phase == "headers":
                data = self._read_head(data)
            elif self._phase == "body":
                used = min(len(data), self._remaining)
                self._remaining -= used
                data = data[used:]
                if self._remaining == 0:
                    self._done()
            elif self._phase == "chunked":
                seen = self._tail + data
                end = seen.find(CHUNKED_END)
                if end < 0:
                    self._tail = seen[-(len(CHUNKED_END) - 1):]
                    return
                data = seen[end + len(CHUNKED_END):]
                self._done()

    def _read_head(self, data: bytes) -> bytes:
        start = max(0, len(self._head) - 3)
        self._head += data
        end = self._head.find(HEADER_END, start)
        if end < 0:
            if len(self._head) > MAX_HEAD:  # aiohttp answers 400; stop collecting
                self._head = self._head[-3:]
            return b""
        head, rest = self._head[:end + 2], self._head[end + len(HEADER_END):]
        self._head = b""
        if UPGRADE_RE.search(head):
            self._phase = "upgraded"  # a WebSocket's frames are not requests
            self._disarm()
            return b""
        length = LENGTH_RE.search(head)
        if CHUNKED_RE.search(head):
            self._phase, self._tail = "chunked", b""
            self._arm(self.guard.body_timeout, "body")
        elif length is not None and int(length.group(1)) > 0:
            self._phase, self._remaining = "body", int(length.group(1))
            self._arm(self.guard.body_timeout, "body")
        else:
            self._done()
        return rest

    def _done(self) -> None:
        self._phase = "idle"
        self._disarm()

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._too_slow, what,
                                                            seconds)  # fmt: skip

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self, what: str, seconds: float) -> None:
        self._timer = None
        log.warning("closed a slow client %s: its request %s took over %g s",
                    self._peer, what, seconds)  # fmt: skip
        self.force_close()
        if self.transport is not None:
            self.transport.close()


def install(app: web.Application, *, header_timeout: float, body_timeout: float,
            per_address: int, trusted: str = "") -> None:  # fmt: skip
    """Make every server of `app` (`web.run_app`, test servers) use the guard."""
    guard = Guard(header_timeout, body_timeout, per_address, trusted)
    handler_cls = type("GuardedHandler", (GuardedHandler,), {"guard": guard})

    class GuardedServer(Server):
        def __call__(self) -> RequestHandler:
            return handler_cls(self, loop=self._loop, **self._kwargs)

    make_handler = app._make_handler

    def guarded(**kwargs: Any) -> Server:
        server = make_handler(**kwargs)
        server.__class__ = GuardedServer  # same layout; only __call__ differs
        return server

    # aiohttp makes every server of the app here and offers no hook for the protocol.
    app._make_handler = guarded  # type: ignore[method-assign]
