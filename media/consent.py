"""Consent freshness that a busy peer survives: expiry after 30 s without any answer.

RFC 7675 lets a peer keep sending while it has had an answer to a consent check within
the last 30 seconds. aioice 0.13 (``Connection.query_consent``) instead sends one check
every 5 s (±20 %) with no retransmission, gives each 0.5 s, and closes the connection
after 6 checks in a row had no answer in time. An answer 0.6 s late counts as none: a
village PC whose event loop lags half a second (21 streams to decode, an antivirus
scan) loses its call, and a server whose loop lags loses every peer at once. The
browser soak saw exactly that on a saturated 2-core machine: every village "Consent to
send expired" within a few seconds of each other, with their answers on the way.

``install()`` replaces that method process-wide with one that keeps RFC 7675's rule:

- a check goes out every ``INTERVAL`` seconds (±20 %) on each nominated pair, each in
  a task of its own, so a slow answer never delays the next check;
- a check is retransmitted ``RETRANSMISSIONS`` times (aioice's 0.5 s doubling RTO:
  answers up to 7.5 s late still count), and any authenticated answer refreshes consent;
- consent expires, and the connection closes as aioice's did, once ``EXPIRY`` seconds
  have passed since the last answer (or since the connection was established).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aioice.ice
from aioice import stun

from media.patching import replace_method

logger = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between checks, randomised by ±20 % (RFC 7675 section 5.1)
EXPIRY = 30.0  # seconds without an answer after which consent is lost (section 5.1)
RETRANSMISSIONS = 3  # per check: sent at 0, 0.5, 1.5 and 3.5 s, given up at 7.5 s

# sha256 prefixes of aioice's query_consent bodies this replacement was checked against.
_KNOWN = frozenset({"fe49173a"})  # aioice 0.13.0


async def _query_consent(self: Any) -> None:
    """Replaces ``aioice.ice.Connection.query_consent``; see the module doc."""
    assert self.remote_password is not None
    loop = asyncio.get_running_loop()
    key = self.remote_password.encode("utf8")
    answered = loop.time()  # the connectivity check that nominated the pair
    checks: set[asyncio.Task[None]] = set()

    async def check(pair: Any) -> None:
        nonlocal answered
        request = self.build_request(pair, nominate=False)
        try:
            await pair.protocol.request(request, pair.remote_addr, integrity_key=key,
                                        retransmissions=RETRANSMISSIONS)  # fmt: skip
        except (stun.TransactionError, ConnectionError, OSError) as exc:
            logger.debug("%s: consent check to %s unanswered (%s), last answer %.1f s ago",
                         self.local_username, pair.remote_addr, type(exc).__name__,
                         loop.time() - answered)  # fmt: skip
            return
        answered = max(answered, loop.time())

    try:
        while True:
            await asyncio.sleep(INTERVAL * (0.8 + 0.4 * random.random()))
            if loop.time() - answered > EXPIRY:
                logger.info("%s: no answer to consent checks for %.0f s, consent expired",
                            self.local_username, loop.time() - answered)  # fmt: skip
                self._query_consent_task = None  # close() must not wait for this task
                await self.close()
                return
            for pair in self._nominated.values():
                task = asyncio.create_task(check(pair))
                checks.add(task)
                task.add_done_callback(checks.discard)
    finally:
        for task in checks:
            task.cancel()


def install() -> bool:
    """Use RFC 7675's expiry in every aioice connection; False if aioice's differs."""
    return replace_method(aioice.ice.Connection, "query_consent", _query_consent, _KNOWN)
