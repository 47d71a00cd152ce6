"""Brute-force brake for the login form and the token endpoint."""

from __future__ import annotations

import time
from collections import OrderedDict, deque

MAX_USERNAME = 64  # accounts.USERNAME_RE: a longer name is no account, and is not kept


class LoginThrottle:
    """At most `limit` failures per (username, client address) within `window` seconds.

    Invariants:
    - `attempt` checks and counts in one step with no await between, so parallel
      guesses cannot all pass the check before the first failure is recorded: each
      attempt counts as a failure until `succeeded` clears the pair.
    - At most `max_keys` pairs are kept (the least recently used go first), and
      usernames longer than MAX_USERNAME are never kept: memory stays bounded whatever
      is sent.

    In memory on purpose: it slows guessing against one server process; the argon2
    cost per attempt does the rest.
    """

    def __init__(self, limit: int = 5, window: float = 300.0, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            q = self._failures[key] = deque()
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def attempt(self, username: str, remote: str) -> bool:
        """False if the pair is blocked; else True, the attempt counted as a failure
        until `succeeded` is called for it."""
        q = self._recent((username[:MAX_USERNAME], remote))
        if len(q) >= self.limit:
            return False
        q.append(time.monotonic())
        return True

    def blocked(self, username: str, remote: str) -> bool:
        return len(self._recent((username[:MAX_USERNAME], remote))) >= self.limit

    def failed(self, username: str, remote: str) -> None:
        """Nothing to add: `attempt` counted the failure already."""

    def succeeded(self, username: str, remote: str) -> None:
        self._failures.pop((username[:MAX_USERNAME], remote), None)

    def __len__(self) -> int:
        return len(self._failures)
