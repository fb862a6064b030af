"""Property tests: every RTP-side parser, the jitter buffer and the receiver statistics.

Parser contract (h11's fuzzer): any input parses or raises our protocol error, whether
whole, cut at any byte, or mutated; valid packets round-trip byte for byte.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.rtp.dtmf import DtmfEvent, DtmfReceiver
from trunkline.rtp.errors import RtcpProtocolError, RtpProtocolError
from trunkline.rtp.jitter import JITTER_FACTOR, JitterBuffer
from trunkline.rtp.packet import RtpPacket, parse_header_fast, parse_payload_fast
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpCompound,
    RtcpPacket,
    RtcpUnknown,
    RtpReceiverStats,
    SdesChunk,
    SenderReport,
    SourceDescription,
)

FAST = settings(max_examples=150, deadline=None)
SLOW = settings(max_examples=40, deadline=None)  # examples that loop over every cut

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
words = st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))

rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=u16,
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15).map(tuple),
    extension=st.none() | st.tuples(u16, words),
    padding=st.just(0) | st.integers(1, 255),
)


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes overwritten (at least one byte in every input)."""
    if not data:
        return st.just(data)
    edits = st.lists(st.tuples(st.integers(0, len(data) - 1), u8), min_size=1, max_size=4)

    def apply(changes: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for index, value in changes:
            out[index] = value
        return bytes(out)

    return edits.map(apply)


def check_rtp(data: bytes) -> None:
    """All three RTP parsers agree: the same fields, or each raises RtpProtocolError."""
    try:
        packet = RtpPacket.parse(data)
    except RtpProtocolError:
        packet = None
    try:
        header = parse_header_fast(data)
        payload = parse_payload_fast(data)
    except RtpProtocolError:
        assert packet is None
        return
    assert packet is not None
    fields = (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, packet.marker)
    assert header[:5] == fields == payload[:5]
    assert payload[5] == packet.payload
    assert data[header[5] :].startswith(packet.payload)


@FAST
@given(rtp_packets)
def test_rtp_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert bytes(parsed) == data
    check_rtp(data)


@FAST
@given(st.binary(max_size=300))
def test_rtp_arbitrary_bytes(data: bytes) -> None:
    check_rtp(data)


@SLOW
@given(rtp_packets)
def test_rtp_truncated_at_every_byte(packet: RtpPacket) -> None:
    data = bytes(packet)
    for cut in range(len(data)):
        check_rtp(data[:cut])


@FAST
@given(rtp_packets.map(bytes).flatmap(mutations))
def test_rtp_mutated(data: bytes) -> None:
    check_rtp(data)


@FAST
@given(st.binary(max_size=12))
def test_dtmf_event_parse(data: bytes) -> None:
    try:
        event = DtmfEvent.parse(data)
    except RtpProtocolError:
        assert len(data) != 4
        return
    if data[1] & 0x40 == 0:  # the reserved bit is dropped on parse
        assert bytes(event) == data


@FAST
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.binary(min_size=4, max_size=4))))
def test_dtmf_receiver_reports_at_most_once_per_timestamp(
    packets: list[tuple[int, bool, bytes]],
) -> None:
    receiver = DtmfReceiver()
    reports = 0
    for step, marker, payload in packets:
        if receiver.on_packet(step * 1000, marker, payload) is not None:
            reports += 1
    if receiver.flush() is not None:
        reports += 1
    assert reports <= len({step for step, _, _ in packets})


report_blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=u8,
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    last_sr=u32,
    delay_since_last_sr=u32,
)
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, 2**64 - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=st.lists(report_blocks, max_size=3),
        extension=words,
    ),
    st.builds(
        ReceiverReport, ssrc=u32, reports=st.lists(report_blocks, max_size=3), extension=words
    ),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=3),
            ),
            max_size=3,
        ),
    ),
    st.builds(Bye, sources=st.lists(u32, max_size=4), reason=st.none() | st.binary(max_size=30)),
    st.builds(RtcpUnknown, packet_type=st.integers(204, 255), count=st.integers(0, 31), body=words),
)
compounds = st.builds(RtcpCompound, st.lists(rtcp_packets, min_size=1, max_size=4))


