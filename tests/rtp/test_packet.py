"""RTP packets (RFC 3550 §5.1): captured fixtures, every field, truncations, the writer."""

from __future__ import annotations

import struct

import pytest

from trunkline.rtp.errors import RtpProtocolError, RtpUsageError
from trunkline.rtp.packet import (
    RtpPacket,
    RtpWriter,
    is_rtcp,
    parse_header_fast,
    parse_payload_fast,
)

from .pcap import SIPP_PCAPS, read_udp

# First packet of SIPp's g711a.pcap: PCMA (PT 8), marker, 30 ms of A-law silence (0xD5).
G711A_PACKET = bytes.fromhex("8088e6fd000000f0dee0ee8f") + b"\xd5" * 240
# The same packet cut inside its fixed header.
G711A_TRUNCATED = G711A_PACKET[:11]

# First packet of SIPp's dtmf_2833_1.pcap: telephone-event (PT 101), marker, digit 1.
DTMF_PACKET = bytes.fromhex("80e51f30000033e00e05384e010a0000")
DTMF_TRUNCATED = DTMF_PACKET[:10]


def test_parse_captured_pcma_packet() -> None:
    packet = RtpPacket.parse(G711A_PACKET)
    assert packet.payload_type == 8
    assert packet.marker is True
    assert packet.sequence == 59133
    assert packet.timestamp == 240
    assert packet.ssrc == 3739283087
    assert packet.payload == b"\xd5" * 240
    assert packet.csrc == () and packet.extension is None and packet.padding == 0
    assert bytes(packet) == G711A_PACKET


def test_parse_captured_dtmf_packet() -> None:
    packet = RtpPacket.parse(DTMF_PACKET)
    assert (packet.payload_type, packet.sequence, packet.timestamp) == (101, 7984, 13280)
    assert packet.marker is True
    assert packet.payload == bytes.fromhex("010a0000")
    assert bytes(packet) == DTMF_PACKET


@pytest.mark.parametrize("truncated", [G711A_TRUNCATED, DTMF_TRUNCATED])
def test_truncated_fixtures(truncated: bytes) -> None:
    with pytest.raises(RtpProtocolError, match="less than 12 bytes"):
        RtpPacket.parse(truncated)
    with pytest.raises(RtpProtocolError, match="less than 12 bytes"):
        parse_header_fast(truncated)


def test_fast_parsers_agree_with_full_parse() -> None:
    assert parse_header_fast(G711A_PACKET) == (8, 59133, 240, 3739283087, True, 12)
    expected = (101, 7984, 13280, 0x0E05384E, True, b"\x01\x0a\x00\x00")
    assert parse_payload_fast(DTMF_PACKET) == expected


def test_all_fields_round_trip() -> None:
    packet = RtpPacket(
        payload_type=0,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0x12345678,
        payload=b"abc",
        marker=True,
        csrc=(1, 2, 0xFFFFFFFF),
        extension=(0xBEDE, b"\x10\xff\x00\x00"),
        padding=5,
    )
    data = bytes(packet)
    # V=2, P, X, CC=3
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[-5:] == b"\x00\x00\x00\x00\x05"
    assert len(data) == 12 + 12 + 4 + 4 + 3 + 5
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert parse_header_fast(data) == (0, 65535, 0xFFFFFFFF, 0x12345678, True, 32)
    assert parse_payload_fast(data)[5] == b"abc"
    assert bytes(parsed) == data


def test_empty_payload_with_padding_only() -> None:
    packet = RtpPacket(96, 1, 2, 3, b"", padding=4)
    assert RtpPacket.parse(bytes(packet)) == packet
    assert bytes(RtpPacket.parse(bytes(packet))) == bytes(packet)


