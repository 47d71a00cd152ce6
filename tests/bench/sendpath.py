"""Bench: one viewer's send path, native (media.rtpsend) beside Python (RtpOut._packets).

Run:  .venv/bin/python tests/bench/sendpath.py            (≈30 s)
      .venv/bin/python tests/bench/sendpath.py --quick    (≈5 s)

What a forwarding server does per frame per viewer, without the rest of the server:
VIEWERS UDP sockets on 127.0.0.1 each send to a receiving socket of their own (real
system calls, the receiver's kernel work included, as on one machine), every viewer with
its own SRTP session (pylibsrtp, AES-CM-128 + HMAC-SHA1-80, as browsers negotiate).
Each round sends one second of a 640x360 camera as forwarding does it: 15 VP8 frames
(the sizes of ``_lightpeer``'s precoded camera: a key frame, then inter frames of 1-5
packets) and 50 Opus packets, to every viewer, through

  python   RtpOut._packets (headers and pylibsrtp's ``protect`` per packet in Python)
           then media.datagrams.send_packets (one segmented write per frame);
  native   media.rtpsend.send_frame (headers, libsrtp and the writes in one C call).

Rounds alternate between the two, so a machine busy with something else slows both
alike; the receivers are drained between rounds. Printed: CPU time of this process per
packet for each, and their ratio; the whole run's CPU (process_time), not wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `media` importable
    sys.path.insert(0, str(ROOT))

from pylibsrtp import Policy, Session  # noqa: E402

from media import rtpsend  # noqa: E402
from media.codecs import OPUS, VP8  # noqa: E402
from media.datagrams import send_packets  # noqa: E402
from media.rtpout import Packetised, RtpOut, _descriptor  # noqa: E402

EXTENSIONS = b"\xbe\xde\x00\x02\x10\x30\x22\x12\x34\x56\x00\x00"  # mid, abs-send-time, pad
FRAME_BYTES = [14_000] + [1_800, 2_600, 3_900, 5_200] * 3 + [2_000, 1_200]  # 15 frames


class Viewer:
    def __init__(self, index: int) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.setblocking(False)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.addr = self.rx.getsockname()
        self.to = rtpsend.sockaddr(self.addr)
        key = bytes((index + i) % 256 for i in range(30))
        policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)  # fmt: skip
        self.session = Session(policy)
        self.session_at = rtpsend.session_address(self.session)
        dtls = types.SimpleNamespace(_tx_srtp=self.session)
        sender = types.SimpleNamespace(_ssrc=0x1000 + index, _rtx_ssrc=0, send=None,
                                       transport=dtls)  # fmt: skip
        self.out = RtpOut(sender, "video")  # type: ignore[arg-type]  # only what _packets reads
        self.out._pt = 96
        self.seq = 0
        self.transport: asyncio.DatagramTransport | None = None

    def drain(self) -> int:
        got = 0
        while True:
            try:
                self.rx.recv(2048)
            except BlockingIOError:
                return got
            got += 1


def one_second() -> list[Packetised]:
    frames = [Packetised(os.urandom(n), 0, VP8, layer=0) for n in FRAME_BYTES]
    audio = [Packetised(os.urandom(90), 0, OPUS) for _ in range(50)]
    return frames + audio


def send_round(viewers: list[Viewer], frames: list[Packetised], native: bool) -> int:
    packets = 0
    for frame in frames:
        chunks = frame.chunks
        for v in viewers:
            assert v.transport is not None
            if native:
                fd = rtpsend.open_socket(v.transport)
                assert v.to is not None and fd >= 0
                rtpsend.send_frame(v.transport, fd, v.to, v.session_at, chunks, 96, v.seq, 1000,
                                   v.out._ssrc, EXTENSIONS, _descriptor(frame), 7,
                                   frame.layer or 0, v.addr)  # fmt: skip
            else:
                send_packets(v.transport, v.out._packets(frame, v.seq, 1000, EXTENSIONS), v.addr)
            v.seq = (v.seq + len(chunks)) & 0xFFFF
            packets += len(chunks)
    return packets


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    viewers = [Viewer(i) for i in range(args.viewers)]
    for v in viewers:
        v.transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
    frames = one_second()
    per_packet: dict[bool, list[float]] = {True: [], False: []}
    delivered: dict[bool, int] = {True: 0, False: 0}
    sent: dict[bool, int] = {True: 0, False: 0}
    for i in range(args.rounds * 2):
        native = i % 2 == 0
        for v in viewers:
            v.drain()
        start = time.process_time()
        packets = send_round(viewers, frames, native)
        per_packet[native].append((time.process_time() - start) / packets)
        sent[native] += packets
        delivered[native] += sum(v.drain() for v in viewers)
        await asyncio.sleep(0)  # let asyncio write whatever it queued
    for v in viewers:
        assert v.transport is not None
        v.transport.close()
        v.rx.close()
    py, nat = statistics.median(per_packet[False]), statistics.median(per_packet[True])
    print(f"{args.viewers} viewers, one second of 640x360 VP8 (15 frames, "
          f"{sum(len(f.chunks) for f in frames[:15])} packets) + 50 Opus packets each, "
          f"{args.rounds} rounds per path, alternating")  # fmt: skip
    for name, native in (("python", False), ("native", True)):
        values = per_packet[native]
        print(f"  {name:<7} CPU per packet: median {statistics.median(values) * 1e6:.2f} µs "
              f"(min {min(values) * 1e6:.2f}, max {max(values) * 1e6:.2f}); "
              f"received {delivered[native]}/{sent[native]}")  # fmt: skip
    print(f"python/native CPU per packet: {py / nat:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer viewers and rounds")
    parser.add_argument("--viewers", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.rounds = 32, 5
    if not rtpsend.available():
        sys.exit("media._rtpsend is not built: run `make` or `pip install -e .` first")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
