"""A Twilio-like caller: the telephony side of a Media Stream, for tests and the pretest lab.

Theory of operation
-------------------
:meth:`WsMediaCaller.connect` opens the socket, sends ``connected`` and ``start`` the way
Twilio does, adds the caller to the pacer and starts one reader task. From then on:

- Each pacer tick sends one ``media`` message (``sequenceNumber``, ``chunk``,
  ``timestamp`` in ms since the first tick): the next queued frame of the caller's voice,
  or u-law silence when nothing is queued, because a phone line never stops sending.
- Audio from the app is not handed over when it arrives but played out: it goes into a
  playout queue and each tick delivers one 20 ms frame to the sink, as Twilio buffers an
  app's audio and plays it in real time. A ``mark`` from the app is queued behind the
  audio before it and echoed back when playout reaches it; ``clear`` drops the queue,
  echoes every pending mark at once (Twilio's documented behaviour) and is reported to
  the sink as :class:`ClearReceived`. So an app that bursts its TTS gets Twilio's timing,
  and the lab can measure what a caller would hear.
- The trunkline extensions arrive as events: ``transfer`` as :class:`TransferRequested`
  (answer it with :meth:`WsMediaCaller.answer_transfer`), ``hangup`` as the leg's
  ``Hangup(by="remote")``.

``hangup()`` sends ``stop`` and closes; the socket closing from the app's side ends the
leg with ``Hangup(by="remote")``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Literal, cast

import aiohttp
from aiohttp import WSMsgType

from trunkline.media.audio import FRAME_BYTES, SILENCE_FRAME
from trunkline.net.leg import LegEvent, LegInfo, TransferResult
from trunkline.net.pacer import Pacer
from trunkline.net.ws_server import (
    CallLog,
    EventBufferingLeg,
    GarbageRun,
    SyncSender,
)
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import decode, encode, encode_media
from trunkline.wsmedia.errors import CloseCode, WsMediaProtocolError, WsMediaUsageError
from trunkline.wsmedia.events import DTMF_DIGITS

log = logging.getLogger(__name__)

# An app may send a whole TTS utterance as one media message: 1 MiB of base64 is about
# 95 s of u-law, far beyond any prompt, and still a bound on one message's memory.
CALLER_MAX_MESSAGE_BYTES = 1024 * 1024
_SILENCE = ulaw_encode(SILENCE_FRAME)
_MAX_CLOSE_REASON = 120  # RFC 6455 §5.5: a control frame payload is at most 125 bytes


@dataclass(frozen=True, slots=True)
class ClearReceived:
    """The app sent ``clear`` (barge-in); ``dropped_frames`` of its audio were not played."""

    dropped_frames: int


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The app sent the trunkline ``transfer`` event; answer with ``answer_transfer``."""

    target: str


CallerEvent = LegEvent | ClearReceived | TransferRequested
"""What a caller's sink receives: the leg events plus the two above (proposed for leg.py)."""


