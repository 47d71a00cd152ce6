"""A link emulator in user space: a network namespace joined to this one through two TUN
devices and a forwarding process that holds each packet as a slow, lossy, distant link
would (what Mahimahi does; this kernel has no ``netem``, ``fq`` or ``etf`` qdisc).

Layout::

    root namespace                         forwarder                  the test's namespace
    host_addr on ``host`` (TUN) --fd--> [down: loss, rate, delay] --fd--> ``peer`` (TUN)
                                <--fd-- [up:   loss, rate, delay] <--fd--   peer_addr

Both devices are opened here (``/dev/net/tun``, ``IFF_TUN | IFF_NO_PI``); ``peer`` is
then moved into the namespace, where its file descriptor keeps working. They carry a
point-to-point pair of addresses from 10.232.x.0/30 and the namespace's default route
goes through ``peer``. A TUN device lives as long as a descriptor holds it: the
forwarder holds the only ones, so the link goes away with it.

Each direction, independently, in this order (netem's ``rate R delay D loss L`` on each
end of a pair):

1. loss: a packet is dropped with probability ``loss``;
2. the bottleneck: packets leave one after another at ``rate`` bit/s (the IP packet's
   length is what is counted); a packet that would wait more than ``queue`` seconds
   behind those already queued is dropped (drop-tail, as tbf's ``latency``);
3. delay: a packet that left the bottleneck arrives ``delay`` seconds later.

Packets of one direction arrive in the order they were read while the settings hold.
The forwarder is a process of its own (``python linkemu.py``, standard library only),
not the test's event loop, which runs the app server and aiortc. It starts unshaped and
takes new settings while running (:meth:`TunLink.shape`); :meth:`TunLink.counts` reports
what it did, per direction and cause, and how late it wrote packets (its own accuracy).

Needs root (CAP_NET_ADMIN), ``/dev/net/tun`` (made if missing: CAP_MKNOD) and ``ip``;
:class:`Unavailable` names what is missing (tests turn it into a skip).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import heapq
import json
import os
import random
import secrets
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO, Any

SEARCH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # ip: not on every user's PATH
IP = shutil.which("ip", path=SEARCH)
TUN = "/dev/net/tun"

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
DIRECTIONS = ("down", "up")  # down: root namespace -> the test's; up: the other way


class Unavailable(Exception):
    """This machine cannot make the link; the message says what is missing."""


@dataclass(frozen=True)
class Shape:
    """One direction's link. ``rate`` None: no bottleneck (nor its queue)."""

    rate: float | None = None  # bit/s
    delay: float = 0.0  # s, after the bottleneck
    loss: float = 0.0  # probability, before the bottleneck
    queue: float = 0.4  # s a packet may wait for the bottleneck before it is dropped


UNSHAPED = Shape()


# --- the forwarder (runs in its own process) ----------------------------------------------


@dataclass
class Counts:
    """What one direction did since the start. Every packet read is counted once in
    ``in`` and ends up in exactly one of ``out``, ``lost``, ``queue``, ``error`` or
    ``held`` (still on its way)."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    lost: int = 0  # dropped at random
    queue: int = 0  # dropped by the full bottleneck queue
    error: int = 0  # the write failed
    held: int = 0
    late_max_ms: float = 0.0  # how much later than due a packet was written, at worst
    late_sum_ms: float = 0.0
    late_over_5ms: int = 0  # packets written more than 5 ms later than due


@dataclass
class Direction:
    source: int
    sink: int
    shape: Shape = UNSHAPED
    rng: random.Random = field(default_factory=random.Random)
    free_at: float = 0.0  # when the bottleneck has sent everything it holds
    counts: Counts = field(default_factory=Counts)

    def due(self, size: int, now: float) -> float | None:
        """When a packet of `size` bytes read `now` is to be written; None: dropped."""
        shape = self.shape
        if shape.loss > 0 and self.rng.random() < shape.loss:
            self.counts.lost += 1
            return None
        if shape.rate is None:
            return now + shape.delay
        start = max(now, self.free_at)
        if start - now > shape.queue:
            self.counts.queue += 1
            return None
        self.free_at = start + size * 8 / shape.rate
        return self.free_at + shape.delay


BATCH = 64  # packets read from one device per wake-up, so neither direction starves


def forward(host_fd: int, peer_fd: int, control: int, replies: IO[str]) -> None:
    """Moves packets between the two devices until `control` (a descriptor) closes.
    Control lines are JSON: ``{"shape": {"down": {...Shape}, "up": {...}}}``,
    ``{"seed": n}`` or ``{"counts": true}``; each gets one JSON line back. Descriptors
    below 1024 (select's limit)."""
    ways = {"down": Direction(host_fd, peer_fd), "up": Direction(peer_fd, host_fd)}
    by_source = {way.source: way for way in ways.values()}
    pending: list[tuple[float, int, Direction, bytes]] = []  # (due, order, way, packet)
    order = 0
    watched = [host_fd, peer_fd, control]
    for fd in (host_fd, peer_fd):
        os.set_blocking(fd, False)
    buffered = b""
    replies.write('{"ready": true}\n')
    replies.flush()
    while True:
        # select, not poll or epoll: its timeout is in microseconds, theirs in ms.
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        for fd in select.select(watched, [], [], timeout)[0]:
            if fd == control:
                chunk = os.read(control, 65536)
                if not chunk:
                    return
                buffered += chunk
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    replies.write(json.dumps(_command(json.loads(line), ways)) + "\n")
                    replies.flush()
                continue
            way = by_source[fd]
            for _ in range(BATCH):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                now = time.monotonic()
                way.counts.packets_in += 1
                way.counts.bytes_in += len(packet)
                due = way.due(len(packet), now)
                if due is not None:
                    heapq.heappush(pending, (due, order, way, packet))
                    order += 1
                    way.counts.held += 1
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            due, _, way, packet = heapq.heappop(pending)
            way.counts.held -= 1
            try:
                os.write(way.sink, packet)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.EINVAL):
                    raise
                way.counts.error += 1
                continue
            late = (time.monotonic() - due) * 1000
            way.counts.packets_out += 1
            way.counts.bytes_out += len(packet)
            way.counts.late_sum_ms += late
            way.counts.late_max_ms = max(way.counts.late_max_ms, late)
            way.counts.late_over_5ms += late > 5


