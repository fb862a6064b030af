"""RTCP (RFC 3550 §6): compound packets, and the receiver statistics that feed reports.

``RtcpCompound.parse`` / ``bytes(compound)`` handle SR, RR, SDES and BYE; any other
packet type (APP, feedback, XR) is kept whole as ``RtcpUnknown`` so a compound packet
always round-trips. The parser is tolerant where RFC 3550 A.2 is strict: a compound
need not start with SR/RR (RFC 5506 reduced-size RTCP), and the padding of the last
packet is removed (serialization never pads).

``RtpReceiverStats`` keeps, per received SSRC, the sequence state of Appendix A.1, the
loss figures of A.3 and the jitter of A.8, and produces the ``ReportBlock`` of our next
SR or RR.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from trunkline.rtp.errors import RtcpProtocolError, RtpUsageError

__all__ = [
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpCompound",
    "RtcpPacket",
    "RtcpUnknown",
    "RtpReceiverStats",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "ntp_from_unix",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_END = 0
SDES_CNAME = 1  # §6.5.1: the canonical name every compound packet should carry
MAX_COUNT = 31  # the 5-bit RC/SC field

_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")  # SSRC, NTP timestamp, RTP timestamp, packets, octets
_BLOCK = struct.Struct("!IB3sIIII")
_U32 = struct.Struct("!I")
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


def ntp_from_unix(seconds: float) -> int:
    """A 64-bit NTP timestamp (§4) from Unix time, for the SR's wall-clock field."""
    return int((seconds + _NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (§6.4.1) about the source ``ssrc``."""

    ssrc: int
    fraction_lost: int  # lost since the last report, in 1/256
    cumulative_lost: int  # signed 24-bit: duplicates can make it negative
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # A.8 interarrival jitter, in timestamp units
    last_sr: int = 0  # middle 32 bits of the NTP timestamp of the last SR, or 0
    delay_since_last_sr: int = 0  # in 1/65536 s, or 0

    def __bytes__(self) -> bytes:
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtpUsageError("cumulative lost must fit 24 signed bits")
        lost = (self.cumulative_lost & 0xFFFFFF).to_bytes(3, "big")
        try:
            return _BLOCK.pack(
                self.ssrc,
                self.fraction_lost,
                lost,
                self.highest_sequence,
                self.jitter,
                self.last_sr,
                self.delay_since_last_sr,
            )
        except struct.error as exc:
            raise RtpUsageError(f"report block field out of range: {exc}") from None

    @classmethod
    def _parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


@dataclass(slots=True)
class SenderReport:
    """SR (§6.4.1): sender info and reception reports from an active sender."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""  # profile-specific, kept as is

    def __bytes__(self) -> bytes:
        try:
            info = _SR_INFO.pack(
                self.ssrc,
                self.ntp_timestamp,
                self.rtp_timestamp,
                self.packet_count,
                self.octet_count,
            )
        except struct.error as exc:
            raise RtpUsageError(f"sender report field out of range: {exc}") from None
        body = info + b"".join(bytes(r) for r in self.reports) + self.extension
        return _packet(RTCP_SR, len(self.reports), body)


@dataclass(slots=True)
class ReceiverReport:
    """RR (§6.4.2): reception reports from a participant that is not sending."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    def __bytes__(self) -> bytes:
        body = _u32(self.ssrc) + b"".join(bytes(r) for r in self.reports) + self.extension
        return _packet(RTCP_RR, len(self.reports), body)


@dataclass(slots=True)
class SdesChunk:
    """The items (§6.5) describing one source: ``(item type, value)`` pairs."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> bytes | None:
        return next((v for t, v in self.items if t == SDES_CNAME), None)


@dataclass(slots=True)
class SourceDescription:
    """SDES (§6.5): chunks of items, CNAME above all."""

    chunks: list[SdesChunk] = field(default_factory=list)

    def __bytes__(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += _u32(chunk.ssrc)
            for item_type, value in chunk.items:
                if not 0 < item_type <= 255 or len(value) > 255:
                    raise RtpUsageError("SDES items need type 1..255 and at most 255 bytes")
                body += bytes((item_type, len(value))) + value
            # The list ends with a null item, then nulls up to the next 32-bit boundary.
            body += bytes(4 - len(body) % 4)
        return _packet(RTCP_SDES, len(self.chunks), bytes(body))


@dataclass(slots=True)
class Bye:
    """BYE (§6.6): the sources are leaving, with an optional reason."""

    sources: list[int] = field(default_factory=list)
    reason: bytes | None = None

    def __bytes__(self) -> bytes:
        body = b"".join(_u32(s) for s in self.sources)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise RtpUsageError("BYE reason is at most 255 bytes")
            text = bytes((len(self.reason),)) + self.reason
            body += text + bytes(-len(text) % 4)
        return _packet(RTCP_BYE, len(self.sources), body)


@dataclass(slots=True)
class RtcpUnknown:
    """A packet type this module does not interpret (APP, RTPFB, PSFB, XR...)."""

    packet_type: int
    count: int  # the 5-bit field after V and P
    body: bytes  # everything after the 4-byte header

    def __bytes__(self) -> bytes:
        return _packet(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


@dataclass(slots=True)
class RtcpCompound:
    """A compound RTCP packet (§6.1): one or more packets in one datagram."""

    packets: list[RtcpPacket] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpCompound:
        """Parse a compound packet.

        Raises:
            RtcpProtocolError: any packet is malformed or truncated.
        """
        if not data:
            raise RtcpProtocolError("RTCP compound packet is empty")
        packets: list[RtcpPacket] = []
        pos = 0
        while pos < len(data):
            if len(data) - pos < 4:
                raise RtcpProtocolError("RTCP packet length is less than 4 bytes")
            first, packet_type, words = _HEADER.unpack_from(data, pos)
            if first >> 6 != 2:
                raise RtcpProtocolError(f"RTCP packet has version {first >> 6}, expected 2")
            end = pos + 4 + 4 * words
            if end > len(data):
                raise RtcpProtocolError("RTCP packet is truncated (length field exceeds data)")
            body = data[pos + 4 : end]
            if first & 0x20:
                # §6.4.1: only the last packet of a compound may be padded.
                if end != len(data):
                    raise RtcpProtocolError("RTCP padding on a packet that is not the last")
                pad = body[-1] if body else 0
                if pad == 0 or pad > len(body):
                    raise RtcpProtocolError("RTCP packet padding length is invalid")
                body = body[:-pad]
            packets.append(_parse_one(packet_type, first & 0x1F, body))
            pos = end
        return cls(packets)

    def __bytes__(self) -> bytes:
        return b"".join(bytes(p) for p in self.packets)


def _u32(value: int) -> bytes:
    try:
        return _U32.pack(value)
    except struct.error:
        raise RtpUsageError(f"RTCP SSRC out of range: {value}") from None


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if not 0 <= count <= MAX_COUNT:
        raise RtpUsageError(f"RTCP packet can carry at most {MAX_COUNT} reports, chunks or SSRCs")
    if len(body) % 4:
        raise RtpUsageError("RTCP packet body must be a multiple of 4 bytes")
    if not 0 <= packet_type <= 255 or len(body) // 4 > 0xFFFF:
        raise RtpUsageError("RTCP packet type or length out of range")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < _SR_INFO.size:
            raise RtcpProtocolError("RTCP sender report is truncated")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        reports, rest = _report_blocks(body, _SR_INFO.size, count)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports, rest)
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtcpProtocolError("RTCP receiver report is truncated")
        reports, rest = _report_blocks(body, 4, count)
        return ReceiverReport(_U32.unpack_from(body)[0], reports, rest)
    if packet_type == RTCP_SDES:
        return SourceDescription(_sdes_chunks(body, count))
    if packet_type == RTCP_BYE:
        return _bye(body, count)
    return RtcpUnknown(packet_type, count, bytes(body))


def _report_blocks(body: bytes, pos: int, count: int) -> tuple[list[ReportBlock], bytes]:
    if len(body) < pos + count * _BLOCK.size:
        raise RtcpProtocolError("RTCP report block is truncated")
    blocks = [ReportBlock._parse(body, pos + i * _BLOCK.size) for i in range(count)]
    return blocks, bytes(body[pos + count * _BLOCK.size :])


def _sdes_chunks(body: bytes, count: int) -> list[SdesChunk]:
    chunks = []
    pos = 0
    for _ in range(count):
        if len(body) - pos < 4:
            raise RtcpProtocolError("RTCP SDES chunk is truncated")
        chunk = SdesChunk(_U32.unpack_from(body, pos)[0])
        pos += 4
        while True:
            if pos >= len(body):
                raise RtcpProtocolError("RTCP SDES chunk has no end item")
            item_type = body[pos]
            if item_type == SDES_END:
                pos = (pos + 4) & ~3  # skip the null octets to the 32-bit boundary
                if pos > len(body):
                    raise RtcpProtocolError("RTCP SDES chunk padding is truncated")
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpProtocolError("RTCP SDES item is truncated")
            length = body[pos + 1]
            chunk.items.append((item_type, bytes(body[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        chunks.append(chunk)
    if pos != len(body):
        raise RtcpProtocolError("RTCP SDES has bytes after its last chunk")
    return chunks


def _bye(body: bytes, count: int) -> Bye:
    if len(body) < 4 * count:
        raise RtcpProtocolError("RTCP BYE is truncated")
    sources = list(struct.unpack_from(f"!{count}I", body))
    pos = 4 * count
    reason = None
    if pos < len(body):
        length = body[pos]
        if pos + 1 + length > len(body):
            raise RtcpProtocolError("RTCP BYE reason is truncated")
        reason = bytes(body[pos + 1 : pos + 1 + length])
        if len(body) - (pos + 1 + length) >= 4:
            raise RtcpProtocolError("RTCP BYE has bytes after its reason")
    return Bye(sources, reason)


# RFC 3550 A.1 constants.
MAX_DROPOUT = 3000  # a jump ahead of up to this many packets is loss, not a restart
MAX_MISORDER = 100  # a packet up to this many behind is late, not a restart
MIN_SEQUENTIAL = 2  # packets in sequence before a new source counts as valid
_SEQ_MOD = 1 << 16


class RtpReceiverStats:
    """Reception statistics of one remote source (RFC 3550 A.1, A.3, A.8).

    Feed every RTP packet of the source to ``on_packet`` and every SR it sends to
    ``on_sender_report``; ``report_block`` gives the block for our next SR/RR.
    """

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_clock_rate",
        "_cycles",
        "_expected_prior",
        "_jitter",
        "_last_sr",
        "_last_sr_at",
        "_max_seq",
        "_probation",
        "_received_prior",
        "_transit",
        "received",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int = 8000) -> None:
        self.ssrc = ssrc
        self._clock_rate = clock_rate
        self._probation = MIN_SEQUENTIAL
        self._max_seq = -1  # no packet yet
        self._base_seq = 0
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._transit: float | None = None
        self._jitter = 0.0
        self._last_sr = 0
        self._last_sr_at: float | None = None

    def on_packet(self, seq: int, timestamp: int, now: float) -> bool:
        """Account one packet; False when A.1 judges it invalid (probation, wild jump)."""
        if self._max_seq < 0:
            self._init_seq(seq)
            self._max_seq = (seq - 1) & 0xFFFF
        if not self._update_seq(seq):
            return False
        transit = now * self._clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d > 0x80000000:  # the timestamp wrapped between the two packets
                d = abs(d - 0x100000000)
            self._jitter += (d - self._jitter) / 16
        self._transit = transit
        return True

    def on_sender_report(self, report: SenderReport, now: float) -> None:
        """Remember the source's last SR for the LSR/DLSR fields (§6.4.1)."""
        self._last_sr = (report.ntp_timestamp >> 16) & 0xFFFFFFFF
        self._last_sr_at = now

    @property
    def extended_highest_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def jitter(self) -> float:
        """A.8 interarrival jitter in timestamp units."""
        return self._jitter

    def report_block(self, now: float) -> ReportBlock:
        """The reception report for this source; starts a new loss interval (A.3)."""
        extended_max = self._cycles + self._max_seq
        expected = extended_max - self._base_seq + 1
        lost = max(-0x800000, min(expected - self.received, 0x7FFFFF))
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min((lost_interval << 8) // expected_interval, 255)
        dlsr = 0
        if self._last_sr_at is not None:
            dlsr = min(int((now - self._last_sr_at) * 65536), 0xFFFFFFFF)
        return ReportBlock(
            self.ssrc,
            fraction,
            lost,
            extended_max & 0xFFFFFFFF,
            min(int(self._jitter), 0xFFFFFFFF),
            self._last_sr,
            max(dlsr, 0),
        )

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 ``update_seq``, line for line."""
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            # A source is valid only after MIN_SEQUENTIAL packets in sequence.
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += _SEQ_MOD  # wrapped
            self._max_seq = seq
        elif udelta <= _SEQ_MOD - MAX_MISORDER:
            if seq == self._bad_seq:
                # Two sequential packets after a big jump: the source restarted.
                self._init_seq(seq)
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet
        self.received += 1
        return True
