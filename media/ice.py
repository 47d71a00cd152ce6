"""ICE settings for the server's peers: where they gather and which servers they ask.

Two facts about the libraries (aiortc 1.16, aioice 0.13, read in their source) shape
this module:

- ``RTCIceGatherer.__init__`` replaces ``iceServers=None`` with
  ``getDefaultIceServers()`` (``stun:stun.l.google.com:19302``), and
  ``RTCPeerConnection()`` without a configuration passes ``None``. An explicit list,
  even ``[]``, is used as given: ``connection_kwargs([])`` is ``{}``, so no STUN or
  TURN is asked. Every peer made here therefore gets an explicit list.
- ``aioice.ice.Connection.gather_candidates`` calls the module-level
  ``aioice.ice.get_host_addresses(use_ipv4, use_ipv6)`` by name at call time, and that
  function skips ``127.0.0.1``. Replacing the module attribute is the only hook that
  decides which addresses host candidates are bound to; it is process-wide, because
  aioice has no per-connection setting for it.
- With the default ``bundlePolicy`` (BALANCED), aiortc gives a second m-line of a kind
  the first one's transport before applying BUNDLE and keeps it after that transport
  is discarded, so that m-line never carries media: peers here use MAX_BUNDLE.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import NamedTuple

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcicetransport import connection_kwargs

logger = logging.getLogger(__name__)


class IceServer(NamedTuple):
    """One STUN or TURN server, as in the browser's ``RTCIceServer``."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class IceSettings:
    """Where the server's peers gather host candidates and which ICE servers they use.

    ``host_addresses`` empty means every interface as aioice finds them (it never
    includes 127.0.0.1); tests and benchmarks use ``("127.0.0.1",)``.
    ``ice_servers`` empty means no STUN and no TURN. aiortc uses at most the first
    STUN and the first usable TURN URL and ignores the rest.
    """

    host_addresses: tuple[str, ...] = ()
    ice_servers: tuple[IceServer, ...] = ()

    def __post_init__(self) -> None:
        for address in self.host_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise ValueError(f"host address {address!r} is not an IP address") from exc
        try:
            # The same parse aiortc runs for every gatherer: a bad URL fails here, at
            # start-up, rather than later inside an SDP negotiation.
            connection_kwargs(self.rtc_ice_servers())
        except ValueError as exc:
            raise ValueError(f"bad ICE server URL in {self.ice_servers!r}: {exc}") from exc

    def rtc_ice_servers(self) -> list[RTCIceServer]:
        return [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.ice_servers
        ]


def rtc_configuration(settings: IceSettings) -> RTCConfiguration:
    return RTCConfiguration(
        # Always a list, never None: None makes aiortc ask Google's public STUN server.
        iceServers=settings.rtc_ice_servers(),
        # BALANCED (the default) breaks a second audio m-line after video+audio
        # (aiortc 1.16 RTCPeerConnection.__createTransceiver); MAX_BUNDLE puts every
        # m-line on the first transport from the start.
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


# --- the host address hook ------------------------------------------------------------

_ORIGINAL = aioice.ice.get_host_addresses
# None while the hook is not installed; otherwise the addresses every aioice
# Connection in this process gathers on (empty: aioice's own choice).
_configured: tuple[str, ...] | None = None


def _restricted_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if not _configured:
        return _ORIGINAL(use_ipv4, use_ipv6)
    wanted = {4: use_ipv4, 6: use_ipv6}
    return [a for a in _configured if wanted[ipaddress.ip_address(a).version]]


def configure_host_addresses(settings: IceSettings) -> None:
    """Make every aioice connection in this process gather on ``settings.host_addresses``.

    Process-wide: it covers every peer connection of every room, and test clients
    made in the same process. The hook is installed once; later calls only change
    the addresses (logged when they differ, since that affects peers of other rooms).
    """
    global _configured
    if aioice.ice.get_host_addresses is not _restricted_host_addresses:
        aioice.ice.get_host_addresses = _restricted_host_addresses
        logger.info("ice: host address hook installed in aioice.ice")
    if _configured is not None and _configured != settings.host_addresses:
        logger.warning(
            "ice: host addresses changed process-wide from %s to %s",
            _configured or "(all interfaces)",
            settings.host_addresses or "(all interfaces)",
        )
    _configured = settings.host_addresses


def restore_host_addresses() -> None:
    """Put aioice's own ``get_host_addresses`` back (tests)."""
    global _configured
    aioice.ice.get_host_addresses = _ORIGINAL
    _configured = None


def peer_connection(settings: IceSettings) -> RTCPeerConnection:
    """A new peer connection that gathers only where ``settings`` says."""
    configure_host_addresses(settings)
    return RTCPeerConnection(configuration=rtc_configuration(settings))