def _command(message: dict[str, Any], ways: dict[str, Direction]) -> dict[str, Any]:
    if "shape" in message:
        for name, values in message["shape"].items():
            ways[name].shape = Shape(**values)
        return {"ok": True}
    if "seed" in message:
        for name, way in ways.items():
            way.rng.seed(f"{message['seed']}-{name}")
        return {"ok": True}
    if "counts" in message:
        used = os.times()
        return {**{name: asdict(way.counts) for name, way in ways.items()},
                "cpu_s": used.user + used.system}  # fmt: skip
    return {"error": f"unknown command {sorted(message)}"}


# --- setting the link up (the test's side) ------------------------------------------------


def open_tun(name: str) -> int:
    """A new TUN device `name` (IP packets, no packet-information header); it is removed
    when the last descriptor to it closes. Makes /dev/net/tun if it is missing."""
    if not os.path.exists(TUN):  # a container may lack the node, not the driver
        try:
            os.makedirs(os.path.dirname(TUN), exist_ok=True)
            os.mknod(TUN, 0o666 | stat.S_IFCHR, os.makedev(10, 200))
        except OSError as exc:
            raise Unavailable(f"no {TUN}, and cannot make it"
                              f" (mknod {TUN} c 10 200): {exc}") from None  # fmt: skip
    try:
        fd = os.open(TUN, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise Unavailable(f"cannot open {TUN}: {exc}") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise Unavailable(f"cannot make TUN device {name} (needs CAP_NET_ADMIN): {exc}") from None
    return fd


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a system tool (ip, sh) with /usr/sbin and /sbin on the PATH; never raises on
    its exit status."""
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "PATH": SEARCH})  # fmt: skip


def must(*args: str) -> str:
    """`run_tool`, raising Unavailable with the tool's message if it fails."""
    done = run_tool(*args)
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass
class TunLink:
    """A namespace `netns` reached from here through the forwarder: `host` (TUN, here,
    `host_addr`) and `peer` (TUN, inside, `peer_addr`)."""

    netns: str
    host: str
    peer: str
    host_addr: str
    peer_addr: str
    forwarder: subprocess.Popen[str]

    def in_ns(self, *args: str) -> tuple[str, ...]:
        return (IP or "ip", "netns", "exec", self.netns, *args)

    def socket(self, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """An IPv4 socket made inside the namespace (it stays there): this thread enters
        the namespace for the call only."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{self.netns}") as there, open("/proc/thread-self/ns/net") as home:
            if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.netns}")
            try:
                made = socket.socket(socket.AF_INET, kind)
            finally:
                back = libc.setns(home.fileno(), CLONE_NEWNET)
        if back != 0:
            made.close()
            raise OSError(ctypes.get_errno(), "setns back to this thread's namespace")
        return made

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.forwarder.stdin is not None and self.forwarder.stdout is not None
        self.forwarder.stdin.write(json.dumps(message) + "\n")
        self.forwarder.stdin.flush()
        line = self.forwarder.stdout.readline()
        if not line:
            raise RuntimeError(f"the link's forwarder exited ({self.forwarder.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the link's forwarder: {reply['error']}")
        return reply

    def shape(self, down: Shape = UNSHAPED, up: Shape | None = None) -> None:
        """From now on, `down` (towards the namespace) and `up` (from it; `down` if not
        given); packets already on their way keep the times they were given."""
        shapes = {"down": down, "up": down if up is None else up}
        self._ask({"shape": {name: asdict(shape) for name, shape in shapes.items()}})

    def seed(self, seed: int) -> None:
        """Makes the random losses repeatable."""
        self._ask({"seed": seed})

    def counts(self) -> dict[str, Any]:
        """Per direction ("down", "up"), the forwarder's :class:`Counts` as a dict; and
        "cpu_s", the processor time the forwarder took so far."""
        return self._ask({"counts": True})

    def summary(self) -> dict[str, str]:
        """The counts in one line per direction, for a test's printout."""
        counts = self.counts()
        out = {"forwarder": f"{counts['cpu_s']:.2f} s of CPU"}
        for name in DIRECTIONS:
            c = counts[name]
            mean = c["late_sum_ms"] / c["packets_out"] if c["packets_out"] else 0.0
            out[name] = (
                f"in {c['packets_in']} ({c['bytes_in']} B), out {c['packets_out']}"
                f" ({c['bytes_out']} B), dropped: {c['lost']} at random, {c['queue']} by"
                f" the full queue, {c['error']} failed writes; {c['held']} on their way;"
                f" written late by {mean:.2f} ms on average, {c['late_max_ms']:.1f} ms at most,"
                f" {c['late_over_5ms']} more than 5 ms late"
            )
        return out


def free_third(second: int) -> int:
    """A random x with no address of this machine in 10.`second`.x.0/24."""
    used = run_tool(IP or "ip", "-4", "-o", "addr", "show").stdout
    for _ in range(100):
        third = secrets.randbelow(256)
        if f" 10.{second}.{third}." not in used:
            return third
    raise Unavailable(f"no free 10.{second}.x.0/30 on this machine")


@contextmanager
def tun_namespace(name: str, *, realtime: bool = True) -> Iterator[TunLink]:
    """A fresh namespace joined to this one by the emulated link, unshaped; removed on
    exit. With `realtime` the forwarder runs under SCHED_FIFO (priority 1) when it may:
    it stands for the network, which is not on this machine, and should not wait for a
    core behind the test's own processes. Measured in the browser weak-link test at a
    load average of 5-11 on 2 cores: packets written 0.08 ms later than due on average,
    at most 4.2 ms over 7 runs (at niceness -5 instead: up to 65 ms); the forwarder
    took about 2 % of a core.
    """
    if IP is None:
        raise Unavailable("needs ip (Debian's iproute2: `make system-deps`)")
    tag = secrets.token_hex(3)
    third = free_third(232)
    netns = f"pa-{name}-{os.getpid()}-{tag}"
    host, peer = f"pta{tag}", f"ptb{tag}"
    host_addr, peer_addr = f"10.232.{third}.1", f"10.232.{third}.2"
    created = run_tool(IP, "netns", "add", netns)
    if created.returncode != 0:
        raise Unavailable(f"cannot create a network namespace (needs root or CAP_NET_ADMIN):"
                          f" {created.stderr.strip()}")  # fmt: skip
    fds: list[int] = []
    forwarder: subprocess.Popen[str] | None = None
    try:
        fds.append(open_tun(host))
        fds.append(open_tun(peer))
        # No IPv6 on either end: nothing but the test's traffic crosses the link, and a
        # link-local address appearing after the link is up makes Chromium abort what it
        # is loading (net::ERR_NETWORK_CHANGED).
        must(IP, "netns", "exec", netns, "sh", "-c",
             "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
             "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")  # fmt: skip
        must("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{host}/disable_ipv6")
        must(IP, "link", "set", peer, "netns", netns)
        must(IP, "addr", "add", host_addr, "peer", peer_addr, "dev", host)
        must(IP, "link", "set", host, "up")
        must(IP, "-n", netns, "addr", "add", peer_addr, "peer", host_addr, "dev", peer)
        must(IP, "-n", netns, "link", "set", peer, "up")
        must(IP, "-n", netns, "link", "set", "lo", "up")
        must(IP, "-n", netns, "route", "add", "default", "dev", peer)
        forwarder = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(fds[0]), str(fds[1]),
             "fifo" if realtime else "normal"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=fds,
        )  # fmt: skip
        for fd in fds:  # the forwarder holds the devices now
            os.close(fd)
        fds.clear()
        assert forwarder.stdout is not None
        ready = forwarder.stdout.readline()
        if not ready:
            raise RuntimeError(f"the link's forwarder did not start ({forwarder.wait()})")
        yield TunLink(netns, host, peer, host_addr, peer_addr, forwarder)
    finally:
        for fd in fds:
            os.close(fd)
        if forwarder is not None:
            assert forwarder.stdin is not None and forwarder.stdout is not None
            forwarder.stdin.close()  # the forwarder stops at end of input
            try:
                forwarder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                forwarder.kill()
                forwarder.wait()
            forwarder.stdout.close()
        run_tool(IP, "netns", "del", netns)


def main(argv: list[str]) -> None:
    given_host, given_peer = int(argv[0]), int(argv[1])
    host_fd, peer_fd = os.dup(given_host), os.dup(given_peer)  # the lowest free numbers
    os.close(given_host)
    os.close(given_peer)
    if argv[2] == "fifo":
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            pass  # without CAP_SYS_NICE: ordinary scheduling, packets may be later
    forward(host_fd, peer_fd, sys.stdin.fileno(), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
