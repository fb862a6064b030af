"""Media Streams end to end on 127.0.0.1: the real aiohttp server (WsMediaLeg), the real
caller (WsMediaCaller) or a hand-driven Twilio stand-in, and the real pacer.

Nothing here asserts on durations: every wait is for an event, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from trunkline.net.leg import Dtmf, Hangup, MarkReached, MediaLeg, TransferResult
from trunkline.net.pacer import Pacer
from trunkline.net.ws_client import ClearReceived, TransferRequested, WsMediaCaller
from trunkline.net.ws_server import WsMediaLeg, WsMediaStats, add_media_route
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import decode, encode
from trunkline.wsmedia.errors import WsMediaUsageError

FRAME = 320
WAIT_S = 10.0


# -- helpers shared with test_ws_robustness ---------------------------------------------


def tone_frames(count: int) -> list[bytes]:
    """``count`` distinct 20 ms frames (a different pitch each), so order is checkable."""
    frames = []
    for k in range(count):
        hz = 300 + 50 * k
        samples = (int(6000 * math.sin(2 * math.pi * hz * i / 8000)) for i in range(160))
        frames.append(struct.pack("<160h", *samples))
    return frames


def through_ulaw(pcm: bytes) -> bytes:
    return ulaw_decode(ulaw_encode(pcm))


class Recorder:
    """A sink that keeps every frame and event; ``hook`` sees events as they arrive."""

    def __init__(self, hook: Callable[[Any], None] | None = None) -> None:
        self.frames: list[bytes] = []
        self.events: list[Any] = []
        self.hook = hook

    def on_audio(self, pcm: bytes) -> None:
        self.frames.append(pcm)

    def on_event(self, event: Any) -> None:
        self.events.append(event)
        if self.hook is not None:
            self.hook(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait until ``predicate()`` holds, failing after a generous ``WAIT_S``."""
    try:
        async with asyncio.timeout(WAIT_S):
            # Polling, not an Event: the predicates span stats, legs and sinks that share no
            # notifier, and a 5 ms poll under a deadline is still a wait, not a timing claim.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


Body = Callable[[WsMediaLeg, Recorder], Awaitable[None]]


class App:
    """The app under test: records each leg it gets, echoes if asked, then runs ``body``."""

    def __init__(self, body: Body | None = None, *, echo: bool = False) -> None:
        self.body = body
        self.echo = echo
        self.calls: dict[str, tuple[WsMediaLeg, Recorder]] = {}
        self.returned = 0
        self.cancelled = 0

    async def __call__(self, leg: MediaLeg) -> None:
        assert isinstance(leg, WsMediaLeg)
        rec = Recorder()
        if self.echo:
            out = leg.out

            def echo(pcm: bytes) -> None:
                rec.frames.append(pcm)
                out.append(pcm)

            rec.on_audio = echo  # type: ignore[method-assign]
        leg.attach(rec)
        self.calls[leg.call_id] = (leg, rec)
        try:
            if self.body is not None:
                await self.body(leg, rec)
            else:
                await leg.wait_closed()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.returned += 1

    async def call(self, call_id: str) -> tuple[WsMediaLeg, Recorder]:
        await eventually(lambda: call_id in self.calls, f"the app to get call {call_id}")
        return self.calls[call_id]


@dataclass
class Served:
    url: str
    stats: WsMediaStats
    pacer: Pacer
    session: aiohttp.ClientSession
    runner: web.AppRunner
    callers: list[WsMediaCaller] = field(default_factory=list)
    stopped: bool = False

    async def stop_server(self) -> None:
        """Shut the web server down (once), as the runtime does on exit."""
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()

    async def caller(self, call_sid: str = "CA1", **kwargs: Any) -> tuple[WsMediaCaller, Recorder]:
        caller = await WsMediaCaller.connect(
            self.url, self.pacer, session=self.session, call_sid=call_sid, **kwargs
        )
        rec = Recorder()
        caller.attach(rec)
        self.callers.append(caller)
        return caller, rec

    async def raw(self, call_sid: str | None = "CA1") -> aiohttp.ClientWebSocketResponse:
        """A hand-driven Twilio stand-in; sends connected + start unless ``call_sid`` is None."""
        ws = await self.session.ws_connect(self.url)
        if call_sid is not None:
            await ws.send_str(encode(wire.Connected()))
            await ws.send_str(encode(wire.Start("MZ" + call_sid, call_sid)))
        return ws


