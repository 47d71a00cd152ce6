"""Free ports for the servers tests start: below the kernel's ephemeral range.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` comes from its ephemeral
range, the same range every outgoing connection draws its local port from. Between a
test choosing such a port and its server binding it (or while a server it stops and
starts again is down), a connection can take the number: another test's server in the
other pytest-xdist worker, or a client retrying 127.0.0.1:P that is given local port P
and connects to itself. Both happened in CI ("Address already in use"; a server that
answered /readyz was another test's). Ports below the range are never handed out that
way, and each xdist worker draws from its own slice of them, so two workers never pick
the same one.
"""

from __future__ import annotations

import os
import random
import socket

SPAN = 12_000  # ports below the ephemeral range the tests draw from
SLICES = 8  # xdist workers gw0..gw7 each get their own slice; more share by index


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as limits:
            return int(limits.read().split()[0])
    except OSError:
        return 32_768  # Linux's default


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 free for ``kind`` now, below the ephemeral range."""
    low = _ephemeral_low()
    start = max(1_024, low - SPAN)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) % SLICES if worker[2:].isdigit() else 0
    size = (low - start) // SLICES
    first = start + index * size
    for port in random.sample(range(first, first + size), min(size, 300)):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + size - 1}")
