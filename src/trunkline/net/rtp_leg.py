"""The SIP/RTP leg: one call's RTP socket, jitter buffer, codec and DTMF, driven by the pacer.

Theory of operation
-------------------
Inbound packets are read in ``_on_readable`` and only go into the jitter buffer (or
the RFC 4733 receiver); nothing is decoded there. Once per 20 ms the pacer calls
``on_tick``, which does the whole frame's work in one go:

1. pop one payload from the jitter buffer, decode G.711, hand the PCM to the sink;
2. pop one frame from the outbound queue, encode, and send it.

Because step 2 follows step 1 in the same tick, an app that answers a frame at once (the
echo app) adds no pacing delay. Nothing here creates a task, and per packet only the
bytes objects that must exist are allocated.

When the app looped the leg back (``MediaLeg.loop_back``, the echo app) and nothing else
is queued, a tick sends the popped payload on as it came: no PCM is made, since decoding
and re-encoding G.711 would give the same bytes. Anything out of the ordinary (a lost
frame, queued audio or marks, DTMF, hold, packets that are not 20 ms) takes the general
path, so the caller hears exactly what a decoding echo would send (a test compares the
two byte for byte).

Symmetric RTP (RFC 4961): we send to the address in the SDP until the first packet
arrives, then follow its source, which is what phones behind NAT need.

The leg drives its socket itself (non-blocking ``recv``/``send``) rather than through an
asyncio datagram transport, and the pacer reads it (``Pacer.add_reader``: one epoll call
per millisecond for every call's socket, no loop callback or wake-up per packet). Once
the peer's address is known the socket is ``connect``-ed to it, so each packet needs no
address conversion either way, the kernel reuses the route, and one readable event costs
one ``recv`` (a transport reads until EAGAIN: a wasted syscall per packet at 50 packets a
second). A send that would block drops the packet: late audio is worse than lost audio.

Call control (BYE, REFER) belongs to the SIP endpoint: the leg forwards ``hangup`` and
``transfer`` to the ``SipCallControl`` it was built with.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from time import monotonic
from typing import Protocol

from trunkline.media.audio import FRAME_BYTES, FRAME_SAMPLES, FRAME_SECONDS, SILENCE_FRAME
from trunkline.net.leg import Dtmf, LegInfo, LoopbackSink, MediaLeg, MediaSink, TransferResult
from trunkline.net.pacer import Pacer
from trunkline.rtp import g711
from trunkline.rtp.dtmf import DtmfReceiver, DtmfSender
from trunkline.rtp.errors import RtpProtocolError
from trunkline.rtp.jitter import JitterBuffer
from trunkline.rtp.packet import RtpWriter, parse_payload_fast
from trunkline.sdp.offer_answer import NegotiatedMedia

log = logging.getLogger(__name__)

# RFC 3551 static payload types of the two codecs we carry.
PT_PCMU = 0
PT_PCMA = 8
# Sequence number, timestamp and SSRC: bytes 2..12 of the fixed header (RFC 3550 §5.1).
_SEQ_TS_SSRC = struct.Struct("!HII")


class SipCallControl(Protocol):
    """What the SIP endpoint does for a leg when the app asks for call control."""

    def hangup_leg(self, leg: SipRtpLeg, reason: str) -> None: ...

    def dtmf_info_leg(self, leg: SipRtpLeg, digit: str, duration_ms: int) -> None: ...

    async def transfer_leg(self, leg: SipRtpLeg, target: str) -> TransferResult: ...


class RtpStats:
    """Per-leg counters read by the API and the benchmarks."""

    __slots__ = ("bad_packets", "foreign_packets", "received", "send_errors", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.bad_packets = 0
        self.foreign_packets = 0  # other payload types and RTCP on the RTP port
        self.send_errors = 0  # dropped: socket buffer full, or ICMP unreachable


# Packets in a row from a source other than the SDP's IP before media follows it.
LATCH_PACKETS = 4
# Big enough for any RTP packet on a telephony path; a small read keeps each recv cheap
# (asyncio's transports read into 256 KiB, which showed up as page faults per packet).
RECV_SIZE = 2048


class SipRtpLeg(MediaLeg):
    """One SIP call's media. Created by the endpoint once SDP is negotiated."""

    def __init__(
        self,
        info: LegInfo,
        media: NegotiatedMedia,
        sock: socket.socket,
        control: SipCallControl,
        pacer: Pacer,
        *,
        ssrc: int,
        initial_seq: int,
        initial_ts: int,
    ) -> None:
        MediaLeg.__init__(self, info)
        self.sock: socket.socket | None = sock
        self.local_port = int(sock.getsockname()[1])
        self.control = control
        self.pacer = pacer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = False  # the socket is connect()-ed to self.remote
        self.stats = RtpStats()
        self.jitter = JitterBuffer()
        self.dtmf = DtmfReceiver()
        self.writer = RtpWriter(ssrc, media.codec.payload_type, initial_seq, initial_ts)
        self._started = False  # True once the first audio packet came in
        self.last_arrival = 0.0  # monotonic time the newest audio packet arrived
        self._carry = b""  # decoded PCM waiting to fill a 20 ms frame (non-20 ms ptime)
        # The last frame decoded and the payload it came from (see on_tick).
        self._last_in: bytes | None = None
        self._last_in_payload = b""
        self.media = media
        self.remote: tuple[str, int] = (media.remote_host, media.remote_port)
        self._latched = False
        self._candidate: tuple[str, int] | None = None  # a NAT source being learned
        self._candidate_packets = 0
        self.digits = ""  # every DTMF digit received, for the call summary
        # Outbound RFC 4733 events: digits waiting, and the packets of the one being sent.
        self._dtmf_digits: deque[list[tuple[bytes, bool, int]]] = deque()
        self._dtmf_packets: deque[tuple[bytes, bool, int]] = deque()
        self._dtmf_start_ts = 0
        self._dtmf_ticks = 0
        self._loopback = False  # the sink is a LoopbackSink of this leg (see on_tick)
        self.apply_media(media)

    def attach(self, sink: MediaSink) -> None:
        """Deliver to ``sink``; a ``LoopbackSink`` of this leg turns on the echo fast path."""
        super().attach(sink)
        self._loopback = type(sink) is LoopbackSink and sink.out is self.out  # not a subclass

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send a DTMF digit: RFC 4733 events when the peer accepted telephone-event,
        else SIP INFO (application/dtmf-relay). Audio is muted while an event plays.

        Raises:
            RtpUsageError: ``digit`` is not one of 0-9, *, #, A-D or the duration is bad.
        """
        packets = DtmfSender().packets(digit, duration_ms)  # validates before queueing
        if self._dtmf_pt < 0:
            self.control.dtmf_info_leg(self, digit, duration_ms)
        else:
            self._dtmf_digits.append(packets)

    def _send_dtmf_packet(self) -> None:
        """One telephone-event packet per tick; all share the event's start timestamp."""
        writer = self.writer
        if not self._dtmf_packets:
            self._dtmf_packets.extend(self._dtmf_digits.popleft())
            self._dtmf_start_ts = writer.timestamp
        payload, marker, _ = self._dtmf_packets.popleft()
        self._send(writer.event_packet(payload, self._dtmf_pt, self._dtmf_start_ts, marker))
        self._dtmf_ticks += 1
        if not self._dtmf_packets:
            # Audio resumes at the timestamp wall time reached: the event's packets and its
            # end retransmits each took one 20 ms tick.
            writer.skip(self._dtmf_ticks * FRAME_SAMPLES)
            self._dtmf_ticks = 0

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
        self._last_in = None  # the codec may have changed
        if (media.remote_host, media.remote_port) != self.remote:
            self.remote = (media.remote_host, media.remote_port)
            self._latched = False
            self._disconnect()
        # RFC 3264 §5.1: we do not send on a stream the peer made sendonly/inactive.
        self._may_send = media.direction in ("sendrecv", "sendonly") and not media.on_hold

    # --- socket ---------------------------------------------------------------------

    def start(self) -> None:
        """Start reading the socket and join the pacer."""
        assert self.sock is not None
        self._loop = asyncio.get_running_loop()
        self.pacer.add_reader(self.sock.fileno(), self._on_readable)
        self.pacer.add(self)

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            if self._connected:
                self.datagram_received(sock.recv(RECV_SIZE), None)
            else:
                data, addr = sock.recvfrom(RECV_SIZE)
                self.datagram_received(data, addr)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # ICMP port unreachable on a connected socket, and the like: the peer may
            # not be listening yet. Media goes on; the call is not ours to end here.
            # (The read took the error off the socket, so the poller does not repeat it.)
            log.debug("%s: RTP socket error %s", self.call_id, exc)

    def _send(self, packet: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            if self._connected:
                sock.send(packet)
            else:
                sock.sendto(packet, self.remote)
            self.stats.sent += 1
        except OSError:  # BlockingIOError (buffer full) included: drop, never queue
            self.stats.send_errors += 1

    def _connect(self) -> None:
        if self.sock is not None and not self._connected:
            try:
                self.sock.connect(self.remote)
                self._connected = True
            except OSError as exc:
                log.debug("%s: cannot connect RTP socket to %s: %s", self.call_id, self.remote, exc)

    def _disconnect(self) -> None:
        """Accept packets from anyone again (a re-INVITE moved the peer, RFC 3264 §8.3.1).

        A connected UDP socket cannot be portably un-connected from Python, so the port
        is re-bound on a fresh socket; UDP has no TIME_WAIT, so the same port is free.
        """
        old = self.sock
        if old is None or not self._connected:
            return
        fresh = socket.socket(old.family, socket.SOCK_DGRAM)
        try:
            address = old.getsockname()
            if self._loop is not None:
                self.pacer.remove_reader(old.fileno())
            old.close()
            fresh.bind(address)
        except OSError as exc:
            fresh.close()
            self.sock = None
            log.warning("%s: cannot re-bind RTP port %d: %s", self.call_id, self.local_port, exc)
            return
        fresh.setblocking(False)
        self.sock = fresh
        self._connected = False
        if self._loop is not None:
            self.pacer.add_reader(fresh.fileno(), self._on_readable)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...] | None) -> None:
        # Fast path for nearly every packet: version 2 with no padding, extension or
        # CSRC (first byte 0x80), carrying our audio payload type.
        if len(data) > 12 and data[0] == 0x80 and data[1] & 0x7F == self._audio_pt:
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            self.stats.received += 1
            # Arrival time feeds the RFC 3550 A.8 jitter estimate that sizes the buffer.
            self.last_arrival = now = monotonic()
            self.jitter.push(seq, ts, ssrc, data[12:], now)
            if not self._latched:
                self._learn_source(addr)
            return
        try:
            pt, seq, ts, ssrc, marker, payload = parse_payload_fast(data)
        except RtpProtocolError:
            self.stats.bad_packets += 1
            return
        if pt == self._audio_pt:
            self.stats.received += 1
            self.last_arrival = now = monotonic()
            self.jitter.push(seq, ts, ssrc, payload, now)
        elif pt == self._dtmf_pt:
            digit = self.dtmf.on_packet(ts, marker, payload)
            if digit is not None:
                self.emit_dtmf(Dtmf(digit[0], digit[1]))
        else:
            self.stats.foreign_packets += 1
            return
        if not self._latched:
            self._learn_source(addr)

    def _learn_source(self, addr: tuple[str | int, ...] | None) -> None:
        """Start playout, and follow the peer's source address (symmetric RTP).

        A source at the SDP's IP is taken at once. Any other source (the phone is behind
        NAT) is taken only after ``LATCH_PACKETS`` packets in a row from it, so a stray
        packet that reaches the port first cannot take over the call's media (the
        "strict RTP" rule of PBXes). Once taken, the socket is connected to it and the
        kernel drops everything else.
        """
        self._started = True
        if addr is None:
            self._latched = True
            return
        src = (str(addr[0]), int(addr[1]))
        if src[0] != self.remote[0]:
            if src != self._candidate:
                self._candidate, self._candidate_packets = src, 0
            self._candidate_packets += 1
            if self._candidate_packets < LATCH_PACKETS:
                return
            log.info(
                "%s: media latched to %s:%d (SDP said %s:%d)", self.call_id, *src, *self.remote
            )
        self._latched = True
        self.remote = src
        self._connect()

    def inbound_age_s(self, now: float) -> float:
        """How long ago the frame being delivered now arrived (see ``MediaLeg``).

        Estimated from the newest arrival and the frames still buffered behind the one
        delivered, assuming the peer sends on a 20 ms grid (true of every phone and of
        the lab; a jittery path makes this an estimate).
        """
        if not self.last_arrival:
            return 0.0
        return max(0.0, now - self.last_arrival + self.jitter.buffered * FRAME_SECONDS)

    # --- pacer ---------------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        sink = self.sink
        if self._started and sink is not None:
            if not self._carry:
                payload = self.jitter.pop()
                if payload is not None and len(payload) == FRAME_SAMPLES:
                    if (
                        self._loopback
                        and not self.out
                        and self._may_send
                        and not self._dtmf_digits
                        and not self._dtmf_packets
                    ):
                        # Looped back (echo), nothing else queued: the frame would be
                        # decoded, queued, popped and re-encoded to the same payload (see
                        # below), so send the payload as it came. No PCM is made at all.
                        self._send(self.writer.next_packet(payload))
                        return
                    pcm = self._decode(payload)  # the common case: 20 ms packets
                    self._last_in = pcm
                    self._last_in_payload = payload
                    sink.on_audio(pcm)
                else:
                    sink.on_audio(self._reframe(payload))
            else:
                sink.on_audio(self._reframe(None))
        out = self.out
        frame = out.popleft() if out else None
        if frame is not None and frame.__class__ is not bytes:
            out.appendleft(frame)  # a mark: let the base class report it
            frame = self.next_outbound()
        if self._dtmf_digits or self._dtmf_packets:
            if self._may_send:
                self._send_dtmf_packet()  # the audio frame of this tick is dropped (muted)
            return
        if frame is None or not self._may_send:
            self.writer.skip(FRAME_SAMPLES)  # a gap: the next packet gets the marker bit
            return
        if frame is self._last_in:
            # The app sent back the very frame we just decoded (echo, a same-codec
            # bridge): G.711 decode then encode gives the same bytes (but for u-law's
            # 0x7F, a "minus zero" that would re-encode as 0xFF), so reuse them.
            payload = self._last_in_payload
        elif len(frame) == FRAME_BYTES:
            payload = self._encode(frame)
        else:
            payload = self._encode(frame[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0"))
        self._send(self.writer.next_packet(payload))

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
        sock, self.sock = self.sock, None
        if sock is not None:
            if self._loop is not None:
                self.pacer.remove_reader(sock.fileno())
            sock.close()
