"""A network namespace made for one test, joined to this one by a veth pair with /30
addresses (10.231.x.0/30): traffic between the two stays on the pair. Skips when the
machine cannot make one (no root or CAP_NET_ADMIN, no `ip`)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from linkemu import IP, Unavailable, free_third, must, run_tool


@dataclass(frozen=True)
class Pair:
    netns: str
    host: str  # the device on this side
    peer: str  # the device inside the namespace
    host_addr: str
    peer_addr: str

    def in_ns(self, *args: str) -> tuple[str, ...]:
        return (IP or "ip", "netns", "exec", self.netns, *args)


@contextmanager
def veth_namespace(name: str) -> Iterator[Pair]:
    if IP is None:
        pytest.skip("needs ip (Debian's iproute2: `make system-deps`)")
    try:
        third = free_third(231)
    except Unavailable as exc:
        pytest.skip(str(exc))
    tag = secrets.token_hex(3)
    pair = Pair(f"pa-{name}-{os.getpid()}-{tag}", f"pdr{tag}", f"pdn{tag}",
                f"10.231.{third}.1", f"10.231.{third}.2")  # fmt: skip
    created = run_tool(IP, "netns", "add", pair.netns)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root or CAP_NET_ADMIN): "
                    f"{created.stderr.strip()}")  # fmt: skip
    try:
        # No IPv6 in the namespace: a link-local address appearing a second after the
        # link comes up (duplicate address detection) makes Chromium abort whatever it
        # is loading with net::ERR_NETWORK_CHANGED.
        must(IP, "netns", "exec", pair.netns, "sh", "-c",
             "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
             "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")  # fmt: skip
        must(IP, "link", "add", pair.host, "type", "veth", "peer", "name", pair.peer,
             "netns", pair.netns)  # fmt: skip
        must(IP, "addr", "add", f"{pair.host_addr}/30", "dev", pair.host)
        must(IP, "link", "set", pair.host, "up")
        must(IP, "-n", pair.netns, "addr", "add", f"{pair.peer_addr}/30", "dev", pair.peer)
        must(IP, "-n", pair.netns, "link", "set", pair.peer, "up")
        must(IP, "-n", pair.netns, "link", "set", "lo", "up")
        yield pair
    finally:
        run_tool(IP, "link", "del", pair.host)  # takes its peer along
        run_tool(IP, "netns", "del", pair.netns)
