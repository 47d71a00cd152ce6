"""Snapshot JPEGs, written durably, with the sha256 of the bytes on disk.

A snapshot is evidence of attendance: once `save_snapshot` returns, the file is complete
on disk under its final name (temp file in the same folder, fsync, atomic rename, fsync
of the folder) and `sha256` is the digest of exactly those bytes. A crash before that
leaves at most a hidden `.<name>.*.tmp` file, never a partial snapshot under `name`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from media.checks import BgrFrame, require_bgr

# Letters, digits, - _ . only; not starting with "." (no hidden files, no "." or "..").
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Snapshot:
    path: Path
    sha256: str  # hex digest of the file's bytes
    width: int
    height: int
    taken_at: float  # wall-clock seconds since the epoch (time.time())


def check_name(name: str) -> str:
    """The name if it is a safe file name, else ValueError."""
    if not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"unsafe snapshot name {name!r}: use letters, digits, - _ .")
    return name


def encode_jpeg(frame_bgr: BgrFrame, quality: int = 85) -> bytes:
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1-100, got {quality}")
    ok, encoded = cv2.imencode(".jpg", require_bgr(frame_bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return encoded.tobytes()


def write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; on return both the file and its name are synced."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder(folder: Path) -> None:
    """Create `folder` (and parents) if missing, syncing its entry in its parent."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    fsync_folder(folder.parent)


def save_snapshot(
    frame_bgr: BgrFrame,
    folder: Path,
    name: str,
    quality: int = 85,
    *,
    taken_at: float | None = None,
) -> Snapshot:
    """Write the frame as JPEG `folder/name` (folder created; a same-named file replaced).

    `name` is the whole file name (e.g. "answer-17-village-3.jpg"); it must be letters,
    digits, - _ . and not start with "." (ValueError otherwise). `taken_at` defaults to
    now. Blocking (encode + fsync): call it off the event loop.
    """
    path = Path(folder) / check_name(name)
    data = encode_jpeg(frame_bgr, quality)
    make_folder(path.parent)
    write_durably(path, data)
    height, width = frame_bgr.shape[:2]
    stamp = time.time() if taken_at is None else taken_at
    return Snapshot(path, hashlib.sha256(data).hexdigest(), width, height, stamp)
