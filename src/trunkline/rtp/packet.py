"""RTP data packets (RFC 3550 §5.1): the full model, a hot-path header parser, a writer.

Three ways in, by cost:

- ``RtpPacket.parse`` / ``bytes(packet)``: every field, for tests, tools and the rare
  packet with CSRCs or a header extension.
- ``parse_header_fast``: one ``struct`` call and a tuple for the packet every call
  receives every 20 ms; only non-minimal headers take the slower path.
- ``RtpWriter``: per outbound stream, owns SSRC / sequence / timestamp and builds each
  packet with one ``struct.pack``.

``is_rtcp`` demultiplexes RTP and RTCP sharing one port (RFC 5761 §4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trunkline.rtp.errors import RtpProtocolError, RtpUsageError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpPacket",
    "RtpWriter",
    "is_rtcp",
    "parse_header_fast",
    "parse_payload_fast",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12  # fixed header: V/P/X/CC, M/PT, sequence, timestamp, SSRC
MAX_CSRC = 15  # the CC field is 4 bits

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_FIRST_BYTE = RTP_VERSION << 6  # 0x80: version 2, no padding, no extension, no CSRC


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``extension`` is ``(profile, data)`` with ``data`` a multiple of 4 bytes (§5.3.1).
    ``padding`` is the number of padding bytes including the count byte itself; padding
    is written as zeros followed by the count (§5.1 says the content is ignored).
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet.

        Raises:
            RtpProtocolError: the datagram is not a valid RTP version 2 packet; the
                message says which part is missing or wrong.
        """
        b0, b1, sequence, timestamp, ssrc, offset, end = _parse_layout(data)
        cc = b0 & 0x0F
        csrc = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        extension = None
        if b0 & 0x10:
            ext_at = RTP_HEADER_SIZE + 4 * cc
            profile, _ = _EXT_HEADER.unpack_from(data, ext_at)
            extension = (profile, bytes(data[ext_at + 4 : offset]))
        return cls(
            payload_type=b1 & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=len(data) - end,
        )

    def __bytes__(self) -> bytes:
        """Serialize; raises ``RtpUsageError`` if a field is out of range."""
        if len(self.csrc) > MAX_CSRC:
            raise RtpUsageError(f"RTP packet can carry at most {MAX_CSRC} CSRCs")
        if not 0 <= self.padding <= 255:
            raise RtpUsageError("RTP padding must be 0..255 bytes")
        b0 = _FIRST_BYTE | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        try:
            parts = [
                _HEADER.pack(
                    b0,
                    (0x80 if self.marker else 0) | _check_pt(self.payload_type),
                    self.sequence,
                    self.timestamp,
                    self.ssrc,
                )
            ]
            if self.csrc:
                parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
            if self.extension is not None:
                profile, ext = self.extension
                if len(ext) % 4:
                    raise RtpUsageError("RTP header extension must be a multiple of 4 bytes")
                parts.append(_EXT_HEADER.pack(profile, len(ext) // 4))
                parts.append(ext)
        except struct.error as exc:
            raise RtpUsageError(f"RTP header field out of range: {exc}") from None
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def _check_pt(pt: int) -> int:
    if not 0 <= pt <= 127:
        raise RtpUsageError(f"RTP payload type must be 0..127, got {pt}")
    return pt


def _parse_layout(data: bytes) -> tuple[int, int, int, int, int, int, int]:
    """Validate a packet's framing: (b0, b1, seq, ts, ssrc, payload_offset, payload_end)."""
    if len(data) < RTP_HEADER_SIZE:
        raise RtpProtocolError("RTP packet length is less than 12 bytes")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpProtocolError(f"RTP packet has version {b0 >> 6}, expected 2")
    offset = RTP_HEADER_SIZE + 4 * (b0 & 0x0F)
    if len(data) < offset:
        raise RtpProtocolError("RTP packet has truncated CSRC")
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise RtpProtocolError("RTP packet has truncated extension profile / length")
        _, words = _EXT_HEADER.unpack_from(data, offset)
        offset += 4 + 4 * words
        if len(data) < offset:
            raise RtpProtocolError("RTP packet has truncated extension value")
    end = len(data)
    if b0 & 0x20:
        # §5.1: the last octet counts the padding, itself included, so it is at least 1.
        padding = data[-1] if end > offset else 0
        if padding == 0 or padding > end - offset:
            raise RtpProtocolError("RTP packet padding length is invalid")
        end -= padding
    return b0, b1, sequence, timestamp, ssrc, offset, end


def parse_header_fast(data: bytes) -> tuple[int, int, int, int, bool, int]:
    """The hot-path parser: ``(payload_type, sequence, timestamp, ssrc, marker, offset)``.

    The payload starts at ``offset``. It runs to the end of ``data`` unless the packet
    is padded (``data[0] & 0x20``, rare for G.711), in which case it ends ``data[-1]``
    bytes earlier; ``parse_payload_fast`` does that cut for you.

    Raises:
        RtpProtocolError: as ``RtpPacket.parse``.
    """
    if len(data) >= RTP_HEADER_SIZE and data[0] == _FIRST_BYTE:
        # The minimal header every G.711 endpoint sends: no CSRC, extension or padding.
        _, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        return b1 & 0x7F, sequence, timestamp, ssrc, b1 > 0x7F, RTP_HEADER_SIZE
    _, b1, sequence, timestamp, ssrc, offset, _ = _parse_layout(data)
    return b1 & 0x7F, sequence, timestamp, ssrc, b1 > 0x7F, offset


def parse_payload_fast(data: bytes) -> tuple[int, int, int, int, bool, bytes]:
    """Like ``parse_header_fast`` but returns the payload itself, padding removed.

    Raises:
        RtpProtocolError: as ``RtpPacket.parse``.
    """
    if len(data) >= RTP_HEADER_SIZE and data[0] == _FIRST_BYTE:
        _, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        return b1 & 0x7F, sequence, timestamp, ssrc, b1 > 0x7F, data[RTP_HEADER_SIZE:]
    _, b1, sequence, timestamp, ssrc, offset, end = _parse_layout(data)
    return b1 & 0x7F, sequence, timestamp, ssrc, b1 > 0x7F, data[offset:end]


def is_rtcp(data: bytes) -> bool:
    """True if a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4).

    RTCP packet types 192..223 occupy what would be RTP payload types 64..95 with the
    marker bit set; RFC 5761 reserves that range so the second octet tells them apart.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


class RtpWriter:
    """Sequence and timestamp state of one outbound RTP stream (RFC 3550 §5.1).

    The marker bit is set on the first packet and on the first packet after ``skip``
    (the start of a talkspurt, RFC 3551 §4.1), as well as when asked.

    DTMF (RFC 4733) shares the stream's SSRC and sequence space but carries its own
    payload type and the event's start timestamp: send events with ``event_packet`` at
    ``timestamp=writer.timestamp`` and then ``skip`` the event's duration.
    """

    __slots__ = ("_size", "_struct", "payload_type", "sequence", "ssrc", "talkspurt", "timestamp")

    def __init__(self, ssrc: int, payload_type: int, seq: int, timestamp: int) -> None:
        if not (0 <= ssrc <= 0xFFFFFFFF and 0 <= seq <= 0xFFFF and 0 <= timestamp <= 0xFFFFFFFF):
            raise RtpUsageError("RTP writer needs a 32-bit SSRC and timestamp, 16-bit sequence")
        self.ssrc = ssrc
        self.payload_type = _check_pt(payload_type)
        self.sequence = seq  # of the next packet
        self.timestamp = timestamp  # of the next packet
        self.talkspurt = True  # the next packet starts a talkspurt and gets the marker bit
        self._size = -1
        self._struct = _HEADER

    def next_packet(self, payload: bytes, samples: int = 160, marker: bool = False) -> bytes:
        """Build the next packet and advance sequence by 1 and timestamp by ``samples``."""
        size = len(payload)
        if size != self._size:  # one Struct per payload size: header and payload in one pack
            self._struct = struct.Struct(f"!BBHII{size}s")
            self._size = size
        b1 = self.payload_type
        if marker or self.talkspurt:
            b1 |= 0x80
            self.talkspurt = False
        seq = self.sequence
        ts = self.timestamp
        data = self._struct.pack(_FIRST_BYTE, b1, seq, ts, self.ssrc, payload)
        self.sequence = (seq + 1) & 0xFFFF
        self.timestamp = (ts + samples) & 0xFFFFFFFF
        return data

    def event_packet(
        self, payload: bytes, payload_type: int, timestamp: int, marker: bool = False
    ) -> bytes:
        """Build a packet with the next sequence number but its own PT and timestamp.

        The stream's timestamp does not advance (RFC 4733 §2.3.1: an event keeps the
        timestamp of its start in every packet).
        """
        b1 = _check_pt(payload_type) | (0x80 if marker else 0)
        seq = self.sequence
        data = _HEADER.pack(_FIRST_BYTE, b1, seq, timestamp & 0xFFFFFFFF, self.ssrc) + payload
        self.sequence = (seq + 1) & 0xFFFF
        return data

    def skip(self, samples: int) -> None:
        """Advance the timestamp without sending (silence suppression, or after DTMF).

        The next packet starts a new talkspurt and carries the marker bit.
        """
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.talkspurt = True
