"""media.jitter: a lost packet holds frames back for at most max_wait, then is skipped."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from media.codecs import vp8_layer
from media.jitter import ArrivalOrderAudioBuffer, BoundedJitterBuffer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frames(count: int, packets_per_frame: int = 3, first_seq: int = 65_530) -> list[RtpPacket]:
    """Packets of ``count`` frames, sequence numbers wrapping past 65535."""
    out = []
    for index in range(count * packets_per_frame):
        frame, part = divmod(index, packets_per_frame)
        packet = RtpPacket(sequence_number=(first_seq + index) % 65536, timestamp=frame * 3000,
                           marker=int(part == packets_per_frame - 1))  # fmt: skip
        packet._data = bytes([frame, part])  # type: ignore[attr-defined]
        out.append(packet)
    return out


def feed(buffer: JitterBuffer, packets: list[RtpPacket], clock: Clock | None = None):  # type: ignore[no-untyped-def]
    out, plis = [], 0
    for packet in packets:
        if clock is not None:
            clock.now += 0.02
        pli, frame = buffer.add(packet)
        plis += pli
        if frame is not None:
            out.append(frame)
    return out, plis


def test_without_loss_it_hands_out_what_aiortcs_buffer_does() -> None:
    packets = frames(20)
    ours, theirs = feed(BoundedJitterBuffer(clock=Clock()), packets), feed(
        JitterBuffer(512, is_video=True), packets)  # fmt: skip
    assert [(f.data, f.timestamp) for f in ours[0]] == [(f.data, f.timestamp) for f in theirs[0]]
    assert len(ours[0]) == 19 and not any(f.gap for f in ours[0])  # type: ignore[attr-defined]


def test_a_hole_filled_in_time_loses_nothing() -> None:
    clock = Clock()
    buffer = BoundedJitterBuffer(clock=clock)
    packets = frames(10)
    lost = packets.pop(7)  # frame 2's middle packet
    out, _ = feed(buffer, packets[:12], clock)  # 0.24 s of later packets
    out2, _ = feed(buffer, [lost, *packets[12:]], clock)
    timestamps = [f.timestamp for f in out + out2]
    assert timestamps[:3] == [0, 3000, 6000] and buffer.skips == 0


def test_a_lost_packet_is_given_up_after_max_wait_with_a_pli_and_a_gap_mark() -> None:
    clock = Clock()
    buffer = BoundedJitterBuffer(clock=clock, max_wait=0.25)
    packets = frames(40)
    del packets[7]  # never comes
    out, plis = feed(buffer, packets, clock)
    assert buffer.skips == 1 and plis >= 1
    timestamps = [f.timestamp for f in out]
    assert timestamps[:2] == [0, 3000]
    resumed = out[2]
    assert resumed.gap  # type: ignore[attr-defined]
    # It resumes with the newest frame begun after the hole, not a backlog of frames.
    assert 2 * 3000 < resumed.timestamp and timestamps == sorted(timestamps)
    assert len(out) >= 30
    assert not any(f.gap for f in out[3:])  # type: ignore[attr-defined]


def test_aiortcs_own_buffer_would_have_stalled() -> None:
    packets = frames(40)
    del packets[7]
    out, _ = feed(JitterBuffer(512, is_video=True), packets)
    assert [f.timestamp for f in out] == [0, 3000]  # nothing after the hole


def vp8_frames(count: int, packets_per_frame: int = 3, first_seq: int = 65_530) -> list[RtpPacket]:
    """As ``frames``, each payload with a VP8 descriptor: S = 1 on a frame's first packet."""
    out = frames(count, packets_per_frame, first_seq)
    for index, packet in enumerate(out):
        start = index % packets_per_frame == 0
        packet.payload = bytes([0x10 if start else 0x00]) + packet._data  # type: ignore[attr-defined]
    return out


def vp8_buffer() -> BoundedJitterBuffer:
    buffer = BoundedJitterBuffer(clock=Clock())
    buffer.read_layer = vp8_layer
    return buffer


def test_a_vp8_frame_comes_out_with_its_last_packet_not_the_next_frames_first() -> None:
    buffer, packets = vp8_buffer(), vp8_frames(5)
    for index in range(5):
        out, _ = feed(buffer, packets[index * 3 : index * 3 + 3])
        assert [f.timestamp for f in out] == [index * 3000]  # no later packet needed
        assert out[0].data == b"".join(bytes([index, part]) for part in range(3))
        assert out[0].layer == (0, False)  # type: ignore[attr-defined]


def test_a_frame_whose_middle_packet_comes_last_comes_out_with_it() -> None:
    buffer, packets = vp8_buffer(), vp8_frames(2)
    middle = packets.pop(1)
    out, _ = feed(buffer, packets[:2])  # frame 0's first and last packets
    assert out == []
    out, _ = feed(buffer, [middle])
    assert [f.timestamp for f in out] == [0]
    out, _ = feed(buffer, packets[2:])
    assert [f.timestamp for f in out] == [3000]


def test_a_stream_joined_mid_frame_goes_on_as_aiortcs_buffer_until_a_frame_start() -> None:
    """The first packets belong to a frame begun earlier: not known whole, it comes out
    when the next frame begins (aiortc's rule); from there frames come out whole."""
    buffer, packets = vp8_buffer(), vp8_frames(3)[1:]  # frame 0 without its first packet
    out, _ = feed(buffer, packets[:2])  # the rest of frame 0, marker included
    assert out == []
    out, _ = feed(buffer, packets[2:3])  # frame 1's first packet
    assert [f.timestamp for f in out] == [0]
    out, _ = feed(buffer, packets[3:])
    assert [f.timestamp for f in out] == [3000, 6000]


def test_with_whole_frames_out_early_a_lost_packet_is_still_given_up_after_max_wait() -> None:
    clock = Clock()
    buffer = BoundedJitterBuffer(clock=clock, max_wait=0.25)
    buffer.read_layer = vp8_layer
    packets = vp8_frames(40)
    del packets[7]  # frame 2's middle packet never comes
    out, plis = feed(buffer, packets, clock)
    timestamps = [f.timestamp for f in out]
    assert timestamps[:2] == [0, 3000] and buffer.skips == 1 and plis >= 1
    assert out[2].gap and timestamps == sorted(timestamps) and len(out) >= 30  # type: ignore[attr-defined]


def audio_packets(seqs: list[int]) -> list[RtpPacket]:
    out = []
    for seq in seqs:
        packet = RtpPacket(sequence_number=seq % 65536, timestamp=seq * 960 % 2**32)
        packet._data = seq.to_bytes(4, "big")  # type: ignore[attr-defined]
        out.append(packet)
    return out


def test_audio_goes_on_packet_by_packet_where_aiortcs_buffer_holds_four_back() -> None:
    packets = audio_packets(list(range(65_530, 65_550)))  # wraps past 65535
    ours, _ = feed(ArrivalOrderAudioBuffer(), packets)
    theirs, _ = feed(JitterBuffer(capacity=16, prefetch=4), packets)
    assert [f.data for f in ours] == [p._data for p in packets]  # type: ignore[attr-defined]
    assert len(theirs) == len(packets) - 4  # the last four still inside when the talk stops


def test_late_and_repeated_audio_packets_are_dropped_so_time_never_goes_back() -> None:
    buffer = ArrivalOrderAudioBuffer()
    out, _ = feed(buffer, audio_packets([65_534, 65_535, 1, 0, 1, 2, 65_535, 3]))
    assert [f.timestamp for f in out] == [
        p.timestamp for p in audio_packets([65_534, 65_535, 1, 2, 3])
    ]
    assert buffer.late == 3
