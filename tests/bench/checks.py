"""Bench: the OpenCV check of one camera picture beside the VP8 decode it follows,
measured side by side in one run (alternating, so a busy machine slows both alike).

Run:  .venv/bin/python tests/bench/checks.py [--rounds 31]

- check   ``media.checks.FrameChecker.check`` of a 640x480 webcam shot with a face
          (the astronaut photo of tests/data, camera noise, shifted a pixel every
          other frame so nothing is cached); faces are looked for every frame here,
          the worst case (the room's checker looks every ``faces_every`` samples);
- decode  one 640x360 VP8 inter frame decoded by libvpx, what the ingest thread does
          for every layer-0 frame of a publisher (15 a second without layers, about 4
          for a browser's L1T3).
A publisher costs the checks one ``check`` per sample (one a second) and the decodes;
the ratio tells which of the two dominates. It prints medians, wall and CPU (the CPU
of all OpenCV threads), and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `media` importable
    sys.path.insert(0, str(ROOT))

from media.checks import FrameChecker, Thresholds  # noqa: E402

PHOTO = ROOT / "tests" / "data" / "astronaut.png"


def webcam_frames(count: int) -> list[np.ndarray]:
    photo = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    face = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)
    shot = cv2.copyMakeBorder(face, 0, 0, 80, 80, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    rng = np.random.default_rng(7)
    frames = []
    for i in range(count):
        noisy = np.clip(shot.astype(np.float32) + rng.normal(0.0, 2.0, shot.shape), 0, 255)
        frames.append(np.roll(noisy.astype(np.uint8), i % 2, axis=1))
    return frames


def vp8_frames(count: int) -> list[bytes]:
    """A key frame then ``count`` inter frames of a moving 640x360 picture."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 360, "yuv420p"
    encoder.time_base, encoder.bit_rate = Fraction(1, 15), 500_000
    encoder.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    packets = []
    for i in range(count + 1):
        picture = np.roll(base, 4 * i, axis=1)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in encoder.encode(frame)]
    return packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args()
    pictures = webcam_frames(args.rounds)
    encoded = vp8_frames(args.rounds)
    checker = FrameChecker(Thresholds(faces_every=1))
    checker.check(pictures[0], 0.0)  # loads the cascade
    decoder = av.CodecContext.create("libvpx", "r")
    decoder.decode(av.Packet(encoded[0]))  # the key frame
    walls: dict[str, list[float]] = {"check": [], "decode": []}
    cpus: dict[str, list[float]] = {"check": [], "decode": []}
    for i in range(args.rounds):
        for name in ("check", "decode"):
            wall, cpu = time.perf_counter(), time.process_time()
            if name == "check":
                faces = checker.check(pictures[i], 1.0 + i).faces
                assert faces == 1, f"round {i}: {faces} faces"
            else:
                decoder.decode(av.Packet(encoded[1 + i]))
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    print(f"{args.rounds} rounds, alternating; OpenCV threads: {cv2.getNumThreads()}")
    print(f"  {'':<8}{'median wall ms':>16}{'best wall ms':>14}{'median CPU ms':>15}")
    for name in ("check", "decode"):
        print(
            f"  {name:<8}{statistics.median(walls[name]) * 1000:>16.1f}"
            f"{min(walls[name]) * 1000:>14.1f}{statistics.median(cpus[name]) * 1000:>15.1f}"
        )
    ratio = statistics.median(walls["check"]) / statistics.median(walls["decode"])
    print(f"check/decode (median wall): {ratio:.1f}x — one check a second costs as much as "
          f"{ratio:.0f} decoded frames")  # fmt: skip


if __name__ == "__main__":
    main()
