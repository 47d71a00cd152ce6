"""media.consent: answers that come late keep consent; silence still ends it.

Two real aioice connections on 127.0.0.1. The answering side is made slow by holding
its STUN answers back (as a peer whose event loop lags would), with the consent
timings shortened (a check every 0.2 s, expiry after 2 s) so that aioice's own rule
(0.5 s per check, closed after 6 checks in a row unanswered in time) would close the
connection after about 1.2 s of late answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aioice
import pytest
from aioice import stun

from media import consent
from media.ice import IceSettings, configure_host_addresses, restore_host_addresses

LATE = 1.0  # seconds each answer is held back: twice aioice's 0.5 s, well inside 7.5 s


@pytest.fixture
async def pair(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[aioice.Connection, aioice.Connection]]:
    assert consent.install()
    monkeypatch.setattr(consent, "INTERVAL", 0.2)
    monkeypatch.setattr(consent, "EXPIRY", 2.0)
    configure_host_addresses(IceSettings(host_addresses=("127.0.0.1",)))
    checking = aioice.Connection(ice_controlling=True)
    answering = aioice.Connection(ice_controlling=False)
    try:
        for one in (checking, answering):
            await one.gather_candidates()
        for one, other in ((checking, answering), (answering, checking)):
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
            one.remote_username, one.remote_password = other.local_username, other.local_password
        await asyncio.gather(checking.connect(), answering.connect())
        yield checking, answering
    finally:
        await checking.close()
        await answering.close()
        restore_host_addresses()


def hold_answers(connection: aioice.Connection, delay: float | None) -> list[float]:
    """Every STUN answer ``connection`` sends goes ``delay`` seconds late (None: never);
    returns the list the loop time of each held answer is appended to."""
    loop = asyncio.get_running_loop()
    held: list[float] = []
    for protocol in connection._protocols:
        send = protocol.send_stun

        def send_stun(message: stun.Message, addr: tuple[str, int], send=send) -> None:  # type: ignore[no-untyped-def]
            if message.message_class != stun.Class.RESPONSE:
                send(message, addr)
                return
            held.append(loop.time())
            if delay is not None:
                loop.call_later(delay, send, message, addr)

        protocol.send_stun = send_stun  # type: ignore[method-assign]
    return held


async def until(condition, limit: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_answers_a_second_late_keep_the_connection(
    pair: tuple[aioice.Connection, aioice.Connection],
) -> None:
    checking, answering = pair
    held = hold_answers(answering, LATE)
    # 15 checks over about 3 s, longer than the 2 s expiry and than aioice's 6 misses.
    await until(lambda: len(held) >= 15)
    task = checking._query_consent_task
    assert task is not None and not task.done()
    await checking.send(b"still here")
    assert await asyncio.wait_for(answering.recv(), 10) == b"still here"


async def test_no_answer_for_the_expiry_closes_the_connection(
    pair: tuple[aioice.Connection, aioice.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    checking, answering = pair
    task = checking._query_consent_task
    assert task is not None
    caplog.set_level(logging.INFO, logger="media.consent")
    held = hold_answers(answering, None)
    await asyncio.wait_for(task, 15)
    assert "consent expired" in caplog.text
    # It took the expiry after the last answer, not a few missed checks.
    assert len(held) >= 5
    with pytest.raises(ConnectionError):
        await checking.send(b"after expiry")
