"""The WebSocket media endpoint: Twilio (or anything that speaks Media Streams) connects here.

Theory of operation
-------------------
We play the app side of a bidirectional Media Stream. One aiohttp handler coroutine per
connection does everything for its stream, with no task per message:

1. Handshake. Check admission (``admit()`` False: close 1013), then read ``connected``
   (optional) and ``start`` within ``handshake_timeout_s`` (else close 1008). Anything else
   first, or a media format that is not u-law/8000/mono, closes the socket.
2. Call. Build a :class:`WsMediaLeg`, add it to the pacer, start the app
   (``handler(leg)``) as the call's one task, then run the receive loop: ``media`` is
   decoded and handed to the sink in 20 ms frames, ``dtmf`` becomes ``Dtmf``, the peer's
   echo of our ``mark`` becomes ``MarkReached``, ``stop`` ends the leg. A message that
   does not decode is counted and ignored; more than ``MAX_CONSECUTIVE_GARBAGE`` in a
   row closes with the error's code (1007). A binary frame closes with 1003.
3. End. Whichever ends the call (peer ``stop`` or close, the app returning, ``hangup()``,
   a silent peer, server shutdown: 1001) finishes the leg once; the sink's last event is
   ``Hangup``. The app task gets ``handler_grace_s`` to return on its own and is then
   cancelled. Events that arrive before the app attaches its sink wait for it.

Outbound is driven by the pacer: each ``on_tick`` sends one frame from ``leg.out`` as a
``media`` message. Marks follow Twilio's semantics rather than the base class's: a mark
is *sent* when the pacer passes it (after the media before it) and *reached* when the
peer echoes it, which Twilio does once that audio has played at the caller's end.
``clear()`` sends the unsent marks, then ``clear``; the peer echoes every pending mark,
so the app sees ``MarkReached`` for each in order.

Sending from a pacer tick is synchronous, so the per-frame path creates no task and
awaits nothing: a served call writes its frames on the connection's transport itself
(:class:`FrameWriter`), a leg built without one runs aiohttp's ``send_str`` a single step
(:class:`SyncSender`). Inbound, the caller's audio takes the codec's fast path
(``inbound_payload``: no JSON parse, no event object) to the sink; other messages are
decoded in full.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from aiohttp import WSMsgType, web

from trunkline.aio import cancel_and_wait
from trunkline.media.audio import FRAME_BYTES
from trunkline.net.leg import (
    CallHandler,
    Dtmf,
    Hangup,
    LegEvent,
    LegInfo,
    MarkReached,
    MediaLeg,
    MediaSink,
    TransferResult,
)
from trunkline.net.pacer import PERIOD_S, Pacer
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import decode, encode, inbound_payload, media_encoder
from trunkline.wsmedia.errors import CloseCode, WsMediaProtocolError, WsMediaUsageError
from trunkline.wsmedia.events import MULAW, MULAW_RATE

log = logging.getLogger(__name__)

# A 20 ms media message is ~350 bytes and a start with generous customParameters a few
# KiB; anything near this is not Media Streams (aiohttp closes such a message with 1009).
MAX_MESSAGE_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT_S = 5.0  # Twilio sends connected and start at once on connect
HANDLER_GRACE_S = 5.0  # time an app gets after the Hangup to return before it is cancelled
TRANSFER_TIMEOUT_S = 30.0  # a transfer rings a human; longer than that is a lost answer
# Twilio sends media every 20 ms for the whole call, silence included, so this long
# without any message is a dead peer (a half-open TCP connection), not a quiet caller.
IDLE_TIMEOUT_S = 30.0
# One second of media; a peer that sends nothing valid for that long is broken, not noisy.
MAX_CONSECUTIVE_GARBAGE = 50


class GarbageRun:
    """Undecodable messages on one stream: counted, logged once, tolerated up to a run of
    ``MAX_CONSECUTIVE_GARBAGE`` (shared by the server leg and the caller)."""

    __slots__ = ("run", "total")

    def __init__(self) -> None:
        self.total = 0
        self.run = 0

    def bad(self, log: logging.LoggerAdapter[logging.Logger] | logging.Logger, reason: str) -> bool:
        """Count one; True when the run is long enough to close the stream."""
        self.total += 1
        self.run += 1
        if self.total == 1:
            log.warning("ignoring a bad message (logged once): %s", reason)
        return self.run > MAX_CONSECUTIVE_GARBAGE


#: What ``receive()`` returns once the socket closes (``async for`` stops on these).
_CLOSED_TYPES = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})
# Events kept for an app that has not attached yet; a peer pressing keys faster than an
# app starts is not worth more memory than this.
MAX_EARLY_EVENTS = 64
CLOSE_TIMEOUT_S = 5.0  # how long aiohttp waits for the peer's close frame after ours
_MAX_CLOSE_REASON = 120  # RFC 6455 §5.5: a control frame payload is at most 125 bytes


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every record with the call's id (the house rule for per-call logs)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('call_id', '?')}] {msg}", kwargs


class SyncSender:
    """Sends WebSocket text messages from synchronous code (a pacer tick) without a task.

    aiohttp's ``send_str`` is a coroutine, but with compression off it writes the frame to
    the transport at once and only then, when the transport is paused, awaits flow
    control. So we run the coroutine a single step: it nearly always finishes there. If it
    stops at the flow-control wait, the frame is already in the transport's buffer; we
    drop the wait and set ``blocked`` until the transport drains, and the leg holds its
    audio meanwhile rather than pile seconds of it into a socket the peer is not reading.
    (aiohttp itself runs its pings this way, eagerly, on Python 3.12+.)
    """

    __slots__ = ("_send_str", "blocked", "broken")

    def __init__(self, send_str: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._send_str = send_str
        self.blocked = False
        self.broken = False

    def send(self, text: str) -> bool:
        """Write one message now; False if the socket is closing or gone."""
        coro = self._send_str(text)
        try:
            waiter = coro.send(None)
        except StopIteration:
            return True
        except Exception:  # closing or lost transport: the receive loop ends the leg
            self.broken = True
            return False
        coro.close()
        if isinstance(waiter, asyncio.Future):
            self.blocked = True
            waiter.add_done_callback(self._drained)
        return True

    def _drained(self, waiter: asyncio.Future[Any]) -> None:
        self.blocked = False
        if not waiter.cancelled():
            waiter.exception()  # a lost connection is the receive loop's news, not a log line


# RFC 6455 §5.2 headers of an unmasked text frame with FIN set (0x81), by payload length.
_HEADER_7 = struct.Struct("!BB").pack
_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack


class FrameWriter:
    """Writes the server's text messages straight to the connection's transport.

    A server's frames are unmasked (RFC 6455 §5.1), so a text message is a 2-10 byte
    header and the UTF-8 text: one ``transport.write``. That skips aiohttp's coroutine,
    its writer's checks and its second write for the header, about a third of the
    outbound per-frame cost (``bench/agent_frame_path.py``). Writes stay whole frames in
    order, so they interleave safely with what aiohttp itself writes on the socket
    (its close frame, pongs). Nothing is written once the response is closed (our close
    frame is the last data frame's end) or the transport is closing.

    Flow control is the transport's own: ``blocked`` while its buffer is above its high
    water mark (when aiohttp would pause the writer); the leg then holds its audio.
    """

    __slots__ = ("_high", "_transport", "_ws", "broken")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.WriteTransport) -> None:
        self._ws = ws
        self._transport = transport
        self._high = transport.get_write_buffer_limits()[1]
        self.broken = False

    @property
    def blocked(self) -> bool:
        """The peer is not reading: more than the high water mark waits in our buffer."""
        return self._transport.get_write_buffer_size() > self._high

    def send(self, text: str) -> bool:
        """Write one text message now; False if the socket is closing or gone."""
        transport = self._transport
        if self._ws.closed or transport.is_closing():
            self.broken = True
            return False
        data = text.encode()
        n = len(data)
        if n < 126:
            header = _HEADER_7(0x81, n)
        elif n < 65536:
            header = _HEADER_16(0x81, 126, n)
        else:
            header = _HEADER_64(0x81, 127, n)
        transport.write(header + data)
        return True


@dataclass
class WsMediaStats:
    """Counters of one media route, for metrics and tests."""

    active: int = 0  # calls whose socket or app is still running
    calls: int = 0  # calls that got past the handshake
    refused: int = 0  # closed with 1013 because admit() said no
    handshake_failures: int = 0
    garbage_messages: int = 0  # messages that did not decode, over all calls


class EventBufferingLeg(MediaLeg):
    """A leg that keeps events which come before ``attach()`` and hands them over then.

    The app attaches its sink in its own task, so a key press or a hangup that arrives
    in the same read as ``start`` would otherwise reach no one. Audio before attach is
    still dropped: no one was listening. (A candidate for :class:`MediaLeg` itself.)
    """

    def __init__(self, info: LegInfo) -> None:
        super().__init__(info)
        self._early: list[LegEvent] | None = []  # None once a sink is attached

    def attach(self, sink: MediaSink) -> None:
        """Start delivering to ``sink``; events that came before go first, in order."""
        super().attach(sink)
        early, self._early = self._early, None
        for event in early or ():
            sink.on_event(event)

    def _emit(self, event: LegEvent) -> None:
        early = self._early
        if early is None:
            super()._emit(event)
        elif len(early) < MAX_EARLY_EVENTS or isinstance(event, Hangup):
            early.append(event)


class WsMediaLeg(EventBufferingLeg):
    """One Media Stream seen from the app: a :class:`MediaLeg` over a WebSocket."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        start: wire.Start,
        pacer: Pacer,
        *,
        transfer_timeout_s: float = TRANSFER_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        transport: asyncio.WriteTransport | None = None,
    ) -> None:
        """``transport``: the connection's, to write frames on directly (:class:`FrameWriter`);
        without it messages go through ``ws.send_str`` (:class:`SyncSender`)."""
        info = LegInfo(
            kind="ws",
            call_id=start.call_sid or start.stream_sid,
            extra=dict(start.custom_parameters),
        )
        super().__init__(info)
        self.stream_sid = start.stream_sid
        self.account_sid = start.account_sid
        self.transfer_timeout_s = transfer_timeout_s
        self.log = CallLog(log, {"call_id": info.call_id})
        self.frames_in = 0
        self.frames_out = 0
        self.garbage = GarbageRun()
        self._ws = ws
        self._pacer = pacer
        self._sender: SyncSender | FrameWriter = (
            SyncSender(ws.send_str) if transport is None else FrameWriter(ws, transport)
        )
        self._media = media_encoder(start.stream_sid)
        self._sent_marks: deque[str] = deque()  # sent to the peer, echo not yet seen
        self._rx_tail = b""  # PCM of a media payload that was not a whole number of frames
        self._transfer: asyncio.Future[TransferResult] | None = None
        self._transfer_target = ""
        self._idle_ticks = 0
        self._idle_limit = max(1, round(idle_timeout_s / PERIOD_S))
        self._closer: asyncio.Task[bool] | None = None

    # -- outbound, on the pacer ------------------------------------------------------

    def on_tick(self, now: float) -> None:
        """Send one queued frame as ``media``, with the marks on either side of it."""
        if self.closed.done():
            return
        self._idle_ticks += 1
        if self._idle_ticks > self._idle_limit:
            self._expire()
            return
        out = self.out
        if not out or self._sender.blocked:
            return
        item = out.popleft()
        while isinstance(item, str):
            self._send_mark(item)
            if not out:
                return
            item = out.popleft()
        self._sender.send(self._media(ulaw_encode(item)))
        self.frames_out += 1
        # A mark right after this frame goes now, so the peer can echo it the moment the
        # frame has played rather than a tick later.
        while out and isinstance(out[0], str):
            self._send_mark(cast(str, out.popleft()))

    def _send_mark(self, name: str) -> None:
        self._sender.send(encode(wire.Mark(self.stream_sid, name)))
        self._sent_marks.append(name)

    def clear(self) -> None:
        """Barge-in: drop queued audio and tell the peer to drop what it has buffered.

        Unsent marks are sent ahead of ``clear``, so the peer echoes them with the rest
        and ``MarkReached`` arrives for every pending mark, in order.
        """
        out = self.out
        if not self.closed.done():
            for item in out:
                if isinstance(item, str):
                    self._send_mark(item)
            self._sender.send(encode(wire.Clear(self.stream_sid)))
        out.clear()

    # -- call control -----------------------------------------------------------------

    async def transfer(self, target: str) -> TransferResult:
        """Send the trunkline ``transfer`` event and wait for the peer's ``transfer_result``.

        Returns ``TransferResult(ok=False, status=408)`` if none comes within
        ``transfer_timeout_s`` and 487 if the call ends first.

        Raises:
            WsMediaUsageError: a transfer is already pending on this stream.
        """
        if self.closed.done():
            return TransferResult(False, 481, "call already ended")
        if self._transfer is not None:
            raise WsMediaUsageError("a transfer is already pending on this stream")
        waiter: asyncio.Future[TransferResult] = asyncio.get_running_loop().create_future()
        self._transfer = waiter
        self._transfer_target = target
        if not self._sender.send(encode(wire.Transfer(self.stream_sid, target))):
            self._transfer = None
            return TransferResult(False, 503, "the stream is closing")
        try:
            async with asyncio.timeout(self.transfer_timeout_s):
                return await waiter
        except TimeoutError:
            return TransferResult(False, 408, "no transfer_result from the peer")
        finally:
            self._transfer = None

    async def hangup(self, reason: str = "normal") -> None:
        """Send the trunkline ``hangup`` event, end the leg and close the socket with 1000."""
        if not self.closed.done():
            self._sender.send(encode(wire.Hangup(self.stream_sid, reason)))
            self._finish(reason, "local")
        await self._ws.close(code=CloseCode.NORMAL, message=b"hangup")

    def _finish(self, reason: str, by: Literal["remote", "local"]) -> None:
        if self.closed.done():
            return
        super()._finish(reason, by)
        self._pacer.remove(self)
        self._sent_marks.clear()
        waiter = self._transfer
        if waiter is not None and not waiter.done():
            waiter.set_result(TransferResult(False, 487, "call ended"))

    def _expire(self) -> None:
        silent_s = self._idle_limit * PERIOD_S
        self.log.warning("no message from the peer for %g s; closing", silent_s)
        self._finish("peer silent", "local")
        # The one task a call may create outside its app: closing, from a sync tick.
        self._closer = asyncio.ensure_future(
            self._ws.close(code=CloseCode.POLICY_VIOLATION, message=b"no media")
        )

    # -- inbound ----------------------------------------------------------------------

    async def run(self, stats: WsMediaStats) -> None:
        """The receive loop: returns when the socket closes or the stream ends."""
        ws = self._ws
        receive = ws.receive  # not ``async for``: one coroutine less per message
        while True:
            msg = await receive()
            if msg.type is not WSMsgType.TEXT:
                if msg.type is WSMsgType.BINARY:
                    await self.close_stream("binary frame", CloseCode.UNSUPPORTED_DATA)
                elif msg.type not in _CLOSED_TYPES:  # ERROR: aiohttp has already closed it
                    self._finish(f"websocket error ({ws.close_code})", "local")  # 1009: huge
                break
            self._idle_ticks = 0
            try:
                if self._on_text(msg.data):
                    continue
            except WsMediaProtocolError as exc:
                stats.garbage_messages += 1
                if self.garbage.bad(self.log, exc.reason):
                    await self.close_stream(exc.reason, exc.close_code)
                    break
                continue
            except Exception:  # the sink raised: a bug in the app must not outlive the call
                self.log.exception("the app's sink failed; ending the call")
                await self.close_stream("app error", CloseCode.INTERNAL_ERROR)
                break
            break

    def _on_text(self, text: str) -> bool:
        """Handle one text message; False when the stream has ended.

        The caller's audio (nearly every message) takes the codec's fast path straight to
        the sink; anything else is decoded in full.

        Raises:
            WsMediaProtocolError: the message does not decode.
        """
        payload = inbound_payload(text)
        if payload is not None:
            self.garbage.run = 0
            self._on_audio(payload)
            return True
        event = decode(text)
        self.garbage.run = 0
        if type(event) is wire.Media:
            if event.track is None or event.track == "inbound":
                self._on_audio(event.payload)
            # else a unidirectional fork's "outbound" track: what the caller hears
            return True
        return self._on_control(event)

    async def close_stream(self, reason: str, code: int) -> None:
        """End the leg from our side and close the socket with ``code`` and ``reason``.

        Unlike :meth:`hangup` no ``hangup`` event is sent: the stream ends, and what
        becomes of the call is the telephony side's business (Twilio moves on to the next
        TwiML verb).
        """
        self.log.info("closing with %d: %s", code, reason)
        self._finish(reason, "local")
        await self._ws.close(code=code, message=reason.encode()[:_MAX_CLOSE_REASON])

    def _on_audio(self, payload: bytes) -> None:
        """The caller's u-law, to the sink in 20 ms PCM frames."""
        sink = self.sink
        pcm = ulaw_decode(payload)
        if not self._rx_tail and len(pcm) == FRAME_BYTES:
            self.frames_in += 1
            if sink is not None:
                sink.on_audio(pcm)
            return
        pcm = self._rx_tail + pcm
        whole = len(pcm) - len(pcm) % FRAME_BYTES
        self._rx_tail = pcm[whole:]
        for i in range(0, whole, FRAME_BYTES):
            self.frames_in += 1
            if sink is not None:
                sink.on_audio(pcm[i : i + FRAME_BYTES])

    def _on_control(self, event: wire.Event) -> bool:
        """Handle a non-media event; False when the stream has ended."""
        if isinstance(event, wire.Mark):
            self._on_mark_echo(event.name)
        elif isinstance(event, wire.Dtmf):
            self._emit(Dtmf(event.digit))
        elif isinstance(event, wire.Stop):
            self._finish("stop", "remote")
            return False
        elif isinstance(event, wire.TransferResult):
            waiter = self._transfer
            if waiter is None or waiter.done() or event.target != self._transfer_target:
                return True  # no transfer pending, or a stale answer
            waiter.set_result(TransferResult(event.ok, event.status, event.detail))
        else:  # a second start, or an app-side event: harmless, and not ours to act on
            self.log.debug("ignoring %s from the peer", type(event).__name__)
        return True

    def _on_mark_echo(self, name: str) -> None:
        # Twilio echoes marks in order; an echo also means every earlier mark has played.
        sent = self._sent_marks
        if name not in sent:
            return  # not ours, or echoed twice
        while sent:
            reached = sent.popleft()
            self._emit(MarkReached(reached))
            if reached == name:
                return


