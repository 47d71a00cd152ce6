"""Security headers on every response, and where browser requests may come from.

Headers are set in ``on_response_prepare``, so they reach every response the server
sends — pages, JSON, static files, WebSocket handshakes, and the 404s and errors no
handler made — and the ``Server`` header names no version.

Content-Security-Policy: scripts only from our own static files (no inline script, no
inline handler, no eval); styles may be inline (the print layouts carry theirs); media
and images from our origin, ``blob:`` (camera previews) and ``data:``; no plugin; no
framing; forms and the base URL our own.

Origins: a browser names the page that makes a request in ``Origin``. A state change
(any method but GET/HEAD/OPTIONS) or a WebSocket handshake whose ``Origin`` is neither
the configured public URL's nor the server's own (the scheme and ``Host`` it was reached
at) is refused with 403 before anything else runs: a page elsewhere cannot drive a
logged-in browser, whatever it holds. A request without ``Origin`` comes from a program,
not a page, and is judged by its credentials alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from dispatch.errors import NotAuthorised

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Server": "pingan-dispatch",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers above, on every response."""
    for name, value in HEADERS.items():
        response.headers[name] = value


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-case, default ports left out."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(request: web.Request, public_url: str) -> set[str]:
    own = origin_of(f"{request.scheme}://{request.host}")
    return {own, origin_of(public_url)} if public_url else {own}


def origin_middleware(public_url: str) -> Middleware:
    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if origin is not None and (request.method not in SAFE_METHODS or upgrade):
            if origin_of(origin) not in allowed_origins(request, public_url):
                raise NotAuthorised(f"requests from {origin[:100]!r} are not accepted here")
        return await handler(request)

    return check_origin
