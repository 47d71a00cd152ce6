"""Brute-force brake for the login form and the token endpoint."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_USERNAME = 64  # accounts.USERNAME_RE: a longer name is no account, and is not kept


class LoginThrottle:
    """Backs off guessing per (username, client address): after `limit` failures within
    `window` seconds each further try must wait — `base_delay` after the last failure,
    doubling with each failure still in the window, at most `max_delay` — instead of a
    lock-out.
    The key is the client's real address (web/remote.py), so a guesser elsewhere, even
    behind the same proxy, slows only itself; an admin can `unlock` a username.

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

    def __init__(self, limit: int = 5, window: float = 3600.0, max_keys: int = 10_000,
                 base_delay: float = 15.0, max_delay: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            q = self._failures[key] = deque()
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        cutoff = self.clock() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def _wait(self, q: deque[float]) -> float:
        if len(q) < self.limit:
            return 0.0
        delay = min(self.base_delay * 2.0 ** (len(q) - self.limit), self.max_delay)
        return max(0.0, q[-1] + delay - self.clock())

    def retry_after(self, username: str, remote: str) -> float:
        """Seconds until the pair may try again (0: now)."""
        return self._wait(self._recent((username[:MAX_USERNAME], remote)))

    def attempt(self, username: str, remote: str) -> bool:
        """False if the pair must wait; else True, the attempt counted as a failure
        until `succeeded` is called for it."""
        q = self._recent((username[:MAX_USERNAME], remote))
        if self._wait(q) > 0:
            return False
        q.append(self.clock())
        return True

    def blocked(self, username: str, remote: str) -> bool:
        return self.retry_after(username, remote) > 0

    def failed(self, username: str, remote: str) -> None:
        """Nothing to add: `attempt` counted the failure already."""

    def succeeded(self, username: str, remote: str) -> None:
        self._failures.pop((username[:MAX_USERNAME], remote), None)

    def unlock(self, username: str) -> int:
        """Forget every failure of `username` from every address; how many pairs."""
        keys = [k for k in self._failures if k[0] == username[:MAX_USERNAME]]
        for key in keys:
            del self._failures[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._failures)
