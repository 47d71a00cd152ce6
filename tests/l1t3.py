"""VP8 with three temporal layers (L1T3), as a browser publishes it, for bench publishers.

FFmpeg's libvpx wrapper (what PyAV offers) sets no per-frame reference flags from
Python, so its ``ts-parameters`` give layer ids over a stream where every frame still
references the one before: dropping the upper layers breaks decoding. This encodes
through libvpx itself (the copy PyAV ships, by ctypes) with the flags of the usual
0-2-1-2 pattern (libvpx's ``vp8_scalable_patterns``, WebRTC's default for three
layers):

- layer 0 (every 4th frame) references and updates only LAST;
- layer 1 (frame 2 of 4) references LAST and updates GOLDEN;
- layer 2 (frames 1 and 3) references LAST (and GOLDEN) and updates nothing;
- no frame above layer 0 updates the entropy context.

So layer 0 alone decodes, and layers 0-1 alone decode (``decodes_by_layer``; the
benches check it before they start). Used by the benches' precoded publishers, so the
server sees what it sees from browsers: the checks decode only layer-0 frames and a
forwarder can drop upper layers. ``peers.LayeredPacker`` writes each packet's layer
(``Packet.opaque``) into its VP8 payload descriptors, as a browser does.

Only the fields read here are laid out: the encoder configuration is libvpx's own
default, changed at offsets verified against those defaults before use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from collections.abc import Iterable

import av
import numpy as np

PATTERN = (0, 2, 1, 2)  # temporal layer of frame i (counted from a key frame) % 4

# vp8cx.h / vpx_encoder.h
_NO_REF_LAST, _NO_REF_GF, _NO_UPD_LAST = 1 << 16, 1 << 17, 1 << 18
_NO_UPD_ENTROPY, _NO_REF_ARF, _NO_UPD_GF, _NO_UPD_ARF = 1 << 20, 1 << 21, 1 << 22, 1 << 23
_FORCE_KF = 1
_FLAGS = (
    _NO_REF_GF | _NO_REF_ARF | _NO_UPD_GF | _NO_UPD_ARF,  # 0: LAST -> LAST
    _NO_REF_GF | _NO_REF_ARF | _NO_UPD_LAST | _NO_UPD_GF | _NO_UPD_ARF | _NO_UPD_ENTROPY,
    _NO_REF_GF | _NO_REF_ARF | _NO_UPD_LAST | _NO_UPD_ARF | _NO_UPD_ENTROPY,  # 1: -> GOLDEN
    _NO_REF_ARF | _NO_UPD_LAST | _NO_UPD_GF | _NO_UPD_ARF | _NO_UPD_ENTROPY,
)
_IMG_FMT_I420 = 0x102
_DL_REALTIME = 1
_SET_CPUUSED = 13
_FRAME_PKT = 0

# struct vpx_codec_enc_cfg: byte offsets of the unsigned ints used, and their defaults
_W, _H, _TB_NUM, _TB_DEN, _LAG, _BITRATE = 12, 16, 28, 32, 44, 112
_DEFAULTS = {_W: 320, _H: 240, _TB_NUM: 1, _TB_DEN: 30, _BITRATE: 256}


def _libvpx() -> ctypes.CDLL:
    libs = os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs")
    found = sorted(glob.glob(os.path.join(libs, "libvpx*.so*"))) or [
        ctypes.util.find_library("vpx") or "libvpx.so"
    ]
    lib = ctypes.CDLL(found[0])
    lib.vpx_codec_vp8_cx.restype = ctypes.c_void_p
    lib.vpx_codec_enc_config_default.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
    lib.vpx_codec_enc_init_ver.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_int
    ]  # fmt: skip
    lib.vpx_img_wrap.restype = ctypes.c_void_p
    lib.vpx_img_wrap.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p
    ]  # fmt: skip
    lib.vpx_codec_encode.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_ulong, ctypes.c_long,
        ctypes.c_ulong,
    ]  # fmt: skip
    lib.vpx_codec_get_cx_data.restype = ctypes.c_void_p
    lib.vpx_codec_get_cx_data.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vpx_codec_destroy.argtypes = [ctypes.c_void_p]
    lib.vpx_img_free.argtypes = [ctypes.c_void_p]
    return lib


def encode_l1t3(
    pictures: Iterable[np.ndarray], width: int, height: int, fps: int, kbps: int,
    key_every: int,
) -> list[tuple[bytes, int]]:  # fmt: skip
    """Each yuv420p picture (``height * 3 // 2`` rows of ``width``) as one VP8 frame and
    its temporal layer; every ``key_every``-th from the first is a key frame, and the
    pattern starts again at each."""
    lib = _libvpx()
    iface = lib.vpx_codec_vp8_cx()
    cfg = ctypes.create_string_buffer(4096)
    if lib.vpx_codec_enc_config_default(iface, cfg, 0) != 0:
        raise RuntimeError("libvpx: no default VP8 configuration")

    def field(offset: int) -> ctypes.c_uint:
        return ctypes.c_uint.from_buffer(cfg, offset)

    wrong = {o: field(o).value for o, v in _DEFAULTS.items() if field(o).value != v}
    if wrong:
        raise RuntimeError(f"libvpx's configuration is laid out differently: {wrong}")
    for offset, value in ((_W, width), (_H, height), (_TB_NUM, 1), (_TB_DEN, fps),
                          (_LAG, 0), (_BITRATE, kbps)):  # fmt: skip
        field(offset).value = value
    ctx = ctypes.create_string_buffer(1024)
    # The ABI version is a build constant of libvpx's headers, which are not here: the
    # library refuses every other number (VPX_CODEC_ABI_MISMATCH) without side effects.
    if not any(lib.vpx_codec_enc_init_ver(ctx, iface, cfg, 0, v) == 0 for v in range(1, 64)):
        raise RuntimeError("libvpx: the VP8 encoder would not start")
    out: list[tuple[bytes, int]] = []
    try:
        lib.vpx_codec_control_(ctx, _SET_CPUUSED, ctypes.c_int(8))
        for index, picture in enumerate(pictures):
            data = np.ascontiguousarray(picture, dtype=np.uint8)
            image = lib.vpx_img_wrap(None, _IMG_FMT_I420, width, height, 1,
                                     data.ctypes.data)  # fmt: skip
            phase = index % key_every % len(PATTERN)
            flags = _FLAGS[phase] | (_FORCE_KF if index % key_every == 0 else 0)
            try:
                if lib.vpx_codec_encode(ctx, image, index, 1, flags, _DL_REALTIME) != 0:
                    raise RuntimeError(f"libvpx: frame {index} was not encoded")
            finally:
                lib.vpx_img_free(image)
            it = ctypes.c_void_p(None)
            frame = b""
            while packet := lib.vpx_codec_get_cx_data(ctx, ctypes.byref(it)):
                if ctypes.c_int.from_address(packet).value == _FRAME_PKT:
                    buf = ctypes.c_void_p.from_address(packet + 8).value
                    size = ctypes.c_size_t.from_address(packet + 16).value
                    frame += ctypes.string_at(buf, size)
            if not frame:
                raise RuntimeError(f"libvpx dropped frame {index}")
            out.append((frame, PATTERN[phase]))
    finally:
        lib.vpx_codec_destroy(ctx)
    return out


def decodes_by_layer(frames: list[tuple[bytes, int]]) -> bool:
    """Layer 0 alone, and layers 0-1 alone, decode to the same pictures as every frame."""

    def decode(top: int) -> dict[int, np.ndarray]:
        decoder = av.CodecContext.create("libvpx", "r")
        pictures = {}
        for index, (data, tid) in enumerate(frames):
            if tid <= top:
                for picture in decoder.decode(av.Packet(data)):
                    pictures[index] = picture.to_ndarray()
        return pictures

    every = decode(2)
    return len(every) == len(frames) and all(
        np.array_equal(every[i], picture) for top in (0, 1) for i, picture in decode(top).items()
    )