async def _handshake(ws: web.WebSocketResponse, timeout_s: float) -> wire.Start | None:
    """Read ``connected`` (optional) and ``start``; on failure close and return None."""
    code: int = CloseCode.POLICY_VIOLATION
    reason = f"no start within {timeout_s:g} s"
    try:
        async with asyncio.timeout(timeout_s):
            async for msg in ws:
                if msg.type is WSMsgType.BINARY:
                    code, reason = CloseCode.UNSUPPORTED_DATA, "binary frame"
                    break
                if msg.type is not WSMsgType.TEXT:
                    return None
                try:
                    event = decode(msg.data)
                except WsMediaProtocolError as exc:
                    code, reason = exc.close_code, exc.reason
                    break
                if isinstance(event, wire.Connected):
                    continue
                if not isinstance(event, wire.Start):
                    reason = f"expected start, got {type(event).__name__.lower()}"
                    break
                fmt = event.media_format
                if (fmt.encoding, fmt.sample_rate, fmt.channels) != (MULAW, MULAW_RATE, 1):
                    code = CloseCode.UNSUPPORTED_DATA
                    reason = f"unsupported media format {fmt.encoding}/{fmt.sample_rate}"
                    break
                return event
            else:
                return None  # the peer closed first
    except TimeoutError:
        pass
    log.info("media stream handshake failed: %s", reason)
    await ws.close(code=code, message=reason.encode()[:_MAX_CLOSE_REASON])
    return None


