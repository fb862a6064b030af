"""RTCP compound packets (RFC 3550 §6) and receiver statistics (Appendix A.1, A.3, A.8)."""

from __future__ import annotations

import pytest

from trunkline.rtp.errors import RtcpProtocolError, RtpProtocolError, RtpUsageError
from trunkline.rtp.packet import is_rtcp
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpCompound,
    RtcpUnknown,
    RtpReceiverStats,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
)

# SR with one report block + SDES CNAME + BYE with a reason, assembled by hand from
# §6.4.1, §6.5 and §6.6 (every field distinct, so a misplaced one shows).
SR_SDES_BYE = bytes.fromhex(
    # SR: V=2 RC=1 PT=200 length=12
    "81c8000c"
    "dee0ee8f"  # sender SSRC
    "e50c6b3a8f5c28f6"  # NTP timestamp
    "00000fa0"  # RTP timestamp 4000
    "00000032"  # 50 packets
    "00001f40"  # 8000 octets
    "0e05384e"  # report block: source SSRC
    "0a"  # fraction lost 10/256
    "000005"  # cumulative lost 5
    "00011f40"  # extended highest sequence (1 cycle, 8000)
    "00000012"  # jitter 18
    "6b3a8f5c"  # LSR
    "00010000"  # DLSR: one second
    # SDES: V=2 SC=1 PT=202 length=6
    "81ca0006"
    "dee0ee8f"
    "0110" + b"trunkline@host01".hex() + "00" + "00"  # CNAME, end item, padding
    # BYE: V=2 SC=1 PT=203 length=3
    "81cb0003"
    "dee0ee8f"
    "07" + b"hangup.".hex()
)
SR_SDES_BYE_TRUNCATED = SR_SDES_BYE[:-1]


def test_parse_hand_assembled_compound() -> None:
    compound = RtcpCompound.parse(SR_SDES_BYE)
    sr, sdes, bye = compound.packets
    assert sr == SenderReport(
        ssrc=0xDEE0EE8F,
        ntp_timestamp=0xE50C6B3A8F5C28F6,
        rtp_timestamp=4000,
        packet_count=50,
        octet_count=8000,
        reports=[ReportBlock(0x0E05384E, 10, 5, 0x11F40, 18, 0x6B3A8F5C, 0x10000)],
    )
    assert sdes == SourceDescription([SdesChunk(0xDEE0EE8F, [(1, b"trunkline@host01")])])
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == b"trunkline@host01"
    assert bye == Bye([0xDEE0EE8F], b"hangup.")
    assert is_rtcp(SR_SDES_BYE)
    assert bytes(compound) == SR_SDES_BYE


def test_truncated_compound() -> None:
    with pytest.raises(RtcpProtocolError, match="length field exceeds data"):
        RtcpCompound.parse(SR_SDES_BYE_TRUNCATED)
    # An RtcpProtocolError is an RtpProtocolError: one except clause drops bad datagrams.
    with pytest.raises(RtpProtocolError):
        RtcpCompound.parse(SR_SDES_BYE[:3])


def test_round_trips_of_every_packet_kind() -> None:
    compound = RtcpCompound(
        [
            ReceiverReport(
                1,
                [
                    ReportBlock(2, 255, -5, 0xFFFFFFFF, 0, 0, 0),
                    ReportBlock(3, 0, 0x7FFFFF, 1, 2, 3, 4),
                ],
                extension=b"ext!",
            ),
            SourceDescription(
                [
                    SdesChunk(4, [(1, b"abc"), (2, b"Name")]),  # needs 1 pad byte
                    SdesChunk(5, [(1, b"ab")]),  # ends exactly on a boundary: 4 nulls
                    SdesChunk(6, []),
                ]
            ),
            Bye([7, 8]),
            Bye([], b""),
            RtcpUnknown(204, 3, b"nameDATA"),  # APP
            SenderReport(9, ntp_from_unix(0.0), 0, 0, 0),
        ]
    )
    data = bytes(compound)
    assert len(data) % 4 == 0
    parsed = RtcpCompound.parse(data)
    assert parsed == compound
    assert bytes(parsed) == data


def test_ntp_from_unix() -> None:
    assert ntp_from_unix(0.0) == 2208988800 << 32
    assert ntp_from_unix(1.5) == ((2208988801 << 32) | (1 << 31))