@asynccontextmanager
async def serve(app: App, **route: Any) -> AsyncIterator[Served]:
    pacer = Pacer()
    pacer.start()
    web_app = web.Application()
    stats = add_media_route(web_app, app, pacer, **route)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    session = aiohttp.ClientSession()
    served = Served(f"http://{host}:{port}/media", stats, pacer, session, runner)
    try:
        yield served
    finally:
        for caller in served.callers:
            await caller.hangup()
        await session.close()
        await served.stop_server()
        pacer.stop()


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> wire.Event:
    msg = await ws.receive(timeout=WAIT_S)
    assert msg.type is WSMsgType.TEXT, msg
    return decode(msg.data)


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes; the code it closed with."""
    while True:
        msg = await ws.receive(timeout=WAIT_S)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return ws.close_code


# -- audio ------------------------------------------------------------------------------


async def test_echo_returns_the_callers_audio_in_order() -> None:
    frames = tone_frames(25)
    app = App(echo=True)
    async with serve(app) as served:
        caller, heard = await served.caller()
        caller.send_audio(b"".join(frames))
        await eventually(
            lambda: sum(1 for f in heard.frames if any(f)) >= len(frames), "the echoed tone"
        )
        first = next(i for i, f in enumerate(heard.frames) if any(f))
        assert heard.frames[first : first + len(frames)] == [through_ulaw(f) for f in frames]
        _, app_heard = await app.call("CA1")
        assert [f for f in app_heard.frames if any(f)][: len(frames)] == [
            through_ulaw(f) for f in frames
        ]


async def test_media_payloads_of_any_size_reach_the_app_as_whole_frames() -> None:
    app = App()
    async with serve(app) as served:
        ws = await served.raw()
        codes = bytes(range(256)) * 3
        sizes = [80, 400, 120, 80]  # 680 codes: four whole frames and 40 codes left over
        sent, at = [], 0
        for size in sizes:
            sent.append(codes[at : at + size])
            at += size
            await ws.send_str(encode(wire.Media("MZCA1", sent[-1], "inbound", 1, 0, 2)))
        # The other track of a forked stream is what the caller hears: not for the app.
        await ws.send_str(encode(wire.Media("MZCA1", codes[:160], "outbound", 1, 0, 3)))
        await ws.send_str(encode(wire.Dtmf("MZCA1", "5")))
        _, rec = await app.call("CA1")
        await eventually(lambda: bool(rec.of(Dtmf)), "the DTMF sent after the media")
        pcm = ulaw_decode(b"".join(sent))
        assert rec.frames == [pcm[i : i + FRAME] for i in range(0, 4 * FRAME, FRAME)]
        await ws.close()


# -- marks and clear ----------------------------------------------------------------------


async def test_mark_is_reached_when_the_peer_echoes_it_not_when_it_is_sent() -> None:
    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        leg.send_audio(b"".join(tone_frames(3)))
        leg.mark("m1")
        await leg.wait_closed()

    app = App(body)
    async with serve(app) as served:
        ws = await served.raw()
        got = [await next_event(ws) for _ in range(4)]
        assert [type(e) for e in got] == [wire.Media] * 3 + [wire.Mark]
        assert got[3] == wire.Mark("MZCA1", "m1")
        _, rec = await app.call("CA1")
        assert rec.of(MarkReached) == []  # sent, but the peer has not played it yet
        await ws.send_str(encode(wire.Mark("MZCA1", "m1", 9)))
        await eventually(lambda: rec.of(MarkReached) == [MarkReached("m1")], "MarkReached")
        await ws.close()


async def test_marks_come_back_through_the_caller_only_after_the_audio_before_them() -> None:
    played_at: dict[str, int] = {}
    caller_box: list[WsMediaCaller] = []

    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        def on_event(event: Any) -> None:
            if isinstance(event, MarkReached):
                played_at[event.name] = caller_box[0].frames_played

        rec.hook = on_event
        frames = tone_frames(15)
        leg.send_audio(b"".join(frames[:10]))
        leg.mark("a")
        leg.send_audio(b"".join(frames[10:]))
        leg.mark("b")
        await leg.wait_closed()

    app = App(body)
    async with serve(app) as served:
        caller, _ = await served.caller()
        caller_box.append(caller)
        _, rec = await app.call("CA1")
        await eventually(lambda: len(rec.of(MarkReached)) == 2, "both marks")
        assert rec.of(MarkReached) == [MarkReached("a"), MarkReached("b")]
        assert played_at["a"] >= 10
        assert played_at["b"] >= 15


async def test_clear_drops_queued_audio_and_the_peer_sees_clear_after_pending_marks() -> None:
    go = asyncio.Event()
    queued_after_clear: list[int] = []

    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        frames = tone_frames(1) * 200
        leg.send_audio(b"".join(frames))
        leg.mark("x")
        leg.send_audio(b"".join(frames))
        await go.wait()
        leg.clear()
        queued_after_clear.append(leg.queued_frames)
        leg.mark("after")
        await leg.wait_closed()

    app = App(body)
    async with serve(app) as served:
        ws = await served.raw()
        assert isinstance(await next_event(ws), wire.Media)
        go.set()
        media = 1
        event = await next_event(ws)
        while isinstance(event, wire.Media):
            media += 1
            event = await next_event(ws)
        # Unsent marks go ahead of the clear, so the peer can echo them.
        assert event == wire.Mark("MZCA1", "x")
        assert await next_event(ws) == wire.Clear("MZCA1")
        # Nothing of the dropped audio follows: the next message is the new mark.
        assert await next_event(ws) == wire.Mark("MZCA1", "after")
        assert queued_after_clear == [0]
        assert media < 400
        _, rec = await app.call("CA1")
        assert rec.of(MarkReached) == []
        await ws.send_str(encode(wire.Mark("MZCA1", "x")))
        await ws.send_str(encode(wire.Mark("MZCA1", "after")))
        await eventually(lambda: len(rec.of(MarkReached)) == 2, "the echoed marks")
        assert rec.of(MarkReached) == [MarkReached("x"), MarkReached("after")]
        await ws.close()


@asynccontextmanager
async def twilio_app_stub(
    script: Callable[[web.WebSocketResponse, str], Awaitable[None]],
) -> AsyncIterator[tuple[str, list[wire.Event]]]:
    """A hand-written app that runs ``script`` after start and records what it receives."""
    received: list[wire.Event] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = ""
        async for msg in ws:
            event = decode(msg.data)
            received.append(event)
            if isinstance(event, wire.Start):
                sid = event.stream_sid
                await script(ws, sid)
        return ws

    web_app = web.Application()
    web_app.router.add_get("/media", stream)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/media", received
    finally:
        await runner.cleanup()


async def test_caller_plays_app_audio_in_real_time_and_clear_drops_the_rest() -> None:
    payload = ulaw_encode(tone_frames(1)[0])

    async def burst(ws: web.WebSocketResponse, sid: str) -> None:
        for _ in range(500):  # ten seconds of audio, all at once, as TTS apps do
            await ws.send_str(encode(wire.Media(sid, payload)))
        await ws.send_str(encode(wire.Mark(sid, "m")))
        await ws.send_str(encode(wire.Clear(sid)))

    pacer = Pacer()
    pacer.start()
    try:
        async with twilio_app_stub(burst) as (url, received):
            caller = await WsMediaCaller.connect(url, pacer, send_silence=False)
            rec = Recorder()
            caller.attach(rec)
            await eventually(lambda: bool(rec.of(ClearReceived)), "ClearReceived")
            await eventually(lambda: any(isinstance(e, wire.Mark) for e in received), "the echo")
            (clear,) = rec.of(ClearReceived)
            assert clear.dropped_frames > 0
            assert caller.frames_played + clear.dropped_frames == 500
            assert [e.name for e in received if isinstance(e, wire.Mark)] == ["m"]
            await caller.hangup()
    finally:
        pacer.stop()


async def test_caller_pads_a_partial_frame_before_a_mark_and_echoes_after_playing_it() -> None:
    codes = bytes(range(200))  # 1.25 frames

    async def script(ws: web.WebSocketResponse, sid: str) -> None:
        await ws.send_str(encode(wire.Media(sid, codes)))
        await ws.send_str(encode(wire.Mark(sid, "end")))

    pacer = Pacer()
    pacer.start()
    try:
        async with twilio_app_stub(script) as (url, received):
            caller = await WsMediaCaller.connect(url, pacer, send_silence=False)
            rec = Recorder()
            caller.attach(rec)
            await eventually(lambda: any(isinstance(e, wire.Mark) for e in received), "echo")
            pcm = ulaw_decode(codes)
            assert rec.frames == [pcm[:FRAME], pcm[FRAME:] + bytes(2 * FRAME - len(pcm))]
            await caller.hangup()
    finally:
        pacer.stop()


# -- events and the end of a call -----------------------------------------------------------


async def test_dtmf_reaches_the_app() -> None:
    app = App()
    async with serve(app) as served:
        caller, _ = await served.caller()
        caller.send_dtmf("7")
        _, rec = await app.call("CA1")
        await eventually(lambda: bool(rec.of(Dtmf)), "Dtmf")
        assert rec.of(Dtmf) == [Dtmf("7")]
        with pytest.raises(WsMediaUsageError):
            caller.send_dtmf("x")


async def test_stop_ends_the_leg_exactly_once_with_hangup_last() -> None:
    app = App()
    async with serve(app) as served:
        caller, caller_rec = await served.caller()
        _, rec = await app.call("CA1")
        await caller.hangup()
        await eventually(lambda: served.stats.active == 0, "the call to end on the server")
        assert rec.of(Hangup) == [Hangup("stop", "remote")]
        assert rec.events[-1] == Hangup("stop", "remote")
        assert app.returned == 1
        assert caller_rec.of(Hangup) == [Hangup("normal", "local")]


async def test_abrupt_socket_close_ends_the_leg_exactly_once() -> None:
    app = App()
    async with serve(app) as served:
        host_port = served.url.split("//")[1].split("/")[0]
        host, port = host_port.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /media HTTP/1.1\r\nHost: " + host_port.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        for event in (wire.Connected(), wire.Start("MZCA9", "CA9")):
            writer.write(_client_text_frame(encode(event)))
        _, rec = await app.call("CA9")
        writer.transport.abort()  # no close frame, no FIN handshake: the line just drops
        await eventually(lambda: served.stats.active == 0, "the server to notice")
        assert rec.of(Hangup) == [Hangup("closed", "remote")]
        assert rec.events[-1] == Hangup("closed", "remote")


def _client_text_frame(text: str) -> bytes:
    """One masked text frame (RFC 6455 §5.2), as a client must send it."""
    data = text.encode()
    mask = b"\x11\x22\x33\x44"
    if len(data) < 126:
        header = bytes([0x81, 0x80 | len(data)])
    else:
        header = bytes([0x81, 0x80 | 126]) + len(data).to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def test_the_app_returning_hangs_up_the_call() -> None:
    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        return None

    async with serve(App(body)) as served:
        caller, rec = await served.caller()
        await eventually(lambda: caller.closed.done(), "the caller's leg to end")
        assert rec.of(Hangup) == [Hangup("app done", "remote")]
        assert caller.close_code == 1000


async def test_app_hangup_reaches_the_caller_with_its_reason() -> None:
    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        await leg.hangup("goodbye")
        assert leg.closed.result() == Hangup("goodbye", "local")

    app = App(body)
    async with serve(app) as served:
        caller, rec = await served.caller()
        await eventually(lambda: caller.closed.done(), "the caller's leg to end")
        assert rec.of(Hangup) == [Hangup("goodbye", "remote")]
        await eventually(lambda: app.returned == 1, "the app to return")


async def test_an_app_that_ignores_hangup_is_cancelled_after_the_grace_period() -> None:
    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        await asyncio.Event().wait()

    app = App(body)
    async with serve(app, handler_grace_s=0.1) as served:
        caller, _ = await served.caller()
        await app.call("CA1")
        await caller.hangup()
        await eventually(lambda: served.stats.active == 0, "the call to be torn down")
        assert app.cancelled == 1


async def test_a_silent_peer_is_closed_with_1008() -> None:
    app = App()
    async with serve(app, idle_timeout_s=0.3) as served:
        caller, rec = await served.caller(send_silence=False)
        await eventually(lambda: caller.closed.done(), "the idle timeout")
        assert caller.close_code == 1008
        _, app_rec = await app.call("CA1")
        assert app_rec.of(Hangup) == [Hangup("peer silent", "local")]


# -- transfer ----------------------------------------------------------------------------------


async def test_transfer_request_and_result_round_trip() -> None:
    results: list[TransferResult] = []

    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        results.append(await leg.transfer("sip:desk@example.com"))
        await leg.wait_closed()

    async with serve(App(body)) as served:
        caller, rec = await served.caller()

        def answer(event: Any) -> None:
            if isinstance(event, TransferRequested):
                caller.answer_transfer(event.target, True, 200, "bridged")

        rec.hook = answer
        await eventually(lambda: bool(results), "the transfer result")
        assert rec.of(TransferRequested) == [TransferRequested("sip:desk@example.com")]
        assert results == [TransferResult(True, 200, "bridged")]


async def test_unanswered_transfer_times_out_with_408_and_one_at_a_time() -> None:
    results: list[TransferResult] = []
    refused: list[Exception] = []

    async def body(leg: WsMediaLeg, rec: Recorder) -> None:
        first = asyncio.ensure_future(leg.transfer("sip:desk@example.com"))
        await asyncio.sleep(0)
        try:
            await leg.transfer("sip:other@example.com")
        except WsMediaUsageError as exc:
            refused.append(exc)
        results.append(await first)
        await leg.wait_closed()

    async with serve(App(body), transfer_timeout_s=0.2) as served:
        _, rec = await served.caller()
        await eventually(lambda: bool(results), "the transfer timeout")
        assert results[0].ok is False
        assert results[0].status == 408
        assert len(refused) == 1
        assert rec.of(TransferRequested) == [TransferRequested("sip:desk@example.com")]
