"""media.rtpsend: the native send path writes the very packets the Python path writes.

Real UDP sockets on 127.0.0.1, real libsrtp sessions (pylibsrtp's) on both sides: two
sender sessions with one key give the same ciphertext for the same packet, so the
native path's datagrams are compared byte for byte with what ``RtpOut._packets`` (the
Python path) makes, and read back through a receiving session."""

from __future__ import annotations

import asyncio
import os
import socket
import types

import pytest
from pylibsrtp import Policy, Session

from media import datagrams, rtpsend
from media.codecs import H264, OPUS, VP8
from media.rtpout import _VP8_DESCRIPTOR, _VP8_LAYERED, Packetised, RtpOut, _descriptor, _prefix

from conftest import received_datagrams

KEY = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16-byte key + 14-byte salt
SSRC, PT = 0x1234_5678, 96
EXTENSIONS = b"\xbe\xde\x00\x02" + b"\x10\x30\x32\x00\x00\x00\x00\x00"  # mid + 3 bytes pad


def test_the_native_path_is_built_and_on() -> None:
    assert rtpsend.available()  # `pip install -e .` compiles media/_rtpsend.c


def _session(direction: int) -> Session:
    policy = Policy(key=KEY, ssrc_type=direction,
                    srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)  # fmt: skip
    return Session(policy)


def _python_packets(session: Session, frame: Packetised, seq: int, ts: int) -> list[bytes]:
    """What the Python path (``RtpOut._packets``) writes, on ``session``."""
    sender = types.SimpleNamespace(_ssrc=SSRC, _rtx_ssrc=0, send=None,
                                   transport=types.SimpleNamespace(_tx_srtp=session))  # fmt: skip
    out = RtpOut(sender, "video")  # type: ignore[arg-type]  # only what _packets reads
    out._pt, out._picture_id = PT, 300
    return out._packets(frame, seq, ts, EXTENSIONS)


H264_ACCESS_UNIT = b"\0\0\0\1\x67" + os.urandom(30) + b"\0\0\0\1\x65" + os.urandom(4000)


def _frames() -> list[Packetised]:
    """A layered VP8 key frame too big for one segmented write and for the C side's
    static buffers, a plain VP8 frame, an Opus packet, H.264 with unequal packets."""
    return [
        Packetised(os.urandom(1295 * 70 + 17), 0, VP8, layer=0),
        Packetised(os.urandom(3000), 0, VP8, layer=None),
        Packetised(os.urandom(80), 0, OPUS),
        Packetised(H264_ACCESS_UNIT, 0, H264),
    ]


async def test_native_packets_equal_the_python_paths_byte_for_byte(
    udp_link: tuple[asyncio.DatagramTransport, socket.socket],
) -> None:
    transport, rx = udp_link
    native, python = _session(Policy.SSRC_ANY_OUTBOUND), _session(Policy.SSRC_ANY_OUTBOUND)
    receiver = _session(Policy.SSRC_ANY_INBOUND)
    addr = rx.getsockname()
    to = rtpsend.sockaddr(addr)
    assert to is not None
    seq, ts = 65_530, 0xFFFF_FFF0  # wraps inside the first frame
    for frame in _frames():
        fd = rtpsend.open_socket(transport)
        assert fd >= 0
        rtpsend.send_frame(transport, fd, to, rtpsend.session_address(native), frame.chunks,
                           PT, seq, ts, SSRC, EXTENSIONS, _descriptor(frame), 300,
                           frame.layer or 0, addr)  # fmt: skip
        expected = _python_packets(python, frame, seq, ts)
        got = await received_datagrams(rx, len(expected))
        assert got == expected
        clear = [receiver.unprotect(p) for p in got]
        assert [int.from_bytes(p[2:4], "big") for p in clear] == [
            (seq + i) & 0xFFFF for i in range(len(clear))
        ]
        assert [p[1] >> 7 for p in clear] == [0] * (len(clear) - 1) + [1]  # marker: last
        payload = b"".join(p[12 + len(EXTENSIONS) + len(_prefix(frame, 300, 1)) :] for p in clear)
        assert payload == b"".join(frame.chunks)
        seq, ts = (seq + len(clear)) & 0xFFFF, (ts + 6000) & 0xFFFF_FFFF
    assert datagrams.segmentation_enabled()


