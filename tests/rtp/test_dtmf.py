"""RFC 4733 telephone-events: payloads, the receiver against SIPp captures, the sender."""

from __future__ import annotations

import pytest

from trunkline.rtp.dtmf import DIGITS, END_RETRANSMITS, DtmfEvent, DtmfReceiver, DtmfSender
from trunkline.rtp.errors import RtpProtocolError, RtpUsageError
from trunkline.rtp.packet import RtpPacket, RtpWriter, parse_payload_fast

from .pcap import SIPP_PCAPS, read_udp

# The end packet of SIPp's dtmf_2833_1.pcap (sent three times): digit 1, E bit, volume 10,
# 2240 samples (280 ms).
END_PAYLOAD = bytes.fromhex("018a08c0")
END_TRUNCATED = END_PAYLOAD[:3]

SIPP_FILES = {f"dtmf_2833_{d}.pcap": d for d in "0123456789"} | {
    "dtmf_2833_pound.pcap": "#",
    "dtmf_2833_star.pcap": "*",
}


def test_parse_captured_end_payload() -> None:
    event = DtmfEvent.parse(END_PAYLOAD)
    assert event == DtmfEvent(event=1, end=True, volume=10, duration=2240)
    assert bytes(event) == END_PAYLOAD


def test_reserved_bit_is_ignored() -> None:
    event = DtmfEvent.parse(bytes.fromhex("01ca08c0"))  # R bit set
    assert event == DtmfEvent(1, True, 10, 2240)


def test_truncated_and_oversized_payloads() -> None:
    with pytest.raises(RtpProtocolError, match="truncated: 3 of 4 bytes"):
        DtmfEvent.parse(END_TRUNCATED)
    with pytest.raises(RtpProtocolError, match="truncated: 0 of 4 bytes"):
        DtmfEvent.parse(b"")
    with pytest.raises(RtpProtocolError, match="4 bytes after the event"):
        DtmfEvent.parse(END_PAYLOAD * 2)
    with pytest.raises(RtpProtocolError):
        DtmfReceiver().on_packet(0, True, END_TRUNCATED)


@pytest.mark.parametrize(
    "event",
    [DtmfEvent(256, False, 0, 0), DtmfEvent(1, False, 64, 0), DtmfEvent(1, False, 0, 65536)],
)
def test_serializing_out_of_range_fields(event: DtmfEvent) -> None:
    with pytest.raises(RtpUsageError):
        bytes(event)


@pytest.mark.skipif(not SIPP_PCAPS.is_dir(), reason="SIPp captures (Debian sip-tester) missing")
@pytest.mark.parametrize(("name", "digit"), sorted(SIPP_FILES.items()))
def test_sipp_captures(name: str, digit: str) -> None:
    receiver = DtmfReceiver()
    reported = []
    datagrams = read_udp(SIPP_PCAPS / name)
    for datagram in datagrams:
        payload_type, _, timestamp, _, marker, payload = parse_payload_fast(datagram.payload)
        assert payload_type == 101
        result = receiver.on_packet(timestamp, marker, payload)
        if result is not None:
            reported.append(result)
    # Ten packets: eight of progress and the end packet three times, reported once.
    assert len(datagrams) == 10
    assert reported == [(digit, 280)]
    assert receiver.flush() is None


def _event(code: int, duration: int, end: bool = False) -> bytes:
    return bytes(DtmfEvent(code, end, 10, duration))


def test_end_reported_once_despite_retransmissions_and_late_packets() -> None:
    receiver = DtmfReceiver()
    assert receiver.on_packet(1000, True, _event(5, 160)) is None
    assert receiver.on_packet(1000, False, _event(5, 320)) is None
    assert receiver.on_packet(1000, False, _event(5, 800, end=True)) == ("5", 100)
    assert receiver.on_packet(1000, False, _event(5, 800, end=True)) is None
    assert receiver.on_packet(1000, False, _event(5, 480)) is None  # late, reordered
    assert receiver.flush() is None


def test_event_whose_end_packets_were_all_lost_is_reported_when_the_next_begins() -> None:
    receiver = DtmfReceiver()
    receiver.on_packet(1000, True, _event(1, 160))
    receiver.on_packet(1000, False, _event(1, 480))
    # Next event, digit 2, new timestamp: digit 1 is reported with its last duration.
    assert receiver.on_packet(3000, True, _event(2, 160)) == ("1", 60)
    assert receiver.on_packet(3000, False, _event(2, 400, end=True)) == ("2", 50)
    # A stray packet of the old event is ignored, not taken for a new one.
    assert receiver.on_packet(1000, False, _event(1, 640)) is None


