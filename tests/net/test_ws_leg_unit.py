"""WsMediaLeg and SyncSender without a network: a fake socket records what is sent, and
the test drives ``on_tick`` by hand, so every assertion is about order and content."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from trunkline.net.leg import Dtmf, Hangup, MarkReached
from trunkline.net.pacer import Pacer
from trunkline.net.ws_server import FrameWriter, SyncSender, WsMediaLeg
from trunkline.rtp.g711 import ulaw_encode
from trunkline.wsmedia import WsMediaProtocolError
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import decode, encode, encode_media

from .test_ws_calls import Recorder, through_ulaw, tone_frames


class FakeSocket:
    """Just enough of aiohttp's WebSocketResponse: send_str records, optionally stalls."""

    def __init__(self) -> None:
        self.sent: list[wire.Event] = []
        self.stall: asyncio.Future[None] | None = None
        self.fail = False
        self.closed_with: int | None = None
        self.closed = False

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


class FakeTransport:
    """Just enough of an asyncio transport for FrameWriter: keeps what is written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.buffered = 0  # what get_write_buffer_size() reports
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)


def read_frames(data: bytes) -> list[str]:
    """Parse unmasked FIN text frames (RFC 6455 §5.2) back into their texts."""
    texts, i = [], 0
    while i < len(data):
        assert data[i] == 0x81  # FIN, text
        n, i = data[i + 1], i + 2
        assert not n & 0x80  # a server never masks
        if n == 126:
            n, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        texts.append(data[i : i + n].decode())
        i += n
    return texts


def make_writer_leg(sock: FakeSocket, transport: FakeTransport) -> WsMediaLeg:
    return WsMediaLeg(
        sock,  # type: ignore[arg-type]
        wire.Start("MZ1", "CA1"),
        Pacer(),
        transport=transport,  # type: ignore[arg-type]
    )


async def test_frame_writer_frames_every_length_class() -> None:
    transport = FakeTransport()
    writer = FrameWriter(FakeSocket(), transport)  # type: ignore[arg-type]
    texts = ["", "x" * 125, "y" * 126, "z" * 65535, "w" * 65536]
    for text in texts:
        assert writer.send(text)
    assert read_frames(bytes(transport.data)) == texts


async def test_frame_writer_refuses_a_closed_socket_or_transport() -> None:
    sock, transport = FakeSocket(), FakeTransport()
    writer = FrameWriter(sock, transport)  # type: ignore[arg-type]
    transport.closing = True
    assert not writer.send("{}")
    assert writer.broken and transport.data == b""
    sock2, transport2 = FakeSocket(), FakeTransport()
    sock2.closed = True  # aiohttp: close() was called, our close frame is on its way
    writer2 = FrameWriter(sock2, transport2)  # type: ignore[arg-type]
    assert not writer2.send("{}")
    assert transport2.data == b""


async def test_leg_with_a_transport_sends_the_same_messages_and_holds_when_blocked() -> None:
    sock, transport = FakeSocket(), FakeTransport()
    leg = make_writer_leg(sock, transport)
    frames = tone_frames(3)
    leg.mark("m")
    leg.send_audio(b"".join(frames))
    leg.on_tick(0.0)
    transport.buffered = 65537  # over the high water mark: the peer is not reading
    leg.on_tick(0.02)
    assert leg.queued_frames == 2  # held, not dropped
    transport.buffered = 0
    leg.on_tick(0.04)
    leg.on_tick(0.06)
    assert [decode(t) for t in read_frames(bytes(transport.data))] == [
        wire.Mark("MZ1", "m"),
        *(wire.Media("MZ1", ulaw_encode(f)) for f in frames),
    ]
    assert sock.sent == []  # nothing went through aiohttp's send_str


async def test_on_text_takes_the_callers_audio_and_skips_the_outbound_track() -> None:
    leg = make_leg(FakeSocket())
    rec = Recorder()
    leg.attach(rec)
    frames = tone_frames(2)
    assert leg._on_text(encode_media("MZ1", ulaw_encode(frames[0]), "inbound", 1, 0, 2))
    assert leg._on_text(encode_media("MZ1", ulaw_encode(frames[1]), "outbound", 1, 0, 3))
    assert leg._on_text(encode_media("MZ1 ", ulaw_encode(frames[1])))  # no track: inbound
    assert rec.frames == [through_ulaw(frames[0]), through_ulaw(frames[1])]
    assert leg.frames_in == 2
    with pytest.raises(WsMediaProtocolError):
        leg._on_text('{"event":"media"')
    assert not leg._on_text(encode(wire.Stop("MZ1")))  # the stream has ended
