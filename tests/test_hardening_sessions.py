"""Sessions (issue 11, item 5), the login throttle so far: parallel guesses are counted
before any of them is checked, memory stays bounded, long usernames are refused."""

from __future__ import annotations

import asyncio
import io
import json

from aiohttp.test_utils import TestClient

from web.appkeys import THROTTLE
from web.throttle import LoginThrottle

from conftest import Cast


async def test_twenty_parallel_guesses_let_only_five_through(
    client: TestClient, cast: Cast
) -> None:
    async def guess() -> int:
        body = {"username": cast.district, "password": "wrong-password"}
        resp = await client.post("/api/v1/auth/token", json=body)
        return resp.status

    statuses = await asyncio.gather(*(guess() for _ in range(20)))
    assert sorted(statuses).count(401) == 5 and statuses.count(429) == 15, statuses


async def test_long_usernames_are_refused_and_not_kept(client: TestClient) -> None:
    # A 4 MB body is over the JSON body limit (413, web/reading.py); 100 k characters
    # are under it and the username is refused by its length.
    for size, status, field in ((4_000_000, 413, "body"), (100_000, 400, "username")):
        body = json.dumps({"username": "x" * size, "password": "p"}).encode()
        resp = await client.post("/api/v1/auth/token", data=io.BytesIO(body),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
        assert resp.status == status and (await resp.json())["field"] == field
    assert len(client.server.app[THROTTLE]) == 0


def test_the_throttle_keeps_a_bounded_number_of_pairs() -> None:
    throttle = LoginThrottle(max_keys=100)
    for n in range(1000):
        throttle.attempt(f"user{n}", "10.0.0.1")
    assert len(throttle) == 100
    for _ in range(5):
        assert throttle.attempt("a" * 100, "10.0.0.2")
    assert not throttle.attempt("a" * 100, "10.0.0.2")
    throttle.succeeded("a" * 100, "10.0.0.2")
    assert throttle.attempt("a" * 100, "10.0.0.2")