def test_lost_end_followed_by_an_end_only_event() -> None:
    receiver = DtmfReceiver()
    receiver.on_packet(1000, True, _event(1, 160))
    assert receiver.on_packet(3000, False, _event(2, 320, end=True)) == ("1", 20)
    assert receiver.on_packet(3000, False, _event(2, 320, end=True)) == ("2", 40)
    assert receiver.on_packet(3000, False, _event(2, 320, end=True)) is None


def test_short_event_seen_only_by_its_end_packet() -> None:
    receiver = DtmfReceiver()
    assert receiver.on_packet(500, False, _event(11, 400, end=True)) == ("#", 50)


def test_flush_reports_an_open_event() -> None:
    receiver = DtmfReceiver()
    receiver.on_packet(0, True, _event(12, 800))
    assert receiver.flush() == ("A", 100)
    assert receiver.flush() is None


def test_long_event_segments_are_joined() -> None:
    # §2.5.1.3: after 65535 units the sender starts a new segment at a new timestamp.
    receiver = DtmfReceiver()
    receiver.on_packet(0, True, _event(0, 65535))
    assert receiver.on_packet(65535, False, _event(0, 16000, end=True)) == ("0", 10192)


def test_same_digit_twice_is_two_events() -> None:
    receiver = DtmfReceiver()
    receiver.on_packet(0, True, _event(3, 160))
    assert receiver.on_packet(4000, True, _event(3, 160)) == ("3", 20)  # end lost, marker
    assert receiver.on_packet(4000, False, _event(3, 800, end=True)) == ("3", 100)


def test_timestamp_wraparound() -> None:
    receiver = DtmfReceiver()
    assert receiver.on_packet(0xFFFFFF00, True, _event(4, 160, end=True)) == ("4", 20)
    assert receiver.on_packet(100, True, _event(6, 160, end=True)) == ("6", 20)


def test_non_dtmf_events_are_ignored() -> None:
    receiver = DtmfReceiver()
    assert receiver.on_packet(0, True, _event(16, 800, end=True)) is None  # flash
    assert receiver.flush() is None


def test_sender_packets() -> None:
    packets = DtmfSender().packets("9", duration_ms=100, volume=7)
    assert [(DtmfEvent.parse(p), m, d) for p, m, d in packets] == [
        (DtmfEvent(9, False, 7, 160), True, 160),
        (DtmfEvent(9, False, 7, 320), False, 320),
        (DtmfEvent(9, False, 7, 480), False, 480),
        (DtmfEvent(9, False, 7, 640), False, 640),
        (DtmfEvent(9, True, 7, 800), False, 800),
        (DtmfEvent(9, True, 7, 800), False, 800),
        (DtmfEvent(9, True, 7, 800), False, 800),
    ]


def test_sender_short_event_marks_its_first_end_packet() -> None:
    packets = DtmfSender().packets("d", duration_ms=10)
    assert [m for _, m, _ in packets] == [True, False, False]
    assert DtmfEvent.parse(packets[0][0]) == DtmfEvent(15, True, 10, 80)


@pytest.mark.parametrize("digit", list(DIGITS))
def test_sender_and_receiver_agree_over_rtp(digit: str) -> None:
    writer = RtpWriter(ssrc=42, payload_type=0, seq=100, timestamp=8000)
    writer.next_packet(bytes(160))
    start = writer.timestamp
    receiver = DtmfReceiver()
    reported = []
    for payload, marker, _ in DtmfSender().packets(digit, duration_ms=120):
        packet = RtpPacket.parse(writer.event_packet(payload, 101, start, marker))
        assert packet.timestamp == start
        result = receiver.on_packet(packet.timestamp, packet.marker, packet.payload)
        if result:
            reported.append(result)
    writer.skip(120 * 8)
    assert reported == [(digit, 120)]
    assert writer.sequence == 101 + 6 + END_RETRANSMITS - 1
    assert writer.timestamp == start + 960


@pytest.mark.parametrize(
    ("digit", "duration_ms", "volume"),
    [("E", 100, 10), ("12", 100, 10), ("", 100, 10), ("1", 0, 10), ("1", 9000, 10), ("1", 100, 64)],
)
def test_sender_usage_errors(digit: str, duration_ms: int, volume: int) -> None:
    with pytest.raises(RtpUsageError):
        DtmfSender().packets(digit, duration_ms, volume)
