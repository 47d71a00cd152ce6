"""TURN credentials by the TURN REST API's shared-secret scheme (coturn's use-auth-secret).

The service and coturn share DISPATCH_TURN_SECRET. A credential is

    username = "<expiry unix time>:<centre code>"
    password = base64(HMAC-SHA1(secret, username))

and coturn, holding the same secret, recomputes the password and refuses a username
whose expiry has passed. Nothing is stored: a credential is valid until its expiry and
cannot be revoked earlier (change the secret to revoke them all).

Invariants:
- a page or a WHIP publisher gets a credential for its own centre that expires
  DISPATCH_TURN_TTL seconds after it was asked for; a page asks again before each
  connection, so a reconnect never uses an expired one. coturn checks the expiry when
  an allocation is made; an allocation already made lives on while it is refreshed.
- the server's own peers run in media workers that get their ICE settings once, when
  the pool starts, and cannot be handed new ones: their credential (centre "server")
  lasts SERVER_CREDENTIAL_SECONDS. It never leaves the server process, which holds the
  secret it is derived from anyway; a server running longer than that must be
  restarted for its own peers to relay again (pages are not affected). aioice asks the
  TURN server while a peer gathers and gives up after 5 s: with coturn down, the
  server's answers wait that long (and carry no relay candidate), so coturn is run
  beside the service, on the same host or network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .settings import Settings

SERVER_CENTRE = "server"
SERVER_CREDENTIAL_SECONDS = 400 * 86_400  # outlives any sensible uptime between upgrades
TURN_SCHEMES = ("turn", "turns")


@dataclass(frozen=True)
class TurnCredential:
    username: str
    password: str
    expires: int  # unix time

    def as_ice_server(self, urls: tuple[str, ...]) -> dict[str, Any]:
        """The browser's RTCIceServer dictionary."""
        return {"urls": list(urls), "username": self.username, "credential": self.password}


def credential(secret: str, who: str, ttl: int, now: float | None = None) -> TurnCredential:
    """A credential for `who` (a centre code, or "server") valid `ttl` seconds from now."""
    if not secret:
        raise InvalidInput("DISPATCH_TURN_SECRET", "TURN credentials need the shared secret")
    if ttl <= 0:
        raise InvalidInput("DISPATCH_TURN_TTL", f"expected seconds above 0, got {ttl}")
    expires = int(time.time() if now is None else now) + ttl
    username = f"{expires}:{who}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode(), expires)


def turn_urls(setting: str, secret: str) -> tuple[str, ...]:
    """DISPATCH_TURN_URLS (space- or comma-separated) checked: turn: or turns: URLs, and a
    secret when there is any."""
    urls = tuple(u for u in setting.replace(",", " ").split() if u)
    for url in urls:
        scheme, _, rest = url.partition(":")
        if scheme.lower() not in TURN_SCHEMES or not rest or "@" in rest:
            raise InvalidInput(
                "DISPATCH_TURN_URLS",
                f"expected turn:host:port or turns:host:port (no user), got {url!r}",
            )
    if urls and not secret:
        raise InvalidInput("DISPATCH_TURN_SECRET", "DISPATCH_TURN_URLS needs the shared secret")
    return urls


def static_ice_servers(setting: str) -> list[dict[str, Any]]:
    """DISPATCH_ICE_SERVERS as RTCIceServer dictionaries (a user:pass@ moves out of the URL)."""
    servers: list[dict[str, Any]] = []
    for url in setting.split():
        scheme, _, rest = url.partition(":")
        server: dict[str, Any] = {"urls": [url]}
        if "@" in rest:
            auth, _, rest = rest.rpartition("@")
            user, _, password = auth.partition(":")
            server = {"urls": [f"{scheme}:{rest}"], "username": user, "credential": password}
        servers.append(server)
    return servers


def for_client(
    settings: Settings, centre: str, now: float | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """What a page or WHIP publisher of `centre` is handed: the static servers, then the
    TURN URLs with a fresh credential for the centre; and that credential's expiry."""
    servers = static_ice_servers(settings.ice_servers)
    urls = turn_urls(settings.turn_urls, settings.turn_secret)
    if not urls:
        return servers, None
    cred = credential(settings.turn_secret, centre, settings.turn_ttl, now)
    return [*servers, cred.as_ice_server(urls)], cred.expires


def for_server(settings: Settings, now: float | None = None) -> list[dict[str, Any]]:
    """The TURN servers with the server's own long-lived credential (see the module)."""
    urls = turn_urls(settings.turn_urls, settings.turn_secret)
    if not urls:
        return []
    cred = credential(settings.turn_secret, SERVER_CENTRE, SERVER_CREDENTIAL_SECONDS, now)
    return [cred.as_ice_server(urls)]