def test_descriptors_match_rfc_7741() -> None:
    layered = Packetised(b"x", 0, VP8, layer=2)
    assert _prefix(layered, 0x1ABC, 0) == _VP8_LAYERED.pack(0x90, 0xA0, 0x9ABC, 0xA0)
    plain = Packetised(b"x", 0, VP8)
    assert _prefix(plain, 5, 3) == _VP8_DESCRIPTOR.pack(0x80, 0x80, 0x8005)
    assert _prefix(Packetised(b"x", 0, OPUS), 5, 0) == b""


async def test_what_the_kernel_refuses_goes_through_asyncio_in_order(
    udp_link: tuple[asyncio.DatagramTransport, socket.socket],
) -> None:
    transport, rx = udp_link
    native, python = _session(Policy.SSRC_ANY_OUTBOUND), _session(Policy.SSRC_ANY_OUTBOUND)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad_fd = closed.detach()
    os.close(bad_fd)  # EBADF on the direct write
    addr = rx.getsockname()
    to = rtpsend.sockaddr(addr)
    assert to is not None
    frame = Packetised(os.urandom(1295 * 5), 0, VP8, layer=1)
    rtpsend.send_frame(transport, bad_fd, to, rtpsend.session_address(native), frame.chunks,
                       PT, 10, 900, SSRC, EXTENSIONS, _descriptor(frame), 300, 1, addr)  # fmt: skip
    expected = _python_packets(python, frame, 10, 900)
    assert await received_datagrams(rx, len(frame.chunks)) == expected
    assert datagrams.segmentation_enabled()  # a bad descriptor is no refusal of segmentation


def test_addresses_and_sockets_the_native_path_refuses() -> None:
    assert rtpsend.sockaddr(("mdns-name.local", 5000)) is None
    v4 = rtpsend.sockaddr(("10.1.2.3", 5000))
    assert v4 is not None and len(v4) == 16 and v4[2:8] == b"\x13\x88\x0a\x01\x02\x03"
    v6 = rtpsend.sockaddr(("fe80::1", 5000, 0, 3))
    assert v6 is not None and len(v6) == 28 and v6[2:4] == b"\x13\x88"

    class Relayed(asyncio.DatagramTransport):  # a TURN allocation's: no socket of its own
        pass

    assert rtpsend.open_socket(Relayed()) == -1


async def test_a_transport_with_queued_packets_is_not_written_past(
    udp_link: tuple[asyncio.DatagramTransport, socket.socket],
) -> None:
    transport, _ = udp_link
    assert rtpsend.open_socket(transport) >= 0
    transport._buffer.append((b"queued", ("127.0.0.1", 9)))  # type: ignore[attr-defined]
    try:
        assert rtpsend.open_socket(transport) == -1
    finally:
        transport._buffer.clear()  # type: ignore[attr-defined]
    transport.close()
    assert rtpsend.open_socket(transport) == -1


def test_a_payload_too_large_sends_nothing() -> None:
    session = _session(Policy.SSRC_ANY_OUTBOUND)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        to = rtpsend.sockaddr(rx.getsockname())
        chunks = [bytes(100), bytes(4000)]
        with pytest.raises(ValueError, match="too large"):
            rtpsend._rtpsend.send_frame(tx.fileno(), to, rtpsend._PROTECT,  # type: ignore[union-attr]
                                        rtpsend.session_address(session), chunks, PT, 1, 1,
                                        SSRC, b"", 0, 0, 0, True)  # fmt: skip
        with pytest.raises(ValueError, match="descriptor kind"):
            rtpsend._rtpsend.send_frame(tx.fileno(), to, rtpsend._PROTECT,  # type: ignore[union-attr]
                                        rtpsend.session_address(session), [bytes(10)], PT, 1,
                                        1, SSRC, b"", 3, 0, 0, True)  # fmt: skip
        with pytest.raises(BlockingIOError):
            rx.recv(2048)
    finally:
        rx.close()
        tx.close()
