"""media.rtpout's header extensions read back by aiortc's own parser."""

from __future__ import annotations

import struct
import types

import pytest
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media.rtpout import ABS_SEND_TIME_URI, MID_URI, NTP_EPOCH, RtpOut


async def _started(parameters: RTCRtpSendParameters) -> None:
    return None


@pytest.mark.parametrize(
    ("extensions", "mid"),
    [
        ([], "0"),
        ([(1, MID_URI)], "0"),
        ([(3, ABS_SEND_TIME_URI)], "0"),
        ([(4, MID_URI), (2, ABS_SEND_TIME_URI)], "1"),
        ([(4, MID_URI), (2, ABS_SEND_TIME_URI)], "audio-12"),
    ],
)
def test_mid_and_abs_send_time_read_back(extensions: list[tuple[int, str]], mid: str) -> None:
    headers = [RTCRtpHeaderExtensionParameters(id=i, uri=uri) for i, uri in extensions]
    parameters = RTCRtpSendParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)],
        headerExtensions=headers,
        muxId=mid,
    )
    out = RtpOut(types.SimpleNamespace(_ssrc=1, _rtx_ssrc=2, send=_started), "video")  # type: ignore[arg-type]
    out._configure(parameters)
    now = 1_765_000_000.123
    block = out._extensions(now)
    assert len(block) % 4 == 0
    first = 0x90 if block else 0x80
    ids = HeaderExtensionsMap()
    ids.configure(parameters)
    packet = RtpPacket.parse(struct.pack("!BBHII", first, 96, 7, 9, 1) + block + b"x", ids)
    uris = {uri for _, uri in extensions}
    assert packet.extensions.mid == (mid if MID_URI in uris else None)
    expected = int((now + NTP_EPOCH) * 262_144) & 0xFFFFFF
    assert packet.extensions.abs_send_time == (expected if ABS_SEND_TIME_URI in uris else None)
    assert packet.payload == b"x"
