"""The lab's two caller legs: cheap to run by the thousand, and measuring what they hear.

Both reuse the runtime's legs for everything protocol (SIP/RTP sockets, latching and
RFC 4733 for SIP; the Twilio handshake, marks and ``clear`` for WebSocket) and change the
two per-frame paths:

- **Outbound** the queue holds G.711 payloads already encoded (audio is rendered and
  encoded once per utterance, not per frame) and mark names. Between utterances the
  caller sends the codec's silence, as a phone line does. ``mark`` names are reported
  to the sink when the pacer reaches them, which is when the next frame goes out: that
  is how the script learns, to the tick, when its speech started.
- **Inbound** nothing is decoded: the payload goes to the :class:`~trunkline.lab.ear.Ear`
  with the time it was heard. Over SIP that is the packet's arrival (the lab has no
  jitter buffer: figures are what the network delivered), over WebSocket it is the tick
  that plays the frame out, as Twilio buffers an app's audio and plays it in real time.

A :class:`~trunkline.lab.netem.PacketScheduler` (loss, jitter and reordering, seeded) may
sit on the SIP send path; a delayed packet goes out from one loop timer per leg, at its
scheduled time, so reordering is real.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from trunkline.lab.ear import ALAW_LOUD, ULAW_LOUD, Ear, RtpReceiveStats
from trunkline.lab.netem import PacketScheduler
from trunkline.media.audio import FRAME_SAMPLES, FRAME_SECONDS
from trunkline.net.rtp_leg import _SEQ_TS_SSRC, SipRtpLeg
from trunkline.net.ws_client import WsMediaCaller
from trunkline.rtp.errors import RtpProtocolError
from trunkline.rtp.packet import parse_payload_fast
from trunkline.sdp.offer_answer import NegotiatedMedia

#: The codecs' silence: u-law 0xFF and A-law 0xD5 both decode to (nearly) zero.
ULAW_SILENCE = b"\xff" * FRAME_SAMPLES
ALAW_SILENCE = b"\xd5" * FRAME_SAMPLES
#: A packet the network emulator holds goes out when it is due within this much: half
#: of uvloop's timer resolution, so a wake-up it rounds to "now" still finds it due.
NETEM_SLACK_S = 0.0005
#: Ticks further apart than this (1.5 frames) had an idle tick between them.
RUN_GAP_S = 0.03


class LabRtpLeg(SipRtpLeg):
    """A SIP caller's media: pre-encoded audio out, an ear and RFC 3550 counters in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set before the base class runs apply_media, which picks the ear's codec table.
        self.ear = Ear()
        self.rx = RtpReceiveStats()
        self.netem: PacketScheduler[bytes] | None = None
        self._netem_timer: asyncio.TimerHandle | None = None
        super().__init__(*args, **kwargs)

    def apply_media(self, media: NegotiatedMedia) -> None:
        super().apply_media(media)
        self.codec = media.codec.name.upper()
        pcma = self.codec == "PCMA"
        self.ear.set_codec(ALAW_LOUD if pcma else ULAW_LOUD)
        self.silence = ALAW_SILENCE if pcma else ULAW_SILENCE

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...] | None) -> None:
        now = monotonic()
        if len(data) > 12 and data[0] == 0x80 and data[1] & 0x7F == self._audio_pt:
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            payload = data[12:]
        else:
            try:
                pt, seq, ts, ssrc, _marker, payload = parse_payload_fast(data)
            except RtpProtocolError:
                self.stats.bad_packets += 1
                return
            if pt != self._audio_pt:
                self.stats.foreign_packets += 1  # the agent's DTMF and the like
                if not self._latched:
                    self._learn_source(addr)
                return
        self.stats.received += 1
        self.rx.packet(seq, ts, ssrc, now)
        self.ear.hear(now, payload)
        if not self._latched:
            self._learn_source(addr)

    def on_tick(self, now: float) -> None:
        out = self.out
        payload = out.popleft() if out else None
        if payload is not None and payload.__class__ is not bytes:
            out.appendleft(payload)  # a mark: the base class reports it
            payload = self.next_outbound()
        if self._dtmf_digits or self._dtmf_packets:
            if self._may_send:
                self._send_dtmf_packet()
            return
        if not self._may_send:
            self.writer.skip(FRAME_SAMPLES)
            return
        packet = self.writer.next_packet(payload or self.silence)
        netem = self.netem
        if netem is None:
            self._send(packet)
            return
        netem.push(now, packet)
        self._send_due()

    def _send_due(self) -> None:
        """Send what the network emulator lets through by now; wake for the next one.

        uvloop keeps timers in whole milliseconds, rounded to the nearest: a wake-up
        asked for 0.4 ms ahead fires at once, finds nothing due and, re-armed, would
        spin the loop until the packet's time. So packets due within ``NETEM_SLACK_S``
        go now: a packet leaves at most half a millisecond early, never in a spin.
        """
        netem = self.netem
        if netem is None or self.sock is None:
            return
        for _, packet in netem.pop_due(monotonic() + NETEM_SLACK_S):
            self._send(packet)
        due = netem.next_due()
        if self._netem_timer is not None:
            self._netem_timer.cancel()
            self._netem_timer = None
        if due is not None and self._loop is not None:
            self._netem_timer = self._loop.call_later(max(0.0, due - monotonic()), self._send_due)

    def close_media(self) -> None:
        if self._netem_timer is not None:
            self._netem_timer.cancel()
            self._netem_timer = None
        super().close_media()


class LabWsCaller(WsMediaCaller):
    """A Media Streams caller: pre-encoded u-law out, an ear on the played-out audio.

    Audio is played out on the caller's own 20 ms tick, as Twilio plays an app's audio
    in real time. But the tick's phase is the lab's, not the agent's: a frame that
    reaches an idle line would wait 0-20 ms for the tick, and the ear would add that
    wait to the agent's latency. So the ear hears a run of audio (frames played on
    consecutive ticks) from the arrival of its first frame on, 20 ms per frame: the
    playout's real-time pace, without the lab's tick phase.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ear = Ear(ULAW_LOUD)
        self.silence = ULAW_SILENCE
        self.codec = "PCMU"
        self.rx = RtpReceiveStats()  # stays empty: a WebSocket has no packets to lose
        self._arrived = 0.0  # when the first frame queued on an idle line arrived
        self._last_tick = -1.0  # the tick that last played a frame
        self._shift = 0.0  # the current run's tick minus its first frame's arrival

    def _outbound_payload(self) -> bytes:
        return self.next_outbound() or self.silence  # already u-law

    def _play(self, now: float, frame: bytes) -> None:
        if now - self._last_tick > RUN_GAP_S:  # the line was idle: a new run starts
            self._shift = min(FRAME_SECONDS, max(0.0, now - self._arrived))
        self._last_tick = now
        self.ear.hear(now - self._shift, frame)

    def _on_media(self, payload: bytes) -> None:
        # Kept as u-law; a short last piece is played as it is (no padding, which in
        # u-law would not even be silence).
        play = self._playout
        if not play:
            self._arrived = monotonic()
        if len(payload) == FRAME_SAMPLES:
            play.append(payload)
        else:
            step = FRAME_SAMPLES
            play.extend(payload[i : i + step] for i in range(0, len(payload), step))


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on ``time.monotonic()`` (the lab's one clock; uvloop's
    ``loop.time()`` is cached per loop iteration and in milliseconds)."""
    delay = deadline - monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