def check_rtcp(data: bytes) -> None:
    try:
        compound = RtcpCompound.parse(data)
    except RtcpProtocolError:
        return
    # Whatever parsed serializes again (padding and reserved bits aside) and means the same.
    assert RtcpCompound.parse(bytes(compound)) == compound


@FAST
@given(compounds)
def test_rtcp_round_trip(compound: RtcpCompound) -> None:
    data = bytes(compound)
    parsed = RtcpCompound.parse(data)
    assert parsed == compound
    assert bytes(parsed) == data


@FAST
@given(st.binary(max_size=200))
def test_rtcp_arbitrary_bytes(data: bytes) -> None:
    check_rtcp(data)


@FAST
@given(st.binary(max_size=120).map(lambda b: b"\x81\xca" + b))
def test_rtcp_arbitrary_sdes_bodies(data: bytes) -> None:
    check_rtcp(data)


@SLOW
@given(compounds)
def test_rtcp_truncated_at_every_byte(compound: RtcpCompound) -> None:
    data = bytes(compound)
    for cut in range(len(data)):
        check_rtcp(data[:cut])


@FAST
@given(compounds.map(bytes).flatmap(mutations))
def test_rtcp_mutated(data: bytes) -> None:
    check_rtcp(data)


# Jitter buffer operations. A push is the sender's next packet, perhaps displaced by
# a few places (reordering, duplicates), rarely after a sequence or timestamp jump or
# from another SSRC; pops come in between at any rate.
def rarely(common: int, rare: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """``common`` except about one time in 40."""
    return st.integers(0, 39).flatmap(lambda roll: rare if roll == 0 else st.just(common))


pushes = st.tuples(
    st.just("push"),
    st.integers(-4, 4),  # displacement from the sender's position
    rarely(0, st.integers(-40000, 40000)),  # sequence jump, kept by the sender
    rarely(0, st.integers(-(2**31), 2**31)),  # timestamp glitch of this packet only
    rarely(1, st.just(2)),  # SSRC
    st.floats(0, 0.1),  # time since the previous push
)
operations = st.lists(st.one_of(pushes, st.tuples(st.just("pop"))), max_size=300)


@FAST
@given(operations, st.integers(2, 4), st.integers(0, 0xFFFF))
def test_jitter_buffer_accounting(ops: list[tuple[object, ...]], min_delay: int, base: int) -> None:
    jb = JitterBuffer(min_delay_frames=min_delay, max_delay_frames=8, capacity_frames=20)
    now = 0.0
    cursor = base
    pops = 0
    for op in ops:
        if op[0] == "pop":
            jb.pop()
            pops += 1
            continue
        _, displacement, jump, ts_glitch, ssrc, dt = op
        assert isinstance(displacement, int) and isinstance(jump, int)
        assert isinstance(ts_glitch, int) and isinstance(ssrc, int) and isinstance(dt, float)
        now += dt
        cursor += 1 + jump
        seq = cursor + displacement
        jb.push(seq & 0xFFFF, (seq * 160 + ts_glitch) & 0xFFFFFFFF, ssrc, b"x", now)
        # The target the buffer keeps cached by bands is the closed form of its docstring.
        want = min(max(math.ceil(jb.stats.jitter * (JITTER_FACTOR / 160)) + 1, min_delay), 8)
        assert jb.stats.target_delay_frames == want
    s = jb.stats
    assert s.received == (
        s.played + s.late + s.duplicates + s.overflows + s.trimmed + s.flushed + jb.buffered
    )
    assert pops == s.played + s.lost + s.underruns + s.waiting
    assert 0 <= jb.buffered <= 20
    assert min_delay <= s.target_delay_frames <= 8
    assert s.reordered <= s.received


@FAST
@given(st.lists(st.tuples(u16, u32, st.floats(0, 1)), max_size=200))
def test_receiver_stats_always_produce_a_valid_block(
    packets: list[tuple[int, int, float]],
) -> None:
    stats = RtpReceiverStats(ssrc=5)
    now = 0.0
    for seq, ts, dt in packets:
        now += dt
        stats.on_packet(seq, ts, now)
    block = stats.report_block(now)
    assert 0 <= block.fraction_lost <= 255
    report = ReceiverReport(1, [block])
    assert RtcpCompound.parse(bytes(report)).packets == [report]