def _header(b0: int, b1: int = 0) -> bytes:
    return struct.pack("!BBHII", b0, b1, 1, 2, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "less than 12 bytes"),
        (_header(0x40), "version 1, expected 2"),
        (_header(0x00), "version 0, expected 2"),
        (_header(0x82) + b"\x00" * 7, "truncated CSRC"),
        (_header(0x90) + b"\x00\x00\x00", "truncated extension profile / length"),
        (_header(0x90) + b"\xbe\xde\x00\x02" + b"\x00" * 7, "truncated extension value"),
        (_header(0xA0), "padding length is invalid"),
        (_header(0xA0) + b"\x00\x00", "padding length is invalid"),
        (_header(0xA0) + b"\x01\x05", "padding length is invalid"),
    ],
)
def test_invalid_packets(data: bytes, message: str) -> None:
    with pytest.raises(RtpProtocolError, match=message):
        RtpPacket.parse(data)
    with pytest.raises(RtpProtocolError, match=message):
        parse_header_fast(data)
    with pytest.raises(RtpProtocolError, match=message):
        parse_payload_fast(data)


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(128, 0, 0, 0, b""),
        RtpPacket(0, 65536, 0, 0, b""),
        RtpPacket(0, 0, 1 << 32, 0, b""),
        RtpPacket(0, 0, 0, -1, b""),
        RtpPacket(0, 0, 0, 0, b"", csrc=tuple(range(16))),
        RtpPacket(0, 0, 0, 0, b"", extension=(1, b"abc")),
        RtpPacket(0, 0, 0, 0, b"", extension=(1 << 16, b"")),
        RtpPacket(0, 0, 0, 0, b"", padding=256),
    ],
)
def test_serializing_out_of_range_fields_is_a_usage_error(packet: RtpPacket) -> None:
    with pytest.raises(RtpUsageError):
        bytes(packet)


def test_is_rtcp_demux() -> None:
    assert not is_rtcp(G711A_PACKET)
    assert not is_rtcp(DTMF_PACKET)
    # RTCP SR (200) and RR (201), and the edges of RFC 5761's reserved range.
    for packet_type in (192, 200, 201, 223):
        assert is_rtcp(bytes([0x80, packet_type, 0, 1]))
    for second in (191, 224, 0x80 | 8):
        assert not is_rtcp(bytes([0x80, second, 0, 1]))
    assert not is_rtcp(b"\x80")


def test_writer_sequence_timestamp_and_marker() -> None:
    writer = RtpWriter(ssrc=0xDEADBEEF, payload_type=0, seq=65534, timestamp=0xFFFFFF00)
    first = RtpPacket.parse(writer.next_packet(b"\xff" * 160))
    second = RtpPacket.parse(writer.next_packet(b"\xff" * 160))
    third = RtpPacket.parse(writer.next_packet(b"\x7f" * 80, samples=80, marker=True))
    assert [p.sequence for p in (first, second, third)] == [65534, 65535, 0]
    assert [p.timestamp for p in (first, second, third)] == [0xFFFFFF00, 0xFFFFFFA0, 0x40]
    assert [p.marker for p in (first, second, third)] == [True, False, True]
    assert {p.ssrc for p in (first, second, third)} == {0xDEADBEEF}
    assert third.payload == b"\x7f" * 80
    assert (writer.sequence, writer.timestamp) == (1, 0x90)


def test_writer_skip_starts_a_talkspurt() -> None:
    writer = RtpWriter(ssrc=1, payload_type=8, seq=10, timestamp=1000)
    writer.next_packet(bytes(160))
    writer.skip(480)
    packet = RtpPacket.parse(writer.next_packet(bytes(160)))
    assert (packet.sequence, packet.timestamp, packet.marker) == (11, 1640, True)
    assert RtpPacket.parse(writer.next_packet(bytes(160))).marker is False


def test_writer_event_packet_keeps_stream_timestamp() -> None:
    writer = RtpWriter(ssrc=7, payload_type=0, seq=100, timestamp=8000)
    writer.next_packet(bytes(160))
    start = writer.timestamp
    data = writer.event_packet(b"\x01\x0a\x00\xa0", payload_type=101, timestamp=start, marker=True)
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.sequence, packet.timestamp) == (101, 101, 8160)
    assert packet.marker and packet.ssrc == 7
    assert (writer.sequence, writer.timestamp) == (102, 8160)
    assert bytes(packet) == data


def test_writer_rejects_bad_state() -> None:
    with pytest.raises(RtpUsageError):
        RtpWriter(ssrc=1 << 32, payload_type=0, seq=0, timestamp=0)
    with pytest.raises(RtpUsageError):
        RtpWriter(ssrc=1, payload_type=200, seq=0, timestamp=0)
    with pytest.raises(RtpUsageError):
        RtpWriter(ssrc=1, payload_type=0, seq=0, timestamp=0).event_packet(b"", 128, 0)


@pytest.mark.skipif(not (SIPP_PCAPS / "g711a.pcap").exists(), reason="SIPp pcaps not installed")
def test_every_packet_of_sipp_g711a_capture_round_trips() -> None:
    datagrams = read_udp(SIPP_PCAPS / "g711a.pcap")
    assert len(datagrams) == 236
    sequences = []
    for datagram in datagrams:
        packet = RtpPacket.parse(datagram.payload)
        assert packet.payload_type == 8 and len(packet.payload) == 240
        assert bytes(packet) == datagram.payload
        sequences.append(packet.sequence)
    assert sequences == list(range(59133, 59133 + 236))
