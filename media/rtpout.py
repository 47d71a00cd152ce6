"""One viewer's outgoing RTP stream, written straight from the forwarding loop.

aiortc's ``RTCRtpSender`` runs a task per stream that awaits the next frame,
packetises it, builds each packet with its header extensions, and awaits three
layers of transport per packet. For a forwarded frame shown to N viewers that is N
task wake-ups and N packetisations of the same bytes. Here a frame is packetised once
per publisher (``Packetised``) and each viewer's ``RtpOut`` only writes a 12-byte
header, the viewer's own header extensions and (VP8) picture id, protects the packet
with the viewer's SRTP session and hands the frame's packets to the socket of the
viewer's selected ICE pair (``media.datagrams``: one segmented write when the kernel
allows), synchronously, from the feed's own call.

The ``RTCRtpSender`` still exists and still does what is not per packet: its task
sends RTCP sender reports (from the counters kept here), answers RTCP through
``_handle_rtcp_packet`` (a NACK is retransmitted from this stream's history, with RTX
when negotiated), and stops the stream. Its own RTP task waits on the slot's track,
which never yields.

Private aiortc 1.16 / aioice 0.13 attributes used, all read where they are set once
per connection: the sender's negotiated parameters (captured from ``send``),
``sender._ssrc`` / ``_rtx_ssrc``, the SR counters ``_RTCRtpSender__*``, the DTLS
transport's ``_tx_srtp`` and state, and the ICE connection's nominated pair.

Invariants:
- Nothing is sent before the DTLS handshake has finished; a frame offered earlier is
  refused (``send`` returns False) so the caller can wait for a key frame.
- Sequence numbers, the RTP timestamp origin, the SSRC and the VP8 picture id are this
  stream's own, continuous whatever the source; only frames actually sent advance them.
- A retransmission carries the original packet's bytes, under RTX when negotiated.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from media import rtpsend
from media.codecs import H264, VP8
from media.datagrams import send_packets

HISTORY = 128  # frames kept for retransmission: at least as many packets as aiortc keeps
PACKET_MAX = 1300  # bytes of payload per packet, as aiortc's packetisers
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970

_HEADER = struct.Struct("!BBHII")
_VP8_DESCRIPTOR = struct.Struct("!BBH")  # X|S, I, M|picture id
_VP8_LAYERED = struct.Struct("!BBHB")  # X|S, I|T, M|picture id, TID|Y


class Packetised:
    """One encoded frame cut into RTP payloads once, shared by every viewer.

    VP8 chunks carry no payload descriptor: each viewer prefixes its own, with its own
    picture id. H.264 and Opus payloads are final. ``layer``: the VP8 temporal layer to
    mark in the descriptor (RFC 7741 T bit and TID), as a publisher of layers does; the
    server's forwarded frames carry none (a viewer decodes whatever it is sent).
    """

    __slots__ = ("_chunks", "_octets", "codec", "data", "layer", "pts")

    def __init__(self, data: bytes, pts: int, codec: str, layer: int | None = None) -> None:
        self.data = data
        self.pts = pts
        self.codec = codec
        self.layer = layer
        self._chunks: list[bytes] | None = None
        self._octets = -1

    @property
    def chunks(self) -> list[bytes]:
        if self._chunks is None:
            self._chunks = _cut(self.codec, self.data)
        return self._chunks

    @property
    def octets(self) -> int:
        """Payload bytes a viewer is sent: the chunks and their VP8 descriptors."""
        if self._octets < 0:
            chunks = self.chunks
            self._octets = sum(map(len, chunks)) + len(_prefix(self, 0, 1)) * len(chunks)
        return self._octets


# What one viewer was sent of a frame: first sequence number, packet count, RTP
# timestamp, the frame, its VP8 picture id.
_Sent = tuple[int, int, int, Packetised, int]


def _descriptor(frame: Packetised) -> int:
    if frame.codec != VP8:
        return rtpsend.NO_DESCRIPTOR
    return rtpsend.VP8_DESCRIPTOR if frame.layer is None else rtpsend.VP8_LAYERED


def _prefix(frame: Packetised, picture: int, index: int) -> bytes:
    """The VP8 payload descriptor of ``frame``'s packet ``index`` (none for other
    codecs), as media/_rtpsend.c writes it."""
    if frame.codec != VP8:
        return b""
    start = 0x90 if index == 0 else 0x80
    if frame.layer is None:
        return _VP8_DESCRIPTOR.pack(start, 0x80, 0x8000 | picture)
    return _VP8_LAYERED.pack(start, 0xA0, 0x8000 | picture, (frame.layer & 3) << 6 | 0x20)


def _cut(codec: str, data: bytes) -> list[bytes]:
    if codec == VP8:
        room = PACKET_MAX - _VP8_LAYERED.size  # room for either descriptor
        return [data[i : i + room] for i in range(0, len(data), room)] or [b""]
    if codec == H264:
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))
    return [data]


def _extension_ids(parameters: RTCRtpSendParameters) -> tuple[int | None, int | None]:
    mid = ast = None
    for ext in parameters.headerExtensions:
        if ext.uri == MID_URI:
            mid = ext.id
        elif ext.uri == ABS_SEND_TIME_URI:
            ast = ext.id
    return mid, ast


class RtpOut:
    """The RTP stream ``sender`` carries, written by ``send``; see the module doc."""

    def __init__(
        self, sender: RTCRtpSender, kind: str, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        self.kind = kind
        self._sender = sender
        self._configured = False
        self._pt = 0
        self._rtx_pt: int | None = None
        self._ssrc = sender._ssrc
        self._rtx_ssrc = sender._rtx_ssrc
        self._mid_ext = b""  # the one-byte header extension block without abs-send-time
        self._ext_head = b""  # the extension block up to abs-send-time's value
        self._ext_pad = b""
        self._ast_id: int | None = None
        self._seq = random.getrandbits(15)  # below 2**15 at first, as aiortc
        self._rtx_seq = random.getrandbits(15)
        self._origin = random.getrandbits(32)
        self._picture_id = random.getrandbits(15)
        self._history: list[_Sent | None] = [None] * HISTORY  # by frame count
        self._frames = 0
        self._to_pair: Any = None  # the ICE pair self._to is the address of
        self._to: bytes | None = None  # its remote address as a sockaddr
        self._session: Any = None  # the SRTP session self._session_at points to
        self._session_at = 0
        self.packets = 0
        self.octets = 0
        start = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            # aiortc starts a sender once its DTLS transport is connected: from here
            # on packets can go (``on_ready``: a late viewer starts at once).
            self._configure(parameters)
            await start(parameters)
            on_ready()

        sender.send = send  # type: ignore[method-assign]  # captures what was negotiated
        sender._retransmit = self.retransmit  # type: ignore[method-assign]  # aiortc has no hook

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        codec = parameters.codecs[0]
        assert codec.payloadType is not None  # aiortc numbers every negotiated codec
        self._pt = codec.payloadType
        for other in parameters.codecs:
            if other.mimeType.lower().endswith("/rtx") and (
                other.parameters.get("apt") == codec.payloadType
            ):
                self._rtx_pt = other.payloadType
        mid_id, self._ast_id = _extension_ids(parameters)
        mid = (parameters.muxId or "").encode()
        if mid_id is not None and 0 < len(mid) <= 16:
            self._mid_ext = bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
        # The header extension block, all but abs-send-time's 3 bytes fixed from here on:
        # mid, then abs-send-time, padded to 32-bit words.
        body = len(self._mid_ext) + (4 if self._ast_id is not None else 0)
        words, pad = -(-body // 4), -body % 4
        self._ext_head = b"\xbe\xde" + words.to_bytes(2, "big") + self._mid_ext if body else b""
        if self._ast_id is not None:
            self._ext_head += bytes([(self._ast_id << 4) | 2])
        self._ext_pad = bytes(pad)
        self._configured = True

    @property
    def ready(self) -> bool:
        return self._configured and self._sender.transport._state == State.CONNECTED

    def send(self, frame: Packetised, timestamp: int, ntp: int, now: float) -> bool:
        """Send ``frame`` at RTP ``timestamp`` (this stream's clock, before its random
        origin); ``ntp``: the NTP time now, for sender reports. False: not sent (the
        connection is not up yet)."""
        dtls = self._sender.transport
        if not self._configured or dtls._state != State.CONNECTED:
            return False
        pair = self._pair()
        if pair is None:
            return False
        ts = (timestamp + self._origin) & 0xFFFFFFFF
        extensions = self._extensions(now)
        chunks = frame.chunks
        seq, picture = self._seq, self._picture_id
        transport = pair.protocol.transport
        if transport is not None:  # None once the ICE connection closed
            fd = rtpsend.open_socket(transport) if rtpsend.available() else -1
            to = self._native_target(dtls, pair) if fd >= 0 else None
            if to is not None:
                rtpsend.send_frame(transport, fd, to, self._session_at, chunks, self._pt,
                                   seq, ts, self._ssrc, extensions, _descriptor(frame),
                                   picture, frame.layer or 0, pair.remote_addr)  # fmt: skip
            else:
                send_packets(transport, self._packets(frame, seq, ts, extensions),
                             pair.remote_addr)  # fmt: skip
        self._history[self._frames % HISTORY] = (seq, len(chunks), ts, frame, picture)
        self._frames += 1
        self._seq = (seq + len(chunks)) & 0xFFFF
        if frame.codec == VP8:
            self._picture_id = (picture + 1) & 0x7FFF
        self.packets += len(chunks)
        self.octets += frame.octets
        sender = self._sender  # the counters its RTCP task puts in sender reports
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]  # private, 1.16
        sender._RTCRtpSender__rtp_timestamp = ts  # type: ignore[attr-defined]  # private, 1.16
        sender._RTCRtpSender__packet_count = self.packets  # type: ignore[attr-defined]  # private
        sender._RTCRtpSender__octet_count = self.octets  # type: ignore[attr-defined]  # private
        return True

    def _packets(self, frame: Packetised, seq: int, ts: int, extensions: bytes) -> list[bytes]:
        """``frame``'s packets from ``seq`` on, protected: the Python twin of
        media/_rtpsend.c (kept lean: it runs per packet per viewer where that can't)."""
        protect, header = self._sender.transport._tx_srtp.protect, _HEADER.pack
        first = 0x90 if extensions else 0x80
        pt, ssrc, picture = self._pt, self._ssrc, self._picture_id
        last = len(frame.chunks) - 1
        return [protect(b"".join((header(first, (0x80 if i == last else 0) | pt,
                                         (seq + i) & 0xFFFF, ts, ssrc),
                                  extensions, _prefix(frame, picture, i), chunk)))
                for i, chunk in enumerate(frame.chunks)]  # fmt: skip

    def _native_target(self, dtls: RTCDtlsTransport, pair: Any) -> bytes | None:
        """``pair``'s remote address as a sockaddr for the native path, with the DTLS
        transport's SRTP session in ``_session_at``; None: the native path can't take it
        (both kept per pair and per session: they change only on a restart)."""
        if pair is not self._to_pair:
            self._to_pair, self._to = pair, rtpsend.sockaddr(pair.remote_addr)
        srtp = dtls._tx_srtp
        if srtp is not self._session:
            self._session = srtp
            self._session_at = rtpsend.session_address(srtp) if srtp is not None else 0
        return self._to if self._session_at else None

    async def retransmit(self, sequence_number: int) -> None:
        """The viewer NACKed ``sequence_number``: resend it if still in the history
        (replaces the sender's ``_retransmit``, which reads a history nothing fills)."""
        pair = self._pair() if self.ready else None
        kept = self._find(sequence_number)
        if kept is None or pair is None:
            return
        (_, count, ts, frame, picture), index = kept
        marker = index == count - 1
        prefix, chunk = _prefix(frame, picture, index), frame.chunks[index]
        extensions = self._extensions(time.time())
        if self._rtx_pt is None:
            packet = self._protect(self._pt, sequence_number, ts, self._ssrc, marker,
                                   extensions, prefix, chunk)  # fmt: skip
        else:
            rtx_seq = self._rtx_seq
            self._rtx_seq = (rtx_seq + 1) & 0xFFFF
            original = struct.pack("!H", sequence_number) + prefix
            packet = self._protect(self._rtx_pt, rtx_seq, ts, self._rtx_ssrc, marker,
                                   extensions, original, chunk)  # fmt: skip
        self._transmit(pair, [packet])

    def _find(self, seq: int) -> tuple[_Sent, int] | None:
        """The kept frame that packet ``seq`` belonged to, and its index in it."""
        for sent in self._history:
            if sent is not None and (seq - sent[0]) & 0xFFFF < sent[1]:
                return sent, (seq - sent[0]) & 0xFFFF
        return None

    def _pair(self) -> Any:
        ice = self._sender.transport.transport._connection
        return ice._nominated.get(1)

    def _extensions(self, now: float) -> bytes:
        """The header extension block: mid, then abs-send-time (6.18 fixed-point
        seconds, mod 64 s), padded to 32-bit words."""
        if self._ast_id is None:
            return self._ext_head + self._ext_pad
        return self._ext_head + _abs_send_time(now) + self._ext_pad

    def _protect(
        self,
        pt: int,
        seq: int,
        ts: int,
        ssrc: int,
        marker: bool,
        extensions: bytes,
        prefix: bytes,
        chunk: bytes,
    ) -> bytes:
        """One RTP packet, SRTP-protected with this viewer's session."""
        first = 0x90 if extensions else 0x80
        header = _HEADER.pack(first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
        protect = self._sender.transport._tx_srtp.protect
        return protect(b"".join((header, extensions, prefix, chunk)))

    @staticmethod
    def _transmit(pair: Any, packets: list[bytes]) -> None:
        transport = pair.protocol.transport
        if transport is not None:  # None once the ICE connection closed
            send_packets(transport, packets, pair.remote_addr)


_last_ast: tuple[float, bytes] = (-1.0, b"")  # every viewer of a frame is sent at one `now`


def _abs_send_time(now: float) -> bytes:
    global _last_ast
    if _last_ast[0] != now:
        _last_ast = (now, (int((now + NTP_EPOCH) * 262_144) & 0xFFFFFF).to_bytes(3, "big"))
    return _last_ast[1]


def ntp_now(now: float) -> int:
    """NTP time (32.32 fixed point) of the Unix time ``now``."""
    return int((now + NTP_EPOCH) * 4_294_967_296)

