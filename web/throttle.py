"""Brute-force brake for the login form and the token endpoint."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class LoginThrottle:
    """At most `limit` failures per (username, client address) within `window` seconds.

    In memory on purpose: it slows guessing against one server process; the
    argon2 cost per attempt does the rest.
    """

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures[key]
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, username: str, remote: str) -> bool:
        return len(self._recent((username, remote))) >= self.limit

    def failed(self, username: str, remote: str) -> None:
        self._recent((username, remote)).append(time.monotonic())

    def succeeded(self, username: str, remote: str) -> None:
        self._failures.pop((username, remote), None)
