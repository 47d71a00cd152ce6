"""What the forwarding room needs to know about codecs, without decoding anything.

A room forwards one video codec (VP8 by default, H.264 by policy): every server
peer's video m-lines are answered with that codec first (and its RTX), so a frame
received from one participant can be sent unchanged to every other. Audio is Opus
everywhere. A publisher that cannot send the room's codec (a WHIP encoder offering
H.264 only, in a VP8 room) is answered with its own codec and transcoded once at
ingest (``media.ingest``).

Facts used here (RFC 6386 §9.1, RFC 6184 §5.3, aiortc 1.16 depayloaders):
- aiortc hands a reassembled VP8 frame without the payload descriptor; bit 0 of its
  first byte is 0 for a key frame.
- aiortc hands a reassembled H.264 access unit in Annex B form (start codes); it is
  a key frame if it carries an IDR slice (NAL type 5) or a sequence parameter set (7).
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Final

import av
import numpy as np
from aiortc import RTCRtpCodecParameters, RTCRtpTransceiver
from aiortc.codecs import is_rtx

VP8: Final = "VP8"
H264: Final = "H264"
ROOM_CODECS: Final = (VP8, H264)
OPUS: Final = "opus"
VIDEO_CLOCK: Final = 90_000
BLACK_SIZE: Final = (640, 360)

# PyAV encoder names and the options that make them emit a frame per input frame.
_ENCODERS: Final = {
    VP8: ("libvpx", {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}),
    H264: ("libx264", {"tune": "zerolatency", "preset": "ultrafast", "profile": "baseline"}),
}


class CodecError(ValueError):
    """A codec the room cannot use."""


def check_room_codec(name: str) -> str:
    """``name`` normalised (``vp8`` → ``VP8``); CodecError if the room cannot forward it."""
    upper = name.upper()
    if upper not in ROOM_CODECS:
        raise CodecError(f"room video codec {name!r} is not one of {', '.join(ROOM_CODECS)}")
    return upper


def _name(codec: RTCRtpCodecParameters) -> str:
    return codec.mimeType.split("/", 1)[1].upper()


def prefer(transceiver: RTCRtpTransceiver, codec_name: str) -> bool:
    """Keep only ``codec_name`` (its first offered variant) and its RTX on a negotiated
    video transceiver, before the answer is made. False (nothing changed) if the
    offer does not carry that codec: the caller decides whether to transcode.

    Private aiortc 1.16: ``transceiver._codecs`` is the common codec list
    ``setRemoteDescription`` computed and ``createAnswer`` writes out; the sender
    sends with its first entry.
    """
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    main = next((c for c in codecs if not is_rtx(c) and _name(c) == codec_name), None)
    if main is None:
        return False
    rtx = [c for c in codecs if is_rtx(c) and c.parameters.get("apt") == main.payloadType]
    transceiver._codecs = [main, *rtx]
    return True


def negotiated(transceiver: RTCRtpTransceiver) -> str:
    """The name of the codec a negotiated transceiver sends and receives first."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    main = next(c for c in codecs if not is_rtx(c))
    return _name(main)


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Whether a whole encoded frame can be decoded on its own (see the module doc)."""
    if not data:
        return False
    if codec_name == VP8:
        return data[0] & 0x01 == 0
    if codec_name == H264:
        return any(nal in (5, 7) for nal in _nal_types(data))
    return True  # audio: every Opus packet stands alone


def _nal_types(data: bytes) -> list[int]:
    types: list[int] = []
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


def video_encoder(codec_name: str, width: int, height: int) -> av.VideoCodecContext:
    """A PyAV encoder for the room's codec that emits one packet per frame, no lag."""
    encoder_name, options = _ENCODERS[codec_name]
    encoder = av.CodecContext.create(encoder_name, "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, VIDEO_CLOCK)
    encoder.framerate = Fraction(15)
    encoder.bit_rate = 600_000
    encoder.options = options
    return encoder


@functools.cache
def black_keyframe(codec_name: str) -> bytes:
    """A 640x360 black key frame in ``codec_name``, encoded once per process.

    A slot with no source sends it once a second, so a viewer never keeps showing
    the last frame of someone who left; being a key frame it decodes on its own,
    whatever the viewer decoded before.
    """
    width, height = BLACK_SIZE
    encoder = video_encoder(codec_name, width, height)
    picture = np.full((height * 3 // 2, width), 128, np.uint8)
    picture[:height] = 16
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    frame.pts, frame.time_base = 0, Fraction(1, VIDEO_CLOCK)
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    data = bytes(packets[0])
    assert is_keyframe(codec_name, data), codec_name
    return data


def vp8_layer(payload: bytes) -> tuple[int, bool] | None:
    """(temporal layer id, layer sync) from the VP8 payload descriptor (RFC 7741 §4.2)
    of a packet that starts a frame; None for any other packet.

    A frame starts where S = 1 and the partition index is 0. TID sits after the
    optional picture id and TL0PICIDX when T (or K) is set; a stream without
    temporal layers has everything in layer 0.
    """
    if len(payload) < 1:
        return None
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit, PID
        return None
    if not first & 0x80:  # X: no extension, no layers
        return 0, False
    if len(payload) < 2:
        return None
    flags, at = payload[1], 2
    if flags & 0x80:  # I: picture id, 7 or 15 bits
        if len(payload) <= at:
            return None
        at += 2 if payload[at] & 0x80 else 1
    if flags & 0x40:  # L: TL0PICIDX
        at += 1
    if not flags & 0x20:  # T
        return 0, False
    if len(payload) <= at:
        return None
    return (payload[at] >> 6) & 0x03, bool(payload[at] & 0x20)
