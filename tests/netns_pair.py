"""A network namespace made for one test, joined to this one by a veth pair with /30
addresses (10.231.x.0/30): traffic between the two stays on the pair. Skips when the
machine cannot make one (no root or CAP_NET_ADMIN, no `ip`)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

SEARCH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # ip: not on every user's PATH
IP = shutil.which("ip", path=SEARCH)


@dataclass(frozen=True)
class Pair:
    netns: str
    host: str  # the device on this side
    peer: str  # the device inside the namespace
    host_addr: str
    peer_addr: str

    def in_ns(self, *args: str) -> tuple[str, ...]:
        return (IP or "ip", "netns", "exec", self.netns, *args)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "PATH": SEARCH})  # fmt: skip


def _must(*args: str) -> None:
    done = _run(*args)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")


@contextmanager
def veth_namespace(name: str) -> Iterator[Pair]:
    if IP is None:
        pytest.skip("needs ip (Debian's iproute2: `make system-deps`)")
    used = _run(IP, "-4", "-o", "addr", "show").stdout
    third = next((t for t in (secrets.randbelow(256) for _ in range(100))
                  if f" 10.231.{t}." not in used), None)  # fmt: skip
    if third is None:
        pytest.skip("no free 10.231.x.0/30 on this machine")
    tag = secrets.token_hex(3)
    pair = Pair(f"pa-{name}-{os.getpid()}-{tag}", f"pdr{tag}", f"pdn{tag}",
                f"10.231.{third}.1", f"10.231.{third}.2")  # fmt: skip
    created = _run(IP, "netns", "add", pair.netns)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root or CAP_NET_ADMIN): "
                    f"{created.stderr.strip()}")  # fmt: skip
    try:
        # No IPv6 in the namespace: a link-local address appearing a second after the
        # link comes up (duplicate address detection) makes Chromium abort whatever it
        # is loading with net::ERR_NETWORK_CHANGED.
        _must(IP, "netns", "exec", pair.netns, "sh", "-c",
              "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
              "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")  # fmt: skip
        _must(IP, "link", "add", pair.host, "type", "veth", "peer", "name", pair.peer,
              "netns", pair.netns)  # fmt: skip
        _must(IP, "addr", "add", f"{pair.host_addr}/30", "dev", pair.host)
        _must(IP, "link", "set", pair.host, "up")
        _must(IP, "-n", pair.netns, "addr", "add", f"{pair.peer_addr}/30", "dev", pair.peer)
        _must(IP, "-n", pair.netns, "link", "set", pair.peer, "up")
        _must(IP, "-n", pair.netns, "link", "set", "lo", "up")
        yield pair
    finally:
        _run(IP, "link", "del", pair.host)  # takes its peer along
        _run(IP, "netns", "del", pair.netns)
