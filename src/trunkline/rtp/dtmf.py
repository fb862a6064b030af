"""DTMF digits as RTP telephone-events (RFC 4733): the payload, a receiver and a sender.

Theory of operation
-------------------
An event is sent as a run of packets that all carry the RTP timestamp of the event's
start (§2.3.1): the first with the marker bit, then one every packet interval with the
duration so far, and finally the end packet (E bit) sent three times (§2.5.1.4), since
a lost end would otherwise leave the digit hanging.

``DtmfReceiver`` keys events by that timestamp. It reports each event once, when the
first end packet arrives, and ignores the retransmitted ends and any late packet of an
event it has already reported or moved past. If every end packet was lost, the event is
reported when the next event (a newer timestamp) begins, with the last duration seen;
``flush`` reports an event still open when the call ends. (Should that next event's first
surviving packet already be an end packet, it is reported by its retransmitted end.)
An event longer than the 16-bit duration field is split into segments with new
timestamps and no marker (§2.5.1.3); a segment of the same event continuing without a
marker is joined to it.
Packed multiple events per packet (§2.5.1.5) are not supported: ``DtmfEvent.parse``
rejects payloads that are not exactly one event.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trunkline.rtp.errors import RtpProtocolError, RtpUsageError
from trunkline.rtp.seq import uint32_gt

__all__ = ["DIGITS", "END_RETRANSMITS", "DtmfEvent", "DtmfReceiver", "DtmfSender"]

#: Event codes 0..15 (RFC 4733 §3.2 Table 7): the index of a digit is its event code.
DIGITS = "0123456789*#ABCD"
_EVENT_OF = {digit: code for code, digit in enumerate(DIGITS)}
END_RETRANSMITS = 3  # §2.5.1.4: the end packet is sent three times
MAX_VOLUME = 63  # 6-bit field, in -dBm0; 0 is the loudest
MAX_DURATION = 0xFFFF  # 16-bit field, in timestamp units
_PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One telephone-event payload (RFC 4733 §2.3): 4 bytes."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> DtmfEvent:
        """Parse a telephone-event payload.

        Raises:
            RtpProtocolError: the payload is not exactly 4 bytes.
        """
        if len(payload) < 4:
            raise RtpProtocolError(
                f"telephone-event payload is truncated: {len(payload)} of 4 bytes"
            )
        if len(payload) > 4:
            raise RtpProtocolError(
                f"telephone-event payload has {len(payload) - 4} bytes after the event "
                "(packed events are not supported)"
            )
        event, flags, duration = _PAYLOAD.unpack(payload)
        # The R bit (0x40) is reserved: senders set it to 0 and receivers ignore it.
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        if not (0 <= self.event <= 255 and 0 <= self.volume <= MAX_VOLUME):
            raise RtpUsageError("telephone-event needs event 0..255 and volume 0..63")
        if not 0 <= self.duration <= MAX_DURATION:
            raise RtpUsageError("telephone-event duration must be 0..65535")
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


class DtmfReceiver:
    """Turns the telephone-event packets of one call into digits (see the module notes)."""

    __slots__ = ("_base", "_code", "_duration", "_ms_per_unit", "_reported", "_timestamp")

    def __init__(self, clock_rate: int = 8000) -> None:
        self._ms_per_unit = 1000 / clock_rate
        self._timestamp: int | None = None  # RTP timestamp of the newest event seen
        self._code = 0
        self._duration = 0  # of the current segment, in timestamp units
        self._base = 0  # duration of earlier segments of a long event (§2.5.1.3)
        self._reported = True

    def on_packet(self, timestamp: int, marker: bool, payload: bytes) -> tuple[str, int] | None:
        """Feed one telephone-event packet; returns ``(digit, duration_ms)`` once per event.

        Events other than the 16 DTMF codes (flash, fax tones...) are ignored.

        Raises:
            RtpProtocolError: the payload is not a telephone-event.
        """
        event = DtmfEvent.parse(payload)
        if event.event >= len(DIGITS):
            return None
        current = self._timestamp
        if current is not None and timestamp == current:
            if self._reported:
                return None  # a retransmitted end packet, or late news of a reported event
            if event.duration > self._duration:
                self._duration = event.duration
            if event.end:
                return self._report()
            return None
        if current is not None and not uint32_gt(timestamp, current):
            return None  # a reordered packet of an older event
        previous = None
        if not self._reported:
            if not marker and event.event == self._code:
                self._base += self._duration  # the next segment of a long event
            else:
                previous = self._report()  # its end packets were all lost
                self._base = 0
        else:
            self._base = 0
        self._timestamp = timestamp
        self._code = event.event
        self._duration = event.duration
        self._reported = False
        if event.end and previous is None:
            return self._report()
        return previous

    def flush(self) -> tuple[str, int] | None:
        """Report an event whose end never came (call the end of the stream)."""
        return None if self._reported else self._report()

    def _report(self) -> tuple[str, int]:
        self._reported = True
        return DIGITS[self._code], round((self._base + self._duration) * self._ms_per_unit)


class DtmfSender:
    """Builds the telephone-event payloads of one DTMF digit (RFC 4733 §2.5.1).

    Send the packets one per ``packet_ms`` with ``RtpWriter.event_packet``, all with
    the timestamp the stream had when the event began, then ``skip`` the event's
    duration so audio resumes at the right timestamp.
    """

    __slots__ = ("_samples_per_ms", "packet_samples")

    def __init__(self, clock_rate: int = 8000, packet_ms: int = 20) -> None:
        self._samples_per_ms = clock_rate // 1000
        self.packet_samples = self._samples_per_ms * packet_ms

    def packets(
        self, digit: str, duration_ms: int = 100, volume: int = 10
    ) -> list[tuple[bytes, bool, int]]:
        """``(payload, marker, duration)`` for each packet of the event, in sending order.

        ``duration`` is the event's duration so far in timestamp units; the last
        ``END_RETRANSMITS`` entries are the same end packet.

        Raises:
            RtpUsageError: not a DTMF digit, a duration that is not positive or does not
                fit the 16-bit field, or a volume outside 0..63.
        """
        code = _EVENT_OF.get(digit.upper()) if len(digit) == 1 else None
        if code is None:
            raise RtpUsageError(f"not a DTMF digit: {digit!r}")
        total = duration_ms * self._samples_per_ms
        if not 0 < total <= MAX_DURATION:
            raise RtpUsageError(f"DTMF duration must be 1..{MAX_DURATION} samples, got {total}")
        if not 0 <= volume <= MAX_VOLUME:
            raise RtpUsageError(f"DTMF volume must be 0..{MAX_VOLUME}, got {volume}")
        out = []
        step = self.packet_samples
        for duration in range(step, total, step):
            payload = _PAYLOAD.pack(code, volume, duration)
            out.append((payload, duration == step, duration))
        end = _PAYLOAD.pack(code, 0x80 | volume, total)
        for _ in range(END_RETRANSMITS):
            out.append((end, not out, total))
        return out
