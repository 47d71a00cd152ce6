"""Slow and many clients (issue 11, item 8): a client that dribbles its headers or its
body is disconnected, one address holds a bounded number of connections, and each
close is one log line, not a traceback. Waits are generous upper bounds for the close to
happen at all; no test asserts how fast it came."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from dispatch.settings import Settings
from web.app import create_app

WAIT = 30.0  # the close must come; on main it never does


@pytest.fixture
async def guarded(aiohttp_client, demo_settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    settings = demo_settings.with_(header_timeout=0.5, body_timeout=0.5,
                                   max_connections_per_address=4, scheduler=False)  # fmt: skip
    return await aiohttp_client(create_app(settings))


async def connect(client: TestClient) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", client.port)


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), WAIT)


def guard_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "web.guard"]


async def test_dribbled_headers_are_cut_off(
    guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await connect(guarded)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    assert await closed(reader) == b""  # closed without an answer
    writer.close()
    lines = guard_lines(caplog)
    assert len(lines) == 1 and "headers" in lines[0].getMessage()
    assert lines[0].exc_info is None and not any(r.exc_info for r in caplog.records)


async def test_a_connection_that_never_speaks_is_cut_off(guarded: TestClient) -> None:
    reader, writer = await connect(guarded)
    assert await closed(reader) == b""
    writer.close()


async def test_a_dribbled_body_is_cut_off(
    guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await connect(guarded)
    writer.write(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                 b'{"user')  # fmt: skip
    await writer.drain()
    await closed(reader)
    writer.close()
    lines = guard_lines(caplog)
    assert len(lines) == 1 and "body" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


async def test_whole_requests_on_a_kept_alive_connection_pass(guarded: TestClient) -> None:
    reader, writer = await connect(guarded)
    for _ in range(3):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        await asyncio.sleep(0.7)  # idle between requests is keep-alive, not a slow header
    writer.close()
    resp = await guarded.post("/api/v1/auth/token", json={"username": "nobody",
                                                           "password": "x"})  # fmt: skip
    assert resp.status == 401


async def test_one_address_holds_a_bounded_number_of_connections(
    guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    held = [await connect(guarded) for _ in range(4)]
    for _, writer in held:  # each one busy with a request it has not finished
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    reader, writer = await connect(guarded)
    assert await closed(reader) == b""
    writer.close()
    assert any("refused a connection" in r.getMessage() for r in guard_lines(caplog))
    assert not any(r.exc_info for r in caplog.records)
    for _, writer in held:
        writer.close()
    # Once they are gone the address is served again.
    status = 0
    for _ in range(100):
        try:
            status = (await guarded.get("/healthz")).status
        except aiohttp.ClientError:  # a connection refused before the others were gone
            await asyncio.sleep(0.1)
            continue
        break
    assert status == 200


async def test_a_trusted_proxy_is_not_capped(aiohttp_client, demo_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    settings = demo_settings.with_(max_connections_per_address=2, trusted_proxies="127.0.0.1",
                                   scheduler=False)  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    held = [await connect(client) for _ in range(4)]
    for reader, writer in held:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200")
    for _, writer in held:
        writer.close()
