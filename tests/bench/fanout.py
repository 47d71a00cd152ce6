"""Bench: one presenter to N receive-only viewers, re-encoding server beside forwarding.

Run:  .venv/bin/python tests/bench/fanout.py            (≈6-7 min)
      .venv/bin/python tests/bench/fanout.py --quick    (≈1 min: small N, short windows)

Two servers are measured in one run, one after the other, each in its own process
(tests/bench/_lightpeer.py ``serve``: a room behind POST /join on 127.0.0.1):
  reencode  the old design in miniature (``_lightpeer.ReencodeRoom``): one MediaRelay
            per received track, every viewer's RTCRtpSender encodes its own copy;
  forward   ``media.room.Room`` as it is in the working tree, in the server process;
  python    ``forward`` with the Python send path (``media.rtpsend``'s native one off:
            headers built and pylibsrtp's ``protect`` called per packet in Python);
  unbatched ``forward`` with one ``sendto`` per packet (``media.datagrams``' segmented
            writes off): what writing a frame's packets at once saves, side by side;
  span2     the same room in two media worker processes (``media.pool``, span_at 1:
            viewers placed on the two in turn, the presenter piped once across).
The presenter joins as the operator (sendonly camera + microphone, no receiving slot);
each viewer joins as a participant offering only recvonly video + audio, so its slot 0
shows the operator. The presenter sends 640x360 VP8 at 15 fps (L1T3, encoded once and
looped with its frames numbered for the probes: _lightpeer's doc) and 440 Hz Opus.

Clients run in processes of their own, apart from the server: the presenter and the
PROBES decoding viewers in one, the light viewers spread over up to 4 more. A light
viewer completes ICE + DTLS with aiortc but counts video frames from the clear RTP
header (marker bit) without decrypting or decoding; a probe decodes and reads the
frame number the presenter painted in the picture, which gives when it was sent.
A light viewers' process wakes at most every LIGHT_BATCH (5 ms) and reads everything
that came meanwhile (``_lightpeer._BatchingSelector``): on one machine each wake-up of
a receiver is also work in the server's ``sendto``, which a viewer on another machine
never costs it (the light viewers' cores at 384 went from 0.95-0.99 to 0.82 with it,
2026-12-08). The probes' process is woken per datagram, as before: it times frames.

The viewers accumulate: each step adds viewers to reach N in waves of at most WAVE,
each wave once every viewer before it has a frame (at most READY_TIMEOUT per wave:
viewers arrive over time, and 128 ICE + DTLS handshakes at once on the 2 cores the
clients share measured the handshakes, not forwarding), warms up, then counts over a
window:
  delivered  frames each viewer received / frames the presenter sent in the window
             (min/median over viewers; the pass criterion takes all viewers together);
  p95        delay of the probes' decoded frames (sent → decoded);
  CPU        of the server process in cores (its event-loop thread in brackets), per
             viewer, and of all client processes.
A step passes with ≥ 95 % of frames delivered and p95 < 250 ms. A server's ramp stops
after its first failing step or when the time budget is spent.

The machine may be shared: before each window the bench waits (at most --quiet-wait
seconds) until other processes use < 0.25 core, reports the cores they used during the
window ("others"), and counts a failing window once more if they were busy.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `media` importable
    sys.path.insert(0, str(ROOT))

from _lightpeer import (  # noqa: E402
    OTHERS_LIMIT,
    Child,
    Flow,
    PeerSpec,
    Window,
    clients,
    ladder,
    measure,
    print_machine_busy,
    serve,
    wait_quiet,
    wait_ready,
    warn_busy,
)

PASS_DELIVERED, PASS_P95_MS = 0.95, 250.0
TARGET_VIEWERS, TARGET_RATIO = 384, 10.0
PROBES = 2  # decoding viewers, always the first ones to join
VIEWERS_PER_PROCESS = 128
MAX_VIEWER_PROCESSES = 4
READY_TIMEOUT = 20.0  # seconds, per wave
WAVE = 64  # viewers joining at once
LIGHT_BATCH = 0.005  # s: a light viewers' process reads its sockets at most this often


@dataclass
class Step:
    server: str
    n: int
    video: Flow = field(default_factory=Flow)
    audio: Flow = field(default_factory=Flow)
    window: Window | None = None
    ready_s: float | None = None
    error: str = ""

    @property
    def passed(self) -> bool:
        return (
            not self.error
            and self.video.total >= PASS_DELIVERED
            and self.video.p95_ms() < PASS_P95_MS
        )


def viewer_specs(first: int, last: int) -> list[PeerSpec]:
    """Viewers first..last-1; the first PROBES of all decode their slot 0."""
    return [
        PeerSpec(f"v{i}", recv_pairs=1, probes=(0,) if i < PROBES else ())
        for i in range(first, last)
    ]


def add_viewers(base: str, home: Child, light: list[Child], first: int, last: int) -> None:
    """Join viewers first..last-1: probes in the presenter's process, light ones dealt
    round-robin over the viewer processes (all processes join at once, 8 at a time)."""
    specs = viewer_specs(first, last)
    probes = [s for s in specs if s.probes]
    rest = [s for s in specs if not s.probes]
    jobs = [(home, probes)] + [(child, rest[i :: len(light)]) for i, child in enumerate(light)]
    jobs = [(child, batch) for child, batch in jobs if batch]
    gather_specs(base, jobs)


def gather_specs(base: str, jobs: list[tuple[Child, list[PeerSpec]]]) -> None:
    for child, batch in jobs:
        child.send("add", base, batch, 8)
    for child, _ in jobs:
        child.result()


def evaluate(step: Step, window: Window) -> None:
    presenter = window.reports["presenter"]
    for name, report in window.reports.items():
        if name == "presenter":
            continue
        step.video.add(report["video"][0], presenter["sent"])
        step.audio.add(report["audio"][0], presenter["audio_sent"])
        step.video.delays += report["delays"].get(0, [])


def measure_step(
    step: Step, server: Child, children: list[Child], args: argparse.Namespace
) -> Step:
    """Count one window of ``step`` (its peers joined and warm). Waits for the machine
    to be quiet first; a window that fails while other processes were busy is counted
    once more."""
    for attempt in (1, 2):
        wait_quiet([server, *children], args.quiet_wait)
        counted = Step(step.server, step.n, ready_s=step.ready_s)
        counted.window = measure(server, children, args.seconds)
        evaluate(counted, counted.window)
        others = counted.window.others
        if counted.passed or others < OTHERS_LIMIT or attempt == 2:
            return counted
        print(
            f"  {step.server:<8} N={step.n:<4} FAIL while other processes used {others:.2f} "
            "cores: once more",
            flush=True,
        )
    raise AssertionError("unreachable")


def run_server(
    kind: str, ladder: list[int], args: argparse.Namespace, deadline: float
) -> list[Step]:
    steps: list[Step] = []
    if not ladder:
        return steps
    processes = min(MAX_VIEWER_PROCESSES, max(1, math.ceil(max(ladder) / VIEWERS_PER_PROCESS)))
    server = Child(serve, kind)
    home = Child(clients)
    light = [Child(clients, LIGHT_BATCH) for _ in range(processes)]
    try:
        base = server.call("address")
        server.helpers = server.call("workers")
        home.call("add", base, [PeerSpec("presenter", operator=True, publish=True)], 1)
        joined = 0
        for n in ladder:
            if time.monotonic() > deadline:
                print(f"  {kind}: time budget spent, N={n} not run", flush=True)
                break
            step = Step(kind, n)
            steps.append(step)
            joined_s = 0.0
            try:
                started = time.monotonic()
                step.ready_s = 0.0
                for first in range(joined, n, WAVE):
                    add_viewers(base, home, light, first, min(first + WAVE, n))
                    joined = min(first + WAVE, n)
                    joined_s += time.monotonic() - started
                    ready = wait_ready(
                        [home, *light],
                        lambda p: all(v[0] > 0 for name, v in p.items() if name != "presenter"),
                        READY_TIMEOUT,
                    )
                    step.ready_s = None if ready is None else step.ready_s + ready
                    if ready is None:
                        break
                    started = time.monotonic()
                time.sleep(args.warmup)
                step = steps[-1] = measure_step(step, server, [home, *light], args)
            except Exception as exc:  # a step that cannot be set up fails
                step.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            print_progress(step, joined_s)
            if not step.passed:
                break
    finally:
        for child in [*light, home, server]:
            child.stop()
    return steps


def print_progress(step: Step, joined_s: float) -> None:
    verdict = "pass" if step.passed else "FAIL"
    if step.error:
        print(f"  {step.server:<8} N={step.n:<4} FAIL {step.error}", flush=True)
        return
    print(
        f"  {step.server:<8} N={step.n:<4} {verdict}  delivered {step.video.total:.0%}, "
        f"p95 {step.video.p95_ms():.0f} ms (joins took {joined_s:.1f} s)",
        flush=True,
    )


def print_table(steps: list[Step], args: argparse.Namespace) -> None:
    print(
        f"\n1 presenter -> N viewers, 640x360 VP8 @ 15 fps + Opus, {args.seconds:.0f} s "
        f"counted after {args.warmup:.0f} s warm-up; {PROBES} of the N viewers decode "
        f"(delay), the rest are light"
    )
    print(
        f"  {'server':<9}{'N':>5}{'video % min/med':>17}{'all':>6}{'audio %':>9}"
        f"{'p95 ms':>8}{'server cores (loop)':>21}{'/viewer %':>10}{'clients':>9}"
        f"{'others':>7}{'udp drops':>10}{'ready s':>8}  verdict"
    )
    for s in steps:
        if s.window is None:
            print(f"  {s.server:<9}{s.n:>5}  {s.error}")
            continue
        w = s.window
        ready = f"{s.ready_s:.1f}" if s.ready_s is not None else ">20"
        cores = f"{w.server_cpu:.2f} ({w.server_loop:.2f})"
        print(
            f"  {s.server:<9}{s.n:>5}{s.video.cells():>17}{s.video.total * 100:>6.0f}"
            f"{s.audio.total * 100:>9.0f}{s.video.p95_ms():>8.0f}{cores:>21}"
            f"{w.server_cpu / s.n * 100:>10.2f}{w.client_cpu:>9.2f}{w.others:>7.2f}"
            f"{w.udp_drops:>10}"
            f"{ready:>8}  {'pass' if s.passed else 'FAIL'}"
        )
    print(
        "  video %: frames received / frames the presenter sent in the window, per viewer "
        "(min/median) and all viewers together; audio %: Opus packets, all viewers; "
        "p95: sent → decoded at the probes; cores: CPU seconds per second of the "
        "server process (its event-loop thread); /viewer: % of one core per viewer; "
        "clients: cores of all client processes (presenter, probes, light viewers); udp "
        "drops: datagrams the kernel dropped for a full socket buffer, machine-wide."
    )


def largest(steps: list[Step], kind: str) -> Step | None:
    passed = [s for s in steps if s.server == kind and s.passed]
    return passed[-1] if passed else None


def print_summary(steps: list[Step]) -> None:
    best = {kind: largest(steps, kind) for kind in ("reencode", "forward", "span2")}
    print("\nLargest N with ≥ 95 % of frames and p95 < 250 ms:")
    for kind, step in best.items():
        print(
            f"  {kind:<9}"
            + (
                f"{step.n} viewers, server {step.window.server_cpu:.2f} "
                f"cores ({step.window.server_cpu / step.n * 100:.2f} % of a "
                f"core per viewer)"
                if step and step.window
                else "none"
            )
        )
    re = best["reencode"]
    for kind in ("forward", "span2"):
        fw = best[kind]
        if re and fw:
            ratio = fw.n / re.n
            print(
                f"{kind}/reencode viewers: {fw.n}/{re.n} = {ratio:.1f}x (target ≥ "
                f"{TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'}; "
                f"{kind} ≥ {TARGET_VIEWERS}: {'met' if fw.n >= TARGET_VIEWERS else 'NOT met'})"
            )
    for kind in ("reencode", "forward", "span2"):  # the fixed cost (the presenter's ingest) removed
        cores = measured(steps, kind)
        if len(cores) >= 2:
            low, high = min(cores), max(cores)
            slope = (cores[high] - cores[low]) / (high - low)
            print(f"{kind} marginal server CPU per viewer, N={low}..{high}: {slope * 100:.2f} %")
    for other in ("python", "unbatched"):  # the same room, one part of the send path off
        plain = measured(steps, other)
        for n in sorted(n for n in plain if n in measured(steps, "forward")):
            per_u, per_f = plain[n] / n, measured(steps, "forward")[n] / n
            print(
                f"server CPU per viewer at N={n}: {other} {per_u * 100:.2f} %, forward "
                f"{per_f * 100:.2f} % of a core: {other}/forward = {per_u / per_f:.2f}x"
            )
    both = [n for n in measured(steps, "reencode") if n in measured(steps, "forward")]
    if both:  # per-viewer CPU at the largest N both servers measured
        n = max(both)
        per_r = measured(steps, "reencode")[n] / n
        per_f = measured(steps, "forward")[n] / n
        print(
            f"server CPU per viewer at N={n}: reencode {per_r * 100:.2f} %, forward "
            f"{per_f * 100:.2f} % of a core: reencode/forward = {per_r / per_f:.1f}x"
        )


def measured(steps: list[Step], kind: str) -> dict[int, float]:
    """N -> server cores, for every step of ``kind`` that was measured."""
    return {s.n: s.window.server_cpu for s in steps if s.server == kind and s.window}



def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, short windows")
    parser.add_argument("--seconds", type=float, default=10.0, help="counted window per step")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="seconds to wait before a window for other processes to go quiet",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before counting")
    parser.add_argument("--max-viewers", type=int, default=512)
    parser.add_argument("--reencode-steps", default="2,4,8,16,24,32,48,64,96,128")
    parser.add_argument("--forward-steps", default="4,16,32,64,128,256,384,512")
    parser.add_argument("--python-steps", default="256")
    parser.add_argument("--unbatched-steps", default="128")
    parser.add_argument("--span2-steps", default="64,128,192,256,384,512")
    parser.add_argument(
        "--budget", type=float, default=420.0, help="seconds; no new step starts beyond it"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 4.0), min(args.warmup, 2.0)
        args.quiet_wait = min(args.quiet_wait, 5.0)
        args.max_viewers = min(args.max_viewers, 32)
        args.reencode_steps, args.forward_steps, args.span2_steps = "2,4", "4,32", "4,32"
        args.unbatched_steps = args.python_steps = "32"
    return args


def main() -> None:
    args = parse()
    started = time.monotonic()
    print_machine_busy()
    deadline = started + args.budget
    steps: list[Step] = []
    for kind, text in (
        ("reencode", args.reencode_steps),
        ("forward", args.forward_steps),
        ("python", args.python_steps),
        ("unbatched", args.unbatched_steps),
        ("span2", args.span2_steps),
    ):
        steps += run_server(kind, ladder(text, args.max_viewers), args, deadline)
    print_table(steps, args)
    warn_busy([(s.server, s.n, s.window) for s in steps])
    print_summary(steps)
    print(f"\nbench took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
