"""The client's real address, behind the reverse proxies the settings trust.

Invariant: X-Forwarded-For is read only when the peer itself is a trusted proxy, and
then from the right: each hop a trusted proxy appended is skipped, the first address
that is not a trusted proxy is the client. A client can prepend anything it likes to
the header; it cannot get past the hop its own proxy appended.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dispatch.errors import InvalidInput

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(setting: str) -> tuple[Network, ...]:
    """DISPATCH_TRUSTED_PROXIES read once per distinct value."""
    nets = []
    for part in filter(None, (p.strip() for p in setting.split(","))):
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise InvalidInput("DISPATCH_TRUSTED_PROXIES", f"not an address: {part!r}") from None
    return tuple(nets)


def _trusted(address: str, nets: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in nets)


def is_trusted(address: str, setting: str) -> bool:
    """Whether `address` is one of the proxies DISPATCH_TRUSTED_PROXIES names."""
    nets = trusted_networks(setting)
    return bool(nets) and _trusted(address, nets)


def client_address(request: web.Request, trusted: str) -> str:
    peer = request.remote or "?"
    nets = trusted_networks(trusted)
    if not nets or not _trusted(peer, nets):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, nets):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where the client should be: key on the proxy
    return peer


def forwarded_scheme(request: web.Request, trusted: str) -> str:
    """The scheme the client used: X-Forwarded-Proto's last value when the peer is a
    trusted proxy (the hop our own proxy set), else the connection's own."""
    if not is_trusted(request.remote or "", trusted):
        return request.scheme
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
    return proto if proto in ("http", "https") else request.scheme


def forwarded_middleware(trusted: str) -> Middleware:
    """Behind a trusted TLS proxy, handlers and the Origin check see ``https``: the
    request is cloned with the client's scheme before anything else reads it."""

    @web.middleware
    async def use_forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme = forwarded_scheme(request, trusted)
        if scheme != request.scheme:
            request = request.clone(scheme=scheme)
        return await handler(request)

    return use_forwarded
