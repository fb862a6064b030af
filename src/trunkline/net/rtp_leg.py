"""The SIP/RTP leg: one call's RTP socket, jitter buffer, codec and DTMF, driven by the pacer.

Theory of operation
-------------------
Inbound packets arrive in ``datagram_received`` and only go into the jitter buffer (or
the RFC 4733 receiver); nothing is decoded there. Once per 20 ms the pacer calls
``on_tick``, which does the whole frame's work in one go:

1. pop one payload from the jitter buffer, decode G.711, hand the PCM to the sink;
2. pop one frame from the outbound queue, encode, and send it.

Because step 2 follows step 1 in the same tick, an app that answers a frame at once (the
echo app) adds no pacing delay. Nothing here creates a task, and per packet only the
bytes objects that must exist are allocated.

Symmetric RTP (RFC 4961): we send to the address in the SDP until packets arrive from
somewhere else, then follow their source, which is what phones behind NAT need.

Call control (BYE, REFER) belongs to the SIP endpoint: the leg forwards ``hangup`` and
``transfer`` to the ``SipCallControl`` it was built with.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Protocol

from trunkline.media.audio import FRAME_BYTES, FRAME_SAMPLES, SILENCE_FRAME
from trunkline.net.leg import Dtmf, LegInfo, MediaLeg, TransferResult
from trunkline.net.pacer import Pacer
from trunkline.rtp import g711
from trunkline.rtp.dtmf import DtmfReceiver
from trunkline.rtp.errors import RtpProtocolError
from trunkline.rtp.jitter import JitterBuffer
from trunkline.rtp.packet import RtpWriter, parse_payload_fast
from trunkline.sdp.offer_answer import NegotiatedMedia

log = logging.getLogger(__name__)

# RFC 3551 static payload types of the two codecs we carry.
PT_PCMU = 0
PT_PCMA = 8


class SipCallControl(Protocol):
    """What the SIP endpoint does for a leg when the app asks for call control."""

    def hangup_leg(self, leg: SipRtpLeg, reason: str) -> None: ...

    async def transfer_leg(self, leg: SipRtpLeg, target: str) -> TransferResult: ...


class RtpStats:
    """Per-leg counters read by the API and the benchmarks."""

    __slots__ = ("bad_packets", "foreign_packets", "received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.bad_packets = 0
        self.foreign_packets = 0  # other payload types and RTCP on the RTP port


class SipRtpLeg(MediaLeg, asyncio.DatagramProtocol):
    """One SIP call's media. Created by the endpoint once SDP is negotiated."""

    def __init__(
        self,
        info: LegInfo,
        media: NegotiatedMedia,
        sock_port: int,
        control: SipCallControl,
        pacer: Pacer,
        *,
        ssrc: int,
        initial_seq: int,
        initial_ts: int,
    ) -> None:
        MediaLeg.__init__(self, info)
        self.local_port = sock_port
        self.control = control
        self.pacer = pacer
        self.transport: asyncio.DatagramTransport | None = None
        self.stats = RtpStats()
        self.jitter = JitterBuffer()
        self.dtmf = DtmfReceiver()
        self.writer = RtpWriter(ssrc, media.codec.payload_type, initial_seq, initial_ts)
        self._started = False  # True once the first audio packet came in
        self._carry = b""  # decoded PCM waiting to fill a 20 ms frame (non-20 ms ptime)
        self._resume = True  # next sent packet starts a talkspurt: marker bit (RFC 3551 §4.1)
        self.media = media
        self.remote: tuple[str, int] = (media.remote_host, media.remote_port)
        self._latched = False
        self.digits = ""  # every DTMF digit received, for the call summary
        self.apply_media(media)

    def emit_dtmf(self, event: Dtmf) -> None:
        """Report a digit from RFC 4733 or SIP INFO alike."""
        self.digits += event.digit
        self._emit(event)

    # --- media description ----------------------------------------------------------

    def apply_media(self, media: NegotiatedMedia) -> None:
        """Take a (re-)negotiated description: new codec, new remote address, hold."""
        self.media = media
        pt = media.codec.payload_type
        self._audio_pt = pt
        self._dtmf_pt = media.telephone_event_pt if media.telephone_event_pt is not None else -1
        if media.codec.name.upper() == "PCMA":
            self._decode, self._encode = g711.alaw_decode, g711.alaw_encode
        else:
            self._decode, self._encode = g711.ulaw_decode, g711.ulaw_encode
        self.writer.payload_type = pt
        if (media.remote_host, media.remote_port) != self.remote:
            self.remote = (media.remote_host, media.remote_port)
            self._latched = False
        # RFC 3264 §5.1: we do not send on a stream the peer made sendonly/inactive.
        self._may_send = media.direction in ("sendrecv", "sendonly") and not media.on_hold

    # --- asyncio.DatagramProtocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport; duck-type it.
        self.transport = transport  # type: ignore[assignment]
        self.pacer.add(self)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            pt, seq, ts, ssrc, marker, payload = parse_payload_fast(data)
        except RtpProtocolError:
            self.stats.bad_packets += 1
            return
        if pt == self._audio_pt:
            self.stats.received += 1
            # Arrival time feeds the RFC 3550 A.8 jitter estimate that sizes the buffer.
            self.jitter.push(seq, ts, ssrc, payload, monotonic())
            self._started = True
        elif pt == self._dtmf_pt:
            digit = self.dtmf.on_packet(ts, marker, payload)
            if digit is not None:
                self.emit_dtmf(Dtmf(digit[0], digit[1]))
        else:
            self.stats.foreign_packets += 1
            return
        if not self._latched:
            self._latched = True
            src = (str(addr[0]), int(addr[1]))
            if src != self.remote:
                log.info(
                    "%s: media latched to %s:%d (SDP said %s:%d)", self.call_id, *src, *self.remote
                )
                self.remote = src

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer may not be listening yet.
        log.debug("%s: RTP socket error %s", self.call_id, exc)

    # --- pacer ---------------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        sink = self.sink
        if self._started and sink is not None:
            if not self._carry:
                payload = self.jitter.pop()
                if payload is not None and len(payload) == FRAME_SAMPLES:
                    sink.on_audio(self._decode(payload))  # the common case: 20 ms packets
                else:
                    sink.on_audio(self._reframe(payload))
            else:
                sink.on_audio(self._reframe(None))
        out = self.out
        frame = out.popleft() if out else None
        if frame is not None and frame.__class__ is not bytes:
            out.appendleft(frame)  # a mark: let the base class report it
            frame = self.next_outbound()
        transport = self.transport
        if frame is None or transport is None or not self._may_send:
            if not self._resume:
                self._resume = True
            self.writer.skip(FRAME_SAMPLES)
            return
        if len(frame) != FRAME_BYTES:
            frame = frame[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        packet = self.writer.next_packet(self._encode(frame), FRAME_SAMPLES, self._resume)
        self._resume = False
        transport.sendto(packet, self.remote)
        self.stats.sent += 1

    def _reframe(self, payload: bytes | None) -> bytes:
        """One 20 ms frame from packets of another length (10, 30, 40 ms...).

        Decoded audio that does not fill a frame, or spills over one, waits in
        ``_carry``; the jitter buffer is popped only as fast as the peer's packets
        come, so 30 ms packets are popped twice every three ticks. A lost packet or an
        underrun becomes silence, which keeps the 20 ms cadence that VAD and
        endpointing count on (there is no concealment for G.711 yet).
        """
        carry = self._carry
        if payload is not None:
            carry += self._decode(payload)
        while len(carry) < FRAME_BYTES:
            more = self.jitter.pop()
            if more is None:
                if not carry:
                    return SILENCE_FRAME
                carry += bytes(FRAME_BYTES - len(carry))
                break
            carry += self._decode(more)
        self._carry = carry[FRAME_BYTES:]
        return carry[:FRAME_BYTES]

    # --- call control ----------------------------------------------------------------

    async def transfer(self, target: str) -> TransferResult:
        return await self.control.transfer_leg(self, target)

    async def hangup(self, reason: str = "normal") -> None:
        if not self.closed.done():
            self.control.hangup_leg(self, reason)
            self._finish(reason, "local")

    def close_media(self) -> None:
        """Stop ticking and close the socket (the endpoint calls this when the call ends)."""
        self.pacer.remove(self)
        if self.transport is not None:
            self.transport.close()
            self.transport = None