class WsMediaCaller(EventBufferingLeg):
    """The telephony side of one Media Stream, seen as a leg from the caller's side."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        start: wire.Start,
        pacer: Pacer,
        *,
        session: aiohttp.ClientSession | None,
        send_silence: bool = True,
    ) -> None:
        super().__init__(
            LegInfo(kind="ws", call_id=start.call_sid, extra=dict(start.custom_parameters))
        )
        self.stream_sid = start.stream_sid
        self.account_sid = start.account_sid
        self.send_silence = send_silence
        self.log = CallLog(log, {"call_id": start.call_sid})
        self.close_code: int | None = None
        self.frames_sent = 0
        self.frames_played = 0
        self.frames_cleared = 0
        self.garbage = GarbageRun()
        self._ws = ws
        self._owned_session = session  # closed when the call ends, if we created it
        self._pacer = pacer
        self._sender = SyncSender(ws.send_str)
        self._seq = start.sequence_number or 1
        self._chunk = 0
        self._t0: float | None = None
        self._playout: deque[bytes | str] = deque()  # the app's frames, and its mark names
        self._rx_tail = b""
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        pacer: Pacer,
        *,
        session: aiohttp.ClientSession | None = None,
        call_sid: str | None = None,
        custom_parameters: dict[str, str] | None = None,
        stream_sid: str | None = None,
        account_sid: str | None = None,
        send_silence: bool = True,
    ) -> WsMediaCaller:
        """Connect to a Media Streams app at ``url`` and start the stream.

        Without ``session`` the caller makes its own and closes it at the end; a lab with
        many callers should pass one shared session. Missing SIDs are made up, Twilio
        style (``CA``/``MZ``/``AC`` and 32 hex digits).
        """
        own = session is None
        if session is None:
            session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, compress=0, max_msg_size=CALLER_MAX_MESSAGE_BYTES)
        except BaseException:
            if own:
                await session.close()
            raise
        start = wire.Start(
            stream_sid=stream_sid or "MZ" + uuid.uuid4().hex,
            call_sid=call_sid or "CA" + uuid.uuid4().hex,
            account_sid=account_sid or "AC" + uuid.uuid4().hex,
            custom_parameters=dict(custom_parameters or {}),
            sequence_number=1,
        )
        caller = cls(ws, start, pacer, session=session if own else None, send_silence=send_silence)
        caller._sender.send(encode(wire.Connected()))
        caller._sender.send(encode(start))
        caller._reader = asyncio.create_task(caller._receive(), name=f"ws caller {caller.call_id}")
        pacer.add(caller)
        return caller

    # -- the caller's side of the line -------------------------------------------------

    def on_tick(self, now: float) -> None:
        """Send one frame of the caller's voice and play one frame of the app's."""
        if self.closed.done():
            return
        if self._t0 is None:
            self._t0 = now
        if not self._sender.blocked:
            payload = self._outbound_payload()
            if payload:
                self._seq += 1
                self._chunk += 1
                ms = int((now - self._t0) * 1000)
                self._sender.send(
                    encode_media(self.stream_sid, payload, "inbound", self._chunk, ms, self._seq)
                )
                self.frames_sent += 1
        play = self._playout
        if not play:
            return
        item = play.popleft()
        while isinstance(item, str):  # marks whose audio finished playing last tick
            self._echo_mark(item)
            if not play:
                return
            item = play.popleft()
        self.frames_played += 1
        self._play(now, item)

    def _outbound_payload(self) -> bytes:
        """The u-law of this tick: the caller's next frame, silence, or nothing."""
        frame = self.next_outbound()
        if frame is not None:
            return ulaw_encode(frame)
        return _SILENCE if self.send_silence else b""

    def _play(self, now: float, frame: bytes) -> None:
        """One frame of the app's audio reaches the caller's ear (here: the sink)."""
        sink = self.sink
        if sink is not None:
            sink.on_audio(frame)

    def send_dtmf(self, digit: str) -> None:
        """Send a ``dtmf`` event now (out of band, as Twilio reports a key press).

        Raises:
            WsMediaUsageError: ``digit`` is not one of 0-9 * # A-D.
        """
        if digit not in DTMF_DIGITS:
            raise WsMediaUsageError(f"not a DTMF digit: {digit!r}")
        if not self.closed.done():
            self._seq += 1
            self._sender.send(encode(wire.Dtmf(self.stream_sid, digit, sequence_number=self._seq)))

    def answer_transfer(self, target: str, ok: bool, status: int, detail: str = "") -> None:
        """Answer the app's ``transfer`` with the trunkline ``transfer_result`` event."""
        if not self.closed.done():
            result = wire.TransferResult(self.stream_sid, target, ok, status, detail)
            self._sender.send(encode(result))

    async def transfer(self, target: str) -> TransferResult:
        """A caller cannot transfer over a media stream; always ``ok=False``, 501."""
        return TransferResult(False, 501, "a media stream caller cannot transfer")

    async def hangup(self, reason: str = "normal") -> None:
        """Send ``stop``, end the leg and close the socket (Twilio's end of a call)."""
        if not self.closed.done():
            self._seq += 1
            stop = wire.Stop(self.stream_sid, self.account_sid, self.call_id, self._seq)
            self._sender.send(encode(stop))
            self._finish(reason, "local")
        await self._ws.close()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.wait({reader})

    def _finish(self, reason: str, by: Literal["remote", "local"]) -> None:
        if self.closed.done():
            return
        super()._finish(reason, by)
        self._pacer.remove(self)
        self._playout.clear()
        self._rx_tail = b""

    def _emit_caller(self, event: ClearReceived | TransferRequested) -> None:
        # leg.py's LegEvent union does not list the caller's own events (yet); the sink
        # protocol is the same call, so the cast only widens the declared type.
        self._emit(cast(LegEvent, event))

    # -- the app's side of the line ------------------------------------------------------

    def _echo_mark(self, name: str) -> None:
        self._seq += 1
        self._sender.send(encode(wire.Mark(self.stream_sid, name, self._seq)))

    def _on_media(self, payload: bytes) -> None:
        pcm = ulaw_decode(payload)
        if self._rx_tail:
            pcm = self._rx_tail + pcm
        if len(pcm) == FRAME_BYTES:
            self._playout.append(pcm)
            self._rx_tail = b""
            return
        whole = len(pcm) - len(pcm) % FRAME_BYTES
        self._rx_tail = pcm[whole:]
        self._playout.extend(pcm[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES))

    def _on_control(self, event: wire.Event) -> bool:
        """Handle a non-media event from the app; False when the call has ended."""
        play = self._playout
        if isinstance(event, wire.Mark):
            if self._rx_tail:  # the mark follows that audio, so play it out (padded) first
                play.append(self._rx_tail + bytes(FRAME_BYTES - len(self._rx_tail)))
                self._rx_tail = b""
            play.append(event.name)
        elif isinstance(event, wire.Clear):
            dropped = 0
            for item in play:
                if isinstance(item, str):
                    self._echo_mark(item)
                else:
                    dropped += 1
            play.clear()
            self._rx_tail = b""
            self.frames_cleared += dropped
            self._emit_caller(ClearReceived(dropped))
        elif isinstance(event, wire.Transfer):
            self._emit_caller(TransferRequested(event.target))
        elif isinstance(event, wire.Hangup):
            self._finish(event.reason, "remote")
            return False
        else:  # connected/start/stop/dtmf come from the telephony side, not to it
            self.log.debug("ignoring %s from the app", type(event).__name__)
        return True

    async def close_stream(self, reason: str, code: int) -> None:
        """End the leg from our side and close the socket with ``code``, without ``stop``."""
        self.log.info("closing with %d: %s", code, reason)
        self._finish(reason, "local")
        await self._ws.close(code=code, message=reason.encode()[:_MAX_CLOSE_REASON])

    async def _receive(self) -> None:
        ws = self._ws
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        await self.close_stream("binary frame", CloseCode.UNSUPPORTED_DATA)
                    break
                try:
                    event = decode(msg.data)
                except WsMediaProtocolError as exc:
                    if self.garbage.bad(self.log, exc.reason):
                        await self.close_stream(exc.reason, exc.close_code)
                        break
                    continue
                self.garbage.run = 0
                if type(event) is wire.Media:
                    self._on_media(event.payload)
                elif not self._on_control(event):
                    break
        except Exception:  # the sink raised: end this call, never leak the task's error
            self.log.exception("the caller's sink failed; ending the call")
            self._finish("sink error", "local")
        finally:
            if not ws.closed:
                await ws.close()
            self.close_code = ws.close_code
            self._finish(f"closed ({self.close_code})", "remote")
            if self._owned_session is not None:
                await self._owned_session.close()
