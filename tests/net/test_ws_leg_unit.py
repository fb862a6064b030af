"""WsMediaLeg and SyncSender without a network: a fake socket records what is sent, and
the test drives ``on_tick`` by hand, so every assertion is about order and content."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from trunkline.net.leg import Dtmf, Hangup, MarkReached
from trunkline.net.pacer import Pacer
from trunkline.net.ws_server import SyncSender, WsMediaLeg
from trunkline.rtp.g711 import ulaw_encode
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import decode

from .test_ws_calls import Recorder, tone_frames


class FakeSocket:
    """Just enough of aiohttp's WebSocketResponse: send_str records, optionally stalls."""

    def __init__(self) -> None:
        self.sent: list[wire.Event] = []
        self.stall: asyncio.Future[None] | None = None
        self.fail = False
        self.closed_with: int | None = None

    async def send_str(self, text: str) -> None:
        if self.fail:
            raise ConnectionResetError("Cannot write to closing transport")
        self.sent.append(decode(text))
        if self.stall is not None:
            await self.stall  # the frame is written; now flow control holds the writer

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed_with = code
        return True


def make_leg(sock: FakeSocket) -> WsMediaLeg:
    return WsMediaLeg(sock, wire.Start("MZ1", "CA1"), Pacer())  # type: ignore[arg-type]


async def test_sync_sender_finishes_in_one_step_when_not_blocked() -> None:
    sock = FakeSocket()
    sender = SyncSender(sock.send_str)
    assert sender.send('{"event":"clear","streamSid":"MZ1"}')
    assert sock.sent == [wire.Clear("MZ1")]
    assert not sender.blocked and not sender.broken


async def test_sync_sender_is_blocked_until_the_transport_drains() -> None:
    sock = FakeSocket()
    sock.stall = asyncio.get_running_loop().create_future()
    sender = SyncSender(sock.send_str)
    assert sender.send('{"event":"clear","streamSid":"MZ1"}')
    assert sender.blocked
    sock.stall.set_result(None)
    await asyncio.sleep(0)  # done callbacks run on the next loop step
    assert not sender.blocked


async def test_sync_sender_consumes_a_lost_connection_quietly() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        sock = FakeSocket()
        sock.stall = loop.create_future()
        sender = SyncSender(sock.send_str)
        sender.send('{"event":"clear","streamSid":"MZ1"}')
        sock.stall.set_exception(ConnectionResetError("lost"))
        await asyncio.sleep(0)
        sock.stall = None
        gc.collect()
        assert not sender.blocked
        assert errors == []  # no "Future exception was never retrieved"
    finally:
        loop.set_exception_handler(None)


async def test_sync_sender_reports_a_closing_socket() -> None:
    sock = FakeSocket()
    sock.fail = True
    sender = SyncSender(sock.send_str)
    assert not sender.send("{}")
    assert sender.broken


async def test_on_tick_sends_one_frame_per_tick_with_marks_in_place() -> None:
    sock = FakeSocket()
    leg = make_leg(sock)
    frames = tone_frames(3)
    leg.mark("before")
    leg.send_audio(frames[0])
    leg.mark("after-first")
    leg.send_audio(frames[1] + frames[2])
    for _ in range(4):
        leg.on_tick(0.0)
    payload = [ulaw_encode(f) for f in frames]
    assert sock.sent == [
        wire.Mark("MZ1", "before"),
        wire.Media("MZ1", payload[0]),
        wire.Mark("MZ1", "after-first"),
        wire.Media("MZ1", payload[1]),
        wire.Media("MZ1", payload[2]),
    ]
    assert leg.frames_out == 3


async def test_on_tick_holds_audio_while_the_socket_is_blocked() -> None:
    sock = FakeSocket()
    sock.stall = asyncio.get_running_loop().create_future()
    leg = make_leg(sock)
    leg.send_audio(b"".join(tone_frames(3)))
    leg.on_tick(0.0)  # the first frame goes out, then the writer stalls
    leg.on_tick(0.02)
    leg.on_tick(0.04)
    assert len(sock.sent) == 1
    assert leg.queued_frames == 2  # held, not dropped
    sock.stall.set_result(None)
    sock.stall = None
    await asyncio.sleep(0)
    leg.on_tick(0.06)
    assert len(sock.sent) == 2


async def test_events_before_attach_are_delivered_on_attach_hangup_last() -> None:
    sock = FakeSocket()
    leg = make_leg(sock)
    leg._on_control(wire.Dtmf("MZ1", "4"))
    leg._on_control(wire.Stop("MZ1"))
    rec = Recorder()
    leg.attach(rec)
    assert rec.events == [Dtmf("4"), Hangup("stop", "remote")]


async def test_an_echo_reaches_every_earlier_mark_too() -> None:
    sock = FakeSocket()
    leg = make_leg(sock)
    rec = Recorder()
    leg.attach(rec)
    for name in ("a", "b", "c"):
        leg.mark(name)
    leg.on_tick(0.0)
    assert [e for e in sock.sent if isinstance(e, wire.Mark)] == [
        wire.Mark("MZ1", n) for n in "abc"
    ]
    leg._on_control(wire.Mark("MZ1", "b"))  # "a" was lost on the way: "b" implies it
    leg._on_control(wire.Mark("MZ1", "zz"))  # not ours: ignored
    assert rec.of(MarkReached) == [MarkReached("a"), MarkReached("b")]
    leg._on_control(wire.Mark("MZ1", "c"))
    assert rec.of(MarkReached) == [MarkReached(n) for n in "abc"]