def _header(first: int, packet_type: int, words: int) -> bytes:
    return bytes((first, packet_type)) + words.to_bytes(2, "big")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "compound packet is empty"),
        (b"\x80\xc8\x00", "less than 4 bytes"),
        (_header(0x40, 200, 0), "version 1, expected 2"),
        (_header(0x80, 200, 1) + bytes(4), "sender report is truncated"),
        (_header(0x81, 200, 6) + bytes(24), "report block is truncated"),
        (_header(0x80, 201, 0), "receiver report is truncated"),
        (_header(0x81, 202, 0), "SDES chunk is truncated"),
        (_header(0x81, 202, 1) + bytes(4), "SDES chunk has no end item"),
        (_header(0x81, 202, 2) + bytes(4) + b"\x01\x09ab", "SDES item is truncated"),
        (_header(0x81, 202, 3) + bytes(12), "SDES has bytes after its last chunk"),
        (_header(0x82, 203, 1) + bytes(4), "BYE is truncated"),
        (_header(0x80, 203, 1) + b"\x09abc", "BYE reason is truncated"),
        (_header(0x80, 203, 2) + b"\x01abcdefg", "BYE has bytes after its reason"),
        (_header(0xA0, 201, 1) + bytes(4), "padding length is invalid"),
        (_header(0xA0, 201, 1) + b"\x00\x00\x00\x09", "padding length is invalid"),
        (_header(0xA0, 201, 1) + b"\x00\x00\x00\x04" + _header(0x80, 201, 0), "not the last"),
    ],
)
def test_invalid_compounds(data: bytes, message: str) -> None:
    with pytest.raises(RtcpProtocolError, match=message):
        RtcpCompound.parse(data)


def test_padding_on_the_last_packet_is_removed() -> None:
    rr = bytes(ReceiverReport(42))
    padded = bytes([rr[0] | 0x20, rr[1], 0, 2]) + rr[4:] + b"\x00\x00\x00\x04"
    assert RtcpCompound.parse(padded).packets == [ReceiverReport(42)]


@pytest.mark.parametrize(
    "packet",
    [
        ReceiverReport(1 << 32),
        ReceiverReport(1, [ReportBlock(1, 256, 0, 0, 0)]),
        ReceiverReport(1, [ReportBlock(1, 0, 0x800000, 0, 0)]),
        ReceiverReport(1, [ReportBlock(1, 0, 0, 0, 0)] * 32),
        ReceiverReport(1, extension=b"abc"),
        SenderReport(1, 1 << 64, 0, 0, 0),
        SourceDescription([SdesChunk(1, [(0, b"x")])]),
        SourceDescription([SdesChunk(1, [(1, bytes(256))])]),
        Bye([1], bytes(256)),
        RtcpUnknown(256, 0, b""),
    ],
)
def test_serializing_out_of_range_fields(packet: object) -> None:
    with pytest.raises(RtpUsageError):
        bytes(packet)  # type: ignore[call-overload]


def test_receiver_stats_loss_and_jitter() -> None:
    stats = RtpReceiverStats(ssrc=77)
    now = 10.0
    # A.1 probation: the first packet only starts the source; counting starts at the second.
    assert stats.on_packet(1000, 0, now) is False
    delays = {}
    for seq in range(1001, 1101):
        if seq in (1010, 1011, 1050):
            continue  # lost
        delay = 0.005 if seq % 2 else 0.0
        delays[seq] = delay
        assert stats.on_packet(seq, (seq - 1000) * 160, now + (seq - 1000) * 0.02 + delay)
    block = stats.report_block(now=13.0)
    assert block.ssrc == 77
    assert block.highest_sequence == 1100
    assert block.cumulative_lost == 3  # expected 100 (1001..1100), received 97
    assert block.fraction_lost == (3 << 8) // 100
    assert block.last_sr == block.delay_since_last_sr == 0
    # Alternating 0 / 5 ms delay: |D| = 40 units per packet pair, converging on 40.
    assert 30 <= block.jitter <= 40
    assert block.jitter == int(stats.jitter)

    # The next interval has no loss: fraction 0, cumulative unchanged.
    for seq in range(1101, 1151):
        stats.on_packet(seq, (seq - 1000) * 160, now + (seq - 1000) * 0.02)
    block = stats.report_block(now=14.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 3)


def test_receiver_stats_duplicates_make_cumulative_loss_negative() -> None:
    stats = RtpReceiverStats(ssrc=1)
    stats.on_packet(10, 0, 0.0)
    for seq in (11, 12, 12, 12, 13):
        stats.on_packet(seq, 0, 0.0)
    block = stats.report_block(0.0)
    assert block.cumulative_lost == -2 and block.fraction_lost == 0


def test_receiver_stats_wrap_and_restart() -> None:
    stats = RtpReceiverStats(ssrc=1)
    for seq in (65533, 65534, 65535, 0, 1):
        stats.on_packet(seq, 0, 0.0)
    assert stats.extended_highest_sequence == 65536 + 1
    assert stats.report_block(0.0).cumulative_lost == 0
    # A jump of 20,000: the first packet is held as suspect, the second confirms a restart.
    assert stats.on_packet(20000, 0, 0.0) is False
    assert stats.on_packet(20001, 0, 0.0) is True
    block = stats.report_block(0.0)
    assert block.highest_sequence == 20001 and block.cumulative_lost == 0


def test_receiver_stats_lsr_and_dlsr() -> None:
    stats = RtpReceiverStats(ssrc=1)
    sr = SenderReport(1, 0xE50C6B3A8F5C28F6, 0, 0, 0)
    stats.on_sender_report(sr, now=100.0)
    block = stats.report_block(now=101.5)
    assert block.last_sr == 0x6B3A8F5C
    assert block.delay_since_last_sr == int(1.5 * 65536)