async def _run_app(handler: CallHandler, leg: WsMediaLeg) -> None:
    reason = "app done"
    try:
        await handler(leg)
    except Exception:
        leg.log.exception("the app failed")
        reason = "app error"
    if not leg.closed.done():
        await leg.hangup(reason)


def add_media_route(
    app: web.Application,
    handler: CallHandler,
    pacer: Pacer,
    *,
    path: str = "/media",
    admit: Callable[[], bool] | None = None,
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
    handler_grace_s: float = HANDLER_GRACE_S,
    transfer_timeout_s: float = TRANSFER_TIMEOUT_S,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> WsMediaStats:
    """Serve Media Streams at ``path``: one :class:`WsMediaLeg` and one ``handler`` task per call.

    Args:
        admit: called once per connection; False closes it with 1013 (try again later).
        handshake_timeout_s: how long ``connected`` + ``start`` may take (then 1008).
        handler_grace_s: how long an app may run on after its call has ended.

    Returns:
        The route's live counters.
    """
    stats = WsMediaStats()
    live: set[WsMediaLeg] = set()

    async def close_all(_: web.Application) -> None:
        closing = [leg.close_stream("server shutdown", CloseCode.GOING_AWAY) for leg in live]
        await asyncio.gather(*closing, return_exceptions=True)

    async def media_stream(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            compress=False,  # per-message deflate would cost more CPU than base64 saves
            max_msg_size=MAX_MESSAGE_BYTES,
            timeout=CLOSE_TIMEOUT_S,
        )
        await ws.prepare(request)
        if admit is not None and not admit():
            stats.refused += 1
            await ws.close(code=CloseCode.TRY_AGAIN_LATER, message=b"try again later")
            return ws
        start = await _handshake(ws, handshake_timeout_s)
        if start is None:
            stats.handshake_failures += 1
            return ws
        leg = WsMediaLeg(
            ws, start, pacer, transfer_timeout_s=transfer_timeout_s,
            idle_timeout_s=idle_timeout_s, transport=request.transport,
        )  # fmt: skip
        stats.calls += 1
        stats.active += 1
        live.add(leg)
        pacer.add(leg)
        task = asyncio.create_task(_run_app(handler, leg), name=f"ws call {leg.call_id}")
        try:
            # Let the app take its first step (attach its sink) before media flows in.
            await asyncio.sleep(0)
            await leg.run(stats)
        finally:
            leg._finish("closed", "remote")  # a no-op if stop, hangup or an error ended it
            try:
                if not task.done() and handler_grace_s > 0:
                    await asyncio.wait({task}, timeout=handler_grace_s)
            finally:
                if not task.done():
                    await cancel_and_wait(task)
                stats.active -= 1
                live.discard(leg)
            if not ws.closed:
                await ws.close()
        return ws

    app.router.add_get(path, media_stream)
    app.on_shutdown.append(close_all)  # streams are long-lived: end them, don't wait them out
    return stats
